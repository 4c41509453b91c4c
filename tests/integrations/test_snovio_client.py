"""SnovioClient against the in-process Snov.io simulator: auth, lists, prospects, history, hooks."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection as db
from django.utils import timezone

from automations.models import Trigger
from integrations.http import AuthError, RemoteError
from integrations.models import Connection, Provider
from integrations.snovio.client import SnovioClient
from integrations.snovio.constants import TRIGGER_LABELS, TRIGGER_WEBHOOKS, WEBHOOK_TRIGGERS

pytestmark = pytest.mark.django_db

TOKEN = ("snovio", "POST", "/v1/oauth/access_token")
LISTS = ("snovio", "GET", "/v1/get-user-lists")


@pytest.fixture(autouse=True)
def roomy_limiter(settings):
    # 60 requests/min would make a busy test wait in real time; the wiring has its own test.
    settings.SNOVIO_RATE_LIMIT = 100_000


@pytest.fixture
def connection(django_user_model, settings):
    owner = django_user_model.objects.create(username="snov-owner")  # no password hashing: fast
    return Connection.objects.create(
        owner=owner,
        provider=Provider.SNOVIO,
        auth_kind=Connection.AuthKind.CREDENTIALS,
        client_id=settings.SANDBOX_SNOVIO_CLIENT_ID,
        client_secret=settings.SANDBOX_SNOVIO_CLIENT_SECRET,
    )


@pytest.fixture
def snov(empty_sandbox, connection):
    client = SnovioClient.for_connection(connection)
    client.http.sleep = lambda seconds: None  # retries and backoff without real waiting
    return client


def sent(sandbox, entry) -> int:
    return sandbox.request_log.count(entry)


def move_clocks(sandbox, monkeypatch, seconds: float) -> None:
    """Let time pass for both the simulator and the app (token expiry is judged on both)."""
    later_app, later_remote = timezone.now() + timedelta(seconds=seconds), sandbox.clock() + seconds
    monkeypatch.setattr(timezone, "now", lambda: later_app)
    sandbox.clock = lambda: later_remote


# --- auth ------------------------------------------------------------------------------------
def test_token_is_fetched_once_then_reused_and_kept_encrypted_on_the_connection(
    empty_sandbox, snov, connection
):
    snov.get_user_lists()
    snov.get_user_lists()

    assert sent(empty_sandbox, TOKEN) == 1
    connection.refresh_from_db()
    assert connection.access_token
    assert connection.expires_at > timezone.now() + timedelta(minutes=55)
    with db.cursor() as cursor:
        table = Connection._meta.db_table
        cursor.execute(f"SELECT access_token FROM {table} WHERE id = %s", [connection.pk])
        assert connection.access_token not in cursor.fetchone()[0]


def test_an_expired_token_is_renewed_before_the_call_without_a_401(
    empty_sandbox, snov, monkeypatch
):
    snov.get_user_lists()
    move_clocks(empty_sandbox, monkeypatch, 3601)

    snov.get_user_lists()

    assert sent(empty_sandbox, TOKEN) == 2
    assert sent(empty_sandbox, LISTS) == 2  # no refused attempt in between


def test_a_token_the_remote_no_longer_knows_is_renewed_once_on_401(empty_sandbox, snov):
    snov.get_user_lists()
    empty_sandbox.snovio.expire_tokens()

    assert snov.get_user_lists() == []
    assert sent(empty_sandbox, TOKEN) == 2
    assert sent(empty_sandbox, LISTS) == 3  # ok, refused, ok after renewal


def test_wrong_credentials_are_refused_as_permanent_without_leaking_the_secret(
    empty_sandbox, snov, connection
):
    connection.client_secret = "not-the-secret"
    connection.save()

    with pytest.raises(AuthError) as refused:
        snov.check_credentials()

    assert refused.value.permanent
    assert "refused the API credentials" in str(refused.value)
    assert "not-the-secret" not in str(refused.value)
    with pytest.raises(AuthError):
        snov.get_user_lists()


def test_check_credentials_accepts_the_demo_pair_and_stores_a_token(snov, connection):
    snov.check_credentials()

    connection.refresh_from_db()
    assert connection.access_token


def test_revoked_credentials_fail_permanently_after_a_single_renewal(empty_sandbox, snov):
    snov.get_user_lists()
    empty_sandbox.inject("snovio", "revoked", path="get-user-lists")

    with pytest.raises(AuthError) as refused:
        snov.get_user_lists()

    assert refused.value.permanent
    assert sent(empty_sandbox, TOKEN) == 2  # one renewal attempt, then it gives up


# --- limits and faults -----------------------------------------------------------------------
def test_client_shares_the_per_account_limiter_of_sixty_per_minute(settings, connection):
    settings.SNOVIO_RATE_LIMIT = 60

    limiter = SnovioClient.for_connection(connection).http.limiter

    assert limiter.key == f"snovio:{connection.client_id}"
    assert (limiter.limit, limiter.period) == (60, 60.0)


def test_a_429_is_waited_out_for_as_long_as_the_remote_asks(empty_sandbox, snov):
    now = [empty_sandbox.clock()]
    empty_sandbox.clock = lambda: now[0]
    waits = []

    def sleep(seconds):
        waits.append(seconds)
        now[0] += seconds

    snov.http.sleep = snov.http.limiter.sleep = sleep
    snov.http.limiter.clock = lambda: now[0]
    empty_sandbox.set_rate_limit("snovio", 2, period=4)

    for _ in range(3):
        snov.get_user_lists()

    assert len(waits) == 1 and 3.9 <= waits[0] <= 4  # until the oldest call leaves the window
    # x-ratelimit-remaining: 0 on the second answer held the third back: no 429 at all.
    assert sent(empty_sandbox, LISTS) == 3


def test_a_429_blocks_the_account_for_as_long_as_the_remote_asks(empty_sandbox, snov):
    now = [empty_sandbox.clock()]
    waits = []

    def sleep(seconds):
        waits.append(seconds)
        now[0] += seconds

    snov.http.sleep = snov.http.limiter.sleep = sleep
    snov.http.limiter.clock = lambda: now[0]
    empty_sandbox.inject("snovio", "429", count=1, path="get-user-lists")

    assert snov.get_user_lists() == []

    assert sent(empty_sandbox, LISTS) == 2  # the one answered 429, then the retry
    assert len(waits) == 1 and 0.9 <= waits[0] <= 1.0  # no Retry-After: a second


def test_server_errors_are_retried_then_reported_as_temporary(empty_sandbox, snov):
    empty_sandbox.inject("snovio", "503", count=2, path="get-user-lists")
    assert snov.get_user_lists() == []

    empty_sandbox.inject("snovio", "500", count=50, path="get-user-lists")
    with pytest.raises(RemoteError) as failed:
        snov.get_user_lists()

    assert failed.value.status == 500
    assert not failed.value.permanent


def test_every_http_request_is_counted(snov):
    snov.get_user_lists()
    snov.get_user_campaigns()

    assert snov.http.calls == 3  # token + two calls


# --- lists and prospects ---------------------------------------------------------------------
def test_lists_come_with_their_size_and_deleted_flag(empty_sandbox, snov):
    leads = empty_sandbox.snovio.create_list("Leads")
    old = empty_sandbox.snovio.create_list("Old")
    empty_sandbox.snovio.add_prospects(leads["id"], 3)
    empty_sandbox.snovio.delete_list(old["id"])

    lists = {x["name"]: x for x in snov.get_user_lists()}

    assert lists["Leads"]["contacts"] == 3 and lists["Leads"]["isDeleted"] is False
    assert lists["Old"]["isDeleted"] is True
    assert lists["Leads"]["creationDate"]["timezone"] == "UTC"


def test_paging_through_a_list_of_250_prospects_sees_each_once(empty_sandbox, snov):
    big = empty_sandbox.snovio.create_list("Big")
    added = empty_sandbox.snovio.add_prospects(big["id"], 250)

    first, more = snov.list_prospects_page(big["id"])
    third, last_more = snov.list_prospects_page(big["id"], page=3)
    seen = list(snov.iter_prospects(big["id"]))

    assert (len(first), more) == (100, True)
    assert (len(third), last_more) == (50, False)
    assert [p["id"] for p in seen] == [p["id"] for p in added]
    assert seen[0]["emails"][0]["email"] == added[0]["emails"][0]["email"]
    assert sent(empty_sandbox, ("snovio", "POST", "/v1/prospect-list")) == 5


def test_a_prospect_added_from_the_crm_is_unverified_and_keeps_its_fields(empty_sandbox, snov):
    target = empty_sandbox.snovio.create_list("From Pipedrive")
    empty_sandbox.snovio.add_custom_field("Industry")
    empty_sandbox.snovio.add_custom_field("Employees", "number")

    result = snov.add_prospect_to_list(
        target["id"],
        {
            "email": "Dana.Berg@Acme.example",
            "firstName": "Dana",
            "lastName": "Berg",
            "position": "CTO",
            "companyName": "Acme",
            "phones": [{"value": "+49 30 1234567", "primary": True}],
            "customFields": {"Industry": "Software", "Employees": 50, "Unknown": "x"},
        },
    )

    assert result == {"success": True, "id": result["id"], "added": True, "updated": False}
    [found] = snov.get_prospect_by_email("dana.berg@acme.example")
    assert (found["name"], found["position"], found["companyName"]) == ("Dana Berg", "CTO", "Acme")
    assert [x["name"] for x in found["lists"]] == ["From Pipedrive"]
    assert "phones" not in found and "customFields" not in found  # not in the documented answer
    [row], _ = snov.list_prospects_page(target["id"])
    assert row["emails"][0]["isVerified"] is None  # never verified: it came from the CRM
    [stored] = empty_sandbox.snovio.prospects()
    assert stored["emails"][0]["status"] == "unverified"
    assert stored["phones"] == ["+49 30 1234567"]
    assert stored["customFields"] == {"Industry": "Software", "Employees": "50"}


def test_an_existing_prospect_changes_only_when_update_contact_is_set(empty_sandbox, snov):
    target = empty_sandbox.snovio.create_list("Target")
    snov.add_prospect_to_list(target["id"], {"email": "ann@acme.example", "position": "CTO"})

    kept = snov.add_prospect_to_list(
        target["id"], {"email": "ANN@acme.example", "position": "VP"}, update=False
    )
    assert (kept["added"], kept["updated"]) == (False, False)
    assert snov.get_prospect_by_email("ann@acme.example")[0]["position"] == "CTO"

    changed = snov.add_prospect_to_list(
        target["id"], {"email": "ann@acme.example", "position": "VP"}
    )
    [prospect] = snov.get_prospect_by_email("ann@acme.example")
    assert (changed["added"], changed["updated"]) == (False, True)
    assert changed["id"] == kept["id"] == prospect["id"]
    assert prospect["position"] == "VP"
    assert empty_sandbox.snovio.prospects()[0]["emails"][0]["status"] == "unverified"


def test_adding_to_a_list_that_does_not_exist_is_a_permanent_error(snov):
    with pytest.raises(RemoteError) as refused:
        snov.add_prospect_to_list(999, {"email": "x@acme.example"})

    assert refused.value.permanent and refused.value.status == 400


def test_find_by_email_ignores_case_and_find_by_id_misses_cleanly(empty_sandbox, snov):
    leads = empty_sandbox.snovio.create_list("Leads")
    added = empty_sandbox.snovio.add_prospect(
        leads["id"], email="Mixed.Case@Example.com", first_name="Mia", company="Orbit"
    )

    [by_email] = snov.get_prospect_by_email(" mixed.case@EXAMPLE.com ".strip())
    by_id = snov.get_prospect_by_id(added["id"])

    [row], _ = snov.list_prospects_page(leads["id"])
    assert by_email["id"] == by_id["id"] == row["id"] == added["id"]
    assert by_id["companyName"] == "Orbit"
    assert "emails" not in by_id  # a profile documents no emails: the list row has them
    assert by_email["emails"] == [{"email": "mixed.case@EXAMPLE.com"}]  # the one asked for
    assert (row["emails"][0]["email"], row["emails"][0]["smtpStatus"]) == (
        "Mixed.Case@Example.com",
        "valid",
    )
    assert snov.get_prospect_by_email("nobody@example.com") == []
    assert snov.get_prospect_by_id("no-such-id") is None


def test_custom_fields_come_with_key_label_and_type(sandbox, connection):
    fields = SnovioClient.for_connection(connection).get_prospect_custom_fields()

    assert {(f["label"], f["type"]) for f in fields} == {
        ("Industry", "string"),
        ("Employees", "number"),
    }
    assert {f["key"] for f in fields} == {"customFields['Industry']", "customFields['Employees']"}


# --- campaigns -------------------------------------------------------------------------------
def test_campaign_history_shows_the_events_that_were_fired(empty_sandbox, snov):
    leads = empty_sandbox.snovio.create_list("Leads")
    empty_sandbox.snovio.add_prospect(leads["id"], email="lea@acme.example", first_name="Lea")
    for event in ("email_sent", "email_opened", "link_clicked", "reply_received"):
        empty_sandbox.snovio.fire_campaign_event(event, "lea@acme.example", "Spring outreach")

    [campaign] = snov.get_user_campaigns()
    sent_rows = snov.get_emails_sent(campaign["id"])
    opened = snov.get_emails_opened(campaign["id"])
    clicked = snov.get_emails_clicked(campaign["id"])
    replies = snov.get_emails_replies(campaign["id"])

    assert (campaign["campaign"], campaign["list_id"]) == ("Spring outreach", leads["id"])
    assert [r["userEmail"] for r in sent_rows] == ["lea@acme.example"]
    assert [r["prospectEmail"] for r in opened + clicked + replies] == ["lea@acme.example"] * 3
    assert clicked[0]["campaignId"] == campaign["id"]
    assert snov.get_emails_replies(campaign["id"], offset=1) == []


# --- webhooks --------------------------------------------------------------------------------
def test_webhooks_are_created_listed_and_deleted(snov):
    replies = snov.create_webhook("campaign_reply", "received", "https://app.example/hooks/s/1")
    opens = snov.create_webhook("campaign_email", "opened", "https://app.example/hooks/s/1")

    listed = snov.list_webhooks()
    snov.delete_webhook(replies["id"])

    assert {(w["id"], w["event_object"], w["event_action"]) for w in listed} == {
        (replies["id"], "campaign_reply", "received"),
        (opens["id"], "campaign_email", "opened"),
    }
    assert listed[0]["end_point"] == "https://app.example/hooks/s/1"
    assert listed[0]["status"] == "active"
    assert [w["id"] for w in snov.list_webhooks()] == [opens["id"]]
    with pytest.raises(RemoteError) as missing:
        snov.delete_webhook(replies["id"])
    assert missing.value.permanent and missing.value.status == 404


def test_the_fifty_first_webhook_is_refused(empty_sandbox, snov):
    for n in range(50):
        snov.create_webhook("campaign_email", "sent", f"https://app.example/hooks/{n}")

    with pytest.raises(RemoteError) as refused:
        snov.create_webhook("campaign_email", "sent", "https://app.example/hooks/51")

    assert refused.value.permanent
    assert "limit" in str(refused.value)
    assert len(snov.list_webhooks()) == 50


def test_each_trigger_has_one_webhook_subscription_and_the_automation_label():
    assert set(WEBHOOK_TRIGGERS.values()) == set(Trigger.values)
    assert TRIGGER_LABELS == dict(Trigger.choices)
    assert TRIGGER_WEBHOOKS["reply_received"] == ("campaign_reply", "received")
    assert TRIGGER_WEBHOOKS["campaign_finished"] == ("prospect", "campaign_finished")
