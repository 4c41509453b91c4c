"""Temporary profiling harness (not collected: run by path). Drives the webhook view and
run_automations in-process against a real HTTP sandbox thread, under cProfile."""

from __future__ import annotations

import cProfile
import os
import pstats
import threading
import time
from collections import Counter
from http.server import ThreadingHTTPServer

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from automations import engine, services
from automations.models import ActionKind, AutomationRun, Trigger
from tests.integrations.integration_support import launched_integration

N = int(os.environ.get("PROF_N", 60))


@pytest.fixture
def http_sandbox(settings):
    from integrations.sandbox.core import Sandbox
    from integrations.sandbox.server import make_handler

    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(Sandbox(seed=False)))
    server.daemon_threads = True
    url = f"http://127.0.0.1:{server.server_address[1]}"
    sandbox = Sandbox(public_url=url, seed=True)
    captured: list = []

    def deliver(url, headers, body):
        captured.append((url, headers, body))
        return 200

    sandbox.deliver = deliver
    sandbox.captured = captured
    sandbox._prof_calls = Counter()
    original = sandbox.handle_url

    def counted(method, url, *args, **kwargs):
        import re

        path = re.sub(r"/\d+", "/N", url.split("?")[0].split("127.0.0.1")[1].split("/", 1)[1])
        sandbox._prof_calls[f"{method} {path}"] += 1
        return original(method, url, *args, **kwargs)

    sandbox.handle_url = counted
    server.RequestHandlerClass = make_handler(sandbox)
    settings.PIPEDRIVE_OAUTH_URL = f"{url}/pipedrive"
    settings.PIPEDRIVE_API_URL = f"{url}/pipedrive"
    settings.SNOVIO_API_URL = f"{url}/snovio"
    settings.PUBLIC_URL = "http://testserver"
    settings.PIPEDRIVE_BURST_LIMIT = 480
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield sandbox
    server.shutdown()
    server.server_close()


@pytest.mark.django_db(transaction=True)
def test_profile(http_sandbox, django_user_model, monkeypatch):
    sandbox = http_sandbox
    user = django_user_model.objects.create_user("p", "p@example.com", "pw-p-123456")
    integration = launched_integration(user, sandbox, "two_way")
    from integrations.sync.receivers import register_webhooks

    register_webhooks(integration)
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
    emails = [p["emails"][0]["email"] for p in sandbox.snovio.add_prospects(list_id, 2 * N, "prof")]
    sandbox.captured.clear()
    for email in emails:
        sandbox.snovio.fire_campaign_event("email_sent", email, "Prof campaign")
    hooks = [c for c in sandbox.captured if "/snovio/" in c[0]]
    print(f"\n{len(hooks)} Snov.io deliveries captured")

    queued: list[int] = []
    import django_q.tasks

    monkeypatch.setattr(
        django_q.tasks, "async_task", lambda func, *a, **k: queued.append((func, a))
    )

    # --- the webhook view (app side) ----------------------------------------------------
    client = Client()
    from urllib.parse import urlsplit

    def post(hook):
        url, headers, body = hook
        extra = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()}
        extra.pop("HTTP_CONTENT_TYPE", None)
        r = client.post(urlsplit(url).path, data=body, content_type="application/json", **extra)
        assert r.status_code == 200, r.content

    for hook in hooks[:N]:  # warm-up
        post(hook)
    prof = cProfile.Profile()
    with CaptureQueriesContext(connection) as q:
        t0, c0 = time.perf_counter(), time.process_time()
        if not os.environ.get("PROF_OFF"):
            prof.enable()
        for hook in hooks[N : 2 * N]:
            post(hook)
        prof.disable()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    if not os.environ.get("PROF_OFF"):
        prof.dump_stats("/tmp/prof/view.prof")
    print(
        f"VIEW: {wall / N * 1000:.1f} ms wall, {cpu / N * 1000:.1f} ms CPU (incl. sandbox "
        f"thread) per event; {len(q.captured_queries) / N:.1f} queries per event"
    )
    show_queries(q.captured_queries, N)
    if not os.environ.get("PROF_OFF"):
        pstats.Stats(prof).sort_stats("cumulative").print_stats(int(os.environ.get("PROF_TOP", 45)))

    # --- the worker side ------------------------------------------------------------------
    runs = list(AutomationRun.objects.filter(status=AutomationRun.Status.PENDING).order_by("pk"))
    assert len(runs) == 2 * N, len(runs)
    for run in runs[:N]:
        engine.run_automations(run.pk)
    calls_before = sandbox_calls(sandbox)
    prof = cProfile.Profile()
    with CaptureQueriesContext(connection) as q:
        t0, c0, th0 = time.perf_counter(), time.process_time(), time.thread_time()
        if not os.environ.get("PROF_OFF"):
            prof.enable()
        for run in runs[N:]:
            engine.run_automations(run.pk)
        prof.disable()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        thread_cpu = time.thread_time() - th0
    if not os.environ.get("PROF_OFF"):
        prof.dump_stats("/tmp/prof/worker.prof")
    print(f"WORKER thread CPU {thread_cpu / N * 1000:.1f} ms per run")
    calls = sandbox_calls(sandbox) - calls_before
    print(
        f"WORKER: {wall / N * 1000:.1f} ms wall, {cpu / N * 1000:.1f} ms CPU (incl. sandbox "
        f"thread) per run; {len(q.captured_queries) / N:.1f} queries per run"
    )
    show_queries(q.captured_queries, N)
    print("HTTP per run:", {k: round(v / N, 2) for k, v in calls.items()})
    statuses = Counter(AutomationRun.objects.values_list("status", flat=True))
    print("statuses", dict(statuses))
    if not os.environ.get("PROF_OFF"):
        pstats.Stats(prof).sort_stats("cumulative").print_stats(int(os.environ.get("PROF_TOP", 45)))
    if not os.environ.get("PROF_OFF"):
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)


def sandbox_calls(sandbox) -> Counter:
    return Counter(getattr(sandbox, "_prof_calls", Counter()))


def show_queries(queries, n):
    shapes = Counter()
    for query in queries:
        sql = query["sql"]
        shapes[sql[:110]] += 1
    for sql, count in shapes.most_common(30):
        print(f"  {count / n:5.2f}  {sql}")
