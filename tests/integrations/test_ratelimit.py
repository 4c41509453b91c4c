"""The shared rate limiter: a sliding log of request slots, reserved in batches.

The invariant, whatever the interleaving of workers: no rolling window of `period` seconds
ever holds more than `limit` sends; and the limiter does not crawl (it uses the window).
"""

from __future__ import annotations

import random
import threading
import time

import pytest
from django.db import connection

from integrations.models import RateSlot
from integrations.ratelimit import RateLimiter
from tests.integrations.pipedrive_support import FakeClock

pytestmark = pytest.mark.django_db


@pytest.fixture
def clock():
    return FakeClock(start=1_000_000.0)


def most_in_any_window(times: list[float], period: float) -> int:
    """The most sends any rolling window of `period` seconds saw."""
    ordered = sorted(times)
    most, first = 0, 0
    for last, moment in enumerate(ordered):
        while ordered[first] <= moment - period:
            first += 1
        most = max(most, last - first + 1)
    return most


def limiter(key: str, limit: int, period: float, clock: FakeClock, **kw) -> RateLimiter:
    return RateLimiter(key, limit, period, sleep=clock.sleep, clock=clock, **kw)


def test_a_full_window_of_requests_goes_out_without_waiting(clock):
    pace = limiter("test:burst", 20, 2.0, clock)

    waits = [pace.acquire() for _ in range(20)]

    assert waits == [0.0] * 20
    assert pace.acquire() > 0  # the 21st waits for the window to move on


def test_a_long_run_uses_the_whole_window_and_never_exceeds_it(clock):
    pace = limiter("test:long", 80, 2.0, clock)
    times = []
    for _ in range(2000):
        pace.acquire()
        times.append(clock())
        clock.advance(0.001)  # each call takes a millisecond

    assert most_in_any_window(times, 2.0) <= 80
    rate = (len(times) - 80) / (times[-1] - times[0])
    assert rate >= 0.95 * 40, f"{rate:.1f} requests/s of 40"


def test_slots_are_reserved_in_batches_not_one_store_write_per_call(clock):
    pace = limiter("test:batches", 80, 2.0, clock)
    with pytest.MonkeyPatch.context() as patch:
        reservations = []
        real = pace._reserve
        patch.setattr(pace, "_reserve", lambda now: reservations.append(now) or real(now))
        for _ in range(400):
            pace.acquire()
            clock.advance(0.001)

    # 16 slots per store round trip while the window has room, 4 once it is full.
    assert len(reservations) <= 400 / 4


def test_limiters_of_different_accounts_do_not_share_a_window(clock):
    first = limiter("test:a", 5, 2.0, clock)
    second = limiter("test:b", 5, 2.0, clock)

    assert [first.acquire() for _ in range(5)] == [0.0] * 5
    assert second.acquire() == 0.0
    assert first.acquire() > 0


def test_a_block_from_the_remote_holds_every_worker_until_the_reset(clock):
    one = limiter("test:block", 80, 2.0, clock)
    other = limiter("test:block", 80, 2.0, clock)
    one.acquire()

    one.observe(remaining=0, reset=10.0)  # the remote counts requests we did not send

    assert other.acquire() >= 9.9
    assert one.acquire() == 0.0 or clock() >= 1_000_010.0


def test_remaining_above_zero_blocks_nothing(clock):
    pace = limiter("test:fine", 10, 2.0, clock)
    pace.observe(remaining=3, reset=2.0)

    assert pace.acquire() == 0.0


def test_expired_slots_are_removed_from_the_log(clock):
    pace = limiter("test:prune", 10, 2.0, clock)
    for _ in range(30):
        pace.acquire()

    assert RateSlot.objects.filter(key="test:prune").count() <= 12


@pytest.fixture(params=["database", "redis"])
def store(request, settings):
    """Each store of the log; Redis on a database number of its own, emptied first."""
    if request.param == "redis":
        redis = pytest.importorskip("redis")
        settings.REDIS_URL = "redis://127.0.0.1:6379/14"
        try:
            redis.Redis.from_url(settings.REDIS_URL).flushdb()
        except redis.ConnectionError:
            pytest.fail("the Redis test needs a Redis server on 127.0.0.1:6379")
    return request.param


@pytest.mark.parametrize("seed", range(8))
def test_random_workers_never_exceed_the_limit_in_any_window(seed, clock, store):
    """Several workers on one key, interleaved at random, with random pauses and idle spells:
    the sends never exceed the limit in any rolling window (seeded; the seed is printed)."""
    rng = random.Random(seed)
    limit, period = rng.choice([(10, 2.0), (80, 2.0), (60, 60.0), (7, 1.0)])
    workers = [
        limiter(f"test:random-{seed}", limit, period, clock) for _ in range(rng.randint(2, 5))
    ]
    times: list[float] = []
    for _ in range(rng.randint(200, 600)):
        worker = rng.choice(workers)
        worker.acquire()
        times.append(clock())
        roll = rng.random()
        if roll < 0.05:
            clock.advance(rng.uniform(0, period * 2))  # idle: its reserved slots lapse
        elif roll < 0.5:
            clock.advance(rng.uniform(0, period / limit))
        if rng.random() < 0.01:
            worker.observe(remaining=0, reset=rng.uniform(0.1, period))

    worst = most_in_any_window(times, period + 0.0)
    assert worst <= limit, f"seed {seed}: {worst} sends in a window of {period} s, limit {limit}"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("seed", [1, 2])
def test_threads_sharing_a_key_through_the_database_never_exceed_the_limit(seed):
    """Real threads, real time, the database as the shared store: 4 workers, 10 per 0.5 s."""
    rng = random.Random(seed)
    limit, period, key = 10, 0.5, f"test:threads-{seed}"
    times: list[float] = []
    lock = threading.Lock()

    def work(pauses: list[float]) -> None:
        pace = RateLimiter(key, limit, period)
        try:
            for pause in pauses:
                pace.acquire()
                with lock:
                    times.append(time.time())
                time.sleep(pause)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=work, args=([rng.uniform(0, 0.02) for _ in range(20)],))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(times) == 80
    # The remote's window is `period`; our sends are spaced by the margin on top of it.
    assert most_in_any_window(times, period) <= limit, f"seed {seed}"
