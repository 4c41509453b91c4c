"""The sync history: which events a page shows, what the totals count, and how long events live.

Previews (dry-run transfers) write nothing, so their events are kept apart from real work: the
totals never count them and the list shows them only when asked for (`source=preview`).

Retention: events older than `SYNC_EVENT_RETENTION_DAYS` are pruned by a daily schedule, except
the newest event of each record, so "why is this contact not in Pipedrive?" still has an answer
for a record nothing happened to for months.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.utils import timezone
from django_q.models import Schedule

from integrations.models import Integration, SyncEvent
from integrations.sync.matching import normalise_email

PRUNE_TASK = "integrations.tasks.prune_history"
PRUNE_BATCH = 2000


class Source:
    REAL = ""  # real-time changes and transfers: everything that wrote
    REALTIME = "realtime"
    TRANSFER = "transfer"
    PREVIEW = "preview"
    CHOICES = (
        (REAL, "Real work (real-time and transfers)"),
        (REALTIME, "Real-time changes"),
        (TRANSFER, "Transfers"),
        (PREVIEW, "Previews (nothing written)"),
    )


@dataclass(frozen=True)
class HistoryFilter:
    email: str = ""
    outcome: str = ""
    direction: str = ""
    source: str = Source.REAL
    since: date | None = None
    until: date | None = None

    @property
    def narrowed(self) -> bool:
        """Anything chosen beyond the default view of real work."""
        return any((self.email, self.outcome, self.direction, self.source, self.since, self.until))


def events_for(integration: Integration, chosen: HistoryFilter) -> QuerySet[SyncEvent]:
    """The events the history page lists, newest first."""
    events = SyncEvent.objects.filter(integration=integration).select_related("run")
    events = _by_source(events, chosen.source)
    if chosen.email:
        email = normalise_email(chosen.email)
        events = (
            events.filter(email=email) if "@" in email else events.filter(email__icontains=email)
        )
    if chosen.outcome:
        events = events.filter(outcome=chosen.outcome)
    elif not chosen.narrowed:  # the default view: what is worth a look, not "unchanged"
        events = events.exclude(outcome=SyncEvent.Outcome.UNCHANGED)
    if chosen.direction:
        events = events.filter(direction=chosen.direction)
    if chosen.since:
        events = events.filter(at__gte=_start_of(chosen.since))
    if chosen.until:
        events = events.filter(at__lt=_start_of(chosen.until + timedelta(days=1)))
    return events


def _by_source(events: QuerySet[SyncEvent], source: str) -> QuerySet[SyncEvent]:
    if source == Source.PREVIEW:
        return events.filter(run__dry_run=True)
    if source == Source.TRANSFER:
        return events.filter(run__isnull=False, run__dry_run=False)
    if source == Source.REALTIME:
        return events.filter(run__isnull=True)
    return events.filter(Q(run__isnull=True) | Q(run__dry_run=False))


def _start_of(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def real_totals(integration: Integration) -> dict[str, int]:
    """Events per outcome label, real work only (a preview changed nothing)."""
    rows = (
        _by_source(SyncEvent.objects.filter(integration=integration), Source.REAL)
        .values_list("outcome")
        .annotate(n=Count("id"))
        .order_by()
    )
    labels = dict(SyncEvent.Outcome.choices)
    return {labels.get(outcome, outcome): n for outcome, n in rows}


PREVIEW_LABELS = {
    SyncEvent.Outcome.CREATED: "Would create",
    SyncEvent.Outcome.UPDATED: "Would update",
    SyncEvent.Outcome.UNCHANGED: "Unchanged",
    SyncEvent.Outcome.SKIPPED: "Would skip",
    SyncEvent.Outcome.FAILED: "Would fail",
}


def outcome_label(event: SyncEvent) -> str:
    """What the history says happened: a preview only says what would have."""
    if event.run_id and event.run.dry_run:
        return PREVIEW_LABELS.get(event.outcome, event.get_outcome_display())
    return event.get_outcome_display()


# --- retention ------------------------------------------------------------------------------


def retention_days() -> int:
    return max(1, int(getattr(settings, "SYNC_EVENT_RETENTION_DAYS", 90)))


def prune(now: datetime | None = None, days: int | None = None) -> int:
    """Delete events older than the retention, keeping each record's newest event.

    A preview's old events go entirely: they never described a record's state. Deletes run in
    batches so a big first prune does not hold a long lock on the table webhooks write to.
    """
    cutoff = (now or timezone.now()) - timedelta(days=days or retention_days())
    newer_of_same_record = SyncEvent.objects.filter(
        integration=OuterRef("integration"),
        email=OuterRef("email"),
        record_id=OuterRef("record_id"),
    )
    newer_of_same_record = _by_source(newer_of_same_record, Source.REAL).filter(
        Q(at__gt=OuterRef("at")) | Q(at=OuterRef("at"), pk__gt=OuterRef("pk"))
    )
    doomed = SyncEvent.objects.filter(at__lt=cutoff).filter(
        Exists(newer_of_same_record)
        | Q(run__dry_run=True)
        | Q(email="", record_id="")  # no record to explain
    )
    deleted = 0
    while ids := list(doomed.values_list("pk", flat=True)[:PRUNE_BATCH]):
        deleted += SyncEvent.objects.filter(pk__in=ids).delete()[0]
    return deleted


def ensure_prune_schedule() -> Schedule:
    """The daily prune (created once; safe to call again)."""
    schedule, _ = Schedule.objects.get_or_create(
        func=PRUNE_TASK,
        defaults={
            "name": "SyncBridge history prune",
            "schedule_type": Schedule.DAILY,
            "repeats": -1,
        },
    )
    return schedule
