"""Profile one webhook delivery's cost in-process: CPU, SQL statements and where the time goes.

Not collected by `make bench` (run it by path, on SQLite or with DATABASE_URL on PostgreSQL):

    DJANGO_ALLOW_ASYNC_UNSAFE=true .venv/bin/pytest tests/bench/prof_intake.py -s -p no:randomly

The same deliveries as `test_webhook_intake.py` (signed Pipedrive person changes, Snov.io
campaign events) go through Django's test client (middleware, URL routing, the view, the ORM
and the real django-q2 broker enqueue), one after the other. Prints per delivery: wall and CPU
time, the SQL statements by shape, then the top functions. The CPU per delivery bounds what one
core can take: 1000 / (ms CPU per delivery) deliveries per second, before the HTTP server's own
cost (gunicorn parsing, sockets). Knobs: PROF_N (deliveries measured, after as many for
warm-up; 300), PROF_TOP (functions listed; 30), PROF_OFF=1 (no cProfile: clean timings).
"""

from __future__ import annotations

import cProfile
import os
import pstats
import re
import time
from collections import Counter

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.bench.test_automation_latency import (  # noqa: F401 (a fixture: SQLite in a file)
    django_db_modify_db_settings,
)
from tests.bench.test_webhook_intake import pipedrive_delivery, snovio_delivery
from tests.factories import stored_integration

N = int(os.environ.get("PROF_N", 300))
TOP = int(os.environ.get("PROF_TOP", 30))
PROFILE = not os.environ.get("PROF_OFF")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("remote", ["pipedrive", "snovio"])
def test_profile_one_delivery(user, remote):
    integration = stored_integration(
        user, include_email_history=True, launched_at=timezone.now(), baseline_at=timezone.now()
    )
    make = pipedrive_delivery if remote == "pipedrive" else snovio_delivery
    deliveries = [make(integration, n) for n in range(2 * N)]
    client = Client()

    def post(delivery) -> None:
        path, headers, body = delivery
        extra = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()}
        extra.pop("HTTP_CONTENT_TYPE", None)
        response = client.post(path, data=body, content_type="application/json", **extra)
        assert response.status_code == 200, response.content

    for delivery in deliveries[:N]:  # warm-up
        post(delivery)
    profile = cProfile.Profile()
    with CaptureQueriesContext(connection) as queries:
        wall, cpu = time.perf_counter(), time.process_time()
        if PROFILE:
            profile.enable()
        for delivery in deliveries[N:]:
            post(delivery)
        profile.disable()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(
        f"\n=== [{connection.vendor}] {remote} delivery: {wall / N * 1000:.2f} ms wall, "
        f"{cpu / N * 1000:.2f} ms CPU per delivery{' (under cProfile)' if PROFILE else ''}; "
        f"{len(queries.captured_queries) / N:.2f} SQL statements per delivery "
        f"(load {[round(x, 2) for x in os.getloadavg()]})"
    )
    shapes = Counter(re.sub(r"'[^']*'|\b\d+\b", "?", q["sql"])[:120] for q in queries)
    for sql, count in shapes.most_common(20):
        print(f"  {count / N:5.2f}  {sql}")
    if PROFILE:
        stats = pstats.Stats(profile)
        stats.sort_stats("cumulative").print_stats(TOP)
        stats.sort_stats("tottime").print_stats(max(TOP // 2, 10))
