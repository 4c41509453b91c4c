"""A task performs its own contact's runs and other due contacts alongside (`queue.run_batch`):
every run exactly once, each contact's runs in the order received, whatever order the tasks
start in, how many times they are delivered, and whether the batch runs in threads."""

from __future__ import annotations

import random

import pytest
from django.db import connection
from django.utils import timezone

from automations import engine, queue
from automations.models import AutomationRun
from tests.automations.test_engine import deal_then_next_stages, payload

SCENARIOS = 12  # seeded random histories for the invariant test below


def contact(n: int) -> str:
    return f"contact{n}@acme.example"


def deal_of(pipedrive, email: str) -> list[dict]:
    person_ids = {p["id"] for p in pipedrive.persons.values() if _has_email(p, email)}
    return [d for d in pipedrive.deals.values() if d.get("person_id") in person_ids]


def _has_email(person: dict, email: str) -> bool:
    return any(e.get("value") == email for e in person.get("emails") or [])


@pytest.mark.django_db
def test_a_task_also_performs_other_contacts_due_runs_and_their_tasks_then_do_nothing(
    live, pipedrive
):
    deal_then_next_stages(live, pipedrive)
    runs = [  # received, not yet performed (no task has started)
        engine.receive_event(live, payload(email=contact(n), name=f"Pat {n}")) for n in range(3)
    ]
    opened = engine.receive_event(
        live, payload(event_action="opened", email=contact(0), name="Pat 0")
    )

    engine.run_batch(runs[1].pk)

    statuses = AutomationRun.objects.values_list("status", flat=True)
    assert set(statuses) == {AutomationRun.Status.DONE}
    for n in range(3):
        assert len(deal_of(pipedrive, contact(n))) == 1
    (deal,) = deal_of(pipedrive, contact(0))
    assert deal["stage_id"] == pipedrive.stage("Sales", "Contact made")  # sent, then opened
    # The stages of the pipeline were read once for the whole batch.
    assert pipedrive.requests().count("GET /api/v2/stages") == 1
    calls = len(pipedrive.requests())
    for run in [*runs, opened]:  # the tasks of those runs arrive afterwards
        engine.run_batch(run.pk)
    assert len(pipedrive.requests()) == calls


@pytest.mark.django_db
def test_a_batch_leaves_alone_a_contact_another_worker_is_performing(live, pipedrive):
    deal_then_next_stages(live, pipedrive)
    mine = engine.receive_event(live, payload(email=contact(0)))
    theirs = engine.receive_event(live, payload(email=contact(1)))
    AutomationRun.objects.filter(pk=theirs.pk).update(
        reason=queue.RUNNING_PREFIX + timezone.now().isoformat()
    )
    engine.run_batch(mine.pk)
    assert AutomationRun.objects.get(pk=mine.pk).status == AutomationRun.Status.DONE
    assert AutomationRun.objects.get(pk=theirs.pk).status == AutomationRun.Status.PENDING
    assert deal_of(pipedrive, contact(1)) == []


@pytest.mark.django_db
def test_a_contact_stopped_by_an_unexpected_error_is_tried_once_per_task(
    live, pipedrive, monkeypatch
):
    deal_then_next_stages(live, pipedrive)
    broken = engine.receive_event(live, payload(email=contact(0)))
    fine = engine.receive_event(live, payload(email=contact(1)))
    real, attempts = queue.perform_action, []

    def perform(ctx, action, prior):
        if ctx.event.email == contact(0):
            attempts.append(ctx.run.pk)
            raise RuntimeError("a bug")
        return real(ctx, action, prior)

    monkeypatch.setattr(queue, "perform_action", perform)
    with pytest.raises(RuntimeError):  # the task fails: django-q2 delivers it again later
        engine.run_batch(fine.pk)
    assert attempts == [broken.pk]
    assert AutomationRun.objects.get(pk=fine.pk).status == AutomationRun.Status.DONE
    left = AutomationRun.objects.get(pk=broken.pk)
    assert left.status == AutomationRun.Status.PENDING
    assert left.reason.startswith(queue.INTERNAL_ERROR)


@pytest.mark.django_db
def test_a_run_received_while_an_older_one_waits_for_its_task_gets_no_task_of_its_own(
    live, pipedrive, run_on_commit, monkeypatch
):
    deal_then_next_stages(live, pipedrive)
    sent: list[int] = []
    monkeypatch.setattr(queue, "async_task", lambda task, run_id, **kwargs: sent.append(run_id))
    first = run_on_commit(engine.receive_event, live, payload(email=contact(0)))
    second = run_on_commit(engine.receive_event, live, payload(email=contact(1)))
    assert sent == [first.pk]  # the first run's task will find the second one due

    engine.run_batch(first.pk)

    assert AutomationRun.objects.get(pk=second.pk).status == AutomationRun.Status.DONE
    third = run_on_commit(engine.receive_event, live, payload(email=contact(2)))
    assert sent == [first.pk, third.pk]  # nothing older waits: it needs its own task


@pytest.mark.django_db
def test_a_run_held_or_left_after_an_error_does_not_stand_in_for_a_task(
    live, pipedrive, run_on_commit, monkeypatch
):
    deal_then_next_stages(live, pipedrive)
    sent: list[int] = []
    monkeypatch.setattr(queue, "async_task", lambda task, run_id, **kwargs: sent.append(run_id))
    older = engine.receive_event(live, payload(email=contact(0)))
    AutomationRun.objects.filter(pk=older.pk).update(reason=queue.INTERNAL_ERROR + "; runs again.")
    newer = run_on_commit(engine.receive_event, live, payload(email=contact(1)))
    assert sent == [newer.pk]


@pytest.mark.django_db
def test_a_task_past_its_time_hands_the_due_runs_to_a_new_task(
    live, pipedrive, settings, monkeypatch
):
    settings.AUTOMATION_BATCH = 2
    monkeypatch.setattr(queue, "BATCH_SECONDS", 0)
    sent: list[int] = []
    monkeypatch.setattr(queue, "async_task", lambda task, run_id, **kwargs: sent.append(run_id))
    deal_then_next_stages(live, pipedrive)
    runs = [engine.receive_event(live, payload(email=contact(n))) for n in range(3)]

    engine.run_batch(runs[0].pk)

    done = AutomationRun.objects.filter(status=AutomationRun.Status.DONE)
    assert list(done.values_list("pk", flat=True)) == [runs[0].pk]
    assert sent == [runs[1].pk]
    engine.run_batch(runs[1].pk)  # the handed task does the same
    assert sent == [runs[1].pk, runs[2].pk]
    engine.run_batch(runs[2].pk)
    assert AutomationRun.objects.filter(status=AutomationRun.Status.PENDING).count() == 0


@pytest.fixture
def batch_threads():
    """The batch threads end with the test, so their database sessions do not outlive it."""
    yield
    queue.stop_threads()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("batch_threads")
@pytest.mark.parametrize("seed", range(SCENARIOS))
def test_threaded_batches_run_every_event_once_and_each_contact_in_order(
    live, pipedrive, settings, monkeypatch, seed
):
    """Invariant, over seeded random histories: when every task enqueued has run (interleaved
    with the deliveries at random, some delivered twice, batches in threads; a run received
    while an older one waits gets no task of its own), every run is done once, each contact
    has one deal, moved one stage on per later event, and a contact's runs finished in the
    order they were received."""
    rng = random.Random(seed)
    settings.AUTOMATION_BATCH = rng.choice([2, 3, 8])
    deal_then_next_stages(live, pipedrive)
    stages = [
        s["id"]
        for s in sorted(
            (
                s
                for s in pipedrive.simulator.state["stages"].values()
                if s["pipeline_id"] == pipedrive.pipeline("Sales")
            ),
            key=lambda s: (s.get("order_nr") or 0, s["id"]),
        )
    ]
    contacts = rng.randint(2, 6)
    events: dict[str, int] = {contact(n): 0 for n in range(contacts)}
    deliveries = [  # each contact's first event creates its deal
        payload(email=contact(n), at=f"2026-03-02 10:{n:02}:00") for n in range(contacts)
    ]
    for k in range(rng.randint(0, 8)):
        movable = [email for email, moves in events.items() if moves < len(stages) - 1]
        email = rng.choice(movable)  # never past the last stage: every run is fully done
        kind = rng.choice([("campaign_email", "opened"), ("campaign_reply", "received")])
        deliveries.append(payload(*kind, email=email, at=f"2026-03-02 11:{k:02}:00"))
        events[email] += 1
    queued: list[int] = []  # the tasks enqueued, as django-q2 holds them
    monkeypatch.setattr(queue, "async_task", lambda task, run_id, **kwargs: queued.append(run_id))
    # Threads wherever the database takes concurrent writers (not SQLite in memory).
    assert queue._threads_allowed() or connection.vendor == "sqlite"

    # Deliveries and tasks interleave at random; a task may be delivered twice.
    while deliveries or queued:
        if deliveries and (not queued or rng.random() < 0.5):
            engine.receive_event(live, deliveries.pop(0))
            continue
        task = queued.pop(rng.randrange(len(queued)))
        engine.run_batch(task)
        if rng.random() < 0.15:
            engine.run_batch(task)

    where = f"(seed {seed})"
    stored = list(AutomationRun.objects.order_by("received_at", "pk"))
    assert {r.status for r in stored} == {AutomationRun.Status.DONE}, where
    for email, moves in events.items():
        (deal,) = deal_of(pipedrive, email)
        expected = stages[moves]
        assert deal["stage_id"] == expected, f"{email}: {deal['stage_id']} != {expected} {where}"
        finished = [r.finished_at for r in stored if r.email == email]
        assert finished == sorted(finished), f"{email} ran out of order {where}"
    assert len(pipedrive.deals) == contacts, where
