"""The real-time queue: storing a change once, and what users see of it (waiting, failed).

Changes wait as PendingChange rows until `realtime.drain` applies them. One delivery is stored
once (`dedupe_key`), and one contact has at most one change waiting (`record_key`): it is
read fresh when applied, so later changes to it add nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError
from django.db.models import Min
from django.utils import timezone

from integrations.inserts import insert_unless_taken
from integrations.models import Integration, PendingChange
from integrations.sync import sanitize

FAILED_SHOWN = 20
# Processed changes are kept this long (the failed ones are shown with a Retry button), then
# pruned by the catch-up, so the queue's tables do not grow with every change ever applied.
KEEP_PROCESSED = timedelta(days=7)
PRUNE_BATCH = 5000


def store_change(
    integration: Integration,
    source: str,
    kind: str,
    key: str,
    payload: dict,
    record_key: str = "",
    strict: bool = False,
) -> bool:
    """Store a change once per delivery (`key`) and once per waiting contact (`record_key`).

    True when stored; False for a duplicate delivery, or a contact that already has a
    change waiting (it is read fresh when that change is applied). An integration deleted
    meanwhile also gives False, or raises IntegrityError when `strict`.
    """
    change = PendingChange(
        integration=integration,
        source=source,
        kind=kind,
        dedupe_key=sanitize.json_safe(key)[:200],
        record_key=sanitize.json_safe(record_key)[:120],
        payload=sanitize.json_safe(payload),  # one bad value never loses the change
    )
    try:
        return insert_unless_taken(change)  # one statement: duplicates are ignored
    except IntegrityError:  # not a key taken (those are ignored): the integration is gone
        if strict:
            raise
        return False


def waiting(integration_id: int):
    return PendingChange.objects.filter(
        integration_id=integration_id, processed_at__isnull=True
    ).order_by("received_at", "pk")


@dataclass
class QueueSummary:
    waiting: int
    oldest_at: datetime | None
    failed: list[PendingChange]

    @property
    def oldest_age_seconds(self) -> float | None:
        if self.oldest_at is None:
            return None
        return (timezone.now() - self.oldest_at).total_seconds()


def summary(integration: Integration) -> QueueSummary:
    """How many changes wait (and since when), and the recent ones that failed for good."""
    stats = waiting(integration.pk).aggregate(oldest=Min("received_at"))
    failed = PendingChange.objects.filter(
        integration=integration, outcome__startswith="failed:"
    ).order_by("-processed_at")[:FAILED_SHOWN]
    return QueueSummary(
        waiting=waiting(integration.pk).count(), oldest_at=stats["oldest"], failed=list(failed)
    )


def retry(integration: Integration, change_id: int) -> PendingChange | None:
    """Queue a failed change again (as a new change); None when there is no such failure."""
    failed = PendingChange.objects.filter(
        integration=integration, pk=change_id, outcome__startswith="failed:"
    ).first()
    if failed is None:
        return None
    stamp = timezone.now()
    stored = store_change(
        integration,
        failed.source,
        failed.kind,
        f"retry:{failed.pk}:{stamp.timestamp()}",
        failed.payload,
        record_key=failed.record_key,
    )
    again = waiting(integration.pk).filter(record_key=failed.record_key).last()
    if not stored and (again is None or not failed.record_key):
        return None
    failed.outcome = "failed (queued again): " + failed.outcome.removeprefix("failed: ")
    failed.save(update_fields=["outcome"])
    return again


def prune_processed(integration_id: int, now: datetime | None = None) -> int:
    """Delete this integration's changes processed more than `KEEP_PROCESSED` ago.

    At most `PRUNE_BATCH` rows per call (the catch-up calls it every cycle), so that a large
    backlog is pruned over a few cycles instead of in one long delete. Returns how many went.
    """
    cutoff = (now or timezone.now()) - KEEP_PROCESSED
    old = PendingChange.objects.filter(
        integration_id=integration_id, processed_at__isnull=False, processed_at__lt=cutoff
    ).values_list("pk", flat=True)[:PRUNE_BATCH]
    return PendingChange.objects.filter(pk__in=list(old)).delete()[0]
