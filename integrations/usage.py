"""Remote calls and rate-limit waits counted per remote account and hour, for the health card.

`integrations.http` calls `record_call` for every request it sends and `record_wait` for every
wait on a rate limit (ours or the remote's 429). The counts are kept in the process and written
at most every `FLUSH_SECONDS` (one UPDATE per account and hour), never inside the caller's
transaction: a write per remote call cost ~10 ms on a busy 2-core machine, and a counter row
updated inside a worker's transaction would block every other worker of that account until it
commits. The price: the charts may lag by a few seconds, and a killed process loses its last
few seconds of counts.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from datetime import datetime, timedelta

from django.db import IntegrityError, connection, transaction
from django.db.models import F, Sum
from django.utils import timezone

from integrations.models import RemoteUsage

log = logging.getLogger(__name__)

FLUSH_SECONDS = 5.0

_lock = threading.Lock()
# (account, hour) -> [calls, waits, seconds waited], not yet written.
_pending: dict[tuple[str, datetime], list] = {}
_last_flush = 0.0


def _this_hour(now: datetime | None = None) -> datetime:
    return (now or timezone.now()).replace(minute=0, second=0, microsecond=0)


def record_call(account: str) -> None:
    _count(account, 1, 0, 0.0)


def record_wait(account: str, seconds: float) -> None:
    """A wait on a rate limit; zero seconds (no wait) is not one."""
    if isinstance(seconds, int | float) and seconds > 0:
        _count(account, 0, 1, float(seconds))


def _count(account: str, calls: int, waits: int, seconds: float) -> None:
    with _lock:
        row = _pending.setdefault((account, _this_hour()), [0, 0, 0.0])
        row[0] += calls
        row[1] += waits
        row[2] += seconds
    if time.monotonic() - _last_flush >= FLUSH_SECONDS:
        flush()


def flush(even_in_transaction: bool = False) -> None:
    """Write the counts kept in this process (outside any transaction unless told otherwise)."""
    global _last_flush
    try:
        if connection.in_atomic_block and not even_in_transaction:
            return
    except Exception:  # no usable database connection here
        return
    with _lock:
        rows = list(_pending.items())
        _pending.clear()
        _last_flush = time.monotonic()
    for (account, hour), (calls, waits, seconds) in rows:
        _add(account, hour, calls, waits, seconds)


def discard() -> None:
    """Forget the counts not yet written (tests start from zero)."""
    with _lock:
        _pending.clear()


def _add(account: str, hour: datetime, calls: int, waits: int, seconds: float) -> None:
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
        except IntegrityError:  # another process opened the hour first
            RemoteUsage.objects.filter(account=account, hour=hour).update(**changes)
    except Exception:  # a statistic must never fail the work it counts
        log.warning("could not write remote usage for %s", account, exc_info=True)


atexit.register(flush)


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
