"""A rate limiter per remote account, shared by every worker of an installation.

Counts live in the database (or in Redis when REDIS_URL is set), never in process memory, so
several workers on several machines stay under one remote's limit together.

The remote limits a *rolling* window of `period` seconds. We count fixed slices of
`period / SLICES` seconds and allow `limit // (SLICES + 1)` requests per slice: any rolling
window touches at most SLICES + 1 slices, so it never sees more than `limit` requests.
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F

from integrations.models import RateWindow

SLICES = 4


@dataclass
class RateLimiter:
    key: str
    limit: int
    period: float
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.time

    @property
    def slice_seconds(self) -> float:
        return self.period / SLICES

    @property
    def per_slice(self) -> int:
        return max(1, self.limit // (SLICES + 1))

    def acquire(self) -> float:
        """Block until a request may be sent; returns the seconds spent waiting."""
        waited = 0.0
        while True:
            now = self.clock()
            slice_no = math.floor(now / self.slice_seconds)
            if _take(self.key, slice_no, self.per_slice, self.slice_seconds):
                return waited
            pause = (slice_no + 1) * self.slice_seconds - now + 0.001
            self.sleep(pause)
            waited += pause


def _take(key: str, slice_no: int, allowed: int, ttl: float) -> bool:
    if settings.REDIS_URL:
        return _take_redis(key, slice_no, allowed, ttl)
    return _take_db(key, slice_no, allowed)


def _take_db(key: str, slice_no: int, allowed: int) -> bool:
    rows = RateWindow.objects.filter(key=key, window_start=slice_no, count__lt=allowed)
    if rows.update(count=F("count") + 1):
        return True
    if RateWindow.objects.filter(key=key, window_start=slice_no).exists():
        return False
    try:
        with transaction.atomic():
            RateWindow.objects.create(key=key, window_start=slice_no, count=1)
        RateWindow.objects.filter(key=key, window_start__lt=slice_no - 10).delete()
        return True
    except IntegrityError:  # another worker opened the slice first: count against it
        return bool(rows.update(count=F("count") + 1))


_redis = None


def _take_redis(key: str, slice_no: int, allowed: int, ttl: float) -> bool:
    global _redis
    if _redis is None:
        import redis

        _redis = redis.Redis.from_url(settings.REDIS_URL)
    name = f"syncbridge:rate:{key}:{slice_no}"
    pipe = _redis.pipeline()
    pipe.incr(name)
    pipe.expire(name, int(ttl) + 5)
    count, _ = pipe.execute()
    return count <= allowed


def pipedrive_limiter(account: str) -> RateLimiter:
    return RateLimiter(f"pipedrive:{account}", settings.PIPEDRIVE_BURST_LIMIT, 2.0)


def snovio_limiter(account: str) -> RateLimiter:
    return RateLimiter(f"snovio:{account}", settings.SNOVIO_RATE_LIMIT, 60.0)
