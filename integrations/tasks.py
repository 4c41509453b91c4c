"""django-q2 task entry points, called by dotted name (`"integrations.tasks.run_transfer"`,
stored in the queue and in Schedules): thin wrappers around the services in
`integrations.sync.runs`, `integrations.sync.realtime` and `integrations.sync.receivers`.
"""

from __future__ import annotations

from datetime import datetime

from integrations import services
from integrations.models import Integration
from integrations.sync import realtime, receivers, runs


def run_transfer(run_id: int, now: datetime | None = None, resume_failed: bool = False) -> str:
    """One slice of a transfer, then the next one queued (`runs.run_one_slice`)."""
    return runs.run_one_slice(run_id, now=now, resume_failed=resume_failed)


def watch_transfer(run_id: int, now: datetime | None = None) -> str:
    """Scheduled by `runs.arm_watch`: take over a run whose worker died."""
    return runs.watch_run(run_id, now=now)


def process_pending(integration_id: int) -> str:
    return f"applied {realtime.drain(integration_id)} change(s)"


def catch_up(integration_id: int) -> str:
    result = runs.catch_up_integration(integration_id)
    services.notice_schema_drift(integration_id)  # deleted stages, lists, fields...
    return result


def catch_up_all() -> str:
    """Scheduled: catch up every running integration and resume stalled transfers."""
    return runs.catch_up_all_integrations()


def register_webhooks(integration_id: int) -> str:
    integration = Integration.objects.select_related("pipedrive", "snovio").get(pk=integration_id)
    return receivers.register_webhooks(integration)
