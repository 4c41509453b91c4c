"""Real-time sync against the sandbox: webhooks and catch-up, order, echoes, pause and resume."""

from __future__ import annotations

import base64
import json
import threading

import pytest
from django.test import Client

from integrations import connections, services, tasks
from integrations.models import EmailActivity, Integration, PendingChange, SyncEvent, SyncRun
from integrations.pipedrive.client import PipedriveClient
from integrations.snovio.client import SnovioClient
from integrations.sync.context import SyncContext
from integrations.sync.email_history import record_email
from integrations.sync.locks import integration_lock
from integrations.sync.realtime import drain
from integrations.sync.receivers import register_webhooks
from integrations.sync.transfer import transfer
from tests.factories import connected_integration, fast_limits  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_limits", "sync_tasks")]

SHARED = "anna.shared@acme.example"  # on both sides; Pipedrive has another job title and phone
OTHER = "ben.other@acme.example"  # only in Snov.io at first


@pytest.fixture
def sandbox(empty_sandbox):
    """A small account on each side (every request still checked against Pipedrive's spec)."""
    box = empty_sandbox
    box.snovio.create_list("Leads")
    box.snovio.create_list("Founders")
    box.snovio.add_prospect(
        "Leads",
        email=SHARED,
        first_name="Anna",
        last_name="Shared",
        position="Head of Sales",
        phone="+49 30 1",
    )
    box.snovio.add_prospect(
        "Leads", email=OTHER, first_name="Ben", last_name="Other", position="CTO"
    )
    box.snovio.add_prospect("Founders", first_name="No", last_name="Mail")
    box.pipedrive.add_person(
        name="Anna Shared", email=SHARED.upper(), phone="+33 4 1", job_title="Director of Sales"
    )
    box.pipedrive.add_person(name="Carl Crm", email="carl.crm@acme.example", job_title="CFO")
    return box


@pytest.fixture
def live(user, sandbox):
    """Active, webhooks registered, both sides transferred: every contact linked."""
    integration = connected_integration(user, sandbox, include_email_history=True)
    register_webhooks(integration)
    for direction in (SyncRun.Direction.TO_PIPEDRIVE, SyncRun.Direction.TO_SNOVIO):
        run = transfer(
            SyncRun.objects.create(
                integration=integration, direction=direction, source_app="snovio"
            )
        )
        assert run.status == SyncRun.Status.DONE, run.error
    integration.refresh_from_db()
    assert integration.status == Integration.Status.ACTIVE
    return integration


def prospect(integration, email: str) -> dict:
    found = SnovioClient.for_connection(integration.snovio).get_prospect_by_email(email)
    assert len(found) == 1
    return found[0]


def person(sandbox, email: str) -> dict:
    found = sandbox.pipedrive.persons(email)
    assert len(found) == 1
    return found[0]


def snovio_writes(sandbox) -> int:
    return sum(1 for r in sandbox.request_log if r[2].endswith("add-prospect-to-list"))


def pipedrive_writes(sandbox) -> int:
    return sum(
        1
        for r in sandbox.request_log
        if r[0] == "pipedrive" and r[1] in ("POST", "PATCH") and "/oauth/" not in r[2]
    )


def unapplied(integration) -> int:
    return PendingChange.objects.filter(integration=integration, processed_at__isnull=True).count()


@pytest.fixture
def held_deliveries(sandbox):
    """Webhooks are recorded instead of delivered; `deliver(i)` sends the i-th one later."""
    recorded: list[tuple[str, dict, bytes]] = []
    real = sandbox.deliver

    def record(url, headers, body):
        recorded.append((url, headers, body))
        return 200

    sandbox.deliver = record
    yield recorded
    sandbox.deliver = real


def post_delivery(delivery) -> dict:
    url, headers, body = delivery
    path = "/" + url.split("/", 3)[3]
    extra = {"HTTP_AUTHORIZATION": headers["Authorization"]} if "Authorization" in headers else {}
    response = Client().post(path, data=body, content_type="application/json", **extra)
    assert response.status_code == 200, response.content
    return response.json()


# --- both ways while Active ------------------------------------------------------------------
def test_the_initial_transfers_echoes_were_recognised_and_sent_nothing_back(sandbox, live):
    changes = PendingChange.objects.filter(integration=live, source="pipedrive")
    assert changes.count() == 2  # the person the transfer created and the one it updated
    assert unapplied(live) == 0
    assert {c.outcome.split(":")[0] for c in changes} <= {"echo", "unchanged"}


def test_a_pipedrive_person_changed_in_the_sandbox_shows_up_in_snovio(sandbox, live):
    sandbox.pipedrive.change_person(
        person(sandbox, SHARED)["id"], job_title="Chief Revenue Officer"
    )
    assert prospect(live, SHARED)["position"] == "Chief Revenue Officer"
    event = SyncEvent.objects.filter(integration=live, email=SHARED, run=None).first()
    assert event.outcome == "updated" and "position" in event.changes["fields"]


def test_a_person_added_in_pipedrive_arrives_unverified_in_the_sync_to_list(sandbox, live):
    sandbox.pipedrive.add_person(name="Nina New", email="Nina.New@Fresh.example", phone="+1 555")
    found = prospect(live, "nina.new@fresh.example")
    assert int(live.target_list_id) in [x["id"] for x in found["lists"]]
    # Snov.io's answers show neither the email's status nor phones: the sandbox's record does.
    [stored] = [p for p in sandbox.snovio.prospects() if p["id"] == found["id"]]
    assert stored["emails"][0]["isVerified"] is False
    assert stored["phones"] == ["+1 555"]


def test_a_prospect_changed_in_snovio_shows_up_in_pipedrive(sandbox, live):
    sandbox.snovio.update_prospect(SHARED, position="Head of Growth")
    tasks.catch_up(live.pk)
    assert person(sandbox, SHARED)["job_title"] == "Head of Growth"


def test_a_prospect_added_to_a_selected_list_is_created_in_pipedrive_with_the_owner(sandbox, live):
    sandbox.snovio.add_prospect(
        "Founders",
        email="olga@new.example",
        first_name="Olga",
        last_name="Nova",
        position="CEO",
    )
    tasks.catch_up(live.pk)
    created = person(sandbox, "olga@new.example")
    assert created["name"] == "Olga Nova" and created["job_title"] == "CEO"
    assert created["owner_id"] == sandbox.pipedrive.user_id("Sam Seller")


def test_an_update_made_by_syncbridge_does_not_come_back_as_a_new_change(sandbox, live):
    sandbox.snovio.update_prospect(SHARED, position="Head of Growth")
    writes = snovio_writes(sandbox)
    tasks.catch_up(live.pk)  # -> PATCH in Pipedrive -> Pipedrive's webhook comes back

    echo = PendingChange.objects.filter(integration=live, source="pipedrive").last()
    assert echo.payload["data"]["job_title"] == "Head of Growth"
    assert echo.outcome.startswith("echo")
    assert snovio_writes(sandbox) == writes  # nothing was sent back to Snov.io
    assert tasks.catch_up(live.pk) == "catch-up found 0 change(s)"  # both sides converged


def test_changes_are_only_sent_the_way_the_direction_allows(sandbox, live):
    live.direction = Integration.Direction.TO_PIPEDRIVE
    live.save()
    writes = snovio_writes(sandbox)
    sandbox.pipedrive.change_person(person(sandbox, SHARED)["id"], job_title="Not for Snov.io")
    assert snovio_writes(sandbox) == writes
    change = PendingChange.objects.filter(integration=live, source="pipedrive").last()
    assert change.outcome.startswith("ignored")


# --- order and duplicates --------------------------------------------------------------------
def test_a_webhook_delivered_twice_is_stored_once_and_applied_once(sandbox, live, held_deliveries):
    sandbox.pipedrive.change_person(person(sandbox, SHARED)["id"], job_title="Twice Delivered")
    assert len(held_deliveries) == 1
    writes = snovio_writes(sandbox)

    first, second = post_delivery(held_deliveries[0]), post_delivery(held_deliveries[0])

    assert (first["duplicate"], second["duplicate"]) == (False, True)
    assert snovio_writes(sandbox) == writes + 1
    assert prospect(live, SHARED)["position"] == "Twice Delivered"


def test_two_changes_delivered_out_of_order_end_with_the_latest_values(
    sandbox, live, held_deliveries
):
    person_id = person(sandbox, SHARED)["id"]
    sandbox.pipedrive.change_person(person_id, job_title="First")
    sandbox.pipedrive.change_person(person_id, job_title="Second")
    older, newer = held_deliveries
    writes = snovio_writes(sandbox)

    post_delivery(newer)
    post_delivery(older)

    assert prospect(live, SHARED)["position"] == "Second"
    assert snovio_writes(sandbox) == writes + 1
    last = PendingChange.objects.filter(integration=live, source="pipedrive").last()
    assert last.outcome.startswith(("unchanged", "echo"))


# --- pause, resume, hold ---------------------------------------------------------------------
def test_nothing_moves_while_paused_and_held_changes_arrive_after_resume(sandbox, live):
    services.pause(live)
    before = (snovio_writes(sandbox), pipedrive_writes(sandbox))
    sandbox.pipedrive.change_person(person(sandbox, SHARED)["id"], job_title="Set while paused")
    other = OTHER
    sandbox.snovio.update_prospect(other, position="Also while paused")
    tasks.catch_up(live.pk)

    assert (snovio_writes(sandbox), pipedrive_writes(sandbox)) == before
    assert unapplied(live) == 2
    assert prospect(live, SHARED)["position"] != "Set while paused"

    assert services.resume(live) == []

    assert unapplied(live) == 0
    assert prospect(live, SHARED)["position"] == "Set while paused"
    assert person(sandbox, other)["job_title"] == "Also while paused"


def test_changes_wait_while_a_transfer_runs_and_are_applied_after_it(sandbox, live):
    def change_during_transfer(run):
        if run.done <= 2:
            sandbox.pipedrive.change_person(person(sandbox, SHARED)["id"], job_title="Mid-run")
            assert unapplied(live) >= 1  # stored, not applied: the status is Syncing

    run = SyncRun.objects.create(
        integration=live, direction=SyncRun.Direction.TO_PIPEDRIVE, source_app="snovio"
    )
    transfer(run, page_size=2, after_page=change_during_transfer)

    assert unapplied(live) == 0
    assert prospect(live, SHARED)["position"] == "Mid-run"


# --- one worker at a time --------------------------------------------------------------------
def test_one_integrations_changes_are_never_applied_by_two_workers_at_once(
    sandbox, live, held_deliveries
):
    sandbox.pipedrive.change_person(person(sandbox, SHARED)["id"], job_title="Locked")
    with integration_lock(live.pk) as mine:
        assert mine
        post_delivery(held_deliveries[0])  # its worker finds the lock taken and leaves it
        assert unapplied(live) == 1
        other_thread, other_integration = [], []
        worker = threading.Thread(
            target=lambda: (
                other_thread.append(integration_lock(live.pk).__enter__()),
                other_integration.append(integration_lock(live.pk + 1000).__enter__()),
            )
        )
        worker.start()
        worker.join()
        assert other_thread == [False]  # another worker backs off...
        assert other_integration == [True]  # ...but another integration runs in parallel
    assert drain(live.pk) == 1
    assert prospect(live, SHARED)["position"] == "Locked"


# --- nothing dropped silently ----------------------------------------------------------------
def test_a_contact_without_an_email_is_skipped_with_a_reason_once(sandbox, live):
    sandbox.pipedrive.add_person(name="No Mail Person")
    skipped = SyncEvent.objects.filter(integration=live, outcome="skipped", run=None)
    assert skipped.count() == 1 and "No email" in skipped.get().reason
    assert tasks.catch_up(live.pk) == "catch-up found 0 change(s)"  # not reported again


# --- webhook subscriptions -------------------------------------------------------------------
def test_webhooks_are_registered_once_and_removed_on_disconnect(sandbox, live):
    register_webhooks(live)
    register_webhooks(live)
    pipedrive_hooks = sandbox.pipedrive.webhooks()
    assert sorted((h["event_action"], h["event_object"]) for h in pipedrive_hooks) == [
        ("change", "person"),
        ("create", "person"),
        ("delete", "person"),
    ]
    assert all(h["version"] == "2.0" and h["http_auth_user"] for h in pipedrive_hooks)
    assert len(sandbox.snovio.webhooks()) == 6
    live.refresh_from_db()
    assert len(live.pipedrive_webhook_ids) == 3 and len(live.snovio_webhook_ids) == 6

    connections.disconnect(live, "pipedrive")
    connections.disconnect(live, "snovio")

    assert sandbox.pipedrive.webhooks() == [] and sandbox.snovio.webhooks() == []


def test_pipedrive_webhooks_carry_the_integrations_basic_credentials(
    sandbox, live, held_deliveries
):
    sandbox.pipedrive.change_person(person(sandbox, SHARED)["id"], job_title="Auth")
    _, headers, _ = held_deliveries[0]
    user, _, password = base64.b64decode(headers["Authorization"][6:]).decode().partition(":")
    assert (user, password) == (live.pipedrive_webhook_user, live.pipedrive_webhook_password)


# --- email history ---------------------------------------------------------------------------
def test_each_campaign_email_becomes_one_done_activity_whose_status_is_kept_current(sandbox, live):
    person_id = person(sandbox, SHARED)["id"]
    sandbox.snovio.fire_campaign_event("email_sent", SHARED, "Demo outreach")
    activities = sandbox.pipedrive.activities(person_id=person_id)
    assert len(activities) == 1
    activity = activities[0]
    assert activity["done"] is True and activity["type"] == "email"
    assert "Demo outreach" in activity["subject"]
    assert "Status:</b> Sent" in activity["note"] and "May I show you" in activity["note"]

    sandbox.snovio.fire_campaign_event("email_opened", SHARED, "Demo outreach")
    sandbox.snovio.fire_campaign_event("reply_received", SHARED, "Demo outreach")
    sandbox.snovio.fire_campaign_event("email_opened", SHARED, "Demo outreach")  # late open

    activities = sandbox.pipedrive.activities(person_id=person_id)
    assert [a["id"] for a in activities] == [activity["id"]]
    assert "Status:</b> Replied" in activities[0]["note"]


def test_the_email_activity_belongs_to_the_contacts_owner_and_shows_no_internal_marker(
    sandbox, live
):
    person_id = person(sandbox, SHARED)["id"]
    salesperson = sandbox.pipedrive.user_id("Pat Pipeline")
    sandbox.pipedrive.change_person(person_id, owner_id=salesperson)

    sandbox.snovio.fire_campaign_event("email_sent", SHARED, "Demo outreach")
    sandbox.snovio.fire_campaign_event("email_opened", SHARED, "Demo outreach")

    (activity,) = sandbox.pipedrive.activities(person_id=person_id)
    assert activity["owner_id"] == salesperson
    assert activity["owner_id"] != sandbox.pipedrive.user_id("Robin Admin")  # who connected
    assert "syncbridge" not in activity["note"].lower() and "[" not in activity["note"]
    assert "Status:</b> Opened" in activity["note"]


class WorkerKilled(BaseException):
    """Stands for the worker process ending: nothing in the sync engine catches it."""


def snovio_payloads(deliveries) -> list[dict]:
    return [json.loads(body) for url, _, body in deliveries if "/snovio/" in url]


def test_a_worker_dying_right_after_creating_an_email_activity_leaves_one_activity_after_retry(
    sandbox, live, held_deliveries, monkeypatch
):
    person_id = person(sandbox, SHARED)["id"]
    sandbox.snovio.fire_campaign_event("email_sent", SHARED, "Demo outreach")
    sent, *others = snovio_payloads(held_deliveries)
    real = PipedriveClient.create_activity

    def create_then_die(self, data):
        real(self, data)
        raise WorkerKilled  # the activity exists in Pipedrive; SyncBridge never heard its id

    monkeypatch.setattr(PipedriveClient, "create_activity", create_then_die)
    with pytest.raises(WorkerKilled):
        record_email(SyncContext(live), sent)
    monkeypatch.setattr(PipedriveClient, "create_activity", real)
    reserved = EmailActivity.objects.get(integration=live)
    assert reserved.activity_id is None and reserved.status == "Sent"

    outcome = record_email(SyncContext(live), sent)  # the retry

    (activity,) = sandbox.pipedrive.activities(person_id=person_id)
    assert outcome.startswith(f"found activity {activity['id']}")
    reserved.refresh_from_db()
    assert reserved.activity_id == activity["id"]
    held_deliveries.clear()
    sandbox.snovio.fire_campaign_event("email_opened", SHARED, "Demo outreach")
    sandbox.snovio.fire_campaign_event("reply_received", SHARED, "Demo outreach")
    for payload in others + snovio_payloads(held_deliveries):
        record_email(SyncContext(live), payload)

    (shown,) = sandbox.pipedrive.activities(person_id=person_id)
    assert shown["id"] == activity["id"]
    assert "Status:</b> Replied" in shown["note"] and "syncbridge" not in shown["note"]
    reserved.refresh_from_db()
    assert reserved.status == "Replied"
    events = SyncEvent.objects.filter(integration=live, changes__activity_key=reserved.email_key)
    assert sorted(events.values_list("outcome", flat=True)) == ["created", "updated", "updated"]


def test_an_email_activity_whose_create_answer_was_lost_is_not_made_twice(sandbox, live):
    person_id = person(sandbox, SHARED)["id"]
    sandbox.inject("pipedrive", "lost_response", path=r"^/api/v2/activities$", method="POST")

    sandbox.snovio.fire_campaign_event("email_sent", SHARED, "Demo outreach")
    sandbox.snovio.fire_campaign_event("email_opened", SHARED, "Demo outreach")

    assert sandbox.faults[0].count == 0
    (activity,) = sandbox.pipedrive.activities(person_id=person_id)
    assert "Status:</b> Opened" in activity["note"]
    assert EmailActivity.objects.get(integration=live).activity_id == activity["id"]


def test_a_prospect_created_in_real_time_whose_answer_was_lost_is_one_person(sandbox, live):
    sandbox.snovio.add_prospect("Leads", email="new.lead@acme.example", first_name="New")
    sandbox.inject("pipedrive", "lost_response", path=r"^/api/v2/persons$", method="POST")

    tasks.catch_up(live.pk)

    assert sandbox.faults[0].count == 0
    assert len(sandbox.pipedrive.persons("new.lead@acme.example")) == 1
    assert unapplied(live) == 0


def test_campaign_emails_to_unsynced_recipients_and_with_history_off_change_nothing(sandbox, live):
    live.include_email_history = False
    live.save()
    sandbox.snovio.fire_campaign_event("email_sent", SHARED, "Demo outreach")
    assert sandbox.pipedrive.activities(person_id=person(sandbox, SHARED)["id"]) == []


def test_a_change_that_cannot_be_applied_is_failed_and_the_next_ones_still_run(
    sandbox, live, held_deliveries, monkeypatch
):
    from integrations.sync import realtime

    sandbox.pipedrive.change_person(person(sandbox, SHARED)["id"], job_title="Poison")
    sandbox.pipedrive.change_person(person(sandbox, OTHER)["id"], job_title="Fine")
    real = realtime.sync_change

    def sometimes_broken(change, ctx, reads=None):
        if change.payload["data"]["job_title"] == "Poison":
            raise ValueError("unexpected payload")
        return real(change, ctx, reads)

    monkeypatch.setattr(realtime, "sync_change", sometimes_broken)
    services.pause(live)
    post_delivery(held_deliveries[0])
    post_delivery(held_deliveries[1])
    services.resume(live)

    poison, fine = PendingChange.objects.filter(integration=live, source="pipedrive")[2:]
    assert poison.outcome.startswith("failed: SyncBridge could not apply this change (ValueError")
    assert poison.last_error_kind == PendingChange.ErrorKind.BUG
    assert fine.outcome.startswith("updated")
    assert prospect(live, OTHER)["position"] == "Fine"
    assert prospect(live, SHARED)["position"] != "Poison"
    assert SyncEvent.objects.filter(integration=live, outcome="failed").count() == 1


def test_a_change_pipedrive_answers_403_is_failed_with_the_reason_and_the_connection_stays(
    sandbox, live
):
    from integrations.models import Integration

    sandbox.inject("pipedrive", "403", count=100, path=r"^/api/v2/persons/\d+$", method="PATCH")
    sandbox.snovio.update_prospect(SHARED, position="Head of Growth")

    tasks.catch_up(live.pk)

    change = PendingChange.objects.get(integration=live, kind="prospect.change")
    assert change.outcome.startswith("failed") and "403" in change.outcome
    live.refresh_from_db()
    assert live.status == Integration.Status.ACTIVE
    assert person(sandbox, SHARED)["job_title"] != "Head of Growth"
