from django.urls import path

from integrations import deletes_views, realtime_views, undo_views, uninstall_views, views

app_name = "integrations"
urlpatterns = [
    path("", views.integration_list, name="list"),
    path("integrations/new/", views.integration_new, name="new"),
    path(
        "integrations/new/connect/pipedrive/",
        views.new_connect_pipedrive,
        name="new_connect_pipedrive",
    ),
    path("integrations/new/connect/snovio/", views.new_connect_snovio, name="new_connect_snovio"),
    path("integrations/<int:pk>/", views.integration_detail, name="detail"),
    path("integrations/<int:pk>/connect/", views.connect, name="connect"),
    path(
        "integrations/<int:pk>/connect/pipedrive/",
        views.connect_pipedrive,
        name="connect_pipedrive",
    ),
    path("integrations/<int:pk>/connect/snovio/", views.connect_snovio, name="connect_snovio"),
    path(
        "integrations/<int:pk>/disconnect/<str:provider>/",
        views.disconnect,
        name="disconnect",
    ),
    # The OAuth callback registered with Pipedrive (settings.PIPEDRIVE_REDIRECT_URI).
    path(
        "connect/pipedrive/callback/",
        uninstall_views.pipedrive_callback,
        name="pipedrive_callback",
    ),
    path("integrations/<int:pk>/direction/", views.direction, name="direction"),
    path("integrations/<int:pk>/data/", views.data_exchange, name="data"),
    path("integrations/<int:pk>/constants/", views.constants, name="constants"),
    path("integrations/<int:pk>/automations/", views.automations, name="automations"),
    path("integrations/<int:pk>/launch/", views.launch, name="launch"),
    path("integrations/<int:pk>/transfer/", views.transfer, name="transfer"),
    path(
        "integrations/<int:pk>/transfer/<int:run_pk>/",
        views.transfer_run,
        name="transfer_run",
    ),
    path(
        "integrations/<int:pk>/transfer/<int:run_pk>/undo/",
        undo_views.undo_transfer,
        name="undo_transfer",
    ),
    path(
        "integrations/<int:pk>/events/<int:event_pk>/undo/",
        undo_views.undo_event,
        name="undo_event",
    ),
    path("integrations/<int:pk>/undo/<int:undo_pk>/", undo_views.undo_page, name="undo"),
    path("integrations/<int:pk>/settings/", views.settings_page, name="settings"),
    path("integrations/<int:pk>/status/", views.change_status, name="status"),
    path("integrations/<int:pk>/refresh/", views.refresh, name="refresh"),
    path("integrations/<int:pk>/delete/", views.delete, name="delete"),
    path("integrations/<int:pk>/realtime-rule/", realtime_views.save_rule, name="realtime_rule"),
    path("integrations/<int:pk>/deletes/", deletes_views.save_policy, name="deletes_policy"),
    path(
        "integrations/<int:pk>/deletes/<int:action_pk>/<str:decision>/",
        deletes_views.decide,
        name="deletes_decide",
    ),
    path(
        "integrations/<int:pk>/changes/<int:change_pk>/retry/",
        realtime_views.retry_change,
        name="retry_change",
    ),
]
