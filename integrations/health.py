"""One integration's health at a glance: the settings page's Health card.

Last successful sync, changes waiting, errors, remote calls and rate-limit waits, over the
last 24 hours (per hour) and the last 30 days (per day), drawn as small server-rendered SVG bar
charts (no JavaScript, no build step), and the latest alerts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Count, Max, Q
from django.db.models.functions import TruncDay, TruncHour
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from integrations import usage
from integrations.clients import client_for
from integrations.models import Alert, Integration, PendingChange, SyncEvent, SyncRun

SUCCESS = (SyncEvent.Outcome.CREATED, SyncEvent.Outcome.UPDATED, SyncEvent.Outcome.UNCHANGED)
# Previews write nothing: their events are neither a sync nor an error.
REAL_WORK = Q(run__isnull=True) | Q(run__dry_run=False)


@dataclass
class Series:
    """One metric over one window: a value per bucket, oldest first."""

    name: str
    window: str
    starts: list[datetime]
    values: list[int]

    @property
    def total(self) -> int:
        return sum(self.values)

    def svg(self) -> SafeString:
        return bar_chart(self)


@dataclass
class Health:
    last_success_at: datetime | None
    waiting: int
    errors_24h: int
    calls_24h: int
    waits_24h: int
    charts: list[tuple[Series, Series]] = field(default_factory=list)  # (24 h, 30 days)
    alerts: list[Alert] = field(default_factory=list)


def usage_accounts(integration: Integration) -> list[str]:
    """The keys the HTTP layer counts this integration's remote calls under."""
    accounts = []
    for connection in (integration.pipedrive, integration.snovio):
        if connection is None:
            continue
        limiter = getattr(client_for(connection).http, "limiter", None)
        if limiter is not None:
            accounts.append(limiter.key)
    return accounts


def for_integration(integration: Integration, now: datetime | None = None) -> Health:
    now = now or timezone.now()
    hour_starts = _starts(now, 24, timedelta(hours=1), _hour)
    day_starts = _starts(now, 30, timedelta(days=1), _day)
    accounts = usage_accounts(integration)
    hourly_usage = usage.hourly(accounts, 24, now)
    daily_usage = usage.daily(accounts, 30, now)
    errors_hourly = _errors(integration, hour_starts, TruncHour, _hour)
    errors_daily = _errors(integration, day_starts, TruncDay, _day)
    charts = [
        (
            Series("Remote calls", "24 h", hour_starts, [r["calls"] for r in hourly_usage]),
            Series("Remote calls", "30 days", day_starts, [r["calls"] for r in daily_usage]),
        ),
        (
            Series("Rate-limit waits", "24 h", hour_starts, [r["waits"] for r in hourly_usage]),
            Series("Rate-limit waits", "30 days", day_starts, [r["waits"] for r in daily_usage]),
        ),
        (
            Series("Errors", "24 h", hour_starts, errors_hourly),
            Series("Errors", "30 days", day_starts, errors_daily),
        ),
    ]
    return Health(
        last_success_at=_last_success(integration),
        waiting=PendingChange.objects.filter(
            integration=integration, processed_at__isnull=True
        ).count(),
        errors_24h=sum(errors_hourly),
        calls_24h=charts[0][0].total,
        waits_24h=charts[1][0].total,
        charts=charts,
        alerts=list(integration.alerts.all()[:5]),
    )


def _hour(at: datetime) -> datetime:
    return timezone.localtime(at).replace(minute=0, second=0, microsecond=0)


def _day(at: datetime) -> datetime:
    return timezone.localtime(at).replace(hour=0, minute=0, second=0, microsecond=0)


def _starts(now: datetime, count: int, step: timedelta, bucket: Callable) -> list[datetime]:
    last = bucket(now)
    return [bucket(last - step * (count - 1 - i)) for i in range(count)]


def _last_success(integration: Integration) -> datetime | None:
    event = (
        SyncEvent.objects.filter(integration=integration, outcome__in=SUCCESS)
        .filter(REAL_WORK)
        .aggregate(at=Max("at"))["at"]
    )
    run = SyncRun.objects.filter(
        integration=integration, dry_run=False, status=SyncRun.Status.DONE
    ).aggregate(at=Max("finished_at"))["at"]
    return max((at for at in (event, run) if at), default=None)


def _errors(integration: Integration, starts: list[datetime], trunc, bucket) -> list[int]:
    """Records that failed and transfers that failed, per bucket."""
    counts = dict.fromkeys(starts, 0)
    events = (
        SyncEvent.objects.filter(
            integration=integration, outcome=SyncEvent.Outcome.FAILED, at__gte=starts[0]
        )
        .filter(REAL_WORK)
        .annotate(bucket=trunc("at"))
        .values("bucket")
        .annotate(n=Count("pk"))
    )
    runs = (
        SyncRun.objects.filter(
            integration=integration,
            dry_run=False,
            status=SyncRun.Status.FAILED,
            finished_at__gte=starts[0],
        )
        .annotate(bucket=trunc("finished_at"))
        .values("bucket")
        .annotate(n=Count("pk"))
    )
    for row in [*events, *runs]:
        key = bucket(row["bucket"])
        if key in counts:
            counts[key] += row["n"]
    return list(counts.values())


CHART_WIDTH, CHART_HEIGHT = 240, 40


def bar_chart(series: Series) -> SafeString:
    """A small bar chart; each bar has a tooltip with its period and value."""
    count = len(series.values) or 1
    slot = CHART_WIDTH / count
    peak = max(series.values, default=0) or 1
    fmt = "%H:00" if series.window == "24 h" else "%b %d"
    bars = []
    for i, (start, value) in enumerate(zip(series.starts, series.values, strict=True)):
        height = 0 if value == 0 else max(1.0, CHART_HEIGHT * value / peak)
        bars.append(
            (
                f"{i * slot + 0.5:.1f}",
                f"{CHART_HEIGHT - height:.1f}",
                f"{max(slot - 1, 1):.1f}",
                f"{height:.1f}",
                f"{timezone.localtime(start).strftime(fmt)}: {value}",
            )
        )
    rects = format_html_join(
        "",
        '<rect x="{}" y="{}" width="{}" height="{}"><title>{}</title></rect>',
        bars,
    )
    return format_html(
        '<svg class="health-chart" role="img" viewBox="0 0 {} {}" width="{}" height="{}" '
        'aria-label="{}, {}: {} in total" preserveAspectRatio="none">'
        '<line x1="0" y1="{}" x2="{}" y2="{}" class="axis"></line>{}</svg>',
        CHART_WIDTH,
        CHART_HEIGHT,
        CHART_WIDTH,
        CHART_HEIGHT,
        series.name,
        series.window,
        series.total,
        CHART_HEIGHT - 0.5,
        CHART_WIDTH,
        CHART_HEIGHT - 0.5,
        rects,
    )
