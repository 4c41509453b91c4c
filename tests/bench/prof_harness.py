"""Profile one event's cost in-process: the Snov.io webhook view and `run_automations`.

Not collected by `make bench` (run it by path):

    DJANGO_ALLOW_ASYNC_UNSAFE=true .venv/bin/pytest tests/bench/prof_harness.py -s -p no:randomly

The seeded sandbox runs as a real HTTP server in a thread (so the HTTP stack costs what it
costs); the webhook view is called through Django's test client and the runs are performed
directly, one after the other, under cProfile. Prints per event: wall and CPU time (the
calling thread's CPU apart from the sandbox thread's), the queries by shape, the remote calls
by path, then the top functions. Knobs: PROF_N (events measured, after as many for warm-up;
60), PROF_TOP (functions listed; 45), PROF_OFF=1 (no cProfile: clean timings), PROF_LINKED=1
(the prospects are linked to Pipedrive persons first, as after a transfer: no person search),
PROF_DIR (also dump `view.prof` and `worker.prof` there, for `python -m pstats`).
"""

from __future__ import annotations

import cProfile
import os
import pstats
import re
import threading
import time
from collections import Counter
from http.server import ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from automations import engine, services
from automations.models import ActionKind, AutomationRun, Trigger
from tests.bench.test_automation_latency import link_to_new_persons
from tests.factories import launched_integration

N = int(os.environ.get("PROF_N", 60))
TOP = int(os.environ.get("PROF_TOP", 45))
PROFILE = not os.environ.get("PROF_OFF")
DUMP_DIR = os.environ.get("PROF_DIR", "")


@pytest.fixture
def http_sandbox(settings):
    """The seeded sandbox over HTTP in a thread; its webhooks are kept, not delivered."""
    from integrations.sandbox.core import Sandbox, remote_settings
    from integrations.sandbox.server import make_handler

    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(Sandbox(seed=False)))
    server.daemon_threads = True
    url = f"http://127.0.0.1:{server.server_address[1]}"
    sandbox = Sandbox(public_url=url, seed=True)
    sandbox.captured = []
    sandbox.calls = Counter()

    def deliver(url: str, headers: dict, body: bytes) -> int:
        sandbox.captured.append((url, headers, body))
        return 200

    original = sandbox.handle

    def counted(remote, request):
        sandbox.calls[f"{remote} {request.method} {re.sub(r'/[0-9]+', '/{id}', request.path)}"] += 1
        return original(remote, request)

    sandbox.deliver = deliver
    sandbox.handle = counted
    server.RequestHandlerClass = make_handler(sandbox)
    for name, value in remote_settings(url).items():
        setattr(settings, name, value)
    settings.PUBLIC_URL = "http://testserver"
    settings.PIPEDRIVE_BURST_LIMIT = 480
    thread = threading.Thread(target=server.serve_forever, name="sandbox", daemon=True)
    thread.start()
    try:
        yield sandbox
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.mark.django_db(transaction=True)
def test_profile_one_event(http_sandbox, django_user_model, monkeypatch):
    sandbox = http_sandbox
    user = django_user_model.objects.create_user("prof", "prof@example.com", "prof-pw-123")
    integration = launched_integration(user, sandbox, "two_way")
    from integrations.sync.receivers import register_webhooks

    register_webhooks(integration)  # the worker does this after launch
    sales = next(
        p["id"] for p in sandbox.pipedrive.state["pipelines"].values() if p["name"] == "Sales"
    )
    stage = sandbox.pipedrive.stage_id("Sales", "Demo scheduled")
    services.add_action(integration, Trigger.EMAIL_SENT, ActionKind.CREATE_DEAL, pipeline_id=sales)
    services.add_action(
        integration, Trigger.EMAIL_SENT, ActionKind.MOVE_TO_STAGE, pipeline_id=sales, stage_id=stage
    )
    services.add_action(
        integration, Trigger.EMAIL_SENT, ActionKind.ADD_ACTIVITY, subject="Follow up"
    )
    list_id = next(iter(sandbox.snovio.state["lists"]))
    prospects = sandbox.snovio.add_prospects(list_id, 2 * N, "prof")
    if os.environ.get("PROF_LINKED"):
        link_to_new_persons(integration, sandbox, prospects)
    sandbox.captured.clear()
    for prospect in prospects:
        sandbox.snovio.fire_campaign_event("email_sent", prospect["emails"][0]["email"], "Prof")
    hooks = [c for c in sandbox.captured if "/snovio/" in c[0]]
    assert len(hooks) == 2 * N, len(hooks)

    # The runs are performed below, one by one: nothing is queued.
    monkeypatch.setattr("automations.queue.async_task", lambda *args, **kwargs: None)

    # --- the webhook view ---------------------------------------------------------------
    client = Client()

    def post(hook: tuple[str, dict, bytes]) -> None:
        url, headers, body = hook
        extra = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()}
        extra.pop("HTTP_CONTENT_TYPE", None)
        response = client.post(
            urlsplit(url).path, data=body, content_type="application/json", **extra
        )
        assert response.status_code == 200, response.content

    for hook in hooks[:N]:  # warm-up
        post(hook)
    _measure("webhook view", lambda: [post(hook) for hook in hooks[N:]], sandbox, "view")

    # --- the runs, as a worker performs them ----------------------------------------------
    runs = list(
        AutomationRun.objects.filter(status=AutomationRun.Status.PENDING)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    assert len(runs) == 2 * N, len(runs)
    for run_id in runs[:N]:  # warm-up
        engine.run_automations(run_id)
    _measure(
        "run_automations",
        lambda: [engine.run_automations(run_id) for run_id in runs[N:]],
        sandbox,
        "worker",
    )
    statuses = Counter(AutomationRun.objects.values_list("status", flat=True))
    assert statuses == {AutomationRun.Status.DONE: 2 * N}, statuses


def _measure(label: str, work, sandbox, name: str) -> None:
    profile = cProfile.Profile()
    sandbox.calls.clear()
    with CaptureQueriesContext(connection) as queries:
        wall, cpu, thread_cpu = time.perf_counter(), time.process_time(), time.thread_time()
        if PROFILE:
            profile.enable()
        work()
        profile.disable()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        thread_cpu = time.thread_time() - thread_cpu
    print(
        f"\n=== {label}: {wall / N * 1000:.1f} ms wall, {thread_cpu / N * 1000:.1f} ms CPU in "
        f"this thread ({(cpu - thread_cpu) / N * 1000:.1f} ms in the sandbox and other threads) "
        f"per event{' (under cProfile)' if PROFILE else ''}; "
        f"{len(queries.captured_queries) / N:.1f} queries per event"
    )
    shapes = Counter(re.sub(r"'[^']*'|\b\d+\b", "?", q["sql"])[:110] for q in queries)
    for sql, count in shapes.most_common(20):
        print(f"  {count / N:5.2f}  {sql}")
    calls = ", ".join(f"{k} {v / N:.2f}" for k, v in sandbox.calls.most_common()) or "none"
    print(f"remote calls per event: {calls}")
    if PROFILE:
        stats = pstats.Stats(profile)
        stats.sort_stats("cumulative").print_stats(TOP)
        stats.sort_stats("tottime").print_stats(max(TOP // 2, 10))
        if DUMP_DIR:
            stats.dump_stats(str(Path(DUMP_DIR) / f"{name}.prof"))
