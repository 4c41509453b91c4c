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
from django.db import connection
from django.db.models import Count, Q, QuerySet
from django.utils import timezone
from django_q.models import Schedule

from integrations.models import Integration, SyncEvent, SyncRun, Undo
from integrations.sync.matching import normalise_email

PRUNE_TASK = "integrations.tasks.prune_history"
PRUNE_BATCH = 2000


class Source:
    REAL = ""  # real-time changes and transfers: everything that wrote
    REALTIME = "realtime"
    TRANSFER = "transfer"
    PREVIEW = "preview"
    UNDO = "undo"
    CHOICES = (
        (REAL, "Real work (real-time and transfers)"),
        (REALTIME, "Real-time changes"),
        (TRANSFER, "Transfers"),
        (UNDO, "Undos of transfers"),
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
    if source == Source.UNDO:
        return events.filter(undo__isnull=False)
    if source == Source.REALTIME:
        return events.filter(run__isnull=True, undo__isnull=True)
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

    A preview's old events go entirely: they never described a record's state; so do old
    events that name no record. One ranking pass per integration finds the rest (window
    functions: PostgreSQL, and SQLite since 3.25), instead of asking "is there a newer one?"
    row by row, which took minutes for 100,000 events.
    """
    cutoff = (now or timezone.now()) - timedelta(days=days or retention_days())
    old = SyncEvent.objects.filter(at__lt=cutoff)
    deleted = _delete_in_batches(old.filter(Q(run__dry_run=True) | Q(email="", record_id="")))
    for integration_id in old.values_list("integration", flat=True).distinct().order_by():
        with connection.cursor() as cursor:
            cursor.execute(_SUPERSEDED_SQL, [integration_id, cutoff])
            deleted += cursor.rowcount
    return deleted


def _delete_in_batches(events: QuerySet[SyncEvent]) -> int:
    deleted = 0
    while ids := list(events.values_list("pk", flat=True)[:PRUNE_BATCH]):
        deleted += SyncEvent.objects.filter(pk__in=ids).delete()[0]
    return deleted


# The real (non-preview) events of one integration ranked newest first per record; every one
# but the newest that is also older than the cutoff goes, except a change an undo took back
# (the undo names it: `SyncEvent.undoes`, `Undo.event`).
_SUPERSEDED_SQL = f"""
DELETE FROM {SyncEvent._meta.db_table} WHERE id IN (
    SELECT id FROM (
        SELECT e.id AS id, e.at AS at, ROW_NUMBER() OVER (
            PARTITION BY e.email, e.record_id ORDER BY e.at DESC, e.id DESC
        ) AS newest_first
        FROM {SyncEvent._meta.db_table} e LEFT JOIN {SyncRun._meta.db_table} r ON r.id = e.run_id
        WHERE e.integration_id = %s AND (r.id IS NULL OR NOT r.dry_run)
    ) ranked
    WHERE ranked.newest_first > 1 AND ranked.at < %s
    AND ranked.id NOT IN (
        SELECT undoes_id FROM {SyncEvent._meta.db_table} WHERE undoes_id IS NOT NULL
    )
    AND ranked.id NOT IN (SELECT event_id FROM {Undo._meta.db_table} WHERE event_id IS NOT NULL)
)
"""


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
