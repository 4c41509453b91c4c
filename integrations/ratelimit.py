"""A rate limiter per remote account, shared by every worker of an installation.

The remotes limit a *rolling* window: at most `limit` requests in any `period` seconds
(Pipedrive: per token per 2 s; Snov.io: 60 per minute). We keep a sliding log of the slots
handed out, in the shared store (Redis when REDIS_URL is set, else the database), so several
workers on several machines stay under one limit together and can use all of it.

Slots are reserved in batches, so the store is written once per batch, not once per call:
- a worker reserves up to `batch` slots, each with the moment it is free: now, or when an
  earlier slot leaves the window (slots freeing within `horizon` are claimed in the same
  round trip, so a full window costs no refused round trips and no slot waits for others);
  the worker sleeps until each slot's moment and uses it within `hold` seconds of the last
  one; the reservation counts against the limit until `hold + period + margin` after that;
- at its next reservation the worker replaces that entry with the times it really sent
  (each counted until `send + period + margin`) in the same round trip, freeing what it left
  unused, so the log ends when the remote's window forgets each request and none of the
  window is wasted;
- `margin` covers the delay between our clock and the remote's (network, server queues).

Any window of `period + margin` therefore holds at most `limit` sends, so any window the
remote sees holds at most `limit` arrivals. The remote's own headers still win: a
`x-ratelimit-remaining: 0` or a 429 blocks the key for every worker until its reset (`block`).
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from integrations.models import RateBucket, RateSlot

MARGIN = 0.05  # seconds: clock and queueing differences between us and the remote


class WaitTooLong(Exception):
    """The next slot is further away than the caller is willing to wait."""

    def __init__(self, seconds: float):
        super().__init__(f"the next request slot is {seconds:.0f} s away")
        self.seconds = seconds


@dataclass
class Grant:
    starts: list[float]  # when each slot may be used: now, or when an earlier slot expires


@dataclass
class RateLimiter:
    key: str
    limit: int
    period: float
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.time
    margin: float = MARGIN
    batch: int = 0  # 0: chosen from the limit (see `batch_size`)
    _want: int = field(default=1, repr=False)
    _granted: int = field(default=0, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _starts: list[float] = field(default_factory=list, repr=False)
    _lease_end: float = field(default=0.0, repr=False)
    _reservation: str = field(default="", repr=False)
    _sends: list[float] = field(default_factory=list, repr=False)

    @property
    def hold(self) -> float:
        """How long a reserved batch may take to be used; later, its rest is given up."""
        return self.period / 4

    @property
    def batch_size(self) -> int:
        # A fifth of the limit, and no more than a worker at full speed sends in `hold`:
        # the rest of the window stays open to the other workers.
        if self.batch:
            return self.batch
        return max(1, min(self.limit // 5, math.floor(self.limit / self.period * self.hold)))

    @property
    def horizon(self) -> float:
        """Slots freeing this soon are claimed in the same round trip."""
        return self.period / 10

    def acquire(self, max_wait: float | None = None) -> float:
        """Block until a request may be sent; returns the seconds spent waiting.

        Raises `WaitTooLong` instead of sleeping longer than `max_wait` at once (the slots
        claimed are given back at this limiter's next reservation, or expire).
        """
        with self._lock:  # the threads of a process share one limiter per account
            return self._acquire(max_wait)

    def _acquire(self, max_wait: float | None) -> float:
        waited = 0.0
        while True:
            now = self.clock()
            if self._starts and now <= self._lease_end:
                start = self._starts[0]
                if start <= now:
                    self._starts.pop(0)
                    self._sends.append(now)
                    return waited
                if max_wait is not None and start - now > max_wait:
                    self._starts = []
                    raise WaitTooLong(start - now)
                self.sleep(start - now)
                waited += start - now
                continue
            self._reserve(now)

    def block(self, seconds: float) -> None:
        """The remote said no more until `seconds` from now: every worker waits that long."""
        if seconds <= 0:
            return
        with self._lock:
            now = self.clock()
            self._starts = []  # our own reserved slots are void too
            _store().block(self.key, self.limit, now, now + seconds)

    def observe(self, remaining: int | None, reset: float | None) -> None:
        """Honour the remote's count of the window: none left means wait for its reset."""
        if remaining is not None and remaining <= 0 and reset:
            self.block(reset)

    def _reserve(self, now: float) -> Grant:
        # Batches grow while they are used up and shrink to what was used when they lapse,
        # so a limiter that sends little holds few slots it will not use.
        used = len(self._sends)
        if used >= self._granted:
            self._want = min(self.batch_size, max(1, self._granted) * 2)
        else:
            self._want = max(1, used)
        settled = [(t + self.period + self.margin) for t in self._sends]
        grant = _store().reserve(
            self.key,
            self.limit,
            want=self._want,
            horizon=self.horizon,
            now=now,
            span=self.hold + self.period + self.margin,
            reservation=(new_id := uuid.uuid4().hex),
            replaces=self._reservation,
            settled=_grouped(settled),
        )
        self._sends = []
        self._reservation = new_id
        self._starts = grant.starts
        self._granted = len(grant.starts)
        self._lease_end = grant.starts[-1] + self.hold
        return grant


def _grouped(expiries: list[float]) -> list[tuple[float, int]]:
    """Sends within the same millisecond share one log entry (rounded up: never shorter)."""
    counts: dict[float, int] = {}
    for expiry in expiries:
        moment = math.ceil(expiry * 1000) / 1000
        counts[moment] = counts.get(moment, 0) + 1
    return sorted(counts.items())


def _starts(
    entries: list[tuple[float, int]], limit: int, want: int, horizon: float, now: float
) -> list[float]:
    """When each of up to `want` slots is free in the log of (expiry, count) pairs: those free
    now, then one per slot leaving the window, as far as `horizon` from now (at least one)."""
    used = sum(count for _, count in entries)
    starts = [now] * max(0, min(want, limit - used))
    for expiry, count in sorted(entries):
        if len(starts) >= want or (starts and expiry > now + horizon):
            break
        used -= count
        free = min(limit - used - len(starts), want - len(starts))
        starts += [max(expiry, now)] * max(free, 0)
    return starts or [now]


class DatabaseStore:
    """The log in the database: one transaction per batch, under a lock on the key's row."""

    def reserve(
        self,
        key: str,
        limit: int,
        *,
        want: int,
        horizon: float,
        now: float,
        span: float,
        reservation: str,
        replaces: str,
        settled: list[tuple[float, int]],
    ) -> Grant:
        with transaction.atomic():
            _lock_row(key)
            gone = Q(expires_at__lte=now) | (Q(reservation=replaces) if replaces else Q(pk=None))
            RateSlot.objects.filter(Q(key=key) & gone).delete()
            entries = list(RateSlot.objects.filter(key=key).values_list("expires_at", "count"))
            sent = [(e, c) for e, c in settled if e > now]
            starts = _starts(entries + sent, limit, want, horizon, now)
            rows = [RateSlot(key=key, expires_at=e, count=c) for e, c in sent]
            rows.append(
                RateSlot(
                    key=key,
                    expires_at=starts[-1] + span,
                    count=len(starts),
                    reservation=reservation,
                )
            )
            RateSlot.objects.bulk_create(rows)
        return Grant(starts)

    def block(self, key: str, limit: int, now: float, until: float) -> None:
        with transaction.atomic():
            _lock_row(key)
            RateSlot.objects.create(key=key, expires_at=until, count=limit)


def _lock_row(key: str) -> None:
    """Take the key's row lock (PostgreSQL) or the write lock (SQLite) for the transaction."""
    if not RateBucket.objects.filter(key=key).update(key=key):
        RateBucket.objects.get_or_create(key=key)
        RateBucket.objects.filter(key=key).update(key=key)


# KEYS[1] the log (sorted set: member "id:count", score the expiry).
# ARGV: now, limit, want, horizon, span, reservation id, replaced id, then expiry/count pairs.
# Returns the moments the slots granted are free, as in `_starts`.
_RESERVE = """
local key = KEYS[1]
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local horizon = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
if ARGV[7] ~= '' then
  for _, member in ipairs(redis.call('ZRANGE', key, 0, -1)) do
    if string.sub(member, 1, string.len(ARGV[7]) + 1) == ARGV[7] .. ':' then
      redis.call('ZREM', key, member)
    end
  end
end
for i = 8, #ARGV, 2 do
  if tonumber(ARGV[i]) > now then
    redis.call('ZADD', key, ARGV[i], ARGV[6] .. '-s' .. i .. ':' .. ARGV[i + 1])
  end
end
local entries = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
local used = 0
for i = 1, #entries, 2 do
  used = used + tonumber(string.match(entries[i], ':(%d+)$'))
end
local starts = {}
for _ = 1, math.min(want, limit - used) do table.insert(starts, now) end
for i = 1, #entries, 2 do
  local expiry = tonumber(entries[i + 1])
  if #starts >= want or (#starts > 0 and expiry > now + horizon) then break end
  used = used - tonumber(string.match(entries[i], ':(%d+)$'))
  local free = math.min(limit - used - #starts, want - #starts)
  for _ = 1, free do table.insert(starts, math.max(expiry, now)) end
end
if #starts == 0 then table.insert(starts, now) end
local expiry = starts[#starts] + tonumber(ARGV[5])
redis.call('ZADD', key, expiry, ARGV[6] .. ':' .. #starts)
redis.call('EXPIRE', key, math.ceil(expiry - now) + 3600)
local out = {}
for i, start in ipairs(starts) do out[i] = tostring(start) end
return out
"""


class RedisStore:
    """The log in Redis: one script call per batch, atomic on the server."""

    def __init__(self, url: str):
        import redis  # only installations with REDIS_URL need the package

        self.redis = redis.Redis.from_url(url)
        self.script = self.redis.register_script(_RESERVE)

    def reserve(
        self,
        key: str,
        limit: int,
        *,
        want: int,
        horizon: float,
        now: float,
        span: float,
        reservation: str,
        replaces: str,
        settled: list[tuple[float, int]],
    ) -> Grant:
        args: list = [repr(now), limit, want, repr(horizon), repr(span), reservation, replaces]
        for expiry, count in settled:
            args += [repr(expiry), count]
        starts = self.script(keys=[f"syncbridge:rate:{key}"], args=args)
        return Grant([float(start) for start in starts])

    def block(self, key: str, limit: int, now: float, until: float) -> None:
        name = f"syncbridge:rate:{key}"
        self.redis.zadd(name, {f"block-{uuid.uuid4().hex}:{limit}": until})
        self.redis.expire(name, math.ceil(until - now) + 3600)


_stores: dict[str, DatabaseStore | RedisStore] = {}


def _store() -> DatabaseStore | RedisStore:
    url = settings.REDIS_URL
    if url not in _stores:
        _stores[url] = RedisStore(url) if url else DatabaseStore()
    return _stores[url]


_limiters: dict[tuple[str, int, float], RateLimiter] = {}
_limiters_lock = threading.Lock()


def shared_limiter(key: str, limit: int, period: float) -> RateLimiter:
    """This process's one limiter for the account: clients come and go (one per task, per
    change), their reserved slots stay with the limiter instead of lapsing unused."""
    with _limiters_lock:
        limiter = _limiters.get((key, limit, period))
        if limiter is None:
            limiter = _limiters[(key, limit, period)] = RateLimiter(key, limit, period)
        return limiter


def pipedrive_limiter(account: str, *, api_token: bool = False) -> RateLimiter:
    """Pipedrive's burst limit per token per rolling 2 s; API-token connections get less."""
    limit = (
        settings.PIPEDRIVE_API_TOKEN_BURST_LIMIT if api_token else settings.PIPEDRIVE_BURST_LIMIT
    )
    return shared_limiter(f"pipedrive:{account}", limit, 2.0)


def pipedrive_search_limiter(account: str) -> RateLimiter:
    """Pipedrive's search endpoints: 10 requests per 2 s on every plan, besides the burst."""
    return shared_limiter(f"pipedrive-search:{account}", settings.PIPEDRIVE_SEARCH_LIMIT, 2.0)


def snovio_limiter(account: str) -> RateLimiter:
    return shared_limiter(f"snovio:{account}", settings.SNOVIO_RATE_LIMIT, 60.0)
