"""Remote calls and rate-limit waits counted per remote account and hour, for the health card.

`integrations.http` calls `record_call` for every request it sends and `record_wait` for every
wait on a rate limit (ours or the remote's 429). Counting must never hold a lock inside the
caller's transaction (a worker applying changes under its integration's lock would then block
every other worker of that account until it commits), so the count is written after the
transaction commits, as one short UPDATE of its own.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import F, Sum
from django.utils import timezone

from integrations.models import RemoteUsage

log = logging.getLogger(__name__)


def _this_hour(now: datetime | None = None) -> datetime:
    return (now or timezone.now()).replace(minute=0, second=0, microsecond=0)


def _add(account: str, calls: int, waits: int, seconds: float) -> None:
    hour = _this_hour()
    changes = {
        "calls": F("calls") + calls,
        "rate_limit_waits": F("rate_limit_waits") + waits,
        "waited_seconds": F("waited_seconds") + seconds,
    }
    try:
        if RemoteUsage.objects.filter(account=account, hour=hour).update(**changes):
            return
        try:
            with transaction.atomic():
                RemoteUsage.objects.create(
                    account=account,
                    hour=hour,
                    calls=calls,
                    rate_limit_waits=waits,
                    waited_seconds=seconds,
                )
        except IntegrityError:  # another worker opened the hour first
            RemoteUsage.objects.filter(account=account, hour=hour).update(**changes)
    except Exception:  # a statistic must never fail the remote call it counts
        log.warning("could not count remote usage for %s", account, exc_info=True)


def record_call(account: str) -> None:
    _after_commit(lambda: _add(account, 1, 0, 0.0))


def record_wait(account: str, seconds: float) -> None:
    """A wait on a rate limit; zero seconds (no wait) is not one."""
    if isinstance(seconds, int | float) and seconds > 0:
        _after_commit(lambda: _add(account, 0, 1, float(seconds)))


def _after_commit(count) -> None:
    try:
        transaction.on_commit(count, robust=True)
    except Exception:  # no database here (a pure HTTP test, a shutting-down worker)
        log.debug("remote usage not counted", exc_info=True)


def hourly(accounts: list[str], hours: int = 24, now: datetime | None = None) -> list[dict]:
    """One row per hour, oldest first: {"start", "calls", "waits"} summed over `accounts`."""
    end = _this_hour(now)
    start = end - timedelta(hours=hours - 1)
    return _series(accounts, start, hours, timedelta(hours=1), lambda at: _this_hour(at))


def daily(accounts: list[str], days: int = 30, now: datetime | None = None) -> list[dict]:
    """One row per day (in the current time zone), oldest first."""
    today = timezone.localtime(now or timezone.now()).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    start = today - timedelta(days=days - 1)
    return _series(
        accounts,
        start,
        days,
        timedelta(days=1),
        lambda at: timezone.localtime(at).replace(hour=0, minute=0, second=0, microsecond=0),
    )


def _series(accounts, start, count, step, bucket_of) -> list[dict]:
    buckets = {start + step * i: {"calls": 0, "waits": 0} for i in range(count)}
    rows = (
        RemoteUsage.objects.filter(account__in=accounts, hour__gte=start)
        .values("hour")
        .annotate(calls=Sum("calls"), waits=Sum("rate_limit_waits"))
    )
    for row in rows:
        bucket = buckets.get(bucket_of(row["hour"]))
        if bucket is not None:
            bucket["calls"] += row["calls"]
            bucket["waits"] += row["waits"]
    return [{"start": at, **values} for at, values in sorted(buckets.items())]
