"""The seven setup steps as a user sees them (Django test client, sandbox in-process)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.conf import settings
from django.db import connection as db_connection
from django.urls import reverse

from integrations.models import Connection, Integration
from integrations.sandbox.pipedrive import custom_field_key
from integrations.sync import runs
from tests.conftest import SANDBOX_URL
from tests.factories import (
    integration_with_both_apps,
    launched_integration,
    ready_integration,
)

pytestmark = pytest.mark.django_db

Status = Integration.Status
INDUSTRY = custom_field_key("Industry")
EMPLOYEES = custom_field_key("Employees")
LEAD_SOURCE = custom_field_key("Lead source")


def url(name: str, integration: Integration, **kwargs) -> str:
    return reverse(f"integrations:{name}", kwargs={"pk": integration.pk, **kwargs})


def text(response) -> str:
    return response.content.decode()


def data_post(integration: Integration, **overrides) -> dict:
    """A valid step-3 form for a two-way integration, as the page would post it."""
    lists = integration.catalog.get(kind="snovio_lists").items
    form = {
        "target_list": lists[0]["id"],
        "owner": str(integration.pipedrive_owner_id),
        "all_lists": "on",
        "only_with_email": "on",
        "map-TOTAL_FORMS": "0",
        "map-INITIAL_FORMS": "0",
        "map-MIN_NUM_FORMS": "0",
        "map-MAX_NUM_FORMS": "1000",
    }
    form.update(overrides)
    return {k: v for k, v in form.items() if v is not None}


def with_pairs(integration: Integration, *pairs: tuple[str, str], **extra) -> dict:
    form = data_post(integration, **extra)
    form["map-TOTAL_FORMS"] = str(len(pairs))
    for i, (snov, pipe) in enumerate(pairs):
        form[f"map-{i}-snovio_field"] = snov
        form[f"map-{i}-pipedrive_field"] = pipe
    return form


# --- step 1: connect ------------------------------------------------------------------------


def test_a_new_integration_starts_at_connect_and_is_paused(client_logged_in, user):
    page = text(client_logged_in.get(reverse("integrations:new")))
    assert "Connect Pipedrive" in page and "Check and connect Snov.io" in page
    assert 'data-status="paused"' in page and "until launch" in page
    assert not Integration.objects.filter(owner=user).exists()  # created by its first connection


def test_pipedrive_connects_by_oauth_with_the_state_checked(client_logged_in, user, sandbox):
    integration = Integration.objects.create(owner=user)
    start = client_logged_in.post(url("connect_pipedrive", integration))
    consent = urlsplit(start.url)
    assert start.url.startswith(f"{SANDBOX_URL}/pipedrive/oauth/authorize")
    query = {k: v[0] for k, v in parse_qs(consent.query).items()}
    assert query["redirect_uri"] == settings.PIPEDRIVE_REDIRECT_URI
    assert query["redirect_uri"].endswith("/connect/pipedrive/callback/")
    assert len(query["state"]) > 30

    # The user clicks Allow on Pipedrive's consent page.
    allow = requests.post(
        f"{SANDBOX_URL}/pipedrive/oauth/authorize",
        data={**query, "decision": "allow"},
        allow_redirects=False,
    )
    callback = urlsplit(allow.headers["Location"])
    assert callback.path == reverse("integrations:pipedrive_callback")

    # A forged state is refused and connects nothing.
    code = parse_qs(callback.query)["code"][0]
    forged = client_logged_in.get(callback.path, {"code": code, "state": "forged"}, follow=True)
    assert "state did not match" in text(forged)
    integration.refresh_from_db()
    assert integration.pipedrive is None

    done = client_logged_in.get(f"{callback.path}?{callback.query}", follow=True)
    assert "Pipedrive is connected." in text(done)
    integration.refresh_from_db()
    assert integration.pipedrive.auth_kind == Connection.AuthKind.OAUTH
    assert integration.pipedrive.access_token.startswith("sbx-at-")
    assert integration.status == Status.PAUSED

    # The state is single use.
    again = client_logged_in.get(f"{callback.path}?{callback.query}", follow=True)
    assert "state did not match" in text(again)


def test_denying_pipedrive_access_connects_nothing(client_logged_in, user, sandbox):
    integration = Integration.objects.create(owner=user)
    start = client_logged_in.post(url("connect_pipedrive", integration))
    query = {k: v[0] for k, v in parse_qs(urlsplit(start.url).query).items()}
    deny = requests.post(
        f"{SANDBOX_URL}/pipedrive/oauth/authorize",
        data={**query, "decision": "deny"},
        allow_redirects=False,
    )
    response = client_logged_in.get(deny.headers["Location"], follow=True)
    assert "You chose not to give SyncBridge access to Pipedrive" in text(response)
    integration.refresh_from_db()
    assert integration.pipedrive is None


def test_a_refused_snovio_secret_is_reported_and_nothing_is_saved(client_logged_in, user, sandbox):
    integration = Integration.objects.create(owner=user)
    response = client_logged_in.post(
        url("connect_snovio", integration),
        {"client_id": settings.SANDBOX_SNOVIO_CLIENT_ID, "client_secret": "wrong"},
    )
    assert response.status_code == 200
    assert "Snov.io refused this API User ID and API Secret" in text(response)
    assert not Connection.objects.exists()


def test_right_snovio_credentials_are_saved_encrypted(client_logged_in, user, sandbox):
    integration = Integration.objects.create(owner=user)
    response = client_logged_in.post(
        url("connect_snovio", integration),
        {
            "client_id": settings.SANDBOX_SNOVIO_CLIENT_ID,
            "client_secret": settings.SANDBOX_SNOVIO_CLIENT_SECRET,
        },
    )
    assert response.status_code == 302
    integration.refresh_from_db()
    conn = integration.snovio
    assert conn.client_secret == settings.SANDBOX_SNOVIO_CLIENT_SECRET
    with db_connection.cursor() as cursor:
        cursor.execute("SELECT client_secret FROM integrations_connection WHERE id = %s", [conn.pk])
        raw = cursor.fetchone()[0]
    assert raw and settings.SANDBOX_SNOVIO_CLIENT_SECRET not in raw


def test_the_later_steps_wait_for_both_connections(client_logged_in, user):
    integration = Integration.objects.create(owner=user)
    for step in ("direction", "data", "constants", "automations", "launch"):
        response = client_logged_in.get(url(step, integration))
        assert response.url == url("connect", integration), step


def test_disconnect_removes_the_tokens(client_logged_in, user, sandbox):
    integration = integration_with_both_apps(user, sandbox)
    response = client_logged_in.post(url("disconnect", integration, provider="snovio"), follow=True)
    assert "its tokens are gone" in text(response)
    integration.refresh_from_db()
    assert integration.snovio is None
    assert Connection.objects.get(provider="snovio").client_secret == ""


# --- step 2: direction ----------------------------------------------------------------------


def test_direction_defaults_to_two_way_with_one_sentence_for_each(client_logged_in, user, sandbox):
    integration = integration_with_both_apps(user, sandbox)
    page = text(client_logged_in.get(url("direction", integration)))
    assert 'id="direction-two_way" checked' in page
    assert "a change on either side reaches the other" in page
    assert "nothing is written to Snov.io" in page
    assert "nothing is written to Pipedrive" in page
    response = client_logged_in.post(url("direction", integration), {"direction": "to_snovio"})
    assert response.url == url("data", integration)
    integration.refresh_from_db()
    assert integration.direction == "to_snovio"


# --- step 3: data exchange ------------------------------------------------------------------


def test_data_exchange_shows_every_section_for_two_way(client_logged_in, user, sandbox):
    integration = integration_with_both_apps(user, sandbox)
    page = text(client_logged_in.get(url("data", integration)))
    for marker in ("Sync-to Snov.io list", "Pipedrive owner", "All lists", "Email"):
        assert marker in page
    assert 'name="all_lists" id="id_all_lists" checked' in page
    assert 'id="lists-choice"' in page
    assert "Include email communication history" in page
    assert 'name="only_with_email" id="id_only_with_email" checked' in page


def test_one_way_to_pipedrive_has_no_sync_to_list(client_logged_in, user, sandbox):
    integration = integration_with_both_apps(user, sandbox)
    integration.direction = Integration.Direction.TO_PIPEDRIVE
    integration.save()
    page = text(client_logged_in.get(url("data", integration)))
    assert "Sync-to Snov.io list" not in page
    assert "Pipedrive owner" in page and "Sync-from Snov.io lists" in page


def test_one_way_to_snovio_has_no_owner_and_no_sync_from_lists(client_logged_in, user, sandbox):
    integration = integration_with_both_apps(user, sandbox)
    integration.direction = Integration.Direction.TO_SNOVIO
    integration.save()
    page = text(client_logged_in.get(url("data", integration)))
    assert "Sync-to Snov.io list" in page
    for gone in ("Pipedrive owner", "Sync-from Snov.io lists", "Include email communication"):
        assert gone not in page


def test_the_sync_to_list_is_required(client_logged_in, user, sandbox):
    integration = integration_with_both_apps(user, sandbox)
    response = client_logged_in.post(
        url("data", integration), data_post(integration, target_list="")
    )
    assert response.status_code == 200
    assert response.context["data_form"].errors["target_list"] == ["This field is required."]


def test_lists_must_be_real_lists_of_the_account(client_logged_in, user, sandbox):
    integration = integration_with_both_apps(user, sandbox)
    response = client_logged_in.post(
        url("data", integration), data_post(integration, target_list="999999", owner="1")
    )
    errors = response.context["data_form"].errors
    assert "Select a valid choice" in errors["target_list"][0]
    assert "Select a valid choice" in errors["owner"][0]


def test_all_lists_off_needs_a_chosen_list(client_logged_in, user, sandbox):
    integration = integration_with_both_apps(user, sandbox)
    response = client_logged_in.post(
        url("data", integration), data_post(integration, all_lists=None)
    )
    assert response.context["data_form"].errors["lists"] == [
        "Choose at least one list, or turn on “All lists”."
    ]
    lists = integration.catalog.get(kind="snovio_lists").items
    form = data_post(integration, all_lists=None)
    form["lists"] = [lists[1]["id"], lists[2]["id"]]
    assert client_logged_in.post(url("data", integration), form).status_code == 302
    integration.refresh_from_db()
    assert integration.all_lists is False
    assert sorted(integration.list_selections.values_list("list_name", flat=True)) == [
        "Re-engagement",
        "SaaS founders EU",
    ]


def test_the_duplicate_warning_shows_when_email_only_is_off(client_logged_in, user, sandbox):
    integration = integration_with_both_apps(user, sandbox)
    page = text(client_logged_in.get(url("data", integration)))
    assert (
        'id="email-warning" data-hide-when-checked="#id_only_with_email" role="alert" hidden'
        in (page)
    )
    client_logged_in.post(url("data", integration), data_post(integration, only_with_email=None))
    integration.refresh_from_db()
    assert integration.only_with_email is False
    page = text(client_logged_in.get(url("data", integration)))
    assert 'role="alert" hidden' not in page.split('id="email-warning"')[1][:120]
    assert "Duplicates ahead." in page


def test_system_pairs_are_shown_locked(client_logged_in, user, sandbox):
    integration = integration_with_both_apps(user, sandbox)
    page = text(client_logged_in.get(url("data", integration)))
    assert page.count('class="system-pair"') == 7
    assert "<select disabled><option>Email</option></select>" in page
    assert "<select disabled><option>Job title</option></select>" in page


def test_the_mappings_say_phones_and_custom_fields_flow_to_snovio_only(
    client_logged_in, user, sandbox
):
    integration = integration_with_both_apps(user, sandbox)
    page = text(client_logged_in.get(url("data", integration)))
    assert "never returns a prospect's phones or custom fields" in page.replace("&#x27;", "'")


def test_a_custom_pair_of_the_same_type_is_saved(client_logged_in, user, sandbox):
    integration = integration_with_both_apps(user, sandbox)
    form = with_pairs(integration, ("customFields[Industry]", INDUSTRY))
    assert client_logged_in.post(url("data", integration), form).status_code == 302
    pair = integration.field_mappings.get(is_system=False)
    assert (pair.snovio_label, pair.pipedrive_label, pair.data_type) == (
        "Industry",
        "Industry",
        "text",
    )


def test_fields_of_different_types_cannot_be_paired(client_logged_in, user, sandbox):
    integration = integration_with_both_apps(user, sandbox)
    form = with_pairs(integration, ("customFields[Industry]", EMPLOYEES))
    response = client_logged_in.post(url("data", integration), form)
    assert response.status_code == 200
    row = response.context["formset"].forms[0]
    assert row.errors["pipedrive_field"] == [
        "“Employees” is a Number field but “Industry” is Text: only fields of the same data "
        "type can be paired."
    ]
    assert not integration.field_mappings.filter(is_system=False).exists()


def test_a_field_cannot_be_paired_twice(client_logged_in, user, sandbox):
    integration = integration_with_both_apps(user, sandbox)
    form = with_pairs(
        integration,
        ("customFields[Industry]", INDUSTRY),
        ("customFields[Industry]", INDUSTRY),
    )
    response = client_logged_in.post(url("data", integration), form)
    row = response.context["formset"].forms[1]
    assert "“Industry” is already paired: pick another." in row.errors["snovio_field"]
    assert "“Industry” is already paired: pick another." in row.errors["pipedrive_field"]


def test_system_fields_cannot_be_paired_again(client_logged_in, user, sandbox):
    integration = integration_with_both_apps(user, sandbox)
    form = with_pairs(integration, ("email", "job_title"))
    response = client_logged_in.post(url("data", integration), form)
    row = response.context["formset"].forms[0]
    assert "Select a valid choice" in row.errors["snovio_field"][0]
    assert "Select a valid choice" in row.errors["pipedrive_field"][0]


def test_a_pair_needs_its_pipedrive_side_before_it_is_saved(client_logged_in, user, sandbox):
    integration = integration_with_both_apps(user, sandbox)
    form = with_pairs(integration, ("customFields[Industry]", ""))
    response = client_logged_in.post(url("data", integration), form)
    row = response.context["formset"].forms[0]
    assert row.errors["pipedrive_field"] == ["Choose the Pipedrive field, or remove the row."]
    # An added row left empty is simply ignored.
    form = with_pairs(integration, ("", ""))
    assert client_logged_in.post(url("data", integration), form).status_code == 302


def test_the_trash_removes_a_custom_pair_but_keeps_the_fields(client_logged_in, user, sandbox):
    integration = ready_integration(user, sandbox)
    form = data_post(integration)
    form.update(
        {
            "map-TOTAL_FORMS": "1",
            "map-INITIAL_FORMS": "1",
            "map-0-snovio_field": "customFields[Industry]",
            "map-0-pipedrive_field": INDUSTRY,
            "map-0-DELETE": "on",
        }
    )
    assert client_logged_in.post(url("data", integration), form).status_code == 302
    assert not integration.field_mappings.filter(is_system=False).exists()
    assert integration.field_mappings.filter(is_system=True).count() == 7
    page = text(client_logged_in.get(url("data", integration)))
    assert "Industry (Text)" in page  # still there to pair again


# --- step 4: constants ----------------------------------------------------------------------


def test_constants_have_one_row_per_receiving_side(client_logged_in, user, sandbox):
    integration = integration_with_both_apps(user, sandbox)
    page = text(client_logged_in.get(url("constants", integration)))
    assert "Records Pipedrive receives" in page and "Records Snov.io receives" in page
    integration.direction = Integration.Direction.TO_PIPEDRIVE
    integration.save()
    page = text(client_logged_in.get(url("constants", integration)))
    assert "Records Pipedrive receives" in page and "Records Snov.io receives" not in page


def test_a_constant_is_saved_for_a_receiving_side(client_logged_in, user, sandbox):
    integration = integration_with_both_apps(user, sandbox)
    response = client_logged_in.post(
        url("constants", integration),
        {"pipedrive_field": LEAD_SOURCE, "pipedrive_value": "Snov.io campaign"},
    )
    assert response.url == url("automations", integration)
    constant = integration.constants.get()
    assert (constant.side, constant.field_label, constant.value) == (
        "pipedrive",
        "Lead source",
        "Snov.io campaign",
    )


@pytest.mark.parametrize(
    "form, field, message",
    [
        ({"pipedrive_field": LEAD_SOURCE, "pipedrive_value": "Cold call"}, "pipedrive_value",
         "“Lead source” takes one of: Snov.io campaign, Website, Referral, Event."),
        ({"pipedrive_field": EMPLOYEES, "pipedrive_value": "many"}, "pipedrive_value",
         "“Employees” is a number field: type a number."),
        ({"pipedrive_field": LEAD_SOURCE, "pipedrive_value": ""}, "pipedrive_value",
         "Type the value to stamp into this field."),
        ({"pipedrive_value": "Snov.io"}, "pipedrive_field",
         "Choose the field that receives this value."),
        ({"snovio_field": "customFields[Industry]", "snovio_value": "Retail"}, "snovio_field",
         "“Industry” is already filled by a field pair: pick another field."),
    ],
)  # fmt: skip
def test_a_constant_must_fit_its_field(client_logged_in, user, sandbox, form, field, message):
    integration = ready_integration(user, sandbox)
    response = client_logged_in.post(url("constants", integration), form)
    assert response.status_code == 200
    assert response.context["constants_form"].errors[field] == [message]


# --- step 5: automations --------------------------------------------------------------------


def test_automations_are_a_step_only_when_data_flows_to_pipedrive(client_logged_in, user, sandbox):
    integration = integration_with_both_apps(user, sandbox)
    page = text(client_logged_in.get(url("automations", integration)))
    assert "5. Automations" in page
    assert page.count('class="automations-section"') == 1
    integration.direction = Integration.Direction.TO_SNOVIO
    integration.save()
    response = client_logged_in.get(url("constants", integration))
    assert "Automations" not in "".join(s.title for s in response.context["steps"])
    assert client_logged_in.get(url("automations", integration)).url == url("launch", integration)
    response = client_logged_in.post(url("constants", integration), {})
    assert response.url == url("launch", integration)


# --- step 6: launch; step 7: transfer -------------------------------------------------------


def test_launch_lists_the_problems_and_stays_paused(client_logged_in, user, sandbox):
    integration = integration_with_both_apps(user, sandbox)
    page = text(client_logged_in.get(url("launch", integration)))
    assert "Fix 1 problem before launching" in page
    assert "No Snov.io list is chosen to receive contacts from Pipedrive." in page
    response = client_logged_in.post(url("launch", integration))
    assert response.status_code == 200
    integration.refresh_from_db()
    assert integration.status == Status.PAUSED


def test_launch_activates_and_offers_the_transfer_with_not_now(client_logged_in, user, sandbox):
    integration = ready_integration(user, sandbox)
    page = text(client_logged_in.get(url("launch", integration)))
    assert "Conference leads 2026" in page and "Industry ↔ Industry" in page
    response = client_logged_in.post(url("launch", integration), follow=True)
    page = text(response)
    assert "The integration is Active" in page
    assert 'id="offer-transfer"' in page and ">Not now</a>" in page
    integration.refresh_from_db()
    assert integration.status == Status.ACTIVE


def test_the_transfer_dialog_defaults_to_the_sender_and_explains_conflicts(
    client_logged_in, user, sandbox
):
    integration = launched_integration(user, sandbox)
    response = client_logged_in.get(url("transfer", integration))
    form = response.context["form"]
    assert form.initial == {"direction": "to_pipedrive", "source_app": "snovio"}
    page = text(response)
    assert "the <strong>source app</strong> wins" in page
    assert "never created twice" in page


def test_a_one_way_integration_transfers_one_way_only(client_logged_in, user, sandbox):
    integration = launched_integration(user, sandbox, Integration.Direction.TO_SNOVIO)
    form = client_logged_in.get(url("transfer", integration)).context["form"]
    assert [v for v, _ in form.fields["direction"].choices] == ["to_snovio"]
    assert form.initial["source_app"] == "pipedrive"
    response = client_logged_in.post(
        url("transfer", integration), {"direction": "to_pipedrive", "source_app": "snovio"}
    )
    assert "Select a valid choice" in response.context["form"].errors["direction"][0]


def test_submitting_the_transfer_hands_it_to_the_sync_engine(
    client_logged_in, user, sandbox, monkeypatch
):
    integration = launched_integration(user, sandbox)
    calls = []

    def fake_start(integration, direction, source_app, dry_run, user, *, idempotency_key=""):
        calls.append((direction, source_app, dry_run, user.username))
        return integration.runs.create(direction=direction, source_app=source_app, dry_run=True)

    monkeypatch.setattr(runs, "start_transfer", fake_start)
    response = client_logged_in.post(
        url("transfer", integration),
        {"direction": "to_pipedrive", "source_app": "pipedrive", "dry_run": "on"},
    )
    run = integration.runs.get()
    assert response.url == url("transfer_run", integration, run_pk=run.pk)
    assert calls == [("to_pipedrive", "pipedrive", True, "alice")]
    page = client_logged_in.get(response.url)
    assert page.status_code == 200
    assert "integrations/_transfer_progress.html" in [t.name for t in page.templates]


def test_no_transfer_before_launch(client_logged_in, user, sandbox):
    integration = ready_integration(user, sandbox)
    assert client_logged_in.get(url("transfer", integration)).url == url("launch", integration)
