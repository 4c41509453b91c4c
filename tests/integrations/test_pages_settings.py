"""The settings page after launch: status switch, Refresh, editing, Connection failed marks."""

from __future__ import annotations

import pytest
from django.urls import reverse

from integrations import lifecycle, signals, steps
from integrations.models import Integration
from integrations.sandbox.pipedrive import custom_field_key
from tests.factories import (
    add_pipedrive_field,
    delete_pipedrive_field,
    launched_integration,
    legacy_connection,
    ready_integration,
)

pytestmark = pytest.mark.django_db

Status = Integration.Status


def url(name: str, integration: Integration) -> str:
    return reverse(f"integrations:{name}", kwargs={"pk": integration.pk})


def text(response) -> str:
    return response.content.decode()


def test_the_settings_page_shows_the_switch_transfer_refresh_and_every_section(
    client_logged_in, user, sandbox
):
    integration = launched_integration(user, sandbox)
    page = text(client_logged_in.get(url("settings", integration)))
    assert 'id="status-active" class="seg on" disabled' in page
    assert 'name="status" value="paused" id="status-paused"' in page
    # Syncing and Connection failed are shown, never chosen.
    assert '<span class="seg state" aria-disabled="true"' in page and ">Syncing</span>" in page
    assert ">Connection failed</span>" in page
    assert 'value="syncing"' not in page and 'value="failed"' not in page
    assert "Transfer unsynced data" in page and 'id="refresh"' in page
    for section in ("connections", "direction", "data", "constants", "automations-card"):
        assert f'id="{section}"' in page
    assert "Paused → <strong>Active</strong>" in page and "Launched" in page


def test_the_settings_page_before_launch_sends_the_user_back_to_setup(
    client_logged_in, user, sandbox
):
    integration = ready_integration(user, sandbox)
    response = client_logged_in.get(url("settings", integration))
    assert response.url == url("detail", integration)
    assert client_logged_in.get(response.url).url == url("direction", integration)


def test_the_switch_pauses_and_resumes_and_every_change_is_shown(client_logged_in, user, sandbox):
    integration = launched_integration(user, sandbox)
    response = client_logged_in.post(url("status", integration), {"status": "paused"}, follow=True)
    assert "Paused. Changes are held" in text(response)
    integration.refresh_from_db()
    assert integration.status == Status.PAUSED
    response = client_logged_in.post(url("status", integration), {"status": "active"}, follow=True)
    page = text(response)
    assert "Active: real-time sync is running." in page
    assert page.count("<tr><td>") == 3  # launched, paused, resumed
    assert "Paused by the user" in page and "Resumed" in page and "alice" in page


def test_syncing_and_failed_cannot_be_chosen(client_logged_in, user, sandbox):
    integration = launched_integration(user, sandbox)
    for value in ("syncing", "failed", "", "bogus"):
        response = client_logged_in.post(url("status", integration), {"status": value}, follow=True)
        assert "Choose Active or Paused." in text(response)
    integration.refresh_from_db()
    assert integration.status == Status.ACTIVE


def test_the_switch_waits_while_a_transfer_runs(client_logged_in, user, sandbox):
    integration = launched_integration(user, sandbox)
    lifecycle.set_status(integration, Status.SYNCING, None, "Transfer running")
    page = text(client_logged_in.get(url("settings", integration)))
    assert 'class="seg state on"' in page
    response = client_logged_in.post(url("status", integration), {"status": "paused"}, follow=True)
    assert "A transfer is running" in text(response)
    integration.refresh_from_db()
    assert integration.status == Status.SYNCING


def test_refresh_says_what_changed(client_logged_in, user, sandbox):
    integration = launched_integration(user, sandbox)
    add_pipedrive_field(sandbox, "Lead score", "double")
    response = client_logged_in.post(url("refresh", integration), follow=True)
    page = text(response)
    assert "Refreshed. Pipedrive person fields: added “Lead score”." in page
    assert "Lead score (Number)" in page  # offered for pairing right away
    response = client_logged_in.post(url("refresh", integration), follow=True)
    assert "Refreshed. Nothing changed since the last refresh." in text(response)


def test_connection_failed_marks_each_problem_in_red_with_how_to_fix_it(
    client_logged_in, user, sandbox
):
    integration = launched_integration(user, sandbox)
    client_logged_in.post(url("status", integration), {"status": "paused"})
    delete_pipedrive_field(sandbox, "Industry")
    sandbox.snovio.delete_list("Conference leads 2026")
    client_logged_in.post(url("refresh", integration))
    response = client_logged_in.post(url("status", integration), {"status": "active"}, follow=True)
    page = text(response)
    integration.refresh_from_db()
    assert integration.status == Status.FAILED
    assert "Could not resume: 2 problem(s), marked in red below." in page
    assert "Connection failed: 2 problems to fix" in page
    assert (
        '<li class="problem" data-field="target_list"><strong>The Snov.io list “Conference leads '
        '2026” no longer exists.</strong><span class="fix">Choose another sync-to list in Data '
        'exchange. <a href="#data">Go there</a></span></li>'
    ) in page
    assert "The Pipedrive field “Industry” (pair “Industry” ↔ “Industry”) no longer exists." in page
    assert 'class="card settings-section has-problem" id="data"' in page
    assert 'class="mapping-row problem-row"' in page
    assert "Industry — no longer exists" in page
    assert 'class="seg state failed on"' in page


def test_fixing_the_problems_on_the_page_lets_the_user_resume(client_logged_in, user, sandbox):
    integration = launched_integration(user, sandbox)
    client_logged_in.post(url("status", integration), {"status": "paused"})
    delete_pipedrive_field(sandbox, "Industry")
    client_logged_in.post(url("status", integration), {"status": "active"})
    integration.refresh_from_db()
    assert integration.status == Status.FAILED

    # Saving the broken pair unchanged is refused next to the field...
    form = {
        "target_list": integration.target_list_id,
        "owner": str(integration.pipedrive_owner_id),
        "all_lists": "on",
        "only_with_email": "on",
        "map-TOTAL_FORMS": "1",
        "map-INITIAL_FORMS": "1",
        "map-0-snovio_field": "customFields[Industry]",
        "map-0-pipedrive_field": custom_field_key("Industry"),
    }
    response = client_logged_in.post(url("data", integration), form)
    assert response.context["formset"].forms[0].errors["pipedrive_field"] == [
        "This Pipedrive field no longer exists: choose another or remove the pair."
    ]
    # ...removing it with the trash fixes it, and the switch works again.
    form["map-0-DELETE"] = "on"
    response = client_logged_in.post(url("data", integration), form)
    assert response.url == url("settings", integration)
    client_logged_in.post(url("status", integration), {"status": "active"})
    integration.refresh_from_db()
    assert integration.status == Status.ACTIVE
    reasons = list(integration.status_changes.values_list("to_status", flat=True))
    assert reasons[:2] == ["active", "failed"]


def test_saving_a_setting_after_launch_restarts_sync_and_returns_to_settings(
    client_logged_in, user, sandbox
):
    integration = launched_integration(user, sandbox)
    seen = []

    def on_change(sender, integration, **kwargs):
        seen.append(integration.pk)

    signals.settings_changed.connect(on_change, weak=False)
    try:
        response = client_logged_in.post(url("direction", integration), {"direction": "to_snovio"})
    finally:
        signals.settings_changed.disconnect(on_change)
    assert response.url == url("settings", integration)
    assert seen == [integration.pk]
    page = text(client_logged_in.get(url("settings", integration)))
    assert 'id="automations-card"' not in page  # no data flows to Pipedrive any more


def test_a_legacy_token_connection_is_shown_paused_with_reconnect(client_logged_in, user, sandbox):
    integration = launched_integration(user, sandbox)
    Integration.objects.filter(pk=integration.pk).update(pipedrive=legacy_connection(user))
    page = text(client_logged_in.get(url("settings", integration)))
    integration.refresh_from_db()
    assert integration.status == Status.PAUSED
    assert "Connected with a legacy API token" in page
    assert 'id="reconnect-pipedrive"' in page
    assert "Pipedrive is connected with a legacy API token." in page  # the problem, in red
    start = client_logged_in.post(url("connect_pipedrive", integration))
    assert "/pipedrive/oauth/authorize" in start.url


def test_the_list_shows_each_integration_with_its_status(client_logged_in, user, sandbox):
    launched_integration(user, sandbox)
    steps.create_integration(user)
    page = text(client_logged_in.get(reverse("integrations:list")))
    assert page.count('data-status="active"') == 1 and page.count('data-status="paused"') == 1
    assert "Continue setup" in page and ">Settings</a>" in page
