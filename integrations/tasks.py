"""django-q2 task entry points, called by dotted name (`"integrations.tasks.run_transfer"`,
stored in the queue and in Schedules): thin wrappers around the services in
`integrations.sync.runs`, `integrations.sync.realtime` and `integrations.sync.receivers`.
"""

from __future__ import annotations

import logging
from datetime import datetime

from integrations import campaign_events, services
from integrations.http import counting_requests
from integrations.models import Integration
from integrations.snovio.constants import REMOTE as SNOVIO
from integrations.sync import catchup, history, realtime, receivers, runs, undo

log = logging.getLogger(__name__)


def run_transfer(run_id: int, now: datetime | None = None, resume_failed: bool = False) -> str:
    """One slice of a transfer, then the next one queued (`runs.run_one_slice`)."""
    return runs.run_one_slice(run_id, now=now, resume_failed=resume_failed)


def watch_transfer(run_id: int, now: datetime | None = None) -> str:
    """Scheduled by `runs.arm_watch`: take over a run whose worker died."""
    return runs.watch_run(run_id, now=now)


def run_undo(undo_id: int) -> str:
    """Undo a transfer or one record's change, or preview it (`undo.execute`)."""
    return undo.execute_by_id(undo_id)


def process_pending(integration_id: int) -> str:
    runs.drain_started(integration_id)  # before the queue is read: see `runs.request_drain`
    return f"applied {realtime.drain(integration_id)} change(s)"


def catch_up(integration_id: int) -> str:
    """One cycle, every Snov.io request counted within `catchup.snovio_calls_per_cycle`: the
    accounts' setup (deleted stages, lists, fields...), the webhooks themselves, the campaign
    events (at most `catchup.history_calls_per_cycle`), then the contacts the webhooks missed
    with the requests left."""
    budget = catchup.snovio_calls_per_cycle()
    with counting_requests() as sent:
        services.notice_schema_drift(integration_id)
        history_calls = min(catchup.history_calls_per_cycle(), budget - sent[SNOVIO])
        log.info(
            "integration %s: %s",
            integration_id,
            campaign_events.recover(integration_id, history_calls=history_calls),
        )
        return runs.catch_up_integration(integration_id, snovio_calls=budget - sent[SNOVIO])


def catch_up_all() -> str:
    """Scheduled: catch up every running integration and resume stalled transfers and undos."""
    resumed = undo.resume_stalled()
    return f"{runs.catch_up_all_integrations()}; resumed {resumed} undo(s)"


def register_webhooks(integration_id: int) -> str:
    integration = Integration.objects.select_related("pipedrive", "snovio").get(pk=integration_id)
    return receivers.register_webhooks(integration)


def prune_history() -> str:
    """Scheduled daily: drop sync events past the retention (`SYNC_EVENT_RETENTION_DAYS`)."""
    return f"pruned {history.prune()} old sync event(s)"
