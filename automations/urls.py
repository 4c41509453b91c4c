from django.urls import path

from automations import views

app_name = "automations"
urlpatterns = [
    path("<int:integration_id>/", views.index, name="index"),
    path("<int:integration_id>/actions/add/", views.add_action, name="add"),
    path("<int:integration_id>/actions/<int:action_id>/edit/", views.edit_action, name="edit"),
    path(
        "<int:integration_id>/actions/<int:action_id>/toggle/",
        views.toggle_action,
        name="toggle_action",
    ),
    path(
        "<int:integration_id>/actions/<int:action_id>/remove/",
        views.remove_action,
        name="remove",
    ),
    path("<int:integration_id>/actions/<int:action_id>/move/", views.move_action, name="move"),
    path("<int:integration_id>/scenarios/<str:trigger>/reorder/", views.reorder, name="reorder"),
    path(
        "<int:integration_id>/scenarios/<str:trigger>/toggle/",
        views.toggle_scenario,
        name="toggle_scenario",
    ),
    path("<int:integration_id>/log/", views.run_log, name="log"),
]
