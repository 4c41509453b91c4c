"""Benchmark: Snov.io campaign event -> Pipedrive action latency at 20 events/s.

Not part of `make test` (pytest ignores tests/bench); `make bench` runs it and prints the
figures. The set-up is the production one, on one machine:

- the database is a SQLite file (or the PostgreSQL test database when DATABASE_URL is set),
  shared by this process and the worker;
- the app is Django's live server (the Snov.io webhook endpoint the sync engine subscribes at
  launch), the sandbox is a real HTTP server in a thread, delivering webhooks asynchronously
  as the real services do;
- the work runs in a real `manage.py qcluster` process on the embedded ORM broker.

"Campaign email sent" events for ~10 s (each for a different prospect), with the seed's example
chain: create a deal -> move it to a stage -> add an activity, in two cases:

- `linked`, 20 events/s: the campaign's prospects are linked to Pipedrive persons already (a
  campaign over a synced list after the transfer), so each run reaches its person by id;
- `new`, 4.5 events/s: prospects nobody transferred, so each run must search Pipedrive for the
  person by email before creating it, and Pipedrive allows 10 searches per 2 s (5/s) on every
  plan: no rate above 5 new contacts per second can keep up, whatever SyncBridge does.
 For every event
it measures, from the delivery reaching the app (`AutomationRun.received_at`) and from the
moment the sandbox fired it:
- to the deal's creation (the sandbox's clock when it answered POST /api/v2/deals), and
- to the end of the chain (the last `ActionOutcome.at`),
then prints p50 / p95 / p99 / max, the sustained throughput (chains completed per second from
the first to the last: below the offered rate means a queue built up), the remote calls per
event and the CPU each side spent per event. It stops by itself: a bounded number of events,
a bounded wait for the queue to drain, loopback only.

Knobs (environment): BENCH_CONTACTS (both cases; `linked` or `new` for one), BENCH_RATE (the
case's rate), BENCH_SECONDS (10), BENCH_WORKERS (the settings' worker
count), BENCH_DRAIN_SECONDS (120), BENCH_DIRECTION (two_way), BENCH_PIPEDRIVE_BURST (480),
BENCH_SQLITE_WAL=1 (switch the SQLite file to WAL first, when the settings do not; the journal
mode in use is printed).
"""

from __future__ import annotations

import os
import re
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection

from automations import services
from automations.models import ActionKind, ActionOutcome, AutomationRun, Trigger
from integrations.models import RecordLink
from integrations.sandbox.core import remote_settings
from integrations.sync.matching import normalise_email
from tests.factories import launched_integration

# Events per second for each case; 4.5 new contacts/s stays under Pipedrive's 5 searches/s.
CASES = {"linked": 20.0, "new": 4.5}
if os.environ.get("BENCH_CONTACTS"):
    CASES = {os.environ["BENCH_CONTACTS"]: CASES[os.environ["BENCH_CONTACTS"]]}
if os.environ.get("BENCH_RATE"):
    CASES = {case: float(os.environ["BENCH_RATE"]) for case in CASES}
SECONDS = float(os.environ.get("BENCH_SECONDS", 10))
WORKERS = int(os.environ.get("BENCH_WORKERS", django_settings.Q_CLUSTER["workers"]))
DRAIN_SECONDS = float(os.environ.get("BENCH_DRAIN_SECONDS", 120))
BURST = int(os.environ.get("BENCH_PIPEDRIVE_BURST", 480))  # Pipedrive Ultimate: 480 / 2 s
DIRECTION = os.environ.get("BENCH_DIRECTION", "two_way")
BASE_DIR = Path(django_settings.BASE_DIR)


@pytest.fixture(scope="session")
def django_db_modify_db_settings(tmp_path_factory):
    """Put the SQLite test database in a file, so the worker process can share it."""
    db = django_settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        path = tmp_path_factory.mktemp("bench-db") / "bench.sqlite3"
        db.setdefault("TEST", {})["NAME"] = str(path)


def _database_url() -> str:
    settings_dict = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings_dict['NAME']}"
    user = settings_dict.get("USER") or ""
    password = f":{settings_dict['PASSWORD']}" if settings_dict.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    host = settings_dict.get("HOST") or ""
    port = f":{settings_dict['PORT']}" if settings_dict.get("PORT") else ""
    return f"postgres://{auth}{host}{port}/{settings_dict['NAME']}"


class AsyncDeliveries:
    """Webhooks leave the sandbox in the background, as the real services send them."""

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="deliver")
        self.results: list[tuple[str, int | str]] = []

    def __call__(self, url: str, headers: dict, body: bytes) -> int:
        self.pool.submit(self._post, url, headers, body)
        return 202

    def _post(self, url: str, headers: dict, body: bytes) -> None:
        import requests

        try:
            status: int | str = requests.post(
                url, data=body, headers=headers, timeout=30
            ).status_code
        except requests.RequestException as exc:
            status = f"{exc.__class__.__name__}: {exc}"
        self.results.append((url, status))


@pytest.fixture
def sandbox_http(settings, live_server):
    """The seeded sandbox over HTTP in a thread; the app and the worker point at it."""
    from integrations.sandbox.core import Sandbox
    from integrations.sandbox.server import serve_in_thread

    def build(url: str) -> Sandbox:
        sandbox = Sandbox(public_url=url, seed=True)
        sandbox.deliver = AsyncDeliveries()
        return sandbox

    with serve_in_thread(build) as sandbox:
        for name, value in remote_settings(sandbox.url).items():
            setattr(settings, name, value)
        settings.PUBLIC_URL = live_server.url
        settings.PIPEDRIVE_BURST_LIMIT = BURST
        try:
            yield sandbox
        finally:
            sandbox.deliver.pool.shutdown(wait=False, cancel_futures=True)


@pytest.fixture
def qcluster(sandbox_http, live_server, tmp_path):
    """A real django-q2 cluster (ORM broker) in its own process, on the shared database."""
    from django_q.tasks import async_task, result

    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        **remote_settings(sandbox_http.url),
        "PUBLIC_URL": live_server.url,
        "PIPEDRIVE_BURST_LIMIT": str(BURST),
        "Q_WORKERS": str(WORKERS),
        "Q_SYNC": "false",
        "REDIS_URL": "",
        "LOG_LEVEL": "WARNING",
        "SECRET_KEY": django_settings.SECRET_KEY,
        "FIELD_ENCRYPTION_KEY": django_settings.FIELD_ENCRYPTION_KEY,
    }
    if os.environ.get("BENCH_SQLITE_WAL") and connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode=WAL")
    log = (tmp_path / "qcluster.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"],
        cwd=BASE_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        started = time.monotonic()
        probe = async_task("math.sqrt", 16)
        assert result(probe, wait=60_000) == 4.0, "the worker did not start"
        print(f"\nqcluster ready in {time.monotonic() - started:.2f} s (pid {process.pid})")
        yield process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        log.close()
        tail = (tmp_path / "qcluster.log").read_text()[-3000:]
        if "Traceback" in tail:
            print("--- qcluster log (tail) ---\n" + tail)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def report(label: str, values: list[float]) -> str:
    return (
        f"{label:<44} p50 {percentile(values, 50) * 1000:7.0f} ms   "
        f"p95 {percentile(values, 95) * 1000:7.0f} ms   p99 {percentile(values, 99) * 1000:7.0f} ms"
        f"   max {max(values) * 1000:7.0f} ms   mean {statistics.mean(values) * 1000:6.0f} ms"
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("contacts", list(CASES))
def test_event_to_pipedrive_action_latency(
    contacts, sandbox_http, qcluster, live_server, django_user_model
):
    rate = CASES[contacts]
    sandbox = sandbox_http
    user = django_user_model.objects.create_user("bench", "bench@example.com", "bench-pw-123")
    integration = launched_integration(user, sandbox, DIRECTION)
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

    # The worker subscribes the Snov.io webhooks after launch: fire once they exist.
    deadline = time.time() + 60
    while not any(
        (h["event_object"], h["event_action"]) == ("campaign_email", "sent")
        for h in sandbox.snovio.webhooks()
    ):
        assert time.time() < deadline, "the Snov.io webhooks were never subscribed"
        time.sleep(0.2)

    total = int(rate * SECONDS)
    list_id = next(iter(sandbox.snovio.state["lists"]))
    prospects = sandbox.snovio.add_prospects(list_id, total, "bench")
    emails = [p["emails"][0]["email"] for p in prospects]
    if contacts == "linked":
        link_to_new_persons(integration, sandbox, prospects)

    # When the sandbox answers POST /api/v2/deals, by deal id (the sandbox's own clock).
    deal_created: dict[int, float] = {}
    original_handle = sandbox.pipedrive.handle

    def timed_handle(request):
        response = original_handle(request)
        if request.method == "POST" and request.path == "/api/v2/deals" and response.status == 200:
            deal_created[response.body["data"]["id"]] = time.time()
        return response

    sandbox.pipedrive.handle = timed_handle

    # Every API request the sandbox answers while the events run, by remote, method and path.
    remote_calls: Counter[str] = Counter()
    original_dispatch = sandbox.handle

    def counted_dispatch(remote, request):
        path = re.sub(r"/\d+", "/{id}", request.path)
        remote_calls[f"{remote} {request.method} {path}"] += 1
        return original_dispatch(remote, request)

    sandbox.handle = counted_dispatch

    fired: dict[str, float] = {}
    errors: list[str] = []

    def fire(email: str) -> None:
        fired[email] = time.time()
        try:
            sandbox.snovio.fire_campaign_event("email_sent", email, "Benchmark campaign")
        except Exception as exc:  # reported below, never hidden
            errors.append(f"{email}: {exc}")

    database = connection.vendor
    if database == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode")
            database += f" (journal mode {cursor.fetchone()[0]})"
    setup = (
        f"{contacts} contacts, {WORKERS} workers, database {database}, "
        f"Pipedrive burst limit {BURST} per 2 s, "
        f"direction {DIRECTION}, {os.cpu_count()} CPUs"
    )
    print(f"firing {total} events at {rate:g}/s for {SECONDS:g} s; {setup}")
    app_cpu_start = time.process_time()
    worker_cpu_start = cpu_seconds(qcluster.pid)
    machine_cpu_start = machine_busy_seconds()
    sessions_start = database_sessions()
    start = time.time()
    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="fire") as pool:
        for i, email in enumerate(emails):
            delay = start + i / rate - time.time()
            if delay > 0:
                time.sleep(delay)
            pool.submit(fire, email)
    fired_in = time.time() - start
    assert not errors, errors[:5]

    deadline = time.time() + DRAIN_SECONDS
    while time.time() < deadline:
        done = (
            AutomationRun.objects.filter(integration=integration)
            .exclude(status=AutomationRun.Status.PENDING)
            .count()
        )
        if done >= total:
            break
        time.sleep(0.5)
    drained_in = time.time() - start

    runs = list(AutomationRun.objects.filter(integration=integration).prefetch_related("outcomes"))
    failed = [r for r in sandbox.deliver.results if r[1] != 200]
    assert not failed, f"{len(failed)} webhook deliveries failed, e.g. {failed[:3]}"
    assert len(runs) == total, f"{len(runs)} runs stored for {total} events"
    statuses = {s: sum(1 for r in runs if r.status == s) for s in AutomationRun.Status.values}
    assert statuses[AutomationRun.Status.DONE] == total, statuses

    to_deal, to_done, fire_to_deal, fire_to_done, queue, done_at = [], [], [], [], [], []
    for run in runs:
        outcomes = sorted(run.outcomes.all(), key=lambda o: o.position)
        received = run.received_at.timestamp()
        deal_id = outcomes[0].pipedrive_objects["deal"]["id"]
        finished = max(o.at for o in outcomes).timestamp()
        created = deal_created[deal_id]
        to_deal.append(created - received)
        to_done.append(finished - received)
        fire_to_deal.append(created - fired[run.email])
        fire_to_done.append(finished - fired[run.email])
        queue.append(received - fired[run.email])
        done_at.append(finished)
    assert len({r.outcomes.all()[0].pipedrive_objects["deal"]["id"] for r in runs}) == total
    assert (
        sum(
            1
            for o in ActionOutcome.objects.filter(run__integration=integration)
            if o.outcome == "done"
        )
        == 3 * total
    )

    app_cpu = time.process_time() - app_cpu_start
    worker_cpu = cpu_seconds(qcluster.pid) - worker_cpu_start
    machine_cpu = machine_busy_seconds() - machine_cpu_start
    sessions = database_sessions() - sessions_start
    # Chains completed per second, first to last: the offered rate when the pipeline keeps
    # up, the service rate when a queue builds.
    throughput = (total - 1) / (max(done_at) - min(done_at))
    offered = total / fired_in

    print(f"fired {total} events in {fired_in:.1f} s; all done {drained_in:.1f} s after the first")
    print(report("delivery received -> deal created", to_deal))
    print(report("delivery received -> chain done (3 actions)", to_done))
    print(report("sandbox fired -> delivery received", queue))
    print(report("sandbox fired -> deal created", fire_to_deal))
    print(report("sandbox fired -> chain done (3 actions)", fire_to_done))
    print("remote calls per event: " + _per_event(remote_calls, total))
    hooks = Counter(url.rsplit("/", 3)[-3] for url, _ in sandbox.deliver.results)
    print("webhook deliveries per event: " + _per_event(hooks, total))
    _print_tasks()
    if connection.vendor == "postgresql":
        print(f"PostgreSQL sessions opened per event (all processes): {sessions / total:.1f}")
    print(
        f"CPU per event: app + sandbox process {app_cpu / total * 1000:.0f} ms, "
        f"worker processes {worker_cpu / total * 1000:.0f} ms; the whole machine (database "
        f"server and anything else running included) {machine_cpu / total * 1000:.0f} ms "
        f"(load average {os.getloadavg()[0]:.1f})"
    )
    keeps_up = "keeps up" if throughput >= 0.95 * offered else "falls behind: a queue builds"
    print(
        f"\n=== RESULT: {total} events at {offered:.1f}/s offered; {setup}\n"
        f"=== delivery received -> chain done: p50 {percentile(to_done, 50) * 1000:.0f} ms, "
        f"p99 {percentile(to_done, 99) * 1000:.0f} ms\n"
        f"=== sustained throughput {throughput:.1f} events/s ({keeps_up})"
    )


def link_to_new_persons(integration, sandbox, prospects: list[dict]) -> None:
    """Each prospect gets a Pipedrive person and a link, as a transfer would have left them."""
    links = []
    for prospect in prospects:
        email = prospect["emails"][0]["email"]
        (person_id,) = sandbox.pipedrive.add_persons(1, name=prospect["name"], email=email)
        links.append(
            RecordLink(
                integration=integration,
                email=normalise_email(email),
                snovio_prospect_id=str(prospect["id"]),
                pipedrive_person_id=person_id,
            )
        )
    RecordLink.objects.bulk_create(links)


def _per_event(counts: Counter, total: int) -> str:
    return ", ".join(f"{key} {n / total:.2f}" for key, n in counts.most_common()) or "none"


def _print_tasks() -> None:
    from django_q.models import Task

    funcs = Counter(
        f"{func}{'' if success else ' (failed)'}"
        for func, success in Task.objects.values_list("func", "success")
    )
    print(
        "tasks saved by the worker: "
        + ", ".join(f"{f} x{n}" for f, n in sorted(funcs.items()))
        + " (automation tasks are saved only when they fail; their record is the AutomationRun)"
    )


def database_sessions() -> int:
    """PostgreSQL: sessions (connections) opened on the test database so far; 0 elsewhere."""
    if connection.vendor != "postgresql":
        return 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_force_next_flush()")
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        return int(cursor.fetchone()[0])


def machine_busy_seconds() -> float:
    """CPU time every CPU of the machine spent busy (not idle or waiting for I/O) so far."""
    # user nice system idle iowait irq softirq (then steal, guest: not this machine's work)
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pgid: int) -> float:
    """User + system CPU time of every live process in a process group (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # field 5 of stat: the process group
            total += (int(fields[11]) + int(fields[12])) / tick
    return total
