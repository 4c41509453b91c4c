"""Running transfers and the real-time jobs through django-q2: the services behind the tasks.

- `start_transfer(...)` (the Transfer page) checks the integration is Active, creates a
  SyncRun (or returns the one under way, `open_run`) and enqueues
  `integrations.tasks.run_transfer(run_id)`; `run_one_slice` runs a slice of it and enqueues
  the next; the watch (`arm_watch`, a one-off schedule moved on while the run's worker lives,
  `watch_run`) takes over a run whose worker died within a minute;
  `resume_stalled_transfers()` is the periodic backstop;
- `enqueue_pending(integration_id)` queues the drain of held changes (`request_drain`: only
  when none is queued yet, for webhook deliveries), `ensure_schedule()`
  the periodic catch-up (`catch_up_integration`, `catch_up_all_integrations`).

Task names (`"integrations.tasks.run_transfer"`, ...) are stored in django-q2's queue and
Schedules: this module refers to the tasks by those names only.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django_q.models import Schedule
from django_q.tasks import async_task

from integrations import budget
from integrations.http import RateLimited
from integrations.lifecycle import set_status
from integrations.models import Integration, Provider, SyncRun
from integrations.pipedrive.client import budget_key
from integrations.sync import history
from integrations.sync.catchup import CYCLE_MINUTES, catch_up
from integrations.sync.locks import LEASE
from integrations.sync.transfer import Checkpoint, Slice, run_slice

CATCH_UP_MINUTES = CYCLE_MINUTES
# A task's share of a long transfer: well under django-q2's task timeout (600 s), long enough
# that listing the receiving side again at the start of each slice costs little.
SLICE_SECONDS = 240
# A queued run that no worker has taken for this long lost its task: it is enqueued again.
QUEUED_GRACE = timedelta(seconds=60)
# The watch fires this long after a lease expires. django-q2's scheduler looks for due
# schedules every 30 s, so a dead worker's run is taken over within LEASE + 1 s + 30 s.
WATCH_DELAY = timedelta(seconds=1)
SCHEDULER_CYCLE = timedelta(seconds=30)
DIRECTIONS = {
    "to-pipedrive": SyncRun.Direction.TO_PIPEDRIVE,
    "to_pipedrive": SyncRun.Direction.TO_PIPEDRIVE,
    "to-snovio": SyncRun.Direction.TO_SNOVIO,
    "to_snovio": SyncRun.Direction.TO_SNOVIO,
}


class TransferUnavailable(Exception):
    """The transfer cannot start now (the integration is not Active)."""


def default_source(direction: str) -> str:
    """The sending side is the source app unless the user chooses otherwise."""
    return Provider.SNOVIO if direction == SyncRun.Direction.TO_PIPEDRIVE else Provider.PIPEDRIVE


# --- opening a run --------------------------------------------------------------------------


def start_transfer(
    integration: Integration,
    direction: str,
    source_app: str | None = None,
    dry_run: bool = False,
    user: Any = None,
    *,
    idempotency_key: str = "",
) -> SyncRun:
    """Create the run and hand it to a worker; the page follows it through its progress URL.

    Only while the integration is Active (else `TransferUnavailable`). A transfer already
    under way (or the run the same form submit started, `idempotency_key`) is returned
    instead, and nothing more is queued.
    """
    if integration.status != Integration.Status.ACTIVE:
        raise TransferUnavailable(
            "A transfer can start only while the integration is Active "
            f"(it is {integration.get_status_display()})."
        )
    run, created = open_run(integration, direction, source_app, dry_run, user, idempotency_key)
    if created:
        arm_watch(run.pk, timezone.now() + QUEUED_GRACE)
        enqueue_transfer(run.pk)
    return run


def create_run(
    integration: Integration,
    direction: str,
    source_app: str | None = None,
    dry_run: bool = False,
    user: Any = None,
    *,
    idempotency_key: str = "",
) -> SyncRun:
    """A new run, or the transfer already under way for this integration (never two at once)."""
    return open_run(integration, direction, source_app, dry_run, user, idempotency_key)[0]


def open_run(
    integration: Integration,
    direction: str,
    source_app: str | None = None,
    dry_run: bool = False,
    user: Any = None,
    idempotency_key: str = "",
) -> tuple[SyncRun, bool]:
    """(run, True) for a new run; (the run already started, False) when one exists.

    The database decides: a partial unique constraint allows one queued or running transfer
    per integration, another one run per form submit (`idempotency_key`). The insert that
    loses the race gets an IntegrityError and returns the winner's run.
    """
    direction = DIRECTIONS.get(direction, direction)
    if direction not in SyncRun.Direction.values:
        raise ValueError(f"unknown direction {direction!r}: use to-pipedrive or to-snovio")
    source_app = source_app or default_source(direction)
    if source_app not in Provider.values:
        raise ValueError(f"unknown source app {source_app!r}: use snovio or pipedrive")
    idempotency_key = (idempotency_key or "")[:64]
    for _ in range(3):
        existing = _existing_run(integration, dry_run, idempotency_key)
        if existing is not None:
            return existing, False
        try:
            return _insert_run(integration, direction, source_app, dry_run, user, idempotency_key)
        except IntegrityError:
            continue  # another caller's run won the race: it is returned on the next turn
    raise RuntimeError(f"could not start a transfer of integration {integration.pk}")


def _existing_run(integration: Integration, dry_run: bool, key: str) -> SyncRun | None:
    if key:
        run = integration.runs.filter(idempotency_key=key).first()
        if run is not None:
            return run
    if dry_run:
        return None
    return integration.runs.filter(dry_run=False, status__in=SyncRun.ACTIVE).first()


def _insert_run(integration, direction, source_app, dry_run, user, key) -> tuple[SyncRun, bool]:
    with transaction.atomic():
        status_before = Integration.objects.values_list("status", flat=True).get(pk=integration.pk)
        run = SyncRun.objects.create(
            integration=integration,
            direction=direction,
            source_app=source_app,
            dry_run=dry_run,
            idempotency_key=key,
            started_by=user if getattr(user, "is_authenticated", False) else None,
            checkpoint=Checkpoint(status_before="" if dry_run else status_before).to_json(),
        )
        if not dry_run:
            # Syncing from the click on: real-time changes wait, and the pages say so at once.
            set_status(
                integration, Integration.Status.SYNCING, user, f"Transfer #{run.pk} is queued"
            )
    return run, True


# --- executing a run ------------------------------------------------------------------------


def enqueue_transfer(run_id: int) -> None:
    async_task("integrations.tasks.run_transfer", run_id, task_name=f"transfer-{run_id}")


def run_one_slice(run_id: int, now: datetime | None = None, resume_failed: bool = False) -> str:
    """Execute one slice of the run (if no other worker does), then queue the next one.

    A failed run is resumed only when asked (`resume_failed`: the retry after a rate limit),
    never by a stray duplicate of its task.
    """
    run = SyncRun.objects.filter(pk=run_id).first()
    if run is None:
        return f"transfer {run_id}: no such run"
    runnable = run.is_active or resume_failed
    if runnable:
        # Should this worker die, the watch hands the run to another one.
        arm_watch(run.pk, timezone.now() + LEASE + WATCH_DELAY)
    with budget.background():  # stops short of Pipedrive's reserve; resumed after the reset
        run, state = run_slice(run, budget=SLICE_SECONDS, now=now, resume_failed=resume_failed)
    if state is Slice.MORE:
        enqueue_transfer(run.pk)
    elif state is Slice.FINISHED:
        disarm_watch(run.pk)
        if (
            runnable
            and run.status == SyncRun.Status.FAILED
            and Checkpoint.from_json(run.checkpoint).rate_limited
        ):
            resume_after_rate_limit(run)
    return f"transfer {run.pk}: {state.value}, {run.status} {run.summary()}"


def resume_after_rate_limit(run: SyncRun) -> None:
    """Resume from the checkpoint once the limit has reset: in a minute after a burst limit,
    at 00:00 UTC when Pipedrive's daily budget is spent or down to its reserve."""
    next_run = timezone.now() + timedelta(minutes=1)
    connection = run.integration.pipedrive
    reset = budget.resume_time(budget_key(connection)) if connection else None
    if reset is not None:
        next_run = datetime.fromtimestamp(reset + 1, tz=UTC)
    Schedule.objects.create(
        func="integrations.tasks.run_transfer",
        args=str(run.pk),
        kwargs="resume_failed=True",
        schedule_type=Schedule.ONCE,
        next_run=next_run,
        name=f"resume-transfer-{run.pk}-{timezone.now():%H%M%S}",
    )


# --- the watch ------------------------------------------------------------------------------


def watch_name(run_id: int) -> str:
    return f"transfer-watch-{run_id}"


def arm_watch(run_id: int, at: datetime) -> None:
    """A one-off schedule that checks the run at `at` (moved on while its worker lives)."""
    name = watch_name(run_id)
    if not Schedule.objects.filter(name=name).update(next_run=at):
        Schedule.objects.create(
            name=name,
            func="integrations.tasks.watch_transfer",
            args=str(run_id),
            schedule_type=Schedule.ONCE,
            repeats=-1,
            next_run=at,
        )


def disarm_watch(run_id: int) -> None:
    Schedule.objects.filter(name=watch_name(run_id)).delete()


def watch_run(run_id: int, now: datetime | None = None) -> str:
    """Take over a run whose worker died; look again later if it lives."""
    now = now or timezone.now()
    run = SyncRun.objects.filter(pk=run_id).first()
    if run is None or not run.is_active:
        disarm_watch(run_id)
        return f"transfer {run_id}: not running"
    if run.lease_owner and run.lease_expires_at and run.lease_expires_at > now:
        arm_watch(run_id, run.lease_expires_at + WATCH_DELAY)
        return f"transfer {run_id}: alive"
    return run_one_slice(run_id, now=now)


def resume_stalled_transfers(now: datetime | None = None) -> int:
    """Queue again every transfer whose worker died (lease expired) or whose task was lost."""
    now = now or timezone.now()
    dead = ~Q(lease_owner="") & Q(lease_expires_at__lt=now)
    never_taken = Q(lease_owner="", created_at__lt=now - QUEUED_GRACE)
    stalled = SyncRun.objects.filter(dead | never_taken, status__in=SyncRun.ACTIVE)
    resumed = 0
    for run_id in stalled.values_list("pk", flat=True):
        enqueue_transfer(run_id)
        resumed += 1
    return resumed


# --- real time ------------------------------------------------------------------------------


# A drain queued this long ago that has not started may have been lost (a broker fault, a
# full save of the integration that wrote back an old value): the next delivery queues another.
DRAIN_REQUEST_STALE = timedelta(seconds=60)


def enqueue_pending(integration_id: int) -> None:
    async_task("integrations.tasks.process_pending", integration_id, group=f"sync-{integration_id}")


def request_drain(integration_id: int) -> None:
    """Queue a drain of an Active integration's changes unless one is queued and not started.

    A burst of deliveries then costs one task, not one per delivery (a task is an insert of a
    signed pickle into the queue on the ORM broker). Safe because the drain clears the mark
    (`drain_started`) before it reads the queue: a change committed before the clear is read
    by that drain; one committed after it finds no mark and queues a new drain. So the mark is
    taken only once the change is committed, with one conditional UPDATE, which also reads the
    status fresh. Inside a transaction (the change not committed yet) a drain is queued
    whatever the mark says, committed with the change on the ORM broker.
    """
    if transaction.get_connection().in_atomic_block:
        if Integration.objects.filter(pk=integration_id, status=Integration.Status.ACTIVE).exists():
            enqueue_pending(integration_id)
        return
    _request_drain_now(integration_id)


def _request_drain_now(integration_id: int) -> None:
    now = timezone.now()
    marked = (
        Integration.objects.filter(pk=integration_id, status=Integration.Status.ACTIVE)
        .filter(
            Q(drain_requested_at__isnull=True) | Q(drain_requested_at__lt=now - DRAIN_REQUEST_STALE)
        )
        .update(drain_requested_at=now)
    )
    if not marked:
        return  # paused, or a drain waits that will read this change
    try:
        enqueue_pending(integration_id)
    except BaseException:
        # No task is queued: leave no mark that would hold back the next delivery's.
        Integration.objects.filter(pk=integration_id, drain_requested_at=now).update(
            drain_requested_at=None
        )
        raise


def drain_started(integration_id: int) -> None:
    """Clear the drain mark; call before reading the queue (see `request_drain`)."""
    Integration.objects.filter(pk=integration_id, drain_requested_at__isnull=False).update(
        drain_requested_at=None
    )


def enqueue_register_webhooks(integration_id: int) -> None:
    async_task(
        "integrations.tasks.register_webhooks", integration_id, group=f"sync-{integration_id}"
    )


def catch_up_integration(integration_id: int, snovio_calls: int | None = None) -> str:
    """Find what the webhooks missed (with at most `snovio_calls` Snov.io requests), then
    drain what was found."""
    integration = Integration.objects.select_related("pipedrive", "snovio").get(pk=integration_id)
    if integration.pipedrive is None or integration.snovio is None:
        return "catch-up skipped: the integration is not connected to both apps"
    standing = budget.standing(budget_key(integration.pipedrive))
    if standing.low:
        return f"catch-up deferred: {standing.reason}"
    try:
        with budget.background():
            found = catch_up(integration, snovio_calls=snovio_calls)
    except RateLimited as exc:
        if exc.limit != budget.DAILY_BUDGET:
            raise
        return f"catch-up deferred: {exc}"
    enqueue_pending(integration_id)
    return f"catch-up found {found} change(s)"


def catch_up_all_integrations() -> str:
    """Catch up every running integration and resume stalled transfers."""
    ids = list(
        Integration.objects.filter(
            status__in=(Integration.Status.ACTIVE, Integration.Status.PAUSED),
            launched_at__isnull=False,
            pipedrive__isnull=False,
            snovio__isnull=False,
        ).values_list("pk", flat=True)
    )
    for integration_id in ids:
        async_task("integrations.tasks.catch_up", integration_id, group=f"sync-{integration_id}")
    resumed = resume_stalled_transfers()
    return f"catch-up queued for {len(ids)} integration(s); {resumed} transfer(s) resumed"


def ensure_schedule() -> Schedule:
    """The periodic catch-up and the daily history prune (created once; safe to call again)."""
    history.ensure_prune_schedule()
    schedule, _ = Schedule.objects.get_or_create(
        func="integrations.tasks.catch_up_all",
        defaults={
            "name": "SyncBridge catch-up",
            "schedule_type": Schedule.MINUTES,
            "minutes": CATCH_UP_MINUTES,
            "repeats": -1,
        },
    )
    return schedule
