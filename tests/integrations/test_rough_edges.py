"""The rough edges a new user hit (issue 11), each pinned by a test."""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.urls import reverse

from automations import services as automation_services
from automations.models import ActionKind, Trigger
from integrations import plain_errors
from integrations.models import Connection, Integration
from integrations.pipedrive.client import PipedriveClient
from integrations.sandbox.legacy_example import legacy_example
from integrations.sandbox.pipedrive import custom_field_key
from integrations.sync.receivers import register_webhooks
from tests.factories import (
    launched_integration,
    legacy_connection,
    ready_integration,
    stored_integration,
)

pytestmark = pytest.mark.django_db


def url(name: str, integration: Integration) -> str:
    return reverse(f"integrations:{name}", args=[integration.pk])


def bar_and_heading(page: str, title: str) -> tuple[str, str]:
    """The step bar's number for `title` and the number the page heading shows."""
    bar = re.search(rf"(\d+)\. {re.escape(title)}</", page)
    heading = re.search(r"<h2>(\d+)\. ", page)
    assert bar and heading, page[:2000]
    return bar.group(1), heading.group(1)


@pytest.mark.parametrize("direction", Integration.Direction.values)
def test_the_step_bar_and_the_heading_give_each_step_the_same_number(
    client_logged_in, user, sandbox, direction
):
    integration = ready_integration(user, sandbox, direction)
    steps = [("direction", "Direction"), ("data", "Data exchange"), ("constants", "Constants")]
    steps += [("launch", "Launch")]
    if integration.sends_to_pipedrive:
        steps.append(("automations", "Automations"))
    for name, title in steps:
        page = client_logged_in.get(url(name, integration)).content.decode()
        number, shown = bar_and_heading(page, title)
        assert number == shown, (direction, name)
    launch = client_logged_in.get(url("launch", integration)).content.decode()
    expected = "5" if direction == Integration.Direction.TO_SNOVIO else "6"
    assert bar_and_heading(launch, "Launch") == (expected, expected)


def test_the_review_page_lists_the_automations(client_logged_in, user, sandbox):
    integration = ready_integration(user, sandbox)
    automation_services.add_action(
        integration, Trigger.EMAIL_OPENED, ActionKind.ADD_ACTIVITY, subject="Call back"
    )
    page = client_logged_in.get(url("launch", integration)).content.decode()
    review = page[page.index('id="review-automations"') :]
    assert "When campaign email opened" in review
    assert "Add a task “Call back” due the same day" in review


def test_the_review_page_says_when_there_are_no_automations(client_logged_in, user, sandbox):
    integration = ready_integration(user, sandbox)
    page = client_logged_in.get(url("launch", integration)).content.decode()
    assert re.search(r'id="review-automations">\s*none', page)


def test_the_list_shows_a_legacy_connection_as_paused_before_it_is_opened(client_logged_in, user):
    integration = stored_integration(user)
    integration.pipedrive = legacy_connection(user)
    integration.launched_at = integration.created_at
    integration.save()
    assert integration.status == Integration.Status.ACTIVE

    page = client_logged_in.get(reverse("integrations:list")).content.decode()

    row = page[page.index(f"#{integration.pk}</a>") :].split("</tr>")[0]
    assert 'data-status="paused"' in row and "legacy token" in row
    integration.refresh_from_db()
    assert integration.status == Integration.Status.PAUSED


# --- plain-language errors ------------------------------------------------------------------


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_a_spent_pipedrive_sign_in_is_explained_with_what_to_do(client_logged_in, user, sandbox):
    integration = Integration.objects.create(owner=user)
    client_logged_in.post(url("connect_pipedrive", integration))
    state = next(iter(client_logged_in.session["pipedrive_oauth_states"]))
    response = client_logged_in.get(
        reverse("integrations:pipedrive_callback"), {"state": state, "code": "spent"}, follow=True
    )
    (said,) = [m for m in messages_of(response) if "Pipedrive" in m]
    assert "did not accept this sign-in" in said and "Connect Pipedrive" in said
    assert "token request" not in said and "(400)" not in said and "grant" not in said


def test_a_refresh_that_fails_says_so_without_saying_refreshed(client_logged_in, user, sandbox):
    integration = launched_integration(user, sandbox)
    sandbox.inject("pipedrive", "503", count=100)
    response = client_logged_in.post(url("refresh", integration), follow=True)
    said = messages_of(response)
    assert not [m for m in said if m.startswith("Refreshed.")], said
    (failed,) = [m for m in said if m.startswith("Could not reload from Pipedrive")]
    assert "could not be reached" in failed and "Try again in a few minutes" in failed
    assert "503" not in failed and "GET /" not in failed


def test_a_failing_connection_is_not_shown_as_connected(client_logged_in, user, sandbox):
    integration = launched_integration(user, sandbox)
    sandbox.pipedrive.revoke_all()
    client_logged_in.post(url("refresh", integration))
    page = html.unescape(client_logged_in.get(url("settings", integration)).content.decode())
    card = page[page.index('id="pipedrive-connection"') : page.index('id="snovio-connection"')]
    assert "Connected to" not in card and "Connection failed" in card
    assert "no longer accepts SyncBridge's access" in card and "Click Reconnect" in card
    assert "Reconnect</button>" in card


@pytest.mark.parametrize(
    "provider, stored, says",
    [
        (
            "pipedrive",
            "pipedrive: token request refused (400): Invalid or expired grant",
            "no longer accepts SyncBridge's access",
        ),
        (
            "pipedrive",
            "pipedrive: GET /api/v2/persons answered 401: unauthorized",
            "no longer accepts SyncBridge's access",
        ),
        (
            "snovio",
            "Snov.io refused the API credentials (400): invalid client",
            "did not accept the API credentials",
        ),
        (
            "pipedrive",
            "pipedrive: GET /v1/users failed after 5 attempts: ConnectTimeout",
            "could not be reached",
        ),
        ("snovio", "snovio: POST /v1/get-user-lists answered 503", "could not be reached"),
        ("pipedrive", "pipedrive: rate limit hit (burst); retry in 2 s", "slow down"),
        ("pipedrive", "pipedrive: POST /v1/webhooks answered 403: Forbidden", "admin rights"),
    ],
)
def test_stored_remote_errors_read_as_plain_words_with_a_fix(provider, stored, says):
    plain = plain_errors.explain(provider, stored)
    assert says in plain.message + plain.fix
    assert plain.fix and not re.search(r"\(\d{3}\)|/v\d/|grant", str(plain))


# --- delete ---------------------------------------------------------------------------------


def test_an_integration_is_deleted_from_its_settings_page_with_its_webhooks(
    client_logged_in, user, sandbox
):
    integration = launched_integration(user, sandbox)
    register_webhooks(integration)
    assert sandbox.pipedrive.webhooks() and sandbox.snovio.webhooks()
    connections = [integration.pipedrive_id, integration.snovio_id]

    settings_page = client_logged_in.get(url("settings", integration)).content.decode()
    assert url("delete", integration) in settings_page
    confirm = client_logged_in.get(url("delete", integration)).content.decode()
    assert "Contacts, deals and activities already in Snov.io and Pipedrive are not touched" in (
        html.unescape(confirm)
    )
    assert Integration.objects.filter(pk=integration.pk).exists()  # a GET deletes nothing

    done = client_logged_in.post(url("delete", integration), follow=True)

    assert done.redirect_chain[-1][0] == reverse("integrations:list")
    assert any("is deleted" in m for m in messages_of(done))
    assert not Integration.objects.filter(pk=integration.pk).exists()
    assert not Connection.objects.filter(pk__in=connections).exists()  # the tokens are gone
    assert sandbox.pipedrive.webhooks() == [] and sandbox.snovio.webhooks() == []


def test_another_users_integration_cannot_be_deleted(client, other_user, user, sandbox):
    integration = stored_integration(user)
    client.force_login(other_user)
    assert client.post(url("delete", integration)).status_code == 404
    assert Integration.objects.filter(pk=integration.pk).exists()


def test_an_integration_is_not_deleted_while_a_transfer_runs(client_logged_in, user):
    integration = stored_integration(user)
    Integration.objects.filter(pk=integration.pk).update(status=Integration.Status.SYNCING)
    response = client_logged_in.post(url("delete", integration), follow=True)
    assert any("A transfer is running" in m for m in messages_of(response))
    assert Integration.objects.filter(pk=integration.pk).exists()


# --- an integration exists once its first step is saved --------------------------------------


def test_opening_a_new_integration_and_leaving_creates_nothing(client_logged_in, user):
    assert client_logged_in.get(reverse("integrations:new")).status_code == 200
    assert client_logged_in.post(reverse("integrations:new")).status_code == 302
    assert not Integration.objects.exists()


def test_a_new_integration_is_created_by_its_first_snovio_connection(
    client_logged_in, user, sandbox, settings
):
    new = reverse("integrations:new_connect_snovio")
    refused = client_logged_in.post(
        new, {"client_id": settings.SANDBOX_SNOVIO_CLIENT_ID, "client_secret": "wrong"}
    )
    assert refused.status_code == 200 and "Snov.io refused" in refused.content.decode()
    assert not Integration.objects.exists()

    done = client_logged_in.post(
        new,
        {
            "client_id": settings.SANDBOX_SNOVIO_CLIENT_ID,
            "client_secret": settings.SANDBOX_SNOVIO_CLIENT_SECRET,
        },
    )
    integration = Integration.objects.get(owner=user)
    assert done.url == url("connect", integration)
    assert integration.snovio is not None and integration.pipedrive is None
    assert integration.status == Integration.Status.PAUSED
    assert integration.field_mappings.filter(is_system=True).exists()


def test_a_new_integration_is_created_by_its_first_pipedrive_sign_in(
    client_logged_in, user, sandbox
):
    start = client_logged_in.post(reverse("integrations:new_connect_pipedrive"))
    query = {k: v[0] for k, v in parse_qs(urlsplit(start.url).query).items()}
    callback = reverse("integrations:pipedrive_callback")

    denied = client_logged_in.get(callback, {"state": query["state"], "error": "access_denied"})
    assert denied.url == reverse("integrations:new")
    assert not Integration.objects.exists()

    start = client_logged_in.post(reverse("integrations:new_connect_pipedrive"))
    query = {k: v[0] for k, v in parse_qs(urlsplit(start.url).query).items()}
    allow = requests.post(
        start.url.split("?")[0], data={**query, "decision": "allow"}, allow_redirects=False
    )
    done = client_logged_in.get(allow.headers["Location"])
    integration = Integration.objects.get(owner=user)
    assert done.url == url("connect", integration)
    assert integration.pipedrive.auth_kind == Connection.AuthKind.OAUTH


# --- a legacy API-token connection the demo can show ---------------------------------------


def test_the_demo_legacy_example_is_paused_everywhere_and_offers_reconnect(
    client_logged_in, user, sandbox
):
    integration = legacy_example(user)
    assert legacy_example(user) == integration  # made once

    listed = client_logged_in.get(reverse("integrations:list")).content.decode()
    row = listed[listed.index(f"#{integration.pk}</a>") :].split("</tr>")[0]
    assert 'data-status="paused"' in row and "legacy token" in row
    settings_page = client_logged_in.get(url("settings", integration)).content.decode()
    assert 'id="reconnect-pipedrive"' in settings_page
    resumed = client_logged_in.post(url("status", integration), {"status": "active"})
    assert resumed.status_code == 302
    integration.refresh_from_db()
    assert integration.status == Integration.Status.PAUSED
    # The sandbox accepts its token: the connection is real, only its kind is legacy.
    client = PipedriveClient.for_connection(integration.pipedrive)
    assert client.me()["name"]


# --- a constant for a single-option field offers the options --------------------------------


def test_a_constant_for_a_single_option_field_offers_its_options(client_logged_in, user, sandbox):
    integration = ready_integration(user, sandbox)
    lead_source = custom_field_key("Lead source")
    saved = client_logged_in.post(
        url("constants", integration),
        {"pipedrive_field": lead_source, "pipedrive_value": "Website"},
    )
    assert saved.status_code == 302

    page = client_logged_in.get(url("constants", integration)).content.decode()
    box = page[page.index('id="constant-pipedrive"') :].split("</fieldset>")[0]
    choice = re.search(r'<select name="pipedrive_value"[^>]*>(.*?)</select>', box, re.S)
    assert choice and "hidden" not in choice.group(0).split(">")[0]
    options = re.findall(r'<option value="([^"]+)"( selected)?>', choice.group(1))
    assert [o for o, _ in options] == ["Snov.io campaign", "Website", "Referral", "Event"]
    assert [o for o, selected in options if selected] == ["Website"]
    text_box = re.search(r'<input type="text" name="pipedrive_value"[^>]*>', box).group(0)
    assert "disabled" in text_box  # not sent: the choice is
    # The options of every single-option field are on the page for the script.
    assert '"Snov.io campaign", "Website", "Referral", "Event"' in box


def test_a_constant_for_a_text_field_stays_a_text_box(client_logged_in, user, sandbox):
    integration = ready_integration(user, sandbox)
    page = client_logged_in.get(url("constants", integration)).content.decode()
    box = page[page.index('id="constant-pipedrive"') :].split("</fieldset>")[0]
    text_box = re.search(r'<input type="text" name="pipedrive_value"[^>]*>', box).group(0)
    assert "disabled" not in text_box
    assert re.search(r'<select name="pipedrive_value"[^>]* hidden disabled>', box)
