"""A task performs its own contact's runs and other due contacts alongside (`queue.run_batch`):
every run exactly once, each contact's runs in the order received, whatever order the tasks
start in, how many times they are delivered, and whether the batch runs in threads."""

from __future__ import annotations

import random

import pytest
from django.db import connection
from django.utils import timezone

from automations import engine, queue, services
from automations.models import ActionKind, AutomationRun, Trigger
from tests.automations.test_engine import payload

SCENARIOS = 12  # seeded random histories for the invariant test below


def deal_then_next_stages(integration, pipedrive) -> None:
    """Sent creates a deal at the pipeline's first stage; opened and replied move it on."""
    services.add_action(
        integration,
        Trigger.EMAIL_SENT,
        ActionKind.CREATE_DEAL,
        pipeline_id=pipedrive.pipeline("Sales"),
    )
    services.add_action(integration, Trigger.EMAIL_OPENED, ActionKind.NEXT_STAGE)
    services.add_action(integration, Trigger.REPLY_RECEIVED, ActionKind.NEXT_STAGE)


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
def test_a_batch_is_no_larger_than_the_setting(live, pipedrive, settings):
    settings.AUTOMATION_BATCH = 2
    deal_then_next_stages(live, pipedrive)
    runs = [engine.receive_event(live, payload(email=contact(n))) for n in range(4)]
    engine.run_batch(runs[0].pk)
    done = AutomationRun.objects.filter(status=AutomationRun.Status.DONE)
    assert sorted(done.values_list("pk", flat=True)) == [runs[0].pk, runs[1].pk]


@pytest.fixture
def batch_threads():
    """The batch threads end with the test, so their database sessions do not outlive it."""
    yield
    queue.stop_threads()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("batch_threads")
@pytest.mark.parametrize("seed", range(SCENARIOS))
def test_threaded_batches_run_every_event_once_and_each_contact_in_order(
    live, pipedrive, settings, seed
):
    """Invariant, over seeded random histories: when every task has run (in a random order,
    some delivered twice, batches in threads), every run is done once, each contact has one
    deal, moved one stage on per later event, and a contact's runs finished in the order
    they were received."""
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
    runs = []
    for n in range(contacts):  # each contact's first event creates its deal
        runs.append(
            engine.receive_event(live, payload(email=contact(n), at=f"2026-03-02 10:{n:02}:00"))
        )
    for k in range(rng.randint(0, 8)):
        movable = [email for email, moves in events.items() if moves < len(stages) - 1]
        email = rng.choice(movable)  # never past the last stage: every run is fully done
        kind = rng.choice([("campaign_email", "opened"), ("campaign_reply", "received")])
        runs.append(
            engine.receive_event(live, payload(*kind, email=email, at=f"2026-03-02 11:{k:02}:00"))
        )
        events[email] += 1
    tasks = [run.pk for run in runs] + [rng.choice(runs).pk for _ in range(rng.randint(0, 3))]
    rng.shuffle(tasks)

    # Threads wherever the database takes concurrent writers (not SQLite in memory).
    assert queue._threads_allowed() or connection.vendor == "sqlite"
    for task in tasks:
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
