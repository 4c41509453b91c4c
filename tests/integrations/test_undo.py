"""Undo of a transfer, or of one record's change, through the simulators."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from integrations.models import SyncEvent, SyncRun, Undo
from integrations.sync import undo as undo_service
from integrations.sync.runs import create_run
from integrations.sync.transfer import transfer
from integrations.sync.undo import UndoRefused, execute, start_undo
from tests.factories import connected_integration, fast_limits  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_limits")]


@pytest.fixture
def queued(monkeypatch):
    """Undos are queued, not run: the test runs them with `execute` (or not at all)."""
    ids: list[int] = []
    monkeypatch.setattr(undo_service, "enqueue", ids.append)
    return ids


def to_pipedrive_scene(user, box):
    """Two prospects with a person each (one whose phone and job title the transfer fills),
    and two prospects new to Pipedrive."""
    box.snovio.create_list("Leads")
    box.snovio.add_prospect(
        "Leads", email="ann@x.example", first_name="Ann", last_name="One", position="CTO"
    )
    box.snovio.add_prospect(
        "Leads", email="bob@x.example", first_name="Bob", last_name="Two", position="CEO"
    )
    box.snovio.add_prospect("Leads", email="cy@x.example", first_name="Cy", last_name="Three")
    box.snovio.add_prospect("Leads", email="di@x.example", first_name="Di", last_name="Four")
    ann = box.pipedrive.add_person(name="Ann One", email="ann@x.example")
    bob = box.pipedrive.add_person(name="Bob Two", email="bob@x.example")
    integration = connected_integration(user, box, catalog=False)
    return integration, ann, bob


def person_by_email(box, email):
    found = box.pipedrive.persons(email)
    return found[0] if found else None


def test_undo_of_a_transfer_to_pipedrive_restores_fields_removes_created_and_lists_changed_since(
    user, empty_sandbox, queued
):
    box = empty_sandbox
    integration, ann, bob = to_pipedrive_scene(user, box)
    run = transfer(create_run(integration, SyncRun.Direction.TO_PIPEDRIVE, "snovio"))
    assert (run.created, run.updated) == (2, 2), run.error
    assert person_by_email(box, "ann@x.example")["job_title"] == "CTO"
    # Since the transfer: Bob's job title edited in Pipedrive, Di's created person renamed.
    box.pipedrive.change_person(bob["id"], job_title="Chief")
    di = person_by_email(box, "di@x.example")
    box.pipedrive.change_person(di["id"], name="Diana Four")

    undo = execute(start_undo(integration, run=run, user=user))

    assert undo.status == SyncRun.Status.DONE, undo.error
    assert not (person_by_email(box, "ann@x.example").get("job_title"))  # back to empty
    assert person_by_email(box, "bob@x.example")["job_title"] == "Chief"  # left alone
    assert person_by_email(box, "cy@x.example") is None  # created, untouched: removed
    assert person_by_email(box, "di@x.example")["name"] == "Diana Four"  # changed: kept
    assert (undo.restored, undo.removed, undo.left_alone, undo.failed) == (1, 1, 2, 0)
    reasons = dict(undo.events.values_list("email", "reason"))
    assert "changed since the transfer" in reasons["bob@x.example"]
    assert "Not removed" in reasons["di@x.example"]
    assert not integration.links.filter(pipedrive_person_id__isnull=False, email="cy@x.example")
    integration.refresh_from_db()
    assert integration.status == "active"


def test_undo_twice_is_refused_by_the_page_check_and_by_the_database(user, empty_sandbox, queued):
    box = empty_sandbox
    integration, _, _ = to_pipedrive_scene(user, box)
    run = transfer(create_run(integration, SyncRun.Direction.TO_PIPEDRIVE, "snovio"))
    execute(start_undo(integration, run=run, user=user))

    with pytest.raises(UndoRefused):
        start_undo(integration, run=run, user=user)
    with pytest.raises(IntegrityError), transaction.atomic():
        Undo.objects.create(integration=integration, run=run)
    event = run.events.get(email="ann@x.example")
    with pytest.raises(UndoRefused):
        start_undo(integration, event=event, user=user)
    assert Undo.objects.filter(dry_run=False).count() == 1


def prospect_by_email(box, email):
    return next(p for p in box.snovio.prospects() if email in str(p.get("emails")))


def test_undo_of_a_transfer_to_snovio_restores_what_it_can_and_says_why_not_the_rest(
    user, empty_sandbox, queued
):
    box = empty_sandbox
    box.snovio.create_list("Leads")
    box.snovio.add_prospect("Leads", email="ann@x.example", first_name="Ann", position="Dev")
    box.snovio.add_prospect("Leads", email="bob@x.example", first_name="Bob", position="Ops")
    box.snovio.add_prospect("Leads", email="cy@x.example", first_name="Cy")
    box.pipedrive.add_person(name="Ann One", email="ann@x.example", job_title="Lead")
    box.pipedrive.add_person(name="Bob Two", email="bob@x.example", job_title="Boss")
    box.pipedrive.add_person(name="Cy Three", email="cy@x.example", job_title="CFO")
    box.pipedrive.add_person(name="Di Four", email="di@x.example")
    integration = connected_integration(user, box, catalog=False)
    run = transfer(create_run(integration, SyncRun.Direction.TO_SNOVIO, "pipedrive"))
    assert run.created == 1 and run.status == SyncRun.Status.DONE, run.error
    assert prospect_by_email(box, "ann@x.example")["position"] == "Lead"
    box.snovio.update_prospect("bob@x.example", position="Owner")  # changed since

    undo = execute(start_undo(integration, run=run, user=user))

    assert undo.status == SyncRun.Status.DONE, undo.error
    assert prospect_by_email(box, "ann@x.example")["position"] == "Dev"  # restored
    assert prospect_by_email(box, "bob@x.example")["position"] == "Owner"  # left alone
    assert prospect_by_email(box, "cy@x.example")["position"] == "CFO"  # cannot be emptied
    assert prospect_by_email(box, "di@x.example")  # Snov.io has no delete: still there
    reasons = dict(undo.events.values_list("email", "reason"))
    assert "changed since the transfer" in reasons["bob@x.example"]
    assert undo_service.CANNOT_EMPTY in reasons["cy@x.example"]
    assert undo_service.CANNOT_REMOVE_PROSPECT in reasons["di@x.example"]
    assert undo.removed == 0 and undo.failed == 0


def test_undo_of_one_record_restores_only_that_record_and_only_once(user, empty_sandbox, queued):
    box = empty_sandbox
    integration, ann, bob = to_pipedrive_scene(user, box)
    run = transfer(create_run(integration, SyncRun.Direction.TO_PIPEDRIVE, "snovio"))
    event = run.events.get(email="ann@x.example")

    undo = execute(start_undo(integration, event=event, user=user))

    assert undo.restored == 1 and undo.events.get().undoes == event
    assert not person_by_email(box, "ann@x.example").get("job_title")
    assert person_by_email(box, "bob@x.example")["job_title"] == "CEO"  # another record
    with pytest.raises(UndoRefused):
        start_undo(integration, event=event, user=user)
    # The transfer's undo later leaves Ann's record to the undo that already did it.
    whole = execute(start_undo(integration, run=run, user=user))
    assert SyncEvent.objects.filter(undoes=event).count() == 1
    assert whole.events.filter(email="ann@x.example").count() == 0


def test_the_preview_writes_nothing_and_shows_the_rows_the_undo_would_write(
    user, empty_sandbox, queued
):
    box = empty_sandbox
    integration, ann, bob = to_pipedrive_scene(user, box)
    run = transfer(create_run(integration, SyncRun.Direction.TO_PIPEDRIVE, "snovio"))
    before = box.pipedrive.persons()

    preview = execute(start_undo(integration, run=run, dry_run=True, user=user))

    assert box.pipedrive.persons() == before
    assert (preview.restored, preview.removed, preview.left_alone) == (2, 2, 0)
    rows = {row["email"]: row for row in preview.preview}
    assert rows["ann@x.example"]["fields"]["job_title"] == {
        "old": "CTO",
        "new": None,
        "label": rows["ann@x.example"]["fields"]["job_title"]["label"],
    }
    assert rows["cy@x.example"]["action"] == "removed"
    assert not SyncEvent.objects.filter(undo=preview).exists()
    # A preview does not count as the undo: the real one may follow.
    assert execute(start_undo(integration, run=run, user=user)).restored == 2


# --- exactly once, after a worker dies mid-way (seeded random scenarios) ----------------------


class Killed(BaseException):
    """The worker dies (a BaseException: no `except Exception` catches it)."""


TITLES = ["CTO", "CEO", "Dev", "Ops", "Sales", ""]


def random_scene(user, box, rng):
    """Prospects and persons, some sharing an email, with random or empty job titles."""
    box.snovio.create_list("Leads")
    for n in range(rng.randint(6, 12)):
        email = f"p{n}@x.example"
        in_snovio, in_pipedrive = rng.choice([(True, True), (True, False), (False, True)])
        if in_snovio:
            box.snovio.add_prospect(
                "Leads",
                email=email,
                first_name=f"P{n}",
                last_name="Test",
                position=rng.choice(TITLES),
            )
        if in_pipedrive:
            box.pipedrive.add_person(
                name=f"P{n} Test", email=email, job_title=rng.choice(TITLES) or None
            )
    return connected_integration(user, box, catalog=False)


class Receiving:
    """The side a transfer wrote to, as the test reads and edits it."""

    def __init__(self, box, integration, to_snovio: bool):
        from integrations.sync.context import SyncContext

        self.box, self.to_snovio = box, to_snovio
        self.spec = SyncContext(integration).spec

    def values(self, target: str, keys) -> dict | None:
        from integrations.sync import mapping

        if self.to_snovio:
            found = self.box.snovio.state["prospects"].get(target)
            record = self.box.snovio._prospect_record(found) if found else None
            return mapping.snovio_values(record, self.spec, keys) if record else None
        person = self.box.pipedrive.person(int(target))
        return mapping.pipedrive_values(person, self.spec, keys) if person else None

    def edit_title(self, target: str, title: str) -> None:
        if self.to_snovio:
            self.box.snovio.update_prospect(target, position=title)
        else:
            self.box.pipedrive.change_person(int(target), job_title=title)

    @property
    def title_key(self) -> str:
        return "position" if self.to_snovio else "job_title"


@pytest.mark.parametrize("seed", range(12))
def test_a_resumed_undo_after_a_crash_ends_as_one_undo_would_whatever_was_edited_since(
    seed, user, empty_sandbox, queued, monkeypatch
):
    """Invariant, after a random transfer (either direction), random later edits on both
    sides, and its undo killed after its k-th write then resumed: on the receiving side every
    field the transfer changed that nobody edited since holds its old value (a Snov.io field
    it filled stays filled: the API cannot empty one), every edited one holds the edit, a
    created person nobody edited is gone and an edited one is there (a created prospect
    always stays); no record is written twice by the undo; the sending side is untouched."""
    import random

    from integrations.pipedrive.client import PipedriveClient
    from integrations.snovio.client import SnovioClient
    from integrations.sync import threeway

    rng = random.Random(seed)
    box = empty_sandbox
    integration = random_scene(user, box, rng)
    to_snovio = rng.random() < 0.5
    direction = SyncRun.Direction.TO_SNOVIO if to_snovio else SyncRun.Direction.TO_PIPEDRIVE
    run = transfer(create_run(integration, direction, "pipedrive" if to_snovio else "snovio"))
    assert run.status == SyncRun.Status.DONE, f"seed {seed}: {run.error}"
    side = Receiving(box, integration, to_snovio)
    events = list(run.events.filter(outcome__in=["created", "updated"]))
    edited: dict[str, str] = {}
    for event in events:  # later edits on the receiving side, on random records
        if rng.random() < 0.3:
            target = str(event.changes["target_id"])
            edited[target] = f"Edited {rng.randint(1, 99)}"
            side.edit_title(target, edited[target])
    for person in box.pipedrive.persons() if to_snovio else ():  # and on the sending side
        if rng.random() < 0.3:
            box.pipedrive.change_person(person["id"], job_title="Sender edit")
    for prospect in box.snovio.prospects() if not to_snovio else ():
        if rng.random() < 0.3:
            box.snovio.update_prospect(prospect["id"], position="Sender edit")
    sending = box.pipedrive.persons() if to_snovio else box.snovio.prospects()
    writes: list[tuple[str, str]] = []
    crash_after = rng.randint(1, 2)

    def dying(cls, name):
        real = getattr(cls, name)

        def write(self, target, *args, **kwargs):
            answer = real(self, target, *args, **kwargs)
            key = args[0]["email"] if name == "add_prospect_to_list" else str(target)
            writes.append((name, key))
            if len(writes) == crash_after:
                raise Killed(f"seed {seed}: worker killed after write {crash_after}")
            return answer

        return write

    monkeypatch.setattr(PipedriveClient, "update_person", dying(PipedriveClient, "update_person"))
    monkeypatch.setattr(PipedriveClient, "delete_person", dying(PipedriveClient, "delete_person"))
    monkeypatch.setattr(
        SnovioClient, "add_prospect_to_list", dying(SnovioClient, "add_prospect_to_list")
    )
    undo = start_undo(integration, run=run, user=user)
    try:
        execute(undo)
    except Killed:
        pass
    execute(undo)  # resumed by the next worker

    undo.refresh_from_db()
    assert undo.status == SyncRun.Status.DONE, f"seed {seed}: {undo.error}"
    assert len(writes) == len(set(writes)), f"seed {seed}: a record written twice: {writes}"
    assert (box.pipedrive.persons() if to_snovio else box.snovio.prospects()) == sending
    for event in events:
        target = str(event.changes["target_id"])
        fields = event.changes["fields"]
        values = side.values(target, list(fields))
        if event.outcome == "created":
            kept = to_snovio or target in edited
            assert (values is not None) == kept, f"seed {seed}: {event.email}"
            continue
        for key, change in fields.items():
            if key == side.title_key and target in edited:
                want = edited[target]
            elif to_snovio and not change["old"]:
                want = change["new"]  # cannot be emptied
            else:
                want = change["old"]
            assert threeway.same(values.get(key), want), f"seed {seed}: {event.email} {key}"
    assert SyncEvent.objects.filter(undo=undo).count() == len(events), f"seed {seed}"


def test_the_undos_own_writes_do_not_come_back_through_webhooks_or_the_catch_up(
    user, empty_sandbox, queued
):
    """Two-way: after the undo, the held webhooks of its writes and a catch-up cycle change
    nothing on either side (no echo, and the removed person is not created again)."""
    from integrations.sync import realtime, runs

    box = empty_sandbox
    integration, _, _ = to_pipedrive_scene(user, box)
    runs.catch_up_integration(integration.pk)  # the lists are known: their prospects recorded
    realtime.drain(integration.pk)
    run = transfer(create_run(integration, SyncRun.Direction.TO_PIPEDRIVE, "snovio"))
    execute(start_undo(integration, run=run, user=user))
    persons, prospects = box.pipedrive.persons(), box.snovio.prospects()

    realtime.drain(integration.pk)
    runs.catch_up_integration(integration.pk)
    realtime.drain(integration.pk)

    assert box.pipedrive.persons() == persons
    assert box.snovio.prospects() == prospects
    assert person_by_email(box, "cy@x.example") is None


def test_an_undo_whose_worker_died_is_queued_again_by_the_scheduled_catch_up(
    user, empty_sandbox, queued
):
    from datetime import timedelta

    from django.utils import timezone

    from integrations import tasks

    integration, _, _ = to_pipedrive_scene(user, empty_sandbox)
    run = transfer(create_run(integration, SyncRun.Direction.TO_PIPEDRIVE, "snovio"))
    fresh = start_undo(integration, run=run, user=user)
    queued.clear()
    assert undo_service.resume_stalled() == 0  # just started: its worker may be on it
    Undo.objects.filter(pk=fresh.pk).update(updated_at=timezone.now() - timedelta(minutes=6))

    tasks.catch_up_all()

    assert queued == [fresh.pk]
    execute(fresh)
    queued.clear()
    assert undo_service.resume_stalled() == 0 and fresh.status == SyncRun.Status.DONE


def test_a_second_worker_given_an_undo_that_another_runs_does_nothing(user, empty_sandbox, queued):
    from integrations.sync import locks

    integration, _, _ = to_pipedrive_scene(user, empty_sandbox)
    run = transfer(create_run(integration, SyncRun.Direction.TO_PIPEDRIVE, "snovio"))
    undo = start_undo(integration, run=run, user=user)
    mark = len(empty_sandbox.request_log)

    with locks.undo_lock(undo.pk):  # held by the first worker
        execute(undo)

    assert undo.status == SyncRun.Status.QUEUED and len(empty_sandbox.request_log) == mark


def test_a_person_the_transfer_created_then_updated_is_restored_then_removed(
    user, empty_sandbox, queued
):
    """Newest first: the later prospect's update is taken back, then the person it updated is
    as created, so it is removed."""
    box = empty_sandbox
    box.snovio.create_list("Leads")
    box.snovio.add_prospect("Leads", email="ann@x.example", first_name="Ann", last_name="One")
    later = box.snovio.add_prospect(
        "Leads", email="bea@x.example", first_name="Bea", last_name="Two", position="CTO"
    )
    box.snovio.state["prospects"][later["id"]]["emails"].append(
        {"email": "ann@x.example", "status": "valid"}
    )
    integration = connected_integration(user, box, catalog=False)
    run = transfer(create_run(integration, SyncRun.Direction.TO_PIPEDRIVE, "snovio"))
    assert (run.created, run.updated) == (1, 1), run.summary()
    assert person_by_email(box, "ann@x.example")["job_title"] == "CTO"

    preview = execute(start_undo(integration, run=run, dry_run=True, user=user))
    assert (preview.restored, preview.removed, preview.left_alone) == (1, 1, 0)
    undo = execute(start_undo(integration, run=run, user=user))

    assert person_by_email(box, "ann@x.example") is None
    assert (undo.restored, undo.removed, undo.left_alone) == (1, 1, 0)


def test_a_long_undo_goes_on_in_slices_and_reads_each_page_of_persons_in_one_call(
    user, empty_sandbox, queued, monkeypatch
):
    box = empty_sandbox
    integration, _, _ = to_pipedrive_scene(user, box)
    run = transfer(create_run(integration, SyncRun.Direction.TO_PIPEDRIVE, "snovio"))
    monkeypatch.setattr(undo_service, "PAGE_SIZE", 2)
    monkeypatch.setattr(undo_service, "SLICE_SECONDS", 1e-9)  # a slice ends after each page
    undo = start_undo(integration, run=run, user=user)
    queued.clear()
    mark = len(box.request_log)

    assert undo_service.execute_by_id(undo.pk).startswith(f"undo {undo.pk}: running")
    assert queued == [undo.pk]  # the next slice
    slices = 1
    while queued:
        undo_service.execute_by_id(queued.pop())
        slices += 1

    undo.refresh_from_db()
    assert undo.status == SyncRun.Status.DONE
    assert (undo.restored, undo.removed) == (2, 2) and slices == 2
    reads = [
        path
        for remote, method, path in box.request_log[mark:]
        if remote == "pipedrive" and method == "GET" and path.startswith("/api/v2/persons")
    ]
    assert len(reads) == 2  # 4 persons, 2 a page


def test_a_second_undo_waits_for_the_one_running_on_the_same_integration(
    user, empty_sandbox, queued
):
    integration, _, _ = to_pipedrive_scene(user, empty_sandbox)
    run = transfer(create_run(integration, SyncRun.Direction.TO_PIPEDRIVE, "snovio"))
    start_undo(integration, event=run.events.get(email="ann@x.example"), user=user)  # queued

    with pytest.raises(UndoRefused, match="Another undo is running"):
        start_undo(integration, event=run.events.get(email="bob@x.example"), user=user)
    with pytest.raises(IntegrityError), transaction.atomic():
        Undo.objects.create(integration=integration, run=run)
    assert start_undo(integration, run=run, dry_run=True, user=user)  # a preview may run


def test_pruning_old_transfer_events_keeps_the_undos_events(user, empty_sandbox, queued):
    from datetime import timedelta

    from django.utils import timezone

    from integrations.sync import history

    integration, _, _ = to_pipedrive_scene(user, empty_sandbox)
    run = transfer(create_run(integration, SyncRun.Direction.TO_PIPEDRIVE, "snovio"))
    one = execute(start_undo(integration, event=run.events.get(email="ann@x.example")))
    undo = execute(start_undo(integration, run=run, user=user))
    long_ago = timezone.now() - timedelta(days=400)
    run.events.update(at=long_ago)
    for days in (1, 2):  # a contact with two old real-time events: the older one goes
        SyncEvent.objects.create(
            integration=integration,
            direction="to_pipedrive",
            email="zed@x.example",
            outcome="updated",
            at=long_ago - timedelta(days=days),
        )

    history.prune()

    # Each record's newest event is the undo's; the changes undone are kept with it.
    assert run.events.count() == 4
    assert undo.events.count() == 3 and one.events.count() == 1
    assert SyncEvent.objects.filter(email="zed@x.example").count() == 1


def test_a_prospect_matched_on_another_email_of_the_person_is_restored_not_duplicated(
    user, empty_sandbox, queued
):
    box = empty_sandbox
    box.snovio.create_list("Leads")
    box.snovio.add_prospect("Leads", email="ann@work.example", first_name="Ann", position="Dev")
    person = box.pipedrive.add_person(name="Ann One", email="ann@home.example", job_title="Lead")
    box.pipedrive.change_person(
        person["id"],
        emails=[
            {"value": "ann@home.example", "primary": True, "label": "home"},
            {"value": "ann@work.example", "primary": False, "label": "work"},
        ],
    )
    integration = connected_integration(user, box, catalog=False)
    run = transfer(create_run(integration, SyncRun.Direction.TO_SNOVIO, "pipedrive"))
    assert run.updated == 1, run.summary()
    assert prospect_by_email(box, "ann@work.example")["position"] == "Lead"

    undo = execute(start_undo(integration, run=run, user=user))

    assert undo.restored == 1, list(undo.events.values_list("reason", flat=True))
    assert prospect_by_email(box, "ann@work.example")["position"] == "Dev"
    assert len(box.snovio.prospects()) == 1


def test_a_record_pipedrive_keeps_refusing_fails_alone_and_is_retried_when_the_undo_resumes(
    user, empty_sandbox, queued
):
    box = empty_sandbox
    integration, _, _ = to_pipedrive_scene(user, box)
    run = transfer(create_run(integration, SyncRun.Direction.TO_PIPEDRIVE, "snovio"))
    cy = person_by_email(box, "cy@x.example")
    box.inject("pipedrive", "503", count=1000, path=rf"^/api/v2/persons/{cy['id']}$")

    undo = execute(start_undo(integration, run=run, user=user))

    assert undo.status == SyncRun.Status.DONE
    assert (undo.restored, undo.removed, undo.failed) == (2, 1, 1)
    assert person_by_email(box, "cy@x.example") is not None
    failure = undo.events.get(outcome="failed")
    assert failure.email == "cy@x.example" and "after retries" in failure.reason

    box.faults.clear()
    undo_service.resume(undo)  # the "Resume the undo" button
    assert queued[-1] == undo.pk
    undo = execute(undo)

    assert (undo.restored, undo.removed, undo.failed) == (2, 2, 0)
    assert person_by_email(box, "cy@x.example") is None
    assert SyncEvent.objects.filter(undo=undo, undoes__isnull=False).count() == 4


def test_persons_an_undo_removes_are_not_handled_as_deletes_made_in_pipedrive(
    user, empty_sandbox, queued
):
    """With "person deleted in Pipedrive -> list its prospect" chosen, the Pipedrive delete
    webhooks of the persons an undo removes leave the Snov.io prospects where they were."""
    from integrations.models import DeleteAction, DeletePolicy, OnPipedriveDelete
    from integrations.sync import realtime
    from integrations.sync.receivers import register_webhooks

    box = empty_sandbox
    integration, _, _ = to_pipedrive_scene(user, box)
    register_webhooks(integration)
    DeletePolicy.objects.create(integration=integration, on_pipedrive_delete=OnPipedriveDelete.MARK)
    run = transfer(create_run(integration, SyncRun.Direction.TO_PIPEDRIVE, "snovio"))
    execute(start_undo(integration, run=run, user=user))
    assert person_by_email(box, "cy@x.example") is None  # removed by the undo

    realtime.drain(integration.pk)

    # The webhooks of the removed persons came (one waiting change per person: the create's,
    # which then finds the person gone), and were applied.
    changes = integration.pending_changes.filter(source="pipedrive")
    assert changes.exists() and not changes.filter(processed_at=None).exists()
    assert not DeleteAction.objects.exists()
    lists = [x["name"] for x in box.snovio.state["lists"].values()]
    assert "Deleted in Pipedrive" not in lists
    assert "cy@x.example" in box.snovio.list_members("Leads")
