"""A worker killed at random points of a transfer: resumed within a minute, exactly once.

Each trial is seeded (the seed is in the test id and every failure message): a direction, and
one to three kill points among everything the worker does that matters: each remote call
(before it is sent, or after it was answered, when the answer dies with the worker), each
history event written on its own and each page's links and events written together. Nothing
in the transfer catches the kill, as nothing in a real worker survives it; the run is then left
to the watch django-q2 would fire. Time is simulated: the clock jumps to when the scheduler
(which looks every 30 s) would fire the watch at the latest.

`make soak` runs many more trials: CRASH_TRIALS=50 (and CRASH_SEED=first seed).
"""

from __future__ import annotations

import os
import random
from datetime import datetime, timedelta

import pytest
from django.utils import timezone
from django_q.models import Schedule

from integrations import tasks
from integrations.http import HttpClient
from integrations.models import Integration, SyncRun
from integrations.sync import runs, transfer
from integrations.sync.context import SyncContext
from tests.factories import connected_integration, fast_limits  # noqa: F401
from tests.integrations.exactly_once import (
    assert_transferred_exactly_once,
    sent_records_missing,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_limits")]

TRIALS = int(os.environ.get("CRASH_TRIALS", "5"))
FIRST_SEED = int(os.environ.get("CRASH_SEED", "0"))
RESUME_WITHIN = timedelta(seconds=60)
KILL_POINTS = range(1, 450)  # a transfer of the seed data has about 300-450 of them


class WorkerKilled(BaseException):
    """Stands for the worker process ending: nothing in the transfer catches it."""


class Clock:
    """`timezone.now()` for the trial: real time plus the jumps the test makes."""

    def __init__(self) -> None:
        self.offset = timedelta()
        self.real_now = timezone.now

    def now(self) -> datetime:
        return self.real_now() + self.offset

    def jump_to(self, moment: datetime) -> None:
        self.offset += max(moment - self.now(), timedelta())


class Killer:
    def __init__(self, points: list[int]) -> None:
        self.points = sorted(points)
        self.ticks = 0

    def tick(self, where: str) -> None:
        self.ticks += 1
        if self.points and self.ticks == self.points[0]:
            self.points.pop(0)
            raise WorkerKilled(f"killed at point {self.ticks} ({where})")


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(timezone, "now", clock.now)
    return clock


def install(killer: Killer, monkeypatch) -> None:
    send, event, page = HttpClient.request, SyncContext.event, transfer._Transfer.write_page

    def request(self, method, url, **kwargs):
        killer.tick(f"before {method} {url}")
        answer = send(self, method, url, **kwargs)
        killer.tick(f"after {method} {url}")
        return answer

    def logged(self, *args, **kwargs):
        written = event(self, *args, **kwargs)
        killer.tick("after an event")
        return written

    def page_written(self):
        page(self)
        killer.tick("after a page's links and events")

    monkeypatch.setattr(HttpClient, "request", request)
    monkeypatch.setattr(SyncContext, "event", logged)
    monkeypatch.setattr(transfer._Transfer, "write_page", page_written)


def fire_the_watch(run: SyncRun, clock: Clock, killed_at: datetime, latencies: list) -> None:
    """Fire the run's watch as late as the scheduler would, until it takes the run over.

    The time from the kill to the take-over goes to `latencies` (before the resumed work,
    which may be killed in turn).
    """
    for _ in range(5):
        watch = Schedule.objects.get(name=runs.watch_name(run.pk))
        clock.jump_to(watch.next_run + runs.SCHEDULER_CYCLE)
        run.refresh_from_db()
        if not (run.lease_owner and run.lease_expires_at > clock.now()):
            latencies.append(clock.now() - killed_at)
        if not tasks.watch_transfer(run.pk).endswith(": alive"):
            return
    raise AssertionError("the watch never took the run over")


def counts(run: SyncRun) -> dict[str, int]:
    fields = ("done", "created", "updated", "unchanged", "conflicts", "skipped", "failed")
    return {name: getattr(run, name) for name in fields}


def uninterrupted_counts(integration: Integration, sandbox, direction: str) -> dict[str, int]:
    """What the same transfer reports when no worker dies (then both sides as they were)."""
    before = sandbox.dump()
    run = runs.create_run(integration, direction)
    tasks.run_transfer(run.pk)
    run.refresh_from_db()
    assert run.status == SyncRun.Status.DONE, run.error
    sandbox.pipedrive.load(before["pipedrive"])
    sandbox.snovio.load(before["snovio"])
    integration.links.all().delete()
    return counts(run)


@pytest.mark.parametrize("seed", range(FIRST_SEED, FIRST_SEED + TRIALS))
def test_a_transfer_killed_at_random_points_is_resumed_within_a_minute_exactly_once(
    user, sandbox, clock, monkeypatch, seed
):
    """...and ends like an uninterrupted run: the same counts (a record whose worker died
    after its remote write, before the page was recorded, is reported as that write)."""
    rng = random.Random(seed)
    direction = rng.choice(list(SyncRun.Direction))
    points = rng.sample(KILL_POINTS, rng.randint(1, 3))
    trial = f"seed={seed} direction={direction} kill points={sorted(points)}"
    integration = connected_integration(user, sandbox)
    expected = uninterrupted_counts(integration, sandbox, direction)
    run = runs.create_run(integration, direction)
    killer = Killer(points)
    install(killer, monkeypatch)

    latencies: list[timedelta] = []
    kills: list[str] = []
    killed_at = None
    for _ in range(10):
        try:
            if killed_at is None:
                tasks.run_transfer(run.pk)  # the first worker
            else:
                fire_the_watch(run, clock, killed_at, latencies)
        except WorkerKilled as killed:
            kills.append(str(killed))
            killed_at = clock.now()
            continue
        run.refresh_from_db()
        if not run.is_active:
            break

    killer.points.clear()  # the run is over: checking the end state kills nothing
    run.refresh_from_db()
    assert run.status == SyncRun.Status.DONE, f"{trial}: {run.status} {run.error} {kills}"
    assert len(latencies) == len(kills), trial
    assert all(latency <= RESUME_WITHIN for latency in latencies), f"{trial}: {latencies}"
    assert sent_records_missing(integration, run) == set(), trial
    try:
        assert_transferred_exactly_once(integration, run)
    except AssertionError as failure:
        raise AssertionError(f"{trial}: {failure}") from failure
    assert counts(run) == expected, f"{trial}: {kills}"
    assert not Schedule.objects.filter(name=runs.watch_name(run.pk)).exists(), trial
    integration.refresh_from_db()
    assert integration.status == Integration.Status.ACTIVE, trial
    print(f"{trial}: {len(kills)} kill(s), resumed after {[str(x) for x in latencies]}")
