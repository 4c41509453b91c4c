"""Benchmark: webhook intake under gunicorn at 50, 100 and 200 deliveries per second.

Not part of `make test`; `make bench` runs it on the database of the run (SQLite file, or the
PostgreSQL test database when DATABASE_URL is set). The app runs under gunicorn (gthread
workers, the production set-up) in its own process; this process offers signed Pipedrive
person changes and Snov.io campaign events at a fixed rate (open loop: each delivery's
latency counts from when it was due, so a server that falls behind is seen as such).

Per remote and rate it prints and writes to BENCH_INTAKE_OUT (test-artifacts/bench-intake.json):
achieved deliveries/s, p50 / p99 / max latency, errors and timeouts, and that every delivery
answered 200 is in the database (the change is stored before the answer). The machine load is
printed next to every timing. Target: p99 < 50 ms at 200/s.

Knobs (environment): BENCH_INTAKE_RATES (50,100,200), BENCH_INTAKE_SECONDS (5),
BENCH_INTAKE_WORKERS (2 gunicorn workers), BENCH_INTAKE_THREADS (8 per worker).
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
from concurrent.futures import ThreadPoolExecutor
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
WORKERS = os.environ.get("BENCH_INTAKE_WORKERS", "2")
THREADS = os.environ.get("BENCH_INTAKE_THREADS", "8")
OUT = Path(os.environ.get("BENCH_INTAKE_OUT", "test-artifacts/bench-intake.json"))
TIMEOUT = 10.0  # Pipedrive's webhook timeout
BASE_DIR = Path(django_settings.BASE_DIR)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def gunicorn(tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "REDIS_URL": "",
        "LOG_LEVEL": "WARNING",
        "SECRET_KEY": django_settings.SECRET_KEY,
        "FIELD_ENCRYPTION_KEY": django_settings.FIELD_ENCRYPTION_KEY,
        "DJANGO_SETTINGS_MODULE": "syncbridge.settings",
    }
    log = (tmp_path / "gunicorn.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "syncbridge.wsgi",
            f"--bind=127.0.0.1:{port}",
            f"--workers={WORKERS}",
            f"--threads={THREADS}",
            "--worker-class=gthread",
            "--timeout=60",
        ],
        cwd=BASE_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                requests.get(f"{url}/login/", timeout=2)
                break
            except requests.RequestException:
                time.sleep(0.2)
        else:
            pytest.fail("gunicorn did not start: " + (tmp_path / "gunicorn.log").read_text())
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        log.close()


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
def test_webhook_intake_latency_under_gunicorn(user, gunicorn):
    integration = stored_integration(
        user,
        include_email_history=True,
        launched_at=timezone.now(),
        baseline_at=timezone.now(),
    )
    rows = []
    counter = 0
    for remote, make, stored in (
        ("pipedrive", pipedrive_delivery, lambda: PendingChange.objects.count()),
        ("snovio", snovio_delivery, lambda: AutomationRun.objects.count()),
    ):
        for rate in RATES:
            total = int(rate * SECONDS)
            deliveries = [make(integration, counter + i) for i in range(total)]
            counter += total
            before = stored()
            load_before = load()
            started = time.monotonic()
            results = offer(gunicorn, deliveries, rate)
            seconds = time.monotonic() - started - 0.5
            ok = [latency for latency, status in results if status == 200]
            failed = [status for _, status in results if status != 200]
            row = {
                "vendor": connection.vendor,
                "remote": remote,
                "offered_per_second": rate,
                "deliveries": total,
                "achieved_per_second": round(len(ok) / max(seconds, 1e-9), 1),
                "p50_ms": round(percentile(ok, 50) * 1000, 1) if ok else None,
                "p99_ms": round(percentile(ok, 99) * 1000, 1) if ok else None,
                "max_ms": round(max(ok) * 1000, 1) if ok else None,
                "not_200": len(failed),
                "timeouts": sum(1 for s in failed if s == "ReadTimeout"),
                "stored": stored() - before,
                "load_before": load_before,
                "load_after": load(),
                "gunicorn": f"{WORKERS} workers x {THREADS} threads",
            }
            rows.append(row)
            print(
                f"\n[{row['vendor']}] {remote} intake at {rate}/s: {row['achieved_per_second']}/s"
                f" answered 200, p50 {row['p50_ms']} ms, p99 {row['p99_ms']} ms,"
                f" max {row['max_ms']} ms, not 200: {row['not_200']}"
                f" (timeouts {row['timeouts']}), stored {row['stored']} of {len(ok)}"
                f" (load {load_before} -> {row['load_after']})"
            )
            # Durable before the 200: every delivery answered 200 is in the database.
            assert row["stored"] >= len(ok), row
    OUT.parent.mkdir(parents=True, exist_ok=True)
    kept = json.loads(OUT.read_text()) if OUT.exists() else []
    kept = [r for r in kept if r["vendor"] != connection.vendor]
    OUT.write_text(json.dumps([*kept, *rows], indent=2))
