"""Receiving events and running them: one `AutomationRun` per event, held while the integration
is not Active, performed in order per contact under a lease.

Ordering and double runs. The runs of one contact (integration + email) are performed in the
order they were received, by one worker at a time: a task always starts from the contact's
oldest pending run and carries on through the newer ones, and each run is claimed with a
compare-and-swap lease before it is touched. Contacts run in parallel.

Batches. A task does not stop at its own contact: it goes on taking the contacts whose runs are
due, `AUTOMATION_BATCH` at a time, performed side by side in threads (a run spends nearly all
its time waiting on Pipedrive), until it finds none. So a run received while an older one
still waits for its task needs no task of its own, and a backlog drains in batches with one
task instead of one per event; a worker waits on several contacts at once, and the stages of
a pipeline are read once per task."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import datetime, timedelta
from typing import TypeVar

from django.conf import settings
from django.db import (
    close_old_connections,
    connection,
    connections,
    transaction,
)
from django.utils import timezone
from django_q.conf import Conf
from django_q.tasks import async_task

from automations.actions import is_provisional, perform_action
from automations.events import CampaignEvent, event_key, parse_event, raw_key
from automations.lookups import RunContext, not_in_synced_list
from automations.models import ActionOutcome, AutomationRun, ScenarioAction, Trigger
from integrations.http import RemoteError
from integrations.inserts import insert_unless_taken
from integrations.models import Integration

log = logging.getLogger(__name__)


TASK = "automations.tasks.run_contact_queue"
# A claimed run whose worker stopped answering may be taken over after this long (the
# django-q2 task timeout is 600 s, so a live worker never holds a run longer).
LEASE_SECONDS = 660
RUNNING_PREFIX = "Running since "
HELD_REASON = "Held while the integration is {status}; runs when it is Active again."
INTERNAL_ERROR = "Interrupted by an internal error"
# A task drains due runs for at most this long, then hands the rest to a new task (well within
# django-q2's 600 s task timeout).
BATCH_SECONDS = 60


# --- receiving -----------------------------------------------------------------------------
def receive_event(integration: Integration, payload: dict) -> AutomationRun:
    """Store one campaign event (once per event key) and run or hold it."""
    return receive_event_once(integration, payload)[0]


def receive_event_once(integration: Integration, payload: dict) -> tuple[AutomationRun, bool]:
    """`receive_event`, also saying whether the event is new (False: received before)."""
    try:
        event = parse_event(payload)
    except ValueError as exc:
        event = CampaignEvent(
            trigger=None, email="", data=payload if isinstance(payload, dict) else {}
        )
        reason = f"Not a Snov.io campaign event: {exc}"
    else:
        reason = ""
    if not reason and not event.trigger:
        reason = f"SyncBridge does not automate {event.event_object}/{event.event_action} events."
    elif not reason and not event.email:
        reason = "The event names no recipient email."
    elif not reason and not integration.sends_to_pipedrive:
        reason = "Automations are idle: data does not flow to Pipedrive in this integration."

    status = AutomationRun.Status.PENDING
    if reason:
        status = AutomationRun.Status.IGNORED
    elif integration.status != Integration.Status.ACTIVE:
        reason = HELD_REASON.format(status=integration.get_status_display())
    elif not _has_enabled_actions(integration, event.trigger):
        status, reason = AutomationRun.Status.NO_SCENARIO, _no_scenario_reason(event.trigger)

    key = event_key(event) if event.trigger else raw_key(payload)
    defaults = {
        "trigger": event.trigger or "",
        "email": event.email,
        "payload": payload if isinstance(payload, dict) else {"body": payload},
        "status": status,
        "reason": reason,
        "finished_at": None if status == AutomationRun.Status.PENDING else timezone.now(),
    }
    # Insert first (a duplicate is ignored on the unique key): one statement, no
    # read-then-write race, and no lock upgrade for SQLite to refuse under concurrent deliveries.
    run = AutomationRun(integration=integration, event_key=key, **defaults)
    created = insert_unless_taken(run)
    if not created:  # the same event was delivered before (or at the same moment)
        run = AutomationRun.objects.get(integration=integration, event_key=key)
        log.info("automation event %s for integration %s already received", key, integration.pk)
        return run, False
    if (
        run.status == AutomationRun.Status.PENDING
        and integration.status == Integration.Status.ACTIVE
    ):
        enqueue(run)
    return run, True


def enqueue(run: AutomationRun) -> None:
    """Queue the run's contact (after the current transaction commits), unless a task that
    will take it is on its way already."""
    run_id, integration_id = run.pk, run.integration_id

    def _after_commit() -> None:
        if not _taken_care_of(run_id, integration_id):
            _send(run_id)

    transaction.on_commit(_after_commit)


def _taken_care_of(run_id: int, integration_id: int) -> bool:
    """Whether an older run of the integration waits that no task has taken yet.

    The task that takes it (every such run has one, or is itself taken care of by an older
    one) looks for due runs again after performing it and only stops when it finds none, so
    it finds this run, committed before this look. Only runs received while the integration
    was Active and never attempted count (an empty reason): not a held run nor one left
    after an error, whose next task may be far off.
    """
    return AutomationRun.objects.filter(
        integration_id=integration_id,
        status=AutomationRun.Status.PENDING,
        reason="",
        pk__lt=run_id,
    ).exists()


def _send(run_id: int) -> None:
    # save=False: the AutomationRun and its outcomes are the record of a run, so a
    # successful task leaves no django-q2 Task row (saving one costs the monitor an
    # insert plus a pass over the saved successes to prune them, in a write transaction,
    # for every event). A task that raises is still saved as failed.
    async_task(TASK, run_id, task_name=f"automation-run-{run_id}", group="automations", save=False)


def release_held(integration: Integration) -> int:
    """Queue every held run of an Active integration, oldest contact first. Returns how many."""
    if integration.status != Integration.Status.ACTIVE:
        return 0
    held = AutomationRun.objects.filter(
        integration=integration, status=AutomationRun.Status.PENDING
    ).order_by("received_at", "pk")
    seen: set[str] = set()
    count = 0
    for run in held.only("pk", "email"):
        count += 1
        if run.email in seen:
            continue  # the contact's task performs its later runs in order
        seen.add(run.email)
        enqueue(run)
    return count


# --- running -------------------------------------------------------------------------------
def run_batch(run_id: int) -> AutomationRun:
    """Perform a run's contact, then every contact whose runs are due, several side by side.

    Each contact goes through `run_automations` (its runs in order, each under a lease), so a
    contact another task is performing is left to it. Up to `AUTOMATION_BATCH` contacts are in
    hand at once; each time one is finished the next due one is taken. The task carries on
    until a look after the last one finds nothing due, which is what lets `enqueue` leave a
    new run to a task already on its way (`_taken_care_of`); after `BATCH_SECONDS` it hands
    what is left to a new task instead. An unexpected error in any contact is raised at the end
    (the task fails and django-q2 delivers it again; the run it interrupted stays pending).
    Returns the task's own run as it is now.
    """
    own = AutomationRun.objects.filter(pk=run_id).values_list("integration_id", "email").first()
    if own is None:
        raise AutomationRun.DoesNotExist(f"AutomationRun {run_id} does not exist")
    integration_id = own[0]
    stages: dict[int, list[dict]] = {}  # a pipeline's stages, read once per task
    # Contacts not to take again: another worker performs their oldest run (and goes on
    # through the newer ones), or an unexpected error stopped them (tried again when
    # django-q2 delivers this failed task again, not at once in a loop).
    left: set[str] = set()
    errors: list[BaseException] = []
    deadline = time.monotonic() + BATCH_SECONDS
    result: AutomationRun | None = None
    in_hand: dict[Future, tuple[int, str]] = {}

    def take(pk: int, email: str) -> None:
        in_hand[_start(lambda: run_automations(pk, stages=stages))] = (pk, email)

    def take_due() -> None:
        room = batch_size() - len(in_hand)
        if room <= 0:
            return
        skip = left | {email for _, email in in_hand.values()}
        due = _due_contacts(integration_id, skip, limit=room)
        if due and time.monotonic() > deadline:
            if not in_hand:
                _send(due[0][0])  # a fresh task drains the rest
            return
        for pk, email in due:
            take(pk, email)

    take(run_id, own[1])
    take_due()
    while in_hand:
        finished, _ = wait(list(in_hand), return_when=FIRST_COMPLETED)
        for future in finished:
            pk, email = in_hand.pop(future)
            outcome = future.result()
            if isinstance(outcome, BaseException):
                errors.append(outcome)
                left.add(email)
                continue
            if outcome.status == AutomationRun.Status.PENDING:
                left.add(email)
            if pk == run_id:
                result = outcome
        take_due()
    if errors:
        raise errors[0]
    return result if result is not None else AutomationRun.objects.get(pk=run_id)


def batch_size() -> int:
    return max(1, int(getattr(settings, "AUTOMATION_BATCH", 8)))


def _due_contacts(integration_id: int, skip: Iterable[str], limit: int) -> list[tuple[int, str]]:
    """The oldest pending run of up to `limit` contacts nobody is performing: (pk, email)."""
    if not Integration.objects.filter(pk=integration_id, status=Integration.Status.ACTIVE).exists():
        return []
    pending = (
        AutomationRun.objects.filter(
            integration_id=integration_id, status=AutomationRun.Status.PENDING
        )
        .exclude(email__in=list(skip))
        .exclude(reason__startswith=RUNNING_PREFIX)
        .order_by("received_at", "pk")
        .values_list("pk", "email")
    )
    heads: dict[str, int] = {}
    for pk, contact in pending[: limit * 4]:
        heads.setdefault(contact, pk)
        if len(heads) == limit:
            break
    return [(pk, email) for email, pk in heads.items()]


T = TypeVar("T")
_pool: tuple[int, ThreadPoolExecutor] | None = None


def _start(work: Callable[[], T]) -> Future:
    """`work` in a thread of the pool when that is safe, else at once in this one; the
    future holds its result or the `Exception` it raised."""
    if _threads_allowed():
        return _thread_pool().submit(_in_thread, work)
    done: Future = Future()
    done.set_result(_guarded(work))
    return done


def _threads_allowed() -> bool:
    # Other threads have their own database connections: they cannot see the rows of an
    # open transaction (a test's) nor join django-q2's sync mode, so both stay in this thread;
    # so does an in-memory SQLite database (the tests'), whose shared cache refuses a second
    # writer at once ("database table is locked") instead of waiting as a file does.
    return (
        not Conf.SYNC
        and transaction.get_autocommit()
        and not (connection.vendor == "sqlite" and connection.is_in_memory_db())
    )


def _thread_pool() -> ThreadPoolExecutor:
    global _pool
    if _pool is None or _pool[0] != os.getpid():  # threads do not survive a fork
        _pool = (os.getpid(), ThreadPoolExecutor(batch_size(), thread_name_prefix="automation"))
    return _pool[1]


def stop_threads() -> None:
    """Let the batch threads end, closing their database connections (tests, shutdown)."""
    global _pool
    if _pool is None:
        return
    pool, _pool = _pool[1], None
    threads = getattr(pool, "_max_workers", 1)
    barrier = threading.Barrier(threads)

    def close() -> None:
        # One job per thread: each waits for the others, so every thread closes its own.
        try:
            barrier.wait(timeout=5)
        except threading.BrokenBarrierError:
            pass
        connections.close_all()

    for _ in range(threads):
        pool.submit(close)
    pool.shutdown(wait=True)


def _in_thread(work: Callable[[], T]) -> T | BaseException:
    # As Django does around a request: drop a connection past CONN_MAX_AGE or broken, keep
    # a healthy persistent one for the thread's next contact.
    close_old_connections()
    try:
        return _guarded(work)
    finally:
        close_old_connections()


def _guarded(work: Callable[[], T]) -> T | BaseException:
    try:
        return work()
    except Exception as exc:
        log.exception("an automation run failed")
        return exc


def run_automations(
    run: AutomationRun | int, stages: dict[int, list[dict]] | None = None
) -> AutomationRun:
    """Perform a run's actions, after any older held run of the same contact, in order.

    Carries on through the contact's newer pending runs, so a task never leaves one behind.
    A run that another worker holds, or that must wait (integration not Active), is left
    pending. `stages` caches pipelines' stages across the runs of a batch. Returns the run as
    it is now.
    """
    run_id = run.pk if isinstance(run, AutomationRun) else int(run)
    contact = AutomationRun.objects.filter(pk=run_id).values_list("integration_id", "email")
    first = contact.first()
    if first is None:
        raise AutomationRun.DoesNotExist(f"AutomationRun {run_id} does not exist")
    done: dict[int, AutomationRun] = {}
    while True:
        head = _oldest_pending(*first, exclude=done)
        if head is None or not _perform_run(head, stages):
            break
        done[head.pk] = head
    if run_id in done:
        return done[run_id]  # finished here: `_finish` left it as it is in the database
    return AutomationRun.objects.get(pk=run_id)


def _oldest_pending(
    integration_id: int, email: str, exclude: Iterable[int]
) -> AutomationRun | None:
    return (
        AutomationRun.objects.filter(
            integration_id=integration_id, email=email, status=AutomationRun.Status.PENDING
        )
        .exclude(pk__in=list(exclude))
        .order_by("received_at", "pk")
        .first()
    )


def _perform_run(run: AutomationRun, stages: dict[int, list[dict]] | None = None) -> bool:
    """Run one pending run to its end. False when it could not be taken (held or busy)."""
    integration = Integration.objects.select_related("pipedrive", "snovio").get(
        pk=run.integration_id
    )
    if not integration.sends_to_pipedrive:
        _finish(
            run,
            AutomationRun.Status.IGNORED,
            "Automations are idle: data does not flow to Pipedrive.",
        )
        return True
    if integration.status != Integration.Status.ACTIVE:
        _hold(run, integration)
        return False
    if not _claim(run):
        return False
    try:
        _execute(run, integration, stages)
    except BaseException as exc:
        # Unexpected (a bug, the database): leave the run pending so it runs again.
        _release(run, f"{INTERNAL_ERROR} ({exc.__class__.__name__}); runs again.")
        raise
    return True


def _claim(run: AutomationRun) -> bool:
    """Take the run with a compare-and-swap on its reason (the lease), as it was just read."""
    if run.status != AutomationRun.Status.PENDING:
        return False
    current = run.reason
    if current.startswith(RUNNING_PREFIX):
        try:
            since = datetime.fromisoformat(current.removeprefix(RUNNING_PREFIX))
        except ValueError:
            since = None
        if since and timezone.now() - since < timedelta(seconds=LEASE_SECONDS):
            return False  # another worker is on it
    lease = RUNNING_PREFIX + timezone.now().isoformat()
    taken = AutomationRun.objects.filter(
        pk=run.pk, status=AutomationRun.Status.PENDING, reason=current
    ).update(reason=lease)
    if taken:
        run.reason = lease
        # A run taken over from a stopped worker, or released after an error, may have
        # outcomes already: only then are they looked up.
        run.retried = current.startswith((RUNNING_PREFIX, INTERNAL_ERROR))
    return bool(taken)


def _release(run: AutomationRun, reason: str) -> None:
    AutomationRun.objects.filter(pk=run.pk, status=AutomationRun.Status.PENDING).update(
        reason=reason
    )


def _hold(run: AutomationRun, integration: Integration) -> None:
    reason = HELD_REASON.format(status=integration.get_status_display())
    AutomationRun.objects.filter(pk=run.pk, status=AutomationRun.Status.PENDING).exclude(
        reason__startswith=RUNNING_PREFIX
    ).update(reason=reason)


def _finish(run: AutomationRun, status: str, reason: str) -> None:
    finished_at = timezone.now()
    AutomationRun.objects.filter(pk=run.pk).update(
        status=status, reason=reason, finished_at=finished_at
    )
    run.status, run.reason, run.finished_at = status, reason, finished_at


def enabled_actions(integration: Integration, trigger: str) -> list[ScenarioAction]:
    """The trigger's enabled actions in order (none when its scenario is switched off)."""
    return list(
        ScenarioAction.objects.filter(
            scenario__integration=integration,
            scenario__trigger=trigger,
            scenario__enabled=True,
            enabled=True,
        ).order_by("position", "pk")
    )


def _has_enabled_actions(integration: Integration, trigger: str | None) -> bool:
    return (
        bool(trigger)
        and ScenarioAction.objects.filter(
            scenario__integration=integration,
            scenario__trigger=trigger,
            scenario__enabled=True,
            enabled=True,
        ).exists()
    )


def _no_scenario_reason(trigger: str | None) -> str:
    label = Trigger(trigger).label if trigger in Trigger.values else trigger
    return f"No enabled action for “{label}”."


def _execute(
    run: AutomationRun, integration: Integration, stages: dict[int, list[dict]] | None
) -> None:
    actions = enabled_actions(integration, run.trigger)
    if not actions:
        _finish(run, AutomationRun.Status.NO_SCENARIO, _no_scenario_reason(run.trigger))
        return
    event = parse_event(run.payload)
    ctx = RunContext(integration=integration, run=run, event=event)
    if stages is not None:
        ctx.stages = stages
    try:
        not_synced = not_in_synced_list(ctx)
    except RemoteError as exc:
        not_synced = None
        ctx.person_error = f"Could not check the prospect's Snov.io lists: {exc}"
    if not_synced:
        _finish(run, AutomationRun.Status.IGNORED, not_synced)
        return
    previous = {o.kind: o for o in run.outcomes.all()} if getattr(run, "retried", True) else {}
    outcomes: list[ActionOutcome] = []
    for action in actions:
        prior = previous.get(action.kind)
        if prior and not is_provisional(prior):
            outcomes.append(prior)  # finished by an earlier attempt of this run
            continue
        outcomes.append(perform_action(ctx, action, prior))
    counts = {o: sum(1 for x in outcomes if x.outcome == o) for o in ActionOutcome.Outcome.values}
    status = (
        AutomationRun.Status.DONE
        if counts[ActionOutcome.Outcome.DONE] == len(outcomes)
        else AutomationRun.Status.PARTIAL
    )
    summary = ", ".join(f"{n} {label}" for label, n in counts.items() if n)
    _finish(run, status, summary)
