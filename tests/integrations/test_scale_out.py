"""Scale-out: two `qcluster` processes on PostgreSQL with the Redis broker share the work.

Set-up as "Scaling out" in the README describes: one database (the PostgreSQL test database),
`REDIS_URL` set (Redis DB 11 on the local server, emptied first), two worker clusters started
with the same environment, the app (Django's live server) receiving the webhooks and the
sandbox as a real HTTP server. Every webhook is delivered twice, as remotes do on retries.

Work: persons created in Pipedrive (each must become one Snov.io prospect: real-time changes)
and campaign emails sent in Snov.io (each must create one Pipedrive deal: automations).
Shown: no change applied twice, no automation run twice, and both clusters executed tasks.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import redis
import requests
from django.conf import settings as django_settings
from django.db import connection
from django.test import Client
from django_q.conf import Conf

from automations import services
from automations.models import ActionKind, AutomationRun, Trigger
from integrations.models import PendingChange, SyncEvent
from integrations.sandbox.core import Sandbox, remote_settings
from integrations.sandbox.server import serve_in_thread
from tests.factories import launched_integration

REDIS_URL = os.environ.get("SCALE_OUT_REDIS_URL", "redis://127.0.0.1:6379/11")
PERSONS = 20
EVENTS = 30
BASE_DIR = Path(django_settings.BASE_DIR)

pytestmark = pytest.mark.django_db(transaction=True)


def _database_url() -> str:
    s = connection.settings_dict
    auth = s.get("USER") or ""
    if s.get("PASSWORD"):
        auth += f":{s['PASSWORD']}"
    port = f":{s['PORT']}" if s.get("PORT") else ""
    return f"postgres://{auth}{'@' if auth else ''}{s.get('HOST') or ''}{port}/{s['NAME']}"


def _wait(predicate, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {seconds} s: {what}"
        time.sleep(0.3)


@pytest.fixture
def redis_broker(settings, monkeypatch):
    """This process enqueues to the same Redis queue as the workers."""
    if connection.vendor != "postgresql":
        pytest.skip("the scale-out test runs on PostgreSQL (set DATABASE_URL, as CI does)")
    client = redis.Redis.from_url(REDIS_URL)
    client.ping()  # no Redis is a failure, never a skip
    client.flushdb()
    settings.REDIS_URL = REDIS_URL
    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "REDIS", REDIS_URL)
    yield client
    client.flushdb()


class TwiceDelivered:
    """Every webhook posted twice to the app, as a remote retrying a delivery does."""

    def __init__(self) -> None:
        self.statuses: list[int] = []

    def __call__(self, url: str, headers: dict, body: bytes) -> int:
        for _ in range(2):
            self.statuses.append(
                requests.post(url, data=body, headers=headers, timeout=30).status_code
            )
        return self.statuses[-1]


@pytest.fixture
def sandbox_http(settings, live_server):
    def build(url: str) -> Sandbox:
        sandbox = Sandbox(public_url=url, seed=True)
        sandbox.deliver = TwiceDelivered()
        return sandbox

    with serve_in_thread(build) as sandbox:
        for name, value in remote_settings(sandbox.url).items():
            setattr(settings, name, value)
        settings.PUBLIC_URL = live_server.url
        yield sandbox


@pytest.fixture
def two_clusters(redis_broker, sandbox_http, live_server, tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "REDIS_URL": REDIS_URL,
        **remote_settings(sandbox_http.url),
        "PUBLIC_URL": live_server.url,
        "Q_WORKERS": "2",
        # The client-side limiters have their own tests; here they would only add waiting
        # (Snov.io's 60 per minute alone would stretch the drain to a minute).
        "SNOVIO_RATE_LIMIT": "1000000",
        "PIPEDRIVE_BURST_LIMIT": "1000000",
        "Q_SYNC": "false",
        "LOG_LEVEL": "INFO",
        "SECRET_KEY": django_settings.SECRET_KEY,
        "FIELD_ENCRYPTION_KEY": django_settings.FIELD_ENCRYPTION_KEY,
    }
    logs = [tmp_path / f"qcluster-{n}.log" for n in (1, 2)]
    processes = []
    for path in logs:
        processes.append(
            subprocess.Popen(
                [sys.executable, "manage.py", "qcluster"],
                cwd=BASE_DIR,
                env=env,
                stdout=path.open("w"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
    try:
        yield logs
    finally:
        # The cluster's main process stops its own children in order; a signal to the whole
        # group would kill the children under it and leave it waiting for them.
        for process in processes:
            os.kill(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def tasks_run(log: Path) -> Counter:
    """The tasks a cluster executed, by function, from its own log."""
    return Counter(re.findall(r"processing \S+ '([\w.]+)'", log.read_text()))


def test_two_workers_on_redis_share_the_work_and_apply_nothing_twice(
    sandbox_http, two_clusters, django_user_model
):
    sandbox = sandbox_http
    started = time.monotonic()
    user = django_user_model.objects.create_user("scale", "scale@example.com", "scale-pw-123")
    integration = launched_integration(user, sandbox)
    sales = next(
        p["id"] for p in sandbox.pipedrive.state["pipelines"].values() if p["name"] == "Sales"
    )
    services.add_action(integration, Trigger.EMAIL_SENT, ActionKind.CREATE_DEAL, pipeline_id=sales)
    _wait(
        lambda: (
            any(
                (h["event_object"], h["event_action"]) == ("campaign_email", "sent")
                for h in sandbox.snovio.webhooks()
            )
            and len(sandbox.pipedrive.webhooks()) >= 2
        ),
        90,
        "the workers to subscribe the webhooks after launch",
    )
    subscribed = time.monotonic()
    list_id = next(iter(sandbox.snovio.state["lists"]))
    fired = [
        p["emails"][0]["email"] for p in sandbox.snovio.add_prospects(list_id, EVENTS, "scale")
    ]

    new_people = [f"scale.person{i}@pipedrive.example" for i in range(PERSONS)]
    for i, email in enumerate(new_people):
        sandbox.pipedrive.add_person(name=f"Scale Person {i}", email=email)
        sandbox.snovio.fire_campaign_event("email_sent", fired[i], "Scale campaign")
    for email in fired[PERSONS:]:
        sandbox.snovio.fire_campaign_event("email_sent", email, "Scale campaign")
    assert set(sandbox.deliver.statuses) == {200}, Counter(sandbox.deliver.statuses)
    delivered = time.monotonic()

    def drained() -> bool:
        waiting = PendingChange.objects.filter(
            integration=integration, processed_at__isnull=True
        ).exists()
        runs = AutomationRun.objects.filter(integration=integration)
        return (
            not waiting
            and runs.count() == EVENTS
            and not runs.filter(status=AutomationRun.Status.PENDING).exists()
        )

    _wait(drained, 180, "the two clusters to drain the work")
    drained_at = time.monotonic()
    print(
        f"\nsubscribed in {subscribed - started:.1f} s, {len(sandbox.deliver.statuses)} "
        f"deliveries in {delivered - subscribed:.1f} s, then {drained_at - delivered:.1f} s"
    )

    # No change applied twice: one Snov.io prospect per new Pipedrive person, created once.
    for email in new_people:
        prospects = [
            p
            for p in sandbox.snovio.state["prospects"].values()
            if any(e["email"].lower() == email for e in p.get("emails") or [])
        ]
        assert len(prospects) == 1, (email, len(prospects))
        created = SyncEvent.objects.filter(integration=integration, email=email, outcome="created")
        assert created.count() == 1, (email, list(created.values("outcome", "reason")))
    # No automation run twice: one run and one deal per campaign email.
    runs = AutomationRun.objects.filter(integration=integration)
    assert sorted(runs.values_list("email", flat=True)) == sorted(fired)
    assert set(runs.values_list("status", flat=True)) == {AutomationRun.Status.DONE}
    deals_by_person = Counter(d["person_id"] for d in sandbox.pipedrive.deals())
    for email in fired:
        (person,) = sandbox.pipedrive.persons(email)
        assert deals_by_person[person["id"]] == 1, (email, deals_by_person[person["id"]])

    # /healthz sees both clusters' heartbeats in Redis.
    health = Client().get("/healthz")
    assert health.status_code == 200, health.json()
    assert health.json()["checks"]["worker"] == "ok: 2 cluster(s)"

    # Both clusters were busy: each executed sync or automation tasks.
    work = [tasks_run(log) for log in two_clusters]
    print(f"\ntasks per cluster: {[dict(w) for w in work]}")
    for n, done in enumerate(work, start=1):
        ours = sum(c for f, c in done.items() if f.startswith(("integrations.", "automations.")))
        assert ours > 0, f"cluster {n} executed no task: {dict(done)}"
