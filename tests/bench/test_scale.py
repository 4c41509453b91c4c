"""Benchmark: manual transfers of 10,000 (and, on demand, 100,000) records in each direction.

Not part of `make test` at full size; `make bench` runs it at BENCH_SCALE_SIZES (10000) and
`make test` runs it at a smoke size through `test_scale_smoke`. The sandbox runs as a real HTTP
server in a *separate process* (forked once it is seeded and the integration is connected), so
the peak memory measured is the transfer's own, not the fake remotes'. On SQLite, Django puts
the test database in memory, in this process: BENCH_SQLITE_TEST_FILE=<path> puts it in a file,
so that its pages do not count as the transfer's memory.

Per direction and size it measures:
- with the limits off (sandbox and client limiters at 10^6): records/s, API calls and Pipedrive
  tokens per record, SQL statements (and writes) per record, peak RSS growth of the worker;
- with the limits on (Pipedrive Lite OAuth 80 requests per 2 s, Snov.io 60 per minute) for
  BENCH_SCALE_LIMITED_SECONDS (150) at the start of the run: the share of each ceiling used
  after its first window (the steady rate) and the 429s. A full 10,000-record run at Snov.io's
  60/min takes hours; a window tells the same share.
BENCH_SCALE_RECEIVING (0) puts that many records per record sent on the receiving side first
(other emails: listed and indexed, never matched), so that peak RSS shows the cost of indexing
the receiving side; BENCH_SCALE_LIMITED_SECONDS=0 skips the limits-on window. The CPU seconds
of the worker and of the sandbox process are stored with the limits-off figures (where the time
goes);
BENCH_SCALE_PROFILE=<prefix> writes cProfile stats of both (<prefix>-worker.prof,
<prefix>-sandbox.prof, read them with `python -m pstats`).
The machine load (`os.getloadavg`) is printed and stored next to every timing. The figures
are printed and written to BENCH_SCALE_OUT (test-artifacts/bench-scale.json), one entry per
database vendor, direction and size (entries of other vendors are kept).

Pipedrive token costs (v2, "Rate limiting", pipedrive.readme.io/docs/core-api-concepts-rate-
limiting; v1 endpoints cost twice as much): a single GET 1, a list 10, a create or an update 5,
a search 20.
"""

from __future__ import annotations

import cProfile
import gc
import json
import multiprocessing
import os
import re
import threading
import time
from collections import Counter
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from django.db import connection

from integrations.models import SyncRun
from integrations.sync.runs import create_run
from integrations.sync.transfer import run_slice, transfer
from tests.factories import connected_integration

SIZES = [int(n) for n in os.environ.get("BENCH_SCALE_SIZES", "10000").split(",") if n]
LIMITED_SECONDS = float(os.environ.get("BENCH_SCALE_LIMITED_SECONDS", 150))
OUT = Path(os.environ.get("BENCH_SCALE_OUT", "test-artifacts/bench-scale.json"))
PROFILE = os.environ.get("BENCH_SCALE_PROFILE", "")
# Records already on the receiving side, per record sent (other emails: they are listed and
# indexed, never matched), so that peak memory shows what indexing the receiving side costs.
RECEIVING_RATIO = float(os.environ.get("BENCH_SCALE_RECEIVING", 0))
PIPEDRIVE_LIMIT, PIPEDRIVE_PERIOD = 80, 2.0
SNOVIO_LIMIT, SNOVIO_PERIOD = 60, 60.0
UNLIMITED = 10**6
DIRECTIONS = [SyncRun.Direction.TO_PIPEDRIVE, SyncRun.Direction.TO_SNOVIO]


def pipedrive_tokens(method: str, path: str) -> int:
    """Tokens one Pipedrive request costs (v2 prices; v1 twice as much)."""
    v1 = "/v1/" in path
    if "/search" in path:
        cost = 20
    elif method == "GET":
        cost = 1 if path.rstrip("/").split("/")[-1].isdigit() else 10
    else:
        cost = 5
    return cost * 2 if v1 else cost


# --- the sandbox in its own process --------------------------------------------------------


def _serve(server, box, commands) -> None:
    """The child: serve the seeded sandbox; answer the parent's commands over the pipe."""
    profile = cProfile.Profile() if PROFILE else None
    if profile is not None:  # each request is handled in a thread of its own: profile each
        handle, one_at_a_time = box.handle, threading.Lock()

        def profiled(remote, request):
            with one_at_a_time:
                return profile.runcall(handle, remote, request)

        box.handle = profiled
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    while True:
        command, *args = commands.recv()
        if command == "stats":
            log = Counter((r, m, p) for r, m, p in box.request_log)
            commands.send(
                {
                    "requests": dict(log),
                    "statuses": dict(box.statuses),
                    "cpu_seconds": time.process_time(),
                }
            )
        elif command == "times":  # when each remote answered, since `args[0]` (monotonic)
            commands.send([(r, t) for r, t in box.answered if t >= args[0]])
        elif command == "limit":
            box.set_rate_limit(*args)
            commands.send("ok")
        elif command == "stop":
            server.shutdown()
            if profile is not None:
                profile.disable()
                profile.dump_stats(f"{PROFILE}-sandbox.prof")
            commands.send("ok")
            return


class RemoteSandbox:
    """Seed the sandbox here, connect the integration, then hand the sandbox to a child."""

    def __init__(self, settings):
        from integrations.sandbox.core import Sandbox, remote_settings
        from integrations.sandbox.server import make_handler

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(Sandbox(seed=False)))
        self.server.daemon_threads = True
        url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.box = Sandbox(public_url=url, seed=False)
        self.box.deliver = lambda url, headers, body: 200
        self.box.statuses = Counter()
        self.box.answered = []
        answer = self.box.handle

        def counted(remote, request):
            response = answer(remote, request)
            self.box.statuses[(remote, response.status)] += 1
            self.box.answered.append((remote, time.monotonic()))
            return response

        self.box.handle = counted
        self.server.RequestHandlerClass = make_handler(self.box)
        for name, value in remote_settings(url).items():
            setattr(settings, name, value)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.child = None

    def detach(self) -> None:
        """Serve from a child process from now on; this process forgets the sandbox."""
        self.server.shutdown()
        self.thread.join()
        self.box.request_log.clear()
        self.box.statuses.clear()
        self.box.answered.clear()
        here, there = multiprocessing.Pipe()
        context = multiprocessing.get_context("fork")
        self.child = context.Process(target=_serve, args=(self.server, self.box, there))
        self.child.start()
        self.pipe = here
        self.box = None
        gc.collect()

    def ask(self, *command):
        self.pipe.send(command)
        return self.pipe.recv()

    def close(self) -> None:
        if self.child is not None:
            self.ask("stop")
            self.child.join(timeout=10)
        self.server.server_close()


def seed(box, direction: str, size: int, receiving: int = 0) -> None:
    """`size` records on the sending side; `receiving` others (other emails) on the receiving
    side, which is otherwise empty (only the target list)."""
    with box.lock:
        box.snovio.create_list("Received")
        admin = box.pipedrive._admin_id()
        for n in range(receiving):
            if direction == SyncRun.Direction.TO_PIPEDRIVE:
                box.pipedrive._insert_person(
                    {
                        "name": f"Kim{n} Held",
                        "emails": [{"value": f"held{n}@scale.example", "primary": True}],
                        "phones": [{"value": f"+1555{n:07d}", "primary": True}],
                    },
                    admin,
                )
            else:
                box.snovio.add_prospect(
                    "Received",
                    email=f"held{n}@scale.example",
                    first_name=f"Kim{n}",
                    last_name="Held",
                )
        if direction == SyncRun.Direction.TO_PIPEDRIVE:
            box.snovio.create_list("Leads")
            for n in range(size):
                box.snovio.add_prospect(
                    "Leads", email=f"lead{n}@scale.example", first_name=f"Pat{n}", last_name="Lead"
                )
        else:
            for n in range(size):
                box.pipedrive._insert_person(
                    {
                        "name": f"Pat{n} Person",
                        "emails": [{"value": f"person{n}@scale.example", "primary": True}],
                    },
                    admin,
                )


# --- measuring -----------------------------------------------------------------------------


class PeakRss:
    """The process's resident memory sampled every 20 ms: the peak above the start."""

    def __init__(self):
        self.start = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._rss())

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.start) / 2**20


class Statements:
    """SQL statements this process sends, and how many of them write (by table)."""

    WRITE = re.compile(r'^\s*(INSERT INTO|UPDATE|DELETE FROM)\s+"?(\w+)"?', re.IGNORECASE)

    def __init__(self):
        self.total = self.writes = 0
        self.written: Counter = Counter()

    def __call__(self, execute, sql, params, many, context):
        self.total += 1
        write = self.WRITE.match(sql)
        if write:
            self.writes += 1
            self.written[f"{write.group(1).split()[0].upper()} {write.group(2)}"] += 1
        return execute(sql, params, many, context)


def remote_figures(stats: dict, records: int, seconds: float) -> dict:
    calls = Counter()
    tokens = 0
    for (remote, method, path), n in stats["requests"].items():
        calls[remote] += n
        if remote == "pipedrive":
            tokens += pipedrive_tokens(method, path) * n
    refused = sum(n for (_, status), n in stats["statuses"].items() if status == 429)
    return {
        "calls_per_record": round((calls["pipedrive"] + calls["snovio"]) / max(records, 1), 3),
        "pipedrive_calls": calls["pipedrive"],
        "snovio_calls": calls["snovio"],
        "pipedrive_tokens_per_record": round(tokens / max(records, 1), 2),
        "answered_429": refused,
        "pipedrive_ceiling_share": round(
            calls["pipedrive"] / (PIPEDRIVE_LIMIT / PIPEDRIVE_PERIOD * seconds), 3
        ),
        "snovio_ceiling_share": round(
            calls["snovio"] / (SNOVIO_LIMIT / SNOVIO_PERIOD * seconds), 3
        ),
    }


def steady_share(answered: list, remote: str, limit: int, period: float, started: float):
    """The share of `remote`'s ceiling used once its first window has passed (a fresh rolling
    window lets a whole burst through at once, which says nothing of the long-run rate)."""
    times = sorted(t for r, t in answered if r == remote)
    steady = [t for t in times if t >= started + period]
    if len(steady) < 2:
        return None
    return round((len(steady) - 1) / ((steady[-1] - steady[0]) * limit / period), 3)


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def measure(
    settings, user, direction: str, size: int, limited_seconds: float = LIMITED_SECONDS
) -> dict:
    remote = RemoteSandbox(settings)
    try:
        receiving = int(size * RECEIVING_RATIO)
        seed(remote.box, direction, size, receiving)
        integration = connected_integration(user, remote.box, catalog=False)
        remote.detach()
        figures: dict = {
            "vendor": connection.vendor,
            "direction": direction,
            "records": size,
            "receiving_side_records": receiving,
        }

        # The limits on, for a window at the start of the run (a run of its own).
        settings.PIPEDRIVE_BURST_LIMIT, settings.SNOVIO_RATE_LIMIT = PIPEDRIVE_LIMIT, SNOVIO_LIMIT
        remote.ask("limit", "pipedrive", PIPEDRIVE_LIMIT, PIPEDRIVE_PERIOD)
        remote.ask("limit", "snovio", SNOVIO_LIMIT, SNOVIO_PERIOD)
        if limited_seconds > 0:
            run = create_run(integration, direction)
            before = remote.ask("stats")
            started, load_before = time.monotonic(), load()
            # Pages small enough for a window at Snov.io's 60/min (one write per person);
            # to Pipedrive the usual pages (one Snov.io page per 100 persons created).
            small = 10 if direction == SyncRun.Direction.TO_SNOVIO else None
            run_slice(run, budget=limited_seconds, page_size=small)
            seconds = time.monotonic() - started
            stats = remote.ask("stats")
            window = {
                "requests": Counter(stats["requests"]) - Counter(before["requests"]),
                "statuses": Counter(stats["statuses"]) - Counter(before["statuses"]),
            }
            run.refresh_from_db()
            limited = remote_figures(window, run.done, seconds)
            answered = remote.ask("times", started)
            figures["limits_on"] = {
                "seconds": round(seconds, 1),
                "records": run.done,
                "pipedrive_ceiling_share": steady_share(
                    answered, "pipedrive", PIPEDRIVE_LIMIT, PIPEDRIVE_PERIOD, started
                ),
                "snovio_ceiling_share": steady_share(
                    answered, "snovio", SNOVIO_LIMIT, SNOVIO_PERIOD, started
                ),
                "answered_429": limited["answered_429"],
                "load_before": load_before,
                "load_after": load(),
            }
            SyncRun.objects.filter(pk=run.pk).update(status=SyncRun.Status.CANCELLED)

        # The limits off: the whole run, as fast as this machine goes.
        settings.PIPEDRIVE_BURST_LIMIT = settings.SNOVIO_RATE_LIMIT = UNLIMITED
        remote.ask("limit", "pipedrive", None)
        remote.ask("limit", "snovio", None)
        before = remote.ask("stats")
        run = create_run(integration, direction)
        statements = Statements()
        gc.collect()
        load_before = load()
        profile = cProfile.Profile() if PROFILE else None
        with PeakRss() as memory, connection.execute_wrapper(statements):
            started, cpu_started = time.monotonic(), time.process_time()
            if profile is not None:
                profile.runcall(transfer, run)
            else:
                transfer(run)
            seconds = time.monotonic() - started
            worker_cpu = time.process_time() - cpu_started
        if profile is not None:
            profile.dump_stats(f"{PROFILE}-worker.prof")
        run.refresh_from_db()
        assert run.status == SyncRun.Status.DONE, run.error
        assert run.done == size, run.summary()
        stats = remote.ask("stats")
        window = {
            "requests": Counter(stats["requests"]) - Counter(before["requests"]),
            "statuses": Counter(stats["statuses"]) - Counter(before["statuses"]),
        }
        limits_off = remote_figures(window, run.done, seconds)
        figures["limits_off"] = {
            "seconds": round(seconds, 1),
            "records": run.done,
            "created": run.created,
            "records_per_second": round(run.done / seconds, 1),
            "calls_per_record": limits_off["calls_per_record"],
            "pipedrive_tokens_per_record": limits_off["pipedrive_tokens_per_record"],
            "sql_per_record": round(statements.total / max(run.done, 1), 2),
            "sql_writes_per_record": round(statements.writes / max(run.done, 1), 2),
            "sql_writes_per_record_by_table": {
                kind: round(n / max(run.done, 1), 2) for kind, n in statements.written.most_common()
            },
            "peak_rss_growth_mb": round(memory.growth_mb, 1),
            "worker_cpu_seconds": round(worker_cpu, 1),
            "sandbox_cpu_seconds": round(stats["cpu_seconds"] - before["cpu_seconds"], 1),
            "answered_429": limits_off["answered_429"],
            "load_before": load_before,
            "load_after": load(),
        }
        return figures
    finally:
        remote.close()


def percent(share: float | None) -> str:
    return "n/a" if share is None else f"{share:.0%}"


def report(figures: dict) -> None:
    off, on = figures["limits_off"], figures.get("limits_on") or {}
    print(
        f"\n[{figures['vendor']}] {figures['direction']} x {figures['records']}:"
        f" {off['records_per_second']} records/s (limits off, {off['seconds']} s,"
        f" load {off['load_before']} -> {off['load_after']})"
        f"\n  calls/record {off['calls_per_record']}, Pipedrive tokens/record"
        f" {off['pipedrive_tokens_per_record']}, SQL/record {off['sql_per_record']}"
        f" ({off['sql_writes_per_record']} writes), peak RSS +{off['peak_rss_growth_mb']} MB,"
        f" 429s {off['answered_429']}, CPU s worker {off['worker_cpu_seconds']}"
        f" sandbox {off['sandbox_cpu_seconds']}"
        f"\n  writes/record by table: {off.get('sql_writes_per_record_by_table')}"
    )
    if on:
        print(
            f"  limits on ({on['seconds']} s, {on['records']} records, load {on['load_before']}"
            f" -> {on['load_after']}): Pipedrive {percent(on['pipedrive_ceiling_share'])} of"
            f" {PIPEDRIVE_LIMIT}/{PIPEDRIVE_PERIOD:.0f}s, Snov.io"
            f" {percent(on['snovio_ceiling_share'])} of {SNOVIO_LIMIT}/min,"
            f" 429s {on['answered_429']}"
        )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    stored = json.loads(OUT.read_text()) if OUT.exists() else []
    key = (figures["vendor"], figures["direction"], figures["records"])
    stored = [f for f in stored if (f["vendor"], f["direction"], f["records"]) != key]
    OUT.write_text(json.dumps([*stored, figures], indent=2))


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("direction", DIRECTIONS)
def test_a_transfer_at_scale(settings, user, direction, size):
    figures = measure(settings, user, direction, size)
    report(figures)
    off = figures["limits_off"]
    assert off["answered_429"] == 0  # the limits were off
    assert off["sql_writes_per_record"] < 10
