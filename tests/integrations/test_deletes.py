"""Delete handling through the simulators: each option in each direction, the daily cap and
the approval list, direction and pause, and exactly-once under random histories."""

from __future__ import annotations

import datetime as dt
import random
import threading

import pytest
from django.db import connection, transaction

from integrations import services, tasks
from integrations.models import (
    DeleteAction,
    DeletePolicy,
    DeleteQuota,
    Integration,
    OnPipedriveDelete,
    OnSnovioDelete,
    PendingChange,
    RecordLink,
    SyncEvent,
    SyncRun,
)
from integrations.sync import deletes
from integrations.sync.receivers import register_webhooks
from integrations.sync.transfer import transfer
from tests.factories import connected_integration, fast_limits  # noqa: F401
from tests.integrations.test_realtime import post_delivery

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_limits", "sync_tasks")]

PAIRS = [(f"pair{n}@acme.example", f"Pat{n}", "Pair") for n in range(1, 7)]


@pytest.fixture
def sandbox(empty_sandbox):
    """Six contacts in both apps (a Snov.io list "Leads", Pipedrive persons)."""
    box = empty_sandbox
    box.snovio.create_list("Leads")
    for email, first, last in PAIRS:
        box.snovio.add_prospect("Leads", email=email, first_name=first, last_name=last)
        box.pipedrive.add_person(name=f"{first} {last}", email=email)
    return box


def make_live(user, sandbox, direction=Integration.Direction.TWO_WAY, **policy) -> Integration:
    """Active, webhooks registered, every pair linked by a transfer, then the policy."""
    integration = connected_integration(user, sandbox, direction=direction)
    register_webhooks(integration)
    for way in (SyncRun.Direction.TO_PIPEDRIVE, SyncRun.Direction.TO_SNOVIO):
        run = transfer(
            SyncRun.objects.create(integration=integration, direction=way, source_app="snovio")
        )
        assert run.status == SyncRun.Status.DONE, run.error
    DeletePolicy.objects.create(integration=integration, **policy)
    integration.refresh_from_db()
    return integration


def person_of(sandbox, email: str) -> dict | None:
    found = sandbox.pipedrive.persons(email)
    return found[0] if found else None


def linked(integration, email: str) -> bool:
    return RecordLink.objects.filter(integration=integration, email=email).exists()


def paired(integration, email: str) -> bool:
    """Whether a link still joins a prospect and a person under this email."""
    return (
        RecordLink.objects.filter(integration=integration, email=email)
        .exclude(snovio_prospect_id="")
        .exclude(pipedrive_person_id=None)
        .exists()
    )


def label_id(sandbox, label: str) -> int | None:
    options = sandbox.pipedrive.state["person_fields"]["label_ids"]["options"]
    return next((o["id"] for o in options if o["label"] == label), None)


def deleted_list_members(sandbox) -> list[str]:
    try:
        return sandbox.snovio.list_members(deletes.DELETED_LIST)
    except ValueError:
        return []


def person_deletes(sandbox) -> list[str]:
    """The paths of the person deletes SyncBridge sent to Pipedrive."""
    return [
        r[2]
        for r in sandbox.request_log
        if r[0] == "pipedrive" and r[1] == "DELETE" and "/api/v2/persons/" in r[2]
    ]


# --- Pipedrive -> Snov.io --------------------------------------------------------------------
def test_by_default_a_person_deleted_in_pipedrive_leaves_snovio_as_it_is(user, sandbox):
    live = make_live(user, sandbox)
    email = PAIRS[0][0]

    sandbox.pipedrive.remove_person(person_of(sandbox, email)["id"])

    assert email in sandbox.snovio.prospect_emails()
    assert deleted_list_members(sandbox) == []
    assert linked(live, email)  # today's behaviour: nothing changes
    assert not DeleteAction.objects.exists()


def test_a_person_deleted_in_pipedrive_puts_its_prospect_in_the_deleted_in_pipedrive_list(
    user, sandbox
):
    live = make_live(user, sandbox, on_pipedrive_delete=OnPipedriveDelete.MARK)
    email = PAIRS[0][0]
    before = {p["id"]: p for p in sandbox.snovio.prospects()}

    sandbox.pipedrive.remove_person(person_of(sandbox, email)["id"])  # the delete webhook

    assert deleted_list_members(sandbox) == [email]
    assert email in sandbox.snovio.list_members("Leads")  # still where it was, values kept
    assert {p["id"]: p["firstName"] for p in sandbox.snovio.prospects()} == {
        pid: p["firstName"] for pid, p in before.items()
    }
    assert not linked(live, email)
    action = DeleteAction.objects.get()
    assert (action.status, action.deleted_in) == (DeleteAction.Status.DONE, "pipedrive")
    # The next one reuses the list.
    sandbox.pipedrive.remove_person(person_of(sandbox, PAIRS[1][0])["id"])
    assert deleted_list_members(sandbox) == [email, PAIRS[1][0]]
    names = [x["name"] for x in sandbox.snovio.state["lists"].values()]
    assert names.count(deletes.DELETED_LIST) == 1


def test_a_missed_person_delete_is_noticed_when_the_pair_changes_again(user, sandbox):
    live = make_live(user, sandbox, on_pipedrive_delete=OnPipedriveDelete.MARK)
    email = PAIRS[2][0]
    sandbox.deliver = lambda *args: 200  # the delete webhook never arrives
    sandbox.pipedrive.remove_person(person_of(sandbox, email)["id"])
    del sandbox.deliver
    assert deleted_list_members(sandbox) == []

    sandbox.snovio.update_prospect(email, first_name="Edited")
    tasks.catch_up(live.pk)

    assert deleted_list_members(sandbox) == [email]
    assert person_of(sandbox, email) is None  # not re-created from the edited prospect
    assert not linked(live, email)


# --- Snov.io -> Pipedrive --------------------------------------------------------------------
def test_a_prospect_deleted_in_snovio_labels_its_person_deleted_in_snovio(user, sandbox):
    live = make_live(user, sandbox, on_snovio_delete=OnSnovioDelete.LABEL)
    assert label_id(sandbox, deletes.PERSON_LABEL) is None  # created when first needed
    first, second = PAIRS[0][0], PAIRS[1][0]

    sandbox.snovio.delete_prospect(first)
    sandbox.snovio.delete_prospect(second)
    tasks.catch_up(live.pk)  # the profile re-check finds them gone

    label = label_id(sandbox, deletes.PERSON_LABEL)
    assert label is not None
    assert person_of(sandbox, first)["label_ids"] == [label]
    assert person_of(sandbox, second)["label_ids"] == [label]
    options = sandbox.pipedrive.state["person_fields"]["label_ids"]["options"]
    assert [o["label"] for o in options].count(deletes.PERSON_LABEL) == 1
    assert not linked(live, first) and not linked(live, second)
    # Our own label write comes back as a person change: it does not re-create the prospect.
    assert first not in sandbox.snovio.prospect_emails()
    tasks.catch_up(live.pk)  # the labelled persons, updated since, are seen again
    assert first not in sandbox.snovio.prospect_emails()
    assert not paired(live, first) and not paired(live, second)


def test_a_prospect_deleted_in_snovio_deletes_its_person_when_chosen(user, sandbox):
    live = make_live(user, sandbox, on_snovio_delete=OnSnovioDelete.DELETE, daily_cap=5)
    email = PAIRS[0][0]

    sandbox.snovio.delete_prospect(email)
    tasks.catch_up(live.pk)

    assert person_of(sandbox, email) is None
    assert len(person_deletes(sandbox)) == 1
    assert not linked(live, email)
    assert DeleteQuota.objects.get(integration=live).used == 1
    # The person delete's own webhook comes back: nothing more happens.
    assert DeleteAction.objects.count() == 1
    assert all(p["emails"] for p in sandbox.pipedrive.persons())


def test_a_prospect_deleted_in_snovio_is_left_alone_by_default(user, sandbox):
    live = make_live(user, sandbox)
    email = PAIRS[0][0]

    sandbox.snovio.delete_prospect(email)
    tasks.catch_up(live.pk)

    assert person_of(sandbox, email)["label_ids"] == []
    assert person_deletes(sandbox) == []
    assert not DeleteAction.objects.filter(integration=live).exists()


# --- the cap and the approval list -----------------------------------------------------------
def test_beyond_the_daily_cap_deletions_wait_for_approval_on_the_settings_page(
    user, sandbox, client
):
    live = make_live(user, sandbox, on_snovio_delete=OnSnovioDelete.DELETE, daily_cap=1)
    emails = [pair[0] for pair in PAIRS[:3]]
    for email in emails:
        sandbox.snovio.delete_prospect(email)
    tasks.catch_up(live.pk)

    assert len(person_deletes(sandbox)) == 1  # the cap
    waiting = list(DeleteAction.objects.filter(status=DeleteAction.Status.WAITING))
    assert len(waiting) == 2
    assert all(person_of(sandbox, w.email) is not None for w in waiting)
    assert not any(linked(live, email) for email in emails)

    client.force_login(user)
    page = client.get(f"/integrations/{live.pk}/settings/").content.decode()
    assert "Deletions waiting for a decision" in page
    for action in waiting:
        assert f'id="delete-action-{action.pk}"' in page
        assert action.email in page
    approved, rejected = waiting

    client.post(f"/integrations/{live.pk}/deletes/{approved.pk}/approve/")
    client.post(f"/integrations/{live.pk}/deletes/{rejected.pk}/reject/")

    assert person_of(sandbox, approved.email) is None  # approve deletes, whatever the cap
    assert person_of(sandbox, rejected.email) is not None  # reject drops
    approved.refresh_from_db()
    rejected.refresh_from_db()
    assert (approved.status, approved.decided_by) == (DeleteAction.Status.DONE, user)
    assert rejected.status == DeleteAction.Status.REJECTED
    page = client.get(f"/integrations/{live.pk}/settings/").content.decode()
    assert "Deletions waiting for a decision" not in page
    # A rejected pair does not sync back: editing the surviving person re-creates nothing.
    sandbox.pipedrive.change_person(person_of(sandbox, rejected.email)["id"], name="Kept Alive")
    assert rejected.email not in sandbox.snovio.prospect_emails()


def test_the_cap_counts_per_utc_day(user, sandbox, monkeypatch):
    live = make_live(user, sandbox, on_snovio_delete=OnSnovioDelete.DELETE, daily_cap=1)
    today = dt.date(2026, 11, 30)
    monkeypatch.setattr(deletes, "utc_today", lambda: today)
    sandbox.snovio.delete_prospect(PAIRS[0][0])
    sandbox.snovio.delete_prospect(PAIRS[1][0])
    tasks.catch_up(live.pk)
    assert len(person_deletes(sandbox)) == 1

    today = dt.date(2026, 12, 1)
    sandbox.snovio.delete_prospect(PAIRS[2][0])
    tasks.catch_up(live.pk)

    assert len(person_deletes(sandbox)) == 2  # a new day, a new slot
    assert DeleteAction.objects.filter(status=DeleteAction.Status.WAITING).count() == 1


def test_approving_while_paused_is_refused_and_nothing_is_deleted(user, sandbox, client):
    live = make_live(user, sandbox, on_snovio_delete=OnSnovioDelete.DELETE, daily_cap=0)
    email = PAIRS[0][0]
    sandbox.snovio.delete_prospect(email)
    tasks.catch_up(live.pk)
    action = DeleteAction.objects.get(status=DeleteAction.Status.WAITING)
    services.pause(live)

    client.force_login(user)
    response = client.post(f"/integrations/{live.pk}/deletes/{action.pk}/approve/", follow=True)

    assert "resume it, then approve" in response.content.decode()
    assert person_of(sandbox, email) is not None


@pytest.mark.django_db(transaction=True)
def test_two_workers_cannot_both_take_the_last_slot_of_the_day(user, sandbox):
    if connection.vendor != "postgresql":
        pytest.skip("row locks need PostgreSQL (SQLite serialises every write anyway)")
    live = make_live(user, sandbox)
    first_holds = threading.Event()
    results: list[bool] = []

    def worker(hold: bool) -> None:
        try:
            with transaction.atomic():
                results.append(deletes.take_slot(live, cap=1))
                if hold:
                    first_holds.set()
                    threading.Event().wait(0.5)  # keep the row locked a while
        finally:
            connection.close()

    one = threading.Thread(target=worker, args=(True,))
    one.start()
    first_holds.wait(5)
    two = threading.Thread(target=worker, args=(False,))
    two.start()
    one.join(10)
    two.join(10)

    assert sorted(results) == [False, True]
    assert DeleteQuota.objects.get(integration=live).used == 1


def test_a_failed_delete_is_listed_with_its_reason_and_approve_tries_it_again(
    user, sandbox, client
):
    live = make_live(user, sandbox, on_snovio_delete=OnSnovioDelete.DELETE, daily_cap=5)
    email = PAIRS[0][0]
    sandbox.inject("pipedrive", "400", count=1, path=r"^/api/v2/persons/\d+$", method="DELETE")
    sandbox.snovio.delete_prospect(email)
    tasks.catch_up(live.pk)

    action = DeleteAction.objects.get()
    assert action.status == DeleteAction.Status.FAILED
    assert person_of(sandbox, email) is not None
    assert linked(live, email)  # kept until the delete is done
    client.force_login(user)
    page = client.get(f"/integrations/{live.pk}/settings/").content.decode()
    assert f'id="delete-action-{action.pk}"' in page and "failed" in page

    client.post(f"/integrations/{live.pk}/deletes/{action.pk}/approve/")

    assert person_of(sandbox, email) is None
    action.refresh_from_db()
    assert action.status == DeleteAction.Status.DONE
    assert not linked(live, email)


# --- the settings card -----------------------------------------------------------------------
def test_deleting_in_pipedrive_needs_the_confirmation_box(user, sandbox, client):
    live = make_live(user, sandbox)
    client.force_login(user)
    url = f"/integrations/{live.pk}/deletes/"
    choice = {"on_pipedrive_delete": "mark", "on_snovio_delete": "delete", "daily_cap": "10"}

    response = client.post(url, choice)

    assert response.status_code == 400
    page = response.content.decode()
    assert 'class="errorlist"' in page and "Tick this box to confirm" in page
    assert DeletePolicy.objects.get(integration=live).on_snovio_delete == "ignore"  # not saved

    response = client.post(url, {**choice, "confirm_deletes": "on"})

    assert response.status_code == 302
    policy = DeletePolicy.objects.get(integration=live)
    assert (policy.on_pipedrive_delete, policy.on_snovio_delete, policy.daily_cap) == (
        "mark",
        "delete",
        10,
    )
    assert client.post(url, {**choice, "daily_cap": "-1", "confirm_deletes": "on"}).status_code == (
        400
    )


def test_the_card_offers_only_the_directions_the_integration_sends(user, sandbox, client):
    live = make_live(user, sandbox, direction=Integration.Direction.TO_PIPEDRIVE)
    client.force_login(user)

    page = client.get(f"/integrations/{live.pk}/settings/").content.decode()

    assert 'id="deletes"' in page
    assert "When a prospect is deleted in Snov.io" in page
    assert "When a person is deleted in Pipedrive" not in page
    assert "Pipedrive has no archive for persons" in page  # why only label or delete


# --- direction and pause ---------------------------------------------------------------------
def test_to_pipedrive_only_a_person_deleted_in_pipedrive_acts_nowhere(user, sandbox):
    live = make_live(
        user,
        sandbox,
        direction=Integration.Direction.TO_PIPEDRIVE,
        on_pipedrive_delete=OnPipedriveDelete.MARK,
        on_snovio_delete=OnSnovioDelete.DELETE,
    )
    email = PAIRS[0][0]
    sandbox.pipedrive.remove_person(person_of(sandbox, email)["id"])
    tasks.catch_up(live.pk)

    assert deleted_list_members(sandbox) == []
    assert not DeleteAction.objects.exists()


def test_to_snovio_only_a_prospect_deleted_in_snovio_acts_nowhere(user, sandbox):
    live = make_live(
        user,
        sandbox,
        direction=Integration.Direction.TO_SNOVIO,
        on_pipedrive_delete=OnPipedriveDelete.MARK,
        on_snovio_delete=OnSnovioDelete.DELETE,
    )
    email = PAIRS[0][0]
    sandbox.snovio.delete_prospect(email)
    tasks.catch_up(live.pk)

    assert person_of(sandbox, email) is not None
    assert not DeleteAction.objects.exists()


def test_a_delete_while_paused_waits_and_acts_on_resume(user, sandbox):
    live = make_live(user, sandbox, on_pipedrive_delete=OnPipedriveDelete.MARK)
    services.pause(live)
    email = PAIRS[0][0]

    sandbox.pipedrive.remove_person(person_of(sandbox, email)["id"])

    assert deleted_list_members(sandbox) == []
    assert PendingChange.objects.filter(integration=live, processed_at__isnull=True).count() == 1
    services.resume(live)
    assert deleted_list_members(sandbox) == [email]


# --- exactly once ----------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(8))
def test_each_delete_acts_once_under_random_deliveries_catch_ups_and_caps(
    user, sandbox, monkeypatch, seed
):
    """Invariant: whatever the order, repetition or loss of the delete's notices (webhook
    deliveries held, repeated, dropped; catch-ups; approvals; days passing):
    1. each record deleted by a user has exactly one DeleteAction and no link left;
    2. SyncBridge deletes a Pipedrive person at most once, lists a prospect at most once;
    3. per UTC day, deletions taken without approval never exceed the cap;
    4. a waiting or rejected deletion never deleted its person."""
    rng = random.Random(seed)
    cap = rng.randint(0, 2)
    live = make_live(
        user,
        sandbox,
        on_pipedrive_delete=OnPipedriveDelete.MARK,
        on_snovio_delete=OnSnovioDelete.DELETE,
        daily_cap=cap,
    )
    day = [dt.date(2026, 11, 30)]
    monkeypatch.setattr(deletes, "utc_today", lambda: day[0])
    held: list = []
    sandbox.deliver = lambda url, headers, body: held.append((url, headers, body)) or 200
    untouched = [pair[0] for pair in PAIRS]
    deleted_in_snovio: list[str] = []
    deleted_in_pipedrive: list[str] = []
    history: list[str] = []

    for _ in range(30):
        step = rng.choice(
            ["delete_prospect", "delete_person", "deliver", "deliver", "catch_up", "decide", "day"]
        )
        history.append(step)
        if step == "delete_prospect" and untouched:
            email = untouched.pop(rng.randrange(len(untouched)))
            sandbox.snovio.delete_prospect(email)
            deleted_in_snovio.append(email)
        elif step == "delete_person" and untouched:
            email = untouched.pop(rng.randrange(len(untouched)))
            sandbox.pipedrive.remove_person(person_of(sandbox, email)["id"])
            deleted_in_pipedrive.append(email)
        elif step == "deliver" and held:
            delivery = rng.choice(held)  # any delivery, possibly again
            post_delivery(delivery)
            if rng.random() < 0.3:
                held.remove(delivery)  # the rest may be dropped for good
        elif step == "catch_up":
            tasks.catch_up(live.pk)
        elif step == "decide":
            waiting = deletes.awaiting(live)
            if waiting:
                action = rng.choice(waiting)
                if rng.random() < 0.5:
                    deletes.approve(live, action.pk)
                else:
                    deletes.reject(live, action.pk)
        elif step == "day":
            day[0] += dt.timedelta(days=1)

    # Drain: every delivery once more, then catch-ups until nothing is found.
    for delivery in list(held):
        post_delivery(delivery)
    for _ in range(3):
        tasks.catch_up(live.pk)
    context = f"seed={seed} cap={cap} history={history}"

    actions = {a.email: a for a in DeleteAction.objects.filter(integration=live)}
    for email in deleted_in_snovio + deleted_in_pipedrive:
        assert email in actions, f"{email} deleted but not handled; {context}"
        assert not paired(live, email), f"{email} still paired; {context}"
    for email in deleted_in_snovio:
        assert email not in sandbox.snovio.prospect_emails(), f"{email} re-created; {context}"
    for email in deleted_in_pipedrive:
        assert person_of(sandbox, email) is None, f"{email} re-created; {context}"
    assert len(actions) == len(deleted_in_snovio) + len(deleted_in_pipedrive), context
    paths = person_deletes(sandbox)
    assert len(paths) == len(set(paths)), f"a person deleted twice; {context}"
    assert sorted(deleted_list_members(sandbox)) == sorted(deleted_in_pipedrive), context
    for quota in DeleteQuota.objects.filter(integration=live):
        assert quota.used <= cap, context
    for email in deleted_in_snovio:
        action = actions[email]
        gone = person_of(sandbox, email) is None
        approved = action.decided_at is not None
        if action.status in (DeleteAction.Status.WAITING, DeleteAction.Status.REJECTED):
            assert not gone, f"{email} deleted without approval; {context}"
        else:
            assert action.status == DeleteAction.Status.DONE and gone, context
        assert approved or action.status != DeleteAction.Status.REJECTED, context
    for email in untouched:
        assert paired(live, email) and person_of(sandbox, email), context


def test_a_transfer_does_not_create_again_the_partner_a_delete_removed(user, sandbox):
    """Both ways: after a delete was handled, "Transfer unsynced data" skips the surviving
    record, with the reason, instead of creating the deleted contact again."""
    live = make_live(
        user,
        sandbox,
        on_pipedrive_delete=OnPipedriveDelete.MARK,
        on_snovio_delete=OnSnovioDelete.LABEL,
    )
    gone_in_pipedrive, gone_in_snovio = PAIRS[0][0], PAIRS[1][0]
    sandbox.pipedrive.remove_person(person_of(sandbox, gone_in_pipedrive)["id"])
    sandbox.snovio.delete_prospect(gone_in_snovio)
    tasks.catch_up(live.pk)
    assert DeleteAction.objects.count() == 2

    for way in (SyncRun.Direction.TO_PIPEDRIVE, SyncRun.Direction.TO_SNOVIO):
        run = transfer(SyncRun.objects.create(integration=live, direction=way, source_app="snovio"))
        assert run.status == SyncRun.Status.DONE, run.error
        skipped = run.events.filter(outcome=SyncEvent.Outcome.SKIPPED)
        assert [e.email for e in skipped] == [
            gone_in_pipedrive if way == SyncRun.Direction.TO_PIPEDRIVE else gone_in_snovio
        ]
        assert "does not create it again" in skipped.get().reason

    assert person_of(sandbox, gone_in_pipedrive) is None
    assert gone_in_snovio not in sandbox.snovio.prospect_emails()
