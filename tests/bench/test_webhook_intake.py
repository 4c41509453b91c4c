"""Benchmark: webhook intake under gunicorn at 50, 100 and 200 deliveries per second.

Not part of `make test`; `make bench` runs it on the database of the run (SQLite file, or the
PostgreSQL test database when DATABASE_URL is set). The app runs under gunicorn with the
production configuration (`gunicorn.conf.py`: gthread workers) in its own process group; this
process offers signed Pipedrive person changes and Snov.io campaign events at a fixed rate (open
loop: each delivery's latency counts from when it was due, so a server that falls behind is
seen as such).

Per remote, rate and variant it prints and writes to BENCH_INTAKE_OUT
(test-artifacts/bench-intake.json): achieved deliveries/s, p50 / p99 / max latency, errors and
timeouts, that every delivery answered 200 is in the database (the change is stored before the
answer), and the CPU spent: by the server (ms per delivery, all gunicorn processes) and by this
load generator, which shares the machine's cores. The machine load is printed next to every
timing. Target: p99 < 50 ms at 200/s.

Knobs (environment): BENCH_INTAKE_RATES (50,100,200), BENCH_INTAKE_SECONDS (5),
BENCH_INTAKE_REMOTES (pipedrive,snovio), WEB_CONCURRENCY / WEB_THREADS (gunicorn's processes
and threads, as in `make serve`), BENCH_INTAKE_VARIANTS: comma-separated `name=directory`
pairs, each a checkout of the app served by its own gunicorn (default `current=` this one), to
compare code variants in one run, rate by rate on the same database (e.g.
`baseline=/tmp/syncbridge-main,current=`; a variant must accept this checkout's schema).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
import requests
from django.conf import settings as django_settings
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from automations.models import AutomationRun
from integrations.models import Integration, PendingChange
from tests.bench.test_automation_latency import (  # noqa: F401 (a fixture)
    _database_url,
    django_db_modify_db_settings,
    percentile,
)
from tests.factories import stored_integration

RATES = [int(r) for r in os.environ.get("BENCH_INTAKE_RATES", "50,100,200").split(",") if r]
SECONDS = float(os.environ.get("BENCH_INTAKE_SECONDS", 5))
REMOTES = [r for r in os.environ.get("BENCH_INTAKE_REMOTES", "pipedrive,snovio").split(",") if r]
VARIANTS = [
    (name, value)
    for name, _, value in (
        v.partition("=") for v in os.environ.get("BENCH_INTAKE_VARIANTS", "current=").split(",")
    )
]


def variant_app(value: str) -> tuple[Path, dict[str, str]]:
    """`directory|NAME=value|...`: the checkout to serve and environment of its own."""
    where, *pairs = value.split("|")
    return (Path(where) if where else BASE_DIR), dict(p.split("=", 1) for p in pairs)


OUT = Path(os.environ.get("BENCH_INTAKE_OUT", "test-artifacts/bench-intake.json"))
TIMEOUT = 10.0  # Pipedrive's webhook timeout
BASE_DIR = Path(django_settings.BASE_DIR)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def gunicorn(log_path: Path, app_dir: Path, extra_env: dict) -> Iterator[subprocess.Popen]:
    """The app in `app_dir` under gunicorn with its production configuration."""
    port = free_port()
    env = {
        **os.environ,
        **extra_env,
        "DATABASE_URL": _database_url(),
        "REDIS_URL": "",
        "LOG_LEVEL": "WARNING",
        "SECRET_KEY": django_settings.SECRET_KEY,
        "FIELD_ENCRYPTION_KEY": django_settings.FIELD_ENCRYPTION_KEY,
        "DJANGO_SETTINGS_MODULE": "syncbridge.settings",
    }
    config = app_dir / "gunicorn.conf.py"
    # A checkout from before gunicorn.conf.py: the flags `make bench` used then.
    flags = [f"--config={config}"] if config.exists() else ["--workers=2", "--threads=8"]
    threads = env.get("WEB_THREADS", "4") if config.exists() else "8"
    log = log_path.open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "syncbridge.wsgi",
            f"--bind=127.0.0.1:{port}",
            *flags,
            "--worker-class=gthread",
            "--timeout=60",
        ],
        cwd=app_dir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    process.url = f"http://127.0.0.1:{port}"
    process.threads = threads
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                requests.get(f"{process.url}/login/", timeout=2)
                break
            except requests.RequestException:
                time.sleep(0.2)
        else:
            pytest.fail("gunicorn did not start: " + log_path.read_text())
        yield process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        log.close()


def group_cpu_seconds(pgid: int) -> float:
    """CPU (user + system) of every live process in the group: gunicorn's master and workers."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields after the name: state, ppid, pgrp, ...
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def gunicorn_processes(process: subprocess.Popen) -> int:
    return sum(1 for stat in Path("/proc").glob("[0-9]*/stat") if _pgrp(stat) == process.pid)


def _pgrp(stat: Path) -> int | None:
    try:
        return int(stat.read_text().rsplit(")", 1)[1].split()[2])
    except (OSError, IndexError, ValueError):
        return None


def pipedrive_delivery(integration: Integration, n: int) -> tuple[str, dict, bytes]:
    path = reverse("sync:pipedrive_hook", args=[integration.webhook_secret])
    credentials = f"{integration.pipedrive_webhook_user}:{integration.pipedrive_webhook_password}"
    headers = {
        "Authorization": "Basic " + base64.b64encode(credentials.encode()).decode(),
        "Content-Type": "application/json",
    }
    person = {"id": 100000 + n, "name": f"Pat{n} Intake", "job_title": f"Title {n}"}
    body = {
        "meta": {
            "action": "change",
            "entity": "person",
            "entity_id": str(person["id"]),
            "timestamp": timezone.now().isoformat(),
            "change_source": "app",
            "attempt": 1,
        },
        "data": person,
        "previous": {"job_title": "Before"},
    }
    return path, headers, json.dumps(body).encode()


def snovio_delivery(integration: Integration, n: int) -> tuple[str, dict, bytes]:
    path = reverse("sync:snovio_hook", args=[integration.webhook_secret])
    body = {
        "event_object": "campaign_email",
        "event_action": "sent",
        "webhook_id": 7,
        "created_at": int(time.time()),
        "data": {
            "event_time": timezone.now().strftime("%Y-%m-%d %H:%M:%S"),
            "campaign_id": 201,
            "campaign_name": "Intake bench",
            "recipient_email": f"intake{n}@bench.example",
            "email_subject": "Hello",
        },
    }
    return path, {"Content-Type": "application/json"}, json.dumps(body).encode()


def offer(url: str, deliveries: list, rate: float) -> list[tuple[float, int | str]]:
    """Send each delivery when it is due (i / rate s after the start): (latency, status)."""
    results: list[tuple[float, int | str]] = []
    local = threading.local()

    def send(due: float, delivery) -> None:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        path, headers, body = delivery
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        try:
            status: int | str = session.post(
                url + path, data=body, headers=headers, timeout=TIMEOUT
            ).status_code
        except requests.RequestException as exc:
            status = exc.__class__.__name__
        results.append((time.monotonic() - due, status))

    start = time.monotonic() + 0.5
    with ThreadPoolExecutor(max_workers=min(256, int(rate * 1.5) + 8)) as pool:
        for i, delivery in enumerate(deliveries):
            pool.submit(send, start + i / rate, delivery)
    return results


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


@pytest.mark.django_db(transaction=True)
def test_webhook_intake_latency_under_gunicorn(user, tmp_path):
    integration = stored_integration(
        user,
        include_email_history=True,
        launched_at=timezone.now(),
        baseline_at=timezone.now(),
    )
    makers = {
        "pipedrive": (pipedrive_delivery, lambda: PendingChange.objects.count()),
        "snovio": (snovio_delivery, lambda: AutomationRun.objects.count()),
    }
    rows = []
    counter = 0
    with ExitStack() as stack:
        servers = {
            name: stack.enter_context(
                gunicorn(tmp_path / f"gunicorn-{name}.log", *variant_app(app))
            )
            for name, app in VARIANTS
        }
        for remote in REMOTES:
            make, stored = makers[remote]
            for rate in RATES:
                for variant, server in servers.items():
                    total = int(rate * SECONDS)
                    deliveries = [make(integration, counter + i) for i in range(total)]
                    counter += total
                    row = measure(server, deliveries, rate, stored)
                    row.update(remote=remote, variant=variant, app=dict(VARIANTS)[variant])
                    rows.append(row)
                    print(
                        f"\n[{row['vendor']}] {variant}: {remote} intake at {rate}/s:"
                        f" {row['achieved_per_second']}/s answered 200, p50 {row['p50_ms']} ms,"
                        f" p99 {row['p99_ms']} ms, max {row['max_ms']} ms,"
                        f" not 200: {row['not_200']} (timeouts {row['timeouts']}),"
                        f" stored {row['stored']} of {row['answered_200']};"
                        f" server CPU {row['server_cpu_ms_per_delivery']} ms/delivery,"
                        f" load generator {row['sender_cpu_ms_per_delivery']} ms/delivery"
                        f" (load {row['load_before']} -> {row['load_after']})"
                    )
                    # Durable before the 200: every delivery answered 200 is in the database.
                    assert row["stored"] >= row["answered_200"], row
    OUT.parent.mkdir(parents=True, exist_ok=True)
    kept = json.loads(OUT.read_text()) if OUT.exists() else []
    kept = [r for r in kept if r["vendor"] != connection.vendor]
    OUT.write_text(json.dumps([*kept, *rows], indent=2))


def measure(server: subprocess.Popen, deliveries: list, rate: int, stored) -> dict:
    before = stored()
    load_before = load()
    server_cpu = group_cpu_seconds(server.pid)
    sender_cpu = time.process_time()
    started = time.monotonic()
    results = offer(server.url, deliveries, rate)
    seconds = time.monotonic() - started - 0.5
    sender_cpu = time.process_time() - sender_cpu
    server_cpu = group_cpu_seconds(server.pid) - server_cpu
    ok = [latency for latency, status in results if status == 200]
    failed = [status for _, status in results if status != 200]
    return {
        "vendor": connection.vendor,
        "offered_per_second": rate,
        "deliveries": len(deliveries),
        "achieved_per_second": round(len(ok) / max(seconds, 1e-9), 1),
        "p50_ms": round(percentile(ok, 50) * 1000, 1) if ok else None,
        "p99_ms": round(percentile(ok, 99) * 1000, 1) if ok else None,
        "max_ms": round(max(ok) * 1000, 1) if ok else None,
        "answered_200": len(ok),
        "not_200": len(failed),
        "timeouts": sum(1 for s in failed if s == "ReadTimeout"),
        "stored": stored() - before,
        "server_cpu_ms_per_delivery": round(server_cpu / len(deliveries) * 1000, 2),
        "sender_cpu_ms_per_delivery": round(sender_cpu / len(deliveries) * 1000, 2),
        "server_cpu_share_of_2_cores": round(server_cpu / max(seconds, 1e-9) / 2, 2),
        "load_before": load_before,
        "load_after": load(),
        "gunicorn": f"{gunicorn_processes(server) - 1} workers x {server.threads} threads",
    }
