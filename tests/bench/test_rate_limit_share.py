"""Benchmark: the share of each remote's rate limit the shared limiter uses, and the 429s.

Not part of `make test`; `make bench` runs it. The sandbox is a real HTTP server in a thread
enforcing Pipedrive's burst limit (80 requests per rolling 2 s, OAuth, Lite plan: the
simulator's own limit with its documented headers) and Snov.io's 60 requests per minute.
Several workers (threads, each with its own client and so its own limiter instance) share one
account's limit through the shared store (the database, or Redis when BENCH_REDIS_URL is set)
and call as fast as they may. Then a transfer of BENCH_TRANSFER_RECORDS prospects to Pipedrive
runs with the same limits. Printed and written to BENCH_JSON (var/bench/rate_limits.json):
requests per second, the share of the ceiling, the share of calls answered 429, the store
round trips per call, the machine load.

The share is counted once the first full window is spent (the first `limit` requests may go
out at once, so counting them would flatter a short run): sent after the first window divided
by what the ceiling allows in the time they took.

Knobs (environment): BENCH_WORKERS (3), BENCH_PIPEDRIVE_SECONDS (30), BENCH_SNOVIO_SECONDS
(180), BENCH_TRANSFER_RECORDS (1500), BENCH_TRANSFER_LIMITS (on; off for the machine's own
pace), BENCH_REDIS_URL (unset), BENCH_JSON.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from django.db import connection as db_connection
from django.test import override_settings

from integrations import ratelimit
from integrations.models import SyncRun
from integrations.pipedrive.client import PipedriveClient
from integrations.snovio.client import SnovioClient
from integrations.sync.runs import create_run
from integrations.sync.transfer import transfer
from tests.factories import connected_integration, pipedrive_connection, snovio_connection

WORKERS = int(os.environ.get("BENCH_WORKERS", 3))
PIPEDRIVE_SECONDS = float(os.environ.get("BENCH_PIPEDRIVE_SECONDS", 30))
SNOVIO_SECONDS = float(os.environ.get("BENCH_SNOVIO_SECONDS", 180))
TRANSFER_RECORDS = int(os.environ.get("BENCH_TRANSFER_RECORDS", 1500))
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "")
# "off": the transfer runs with every limit off, to show what the machine allows it.
TRANSFER_LIMITS = os.environ.get("BENCH_TRANSFER_LIMITS", "on")
JSON_PATH = Path(os.environ.get("BENCH_JSON", "var/bench/rate_limits.json"))
PIPEDRIVE_LIMIT, PIPEDRIVE_PERIOD = 80, 2.0
SNOVIO_LIMIT, SNOVIO_PERIOD = 60, 60.0


@pytest.fixture
def sandbox_http(settings):
    from integrations.sandbox.core import Sandbox, remote_settings
    from integrations.sandbox.server import serve_in_thread

    def build(url: str) -> Sandbox:
        sandbox = Sandbox(public_url=url, seed=True)
        sandbox.deliver = lambda url, headers, body: 200
        sandbox.answers = []  # (remote, status, time)
        answer = sandbox.handle

        def counted(remote, request):
            response = answer(remote, request)
            sandbox.answers.append((remote, response.status, time.time()))
            return response

        sandbox.handle = counted
        return sandbox

    with serve_in_thread(build) as sandbox:
        for name, value in remote_settings(sandbox.url).items():
            setattr(settings, name, value)
        settings.PIPEDRIVE_BURST_LIMIT = PIPEDRIVE_LIMIT
        settings.SNOVIO_RATE_LIMIT = SNOVIO_LIMIT
        settings.REDIS_URL = REDIS_URL
        sandbox.pipedrive.limits.configure(burst=PIPEDRIVE_LIMIT, search=10)
        sandbox.set_rate_limit("snovio", SNOVIO_LIMIT, SNOVIO_PERIOD)
        yield sandbox


def steady_share(times: list[float], limit: int, period: float) -> float:
    """Sent after the first full window, over what the ceiling allows in that time."""
    times = sorted(times)
    if len(times) <= limit + 1:
        return 0.0
    rest = times[limit:]
    return (len(rest) - 1) / ((rest[-1] - rest[0]) * limit / period)


def most_in_any_window(times: list[float], period: float) -> int:
    ordered, most, first = sorted(times), 0, 0
    for last, moment in enumerate(ordered):
        while ordered[first] <= moment - period:
            first += 1
        most = max(most, last - first + 1)
    return most


class CountingStore:
    """Counts the store's round trips (one per batch of slots)."""

    def __init__(self, store):
        self.store, self.trips = store, 0

    def reserve(self, *args, **kwargs):
        self.trips += 1
        return self.store.reserve(*args, **kwargs)

    def block(self, *args, **kwargs):
        self.trips += 1
        return self.store.block(*args, **kwargs)


def own_limiter(client):
    """A limiter of the worker's own, as a worker process has (threads of one process would
    share one): the workers meet only in the shared store."""
    shared = client.http.limiter
    client.http.limiter = ratelimit.RateLimiter(shared.key, shared.limit, shared.period)
    return client


def hammer(make_client, call, seconds: float) -> tuple[int, list[str]]:
    """WORKERS threads calling as fast as their limiters let them for `seconds`."""
    stop = time.time() + seconds
    done, errors, lock = [0], [], threading.Lock()

    def work():
        client = make_client()
        try:
            while time.time() < stop:
                call(client)
                with lock:
                    done[0] += 1
        except Exception as exc:  # reported, not hidden
            errors.append(repr(exc))
        finally:
            db_connection.close()

    threads = [threading.Thread(target=work) for _ in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return done[0], errors


def figures(sandbox, remote: str, since: int, limit: int, period: float, trips: int) -> dict:
    answers = [a for a in sandbox.answers[since:] if a[0] == remote]
    ok = [t for _, status, t in answers if status != 429]
    refused = sum(1 for _, status, _ in answers if status == 429)
    span = max(ok) - min(ok) if len(ok) > 1 else 0.0
    return {
        "requests": len(answers),
        "answered_429": refused,
        "share_429": refused / len(answers) if answers else 0.0,
        "requests_per_second": (len(ok) - 1) / span if span else 0.0,
        "ceiling_per_second": limit / period,
        "share_of_ceiling": steady_share(ok, limit, period),
        "most_in_any_window": most_in_any_window(ok, period),
        "store_round_trips_per_call": trips / len(answers) if answers else 0.0,
    }


@pytest.mark.django_db(transaction=True)
def test_the_limiter_uses_the_whole_window_of_each_remote(user, sandbox_http):
    box = sandbox_http
    store = CountingStore(ratelimit._store())
    ratelimit._stores[REDIS_URL] = store
    results: dict = {
        "workers": WORKERS,
        "store": "redis" if REDIS_URL else "database",
        "load_before": os.getloadavg(),
    }
    try:
        pipedrive = pipedrive_connection(user, box)
        snovio = snovio_connection(user)

        # What the workers manage with every limit off: the machine's own ceiling, so a
        # share below the target can be told apart from the limiter's doing.
        box.pipedrive.limits.configure(burst=None)
        with override_settings(PIPEDRIVE_BURST_LIMIT=1_000_000):
            mark = len(box.answers)
            hammer(lambda: PipedriveClient(pipedrive), lambda c: c.me(), PIPEDRIVE_SECONDS / 2)
            unlimited = [t for r, _, t in box.answers[mark:] if r == "pipedrive"]
        results["pipedrive_limits_off_requests_per_second"] = (len(unlimited) - 1) / (
            max(unlimited) - min(unlimited)
        )
        box.pipedrive.limits.configure(burst=PIPEDRIVE_LIMIT)
        time.sleep(PIPEDRIVE_PERIOD)

        mark, store.trips = len(box.answers), 0
        done, errors = hammer(
            lambda: own_limiter(PipedriveClient(pipedrive)), lambda c: c.me(), PIPEDRIVE_SECONDS
        )
        results["pipedrive"] = figures(
            box, "pipedrive", mark, PIPEDRIVE_LIMIT, PIPEDRIVE_PERIOD, store.trips
        ) | {"seconds": PIPEDRIVE_SECONDS, "errors": errors[:3]}

        mark, store.trips = len(box.answers), 0
        done, errors = hammer(
            lambda: own_limiter(SnovioClient.for_connection(snovio)),
            lambda c: c.get_user_lists(),
            SNOVIO_SECONDS,
        )
        results["snovio"] = figures(
            box, "snovio", mark, SNOVIO_LIMIT, SNOVIO_PERIOD, store.trips
        ) | {"seconds": SNOVIO_SECONDS, "errors": errors[:3]}

        if TRANSFER_RECORDS:
            results["transfer_to_pipedrive"] = transfer_share(user, box, store)
    finally:
        ratelimit._stores.pop(REDIS_URL, None)
    results["load_after"] = os.getloadavg()

    JSON_PATH.parent.mkdir(parents=True, exist_ok=True)
    JSON_PATH.write_text(json.dumps(results, indent=2))
    print("\n" + json.dumps(results, indent=2))
    for remote, limit in (("pipedrive", PIPEDRIVE_LIMIT), ("snovio", SNOVIO_LIMIT)):
        assert results[remote]["most_in_any_window"] <= limit
        assert not results[remote]["errors"]


def transfer_share(user, box, store) -> dict:
    """A transfer of TRANSFER_RECORDS new prospects (plus the seed's) to Pipedrive, limits on."""
    listing = box.snovio.create_list("Bench transfer")
    with box.lock:
        box.snovio.add_prospects(listing["id"], TRANSFER_RECORDS, prefix="benchxfer")
    integration = connected_integration(user, box, catalog=True)  # every list is sent
    run = create_run(integration, SyncRun.Direction.TO_PIPEDRIVE, None)
    mark, store.trips = len(box.answers), 0
    started = time.monotonic()
    if TRANSFER_LIMITS == "off":
        box.pipedrive.limits.configure(burst=None)
        with override_settings(PIPEDRIVE_BURST_LIMIT=1_000_000):
            transfer(run)
    else:
        transfer(run)
    seconds = time.monotonic() - started
    run.refresh_from_db()
    counts = Counter(status for remote, status, _ in box.answers[mark:] if remote == "pipedrive")
    return figures(box, "pipedrive", mark, PIPEDRIVE_LIMIT, PIPEDRIVE_PERIOD, store.trips) | {
        "records": TRANSFER_RECORDS,
        "limits": TRANSFER_LIMITS,
        "created": run.created,
        "status": run.status,
        "seconds": seconds,
        "statuses": {str(k): v for k, v in counts.items()},
    }
