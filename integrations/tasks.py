"""django-q2 task entry points: thin wrappers around the sync engine's services.

- `start_transfer(...)` creates a SyncRun and enqueues `run_transfer(run_id)`;
- `process_pending(integration_id)` applies held changes in order (one worker at a time);
- `catch_up(integration_id)` finds what webhooks missed; `catch_up_all()` is scheduled;
- `register_webhooks(integration_id)` subscribes to both remotes' webhooks.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone
from django_q.models import Schedule
from django_q.tasks import async_task

from integrations.models import Integration, Provider, SyncRun

log = logging.getLogger(__name__)

CATCH_UP_MINUTES = 5
STALLED_AFTER = timedelta(minutes=15)  # a running transfer without a checkpoint for this long
DIRECTIONS = {
    "to-pipedrive": SyncRun.Direction.TO_PIPEDRIVE,
    "to_pipedrive": SyncRun.Direction.TO_PIPEDRIVE,
    "to-snovio": SyncRun.Direction.TO_SNOVIO,
    "to_snovio": SyncRun.Direction.TO_SNOVIO,
}


def default_source(direction: str) -> str:
    """The sending side is the source app unless the user chooses otherwise."""
    return Provider.SNOVIO if direction == SyncRun.Direction.TO_PIPEDRIVE else Provider.PIPEDRIVE


def create_run(
    integration: Integration,
    direction: str,
    source_app: str | None = None,
    dry_run: bool = False,
    user: Any = None,
) -> SyncRun:
    """A new run, or the transfer already under way for this integration (never two at once)."""
    direction = DIRECTIONS.get(direction, direction)
    if direction not in SyncRun.Direction.values:
        raise ValueError(f"unknown direction {direction!r}: use to-pipedrive or to-snovio")
    source_app = source_app or default_source(direction)
    if source_app not in Provider.values:
        raise ValueError(f"unknown source app {source_app!r}: use snovio or pipedrive")
    if not dry_run:
        running = integration.runs.filter(
            dry_run=False, status__in=(SyncRun.Status.QUEUED, SyncRun.Status.RUNNING)
        ).first()
        if running:
            return running
    return SyncRun.objects.create(
        integration=integration,
        direction=direction,
        source_app=source_app,
        dry_run=dry_run,
        started_by=user if getattr(user, "is_authenticated", False) else None,
    )


def start_transfer(
    integration: Integration,
    direction: str,
    source_app: str | None = None,
    dry_run: bool = False,
    user: Any = None,
) -> SyncRun:
    """Create the run and hand it to a worker; the page follows it through its progress URL."""
    run = create_run(integration, direction, source_app, dry_run, user)
    if run.status == SyncRun.Status.QUEUED:
        async_task("integrations.tasks.run_transfer", run.pk, task_name=f"transfer-{run.pk}")
    return run


def run_transfer(run_id: int) -> str:
    from integrations.sync.transfer import transfer

    run = transfer(SyncRun.objects.get(pk=run_id))
    if run.status == SyncRun.Status.FAILED and "rate limit" in run.error:
        # Resume from the checkpoint once the limit has reset.
        Schedule.objects.create(
            func="integrations.tasks.run_transfer",
            args=str(run.pk),
            schedule_type=Schedule.ONCE,
            next_run=timezone.now() + timedelta(minutes=1),
            name=f"resume-transfer-{run.pk}-{timezone.now():%H%M%S}",
        )
    return f"transfer {run.pk}: {run.status} {run.summary()}"


def process_pending(integration_id: int) -> str:
    from integrations.sync.realtime import drain

    return f"applied {drain(integration_id)} change(s)"


def enqueue_pending(integration_id: int) -> None:
    async_task("integrations.tasks.process_pending", integration_id, group=f"sync-{integration_id}")


def catch_up(integration_id: int) -> str:
    from integrations.sync.catchup import catch_up as run

    integration = Integration.objects.select_related("pipedrive", "snovio").get(pk=integration_id)
    if integration.pipedrive is None or integration.snovio is None:
        return "catch-up skipped: the integration is not connected to both apps"
    found = run(integration)
    enqueue_pending(integration_id)
    return f"catch-up found {found} change(s)"


def catch_up_all() -> str:
    """Scheduled: catch up every running integration and resume stalled transfers."""
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


def resume_stalled_transfers() -> int:
    """A transfer whose worker died is picked up again from its checkpoint."""
    cutoff = timezone.now() - STALLED_AFTER
    resumed = 0
    for run in SyncRun.objects.filter(status=SyncRun.Status.RUNNING):
        beat = (run.checkpoint or {}).get("heartbeat")
        last = datetime.fromisoformat(beat) if beat else run.started_at
        if last is None or last < cutoff:
            async_task("integrations.tasks.run_transfer", run.pk, task_name=f"resume-{run.pk}")
            resumed += 1
    return resumed


def register_webhooks(integration_id: int) -> str:
    from integrations.sync.receivers import register_webhooks as register

    integration = Integration.objects.select_related("pipedrive", "snovio").get(pk=integration_id)
    return register(integration)


def ensure_schedule() -> Schedule:
    """The periodic catch-up (created once; safe to call again)."""
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
