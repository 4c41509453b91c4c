"""Who may see what, and that no form input makes a page answer 500."""

from __future__ import annotations

import pytest
from django.urls import reverse

from integrations import steps
from integrations.models import Integration
from tests.factories import integration_with_both_apps, launched_integration

pytestmark = pytest.mark.django_db

PAGES = (
    "detail",
    "connect",
    "direction",
    "data",
    "constants",
    "automations",
    "launch",
    "transfer",
    "settings",
)
ACTIONS = (
    "connect_pipedrive",
    "connect_snovio",
    "direction",
    "data",
    "constants",
    "automations",
    "launch",
    "transfer",
    "status",
    "refresh",
)
FORMS = ("connect_snovio", "direction", "data", "constants", "launch", "transfer", "status")


def url(name: str, integration: Integration, **kwargs) -> str:
    return reverse(f"integrations:{name}", kwargs={"pk": integration.pk, **kwargs})


def test_every_page_needs_a_login(client, user):
    integration = steps.create_integration(user)
    for name in PAGES:
        response = client.get(url(name, integration))
        assert response.status_code == 302 and response.url.startswith("/accounts/login/"), name
    assert client.get(reverse("integrations:list")).url.startswith("/accounts/login/")


def test_another_users_integration_is_not_found_on_any_page_or_action(
    client, user, other_user, sandbox
):
    integration = launched_integration(user, sandbox)
    client.force_login(other_user)
    for name in PAGES:
        assert client.get(url(name, integration)).status_code == 404, name
    for name in ACTIONS:
        assert client.post(url(name, integration), {"status": "paused"}).status_code == 404, name
    for provider in ("pipedrive", "snovio"):
        assert client.post(url("disconnect", integration, provider=provider)).status_code == 404
    run = integration.runs.create(direction="to_pipedrive", source_app="snovio")
    assert client.get(url("transfer_run", integration, run_pk=run.pk)).status_code == 404
    integration.refresh_from_db()
    assert integration.status == Integration.Status.ACTIVE and integration.pipedrive
    listing = client.get(reverse("integrations:list")).content.decode()
    assert f"/integrations/{integration.pk}/" not in listing and "No integrations yet" in listing


def test_an_oauth_callback_cannot_connect_someone_elses_integration(
    client, user, other_user, sandbox
):
    integration = steps.create_integration(user)
    client.force_login(user)
    client.post(url("connect_pipedrive", integration))
    state = next(iter(client.session["pipedrive_oauth_states"]))
    client.force_login(other_user)  # a new session: the state is not theirs
    response = client.get(reverse("integrations:pipedrive_callback"), {"state": state, "code": "x"})
    assert response.status_code == 302
    integration.refresh_from_db()
    assert integration.pipedrive is None


GARBAGE = [
    {},
    {"direction": "sideways", "status": "exploded", "source_app": "excel"},
    {"target_list": "'; DROP TABLE x; --", "owner": "NaN", "lists": ["-1", "abc"]},
    {"owner": "9" * 40, "target_list": "\x00", "client_id": "\x00", "client_secret": "\x00"},
    {"map-TOTAL_FORMS": "abc", "map-INITIAL_FORMS": "-5"},
    {"map-TOTAL_FORMS": "100000", "map-INITIAL_FORMS": "0"},
    {
        "map-TOTAL_FORMS": "2",
        "map-INITIAL_FORMS": "5",
        "map-0-snovio_field": "x" * 5000,
        "map-1-pipedrive_field": "🚀",
        "map-1-DELETE": "maybe",
    },
    {"pipedrive_field": "nope", "pipedrive_value": "v" * 10000, "snovio_field": ["a", "b"]},
    {"snovio_value": "x", "pipedrive_value": "\x00"},
    {"direction": "to_snovio", "source_app": "pipedrive", "dry_run": "yes please"},
    {"client_id": "a" * 1000, "client_secret": "b" * 1000},
    {"next": "https://evil.example/", "status": "active"},
]


@pytest.mark.parametrize("payload", GARBAGE, ids=range(len(GARBAGE)))
def test_no_form_answers_500_to_garbage(client_logged_in, user, sandbox, payload):
    integration = launched_integration(user, sandbox)
    for name in FORMS:
        response = client_logged_in.post(url(name, integration), payload)
        assert response.status_code in (200, 302), (name, response.status_code)
    refresh = client_logged_in.post(url("refresh", integration), payload)
    assert refresh.status_code == 302 and "evil.example" not in refresh.url
    callback = client_logged_in.get(reverse("integrations:pipedrive_callback"), payload)
    if any("\x00" in str(value) for value in payload.values()):
        assert callback.status_code == 400 and b"NUL character" in callback.content
    else:
        assert callback.status_code == 302


def test_garbage_during_setup_is_reported_next_to_the_fields(client_logged_in, user, sandbox):
    integration = integration_with_both_apps(user, sandbox)
    response = client_logged_in.post(url("data", integration), {"target_list": "999"})
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert 'class="errorlist' in response.content.decode()
    response = client_logged_in.post(url("direction", integration), {"direction": "sideways"})
    assert response.status_code == 200
    assert response.context["form"].errors["direction"]


def test_disconnecting_an_unknown_app_is_refused_politely(client_logged_in, user):
    integration = steps.create_integration(user)
    response = client_logged_in.post(url("disconnect", integration, provider="excel"))
    assert response.status_code == 302


def test_support_staff_see_integrations_in_the_admin_but_never_a_token_or_secret(
    client, user, sandbox, django_user_model
):
    integration = launched_integration(user, sandbox)
    staff = django_user_model.objects.create_superuser("support", "s@example.com", "pw-support-1")
    client.force_login(staff)
    secrets = [
        integration.pipedrive.access_token,
        integration.pipedrive.refresh_token,
        integration.snovio.client_secret,
        integration.snovio.access_token,
        integration.webhook_secret,
        integration.pipedrive_webhook_password,
    ]
    pages = [
        reverse("admin:integrations_integration_change", args=[integration.pk]),
        reverse("admin:integrations_connection_change", args=[integration.pipedrive.pk]),
        reverse("admin:integrations_connection_change", args=[integration.snovio.pk]),
        reverse("admin:integrations_connection_changelist"),
        reverse("admin:integrations_integration_changelist"),
        reverse("admin:integrations_statuschange_changelist"),
        reverse("admin:integrations_remotecatalog_changelist"),
        reverse("admin:integrations_syncrun_changelist"),
        reverse("admin:integrations_syncevent_changelist"),
        reverse("admin:integrations_recordlink_changelist"),
        reverse("admin:integrations_pendingchange_changelist"),
    ]
    for page in pages:
        response = client.get(page)
        assert response.status_code == 200, page
        body = response.content.decode()
        assert not [s for s in secrets if s and s in body], page
    body = client.get(pages[0]).content.decode()
    assert "Launched" in body  # the status history is there for support


def test_support_staff_pause_through_the_life_cycle(client, user, sandbox, django_user_model):
    integration = launched_integration(user, sandbox)
    staff = django_user_model.objects.create_superuser("support", "s@example.com", "pw-support-1")
    client.force_login(staff)
    client.post(
        reverse("admin:integrations_integration_changelist"),
        {"action": "pause_selected", "_selected_action": [integration.pk]},
    )
    integration.refresh_from_db()
    assert integration.status == Integration.Status.PAUSED
    change = integration.status_changes.first()
    assert (change.changed_by, change.reason) == (staff, "Paused by support staff")
