"""Routes of the sync engine: webhook endpoints, the contact history, transfer progress."""

from django.urls import path

from integrations import history_views, webhooks

app_name = "sync"
urlpatterns = [
    path("hooks/pipedrive/<str:secret>/", webhooks.pipedrive_hook, name="pipedrive_hook"),
    path("hooks/snovio/<str:secret>/", webhooks.snovio_hook, name="snovio_hook"),
    path(
        "hooks/snovio/<str:secret>/<str:event_object>/<str:event_action>/",
        webhooks.snovio_hook,
        name="snovio_event_hook",
    ),
    path("integrations/<int:pk>/history/", history_views.history_page, name="history"),
    path(
        "integrations/<int:pk>/transfer/<int:run_pk>/progress/",
        webhooks.transfer_progress,
        name="transfer_progress",
    ),
]
