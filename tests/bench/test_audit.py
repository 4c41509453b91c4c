"""Benchmark: issue 10's target rows that the transfer, intake and automation benches do not
cover, measured with the current code (the audit of 2026-11-30).

Not part of `make test`; `make bench` runs it. In-process sandbox (`responses`), limits off:
the counts are exact, the timings are this machine's under whatever load it has (the load
average is stored next to each). Each test adds its rows to BENCH_AUDIT_OUT
(test-artifacts/bench-audit.json) and prints them.

- `EmailIndex.replace` at 10,000 and 100,000 records (target O(1));
- the real-time queue's query for waiting changes as processed rows grow from 1,000 to
  100,000 (target flat, an index), with PostgreSQL's plan;
- one scheduled catch-up cycle at 10,000 and 100,000 linked prospects: Snov.io requests by
  path (target <= 60 every 5 minutes, all of them counted), time, Python heap peak, SQL
  statements;
- a transfer run again after 1% of the sending side changed, with the receiving side the same
  size or 100,000 records (target <= 1.1 calls per changed record plus the listing);
- the counts a transfer keeps: read once per slice (the aggregate over the run's events), one
  UPDATE per page.

Knobs (environment): BENCH_AUDIT_SIZES (10000,100000), BENCH_AUDIT_TRANSFER (2000),
BENCH_AUDIT_OUT.
"""

from __future__ import annotations

import json
import os
import statistics
import time
import tracemalloc
from collections import Counter
from pathlib import Path

import pytest
from django.db import connection
from django.db.models import Count
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from integrations import tasks
from integrations.models import Integration, PendingChange, SyncEvent, SyncRun
from integrations.sync import catchup, queue, realtime
from integrations.sync.matching import EmailIndex
from integrations.sync.runs import create_run
from integrations.sync.transfer import transfer
from tests.factories import connected_integration, fast_limits  # noqa: F401
from tests.integrations.test_catch_up_budget import linked_two_way, start_campaigns

SIZES = [int(n) for n in os.environ.get("BENCH_AUDIT_SIZES", "10000,100000").split(",") if n]
TRANSFER = int(os.environ.get("BENCH_AUDIT_TRANSFER", 2000))
OUT = Path(os.environ.get("BENCH_AUDIT_OUT", "test-artifacts/bench-audit.json"))

pytestmark = pytest.mark.usefixtures("fast_limits")
# Reading a whole side: the lists, their pages, Pipedrive's persons (Snov.io lists by POST).
LISTING_PATHS = {"/v1/get-user-lists", "/v1/prospect-list", "/api/v2/persons"}
DETAIL_PATHS = {"/v1/get-prospect-by-id"}  # a prospect's profile: fields its row lacks


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def report(name: str, figures: dict) -> None:
    """Print the figures and keep them under `name` in the JSON file (other rows are kept)."""
    rows = json.loads(OUT.read_text()) if OUT.exists() else {}
    rows[name] = figures
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(rows, indent=2, default=str))
    print(f"\n{name}: {json.dumps(figures, default=str)}")


def median_ms(action, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 4)


def test_email_index_replace_costs_the_same_at_100000_records_as_at_10000():
    figures = {"load_before": load()}
    for size in SIZES:
        records = [{"id": n, "email": f"p{n}@x.example"} for n in range(size)]
        index = EmailIndex.build(records, lambda r: [r["email"]])
        current = {n: r for n, r in enumerate(records)}

        def replace_some(index=index, current=current, size=size):
            for n in range(0, size, max(1, size // 1000)):
                new = {**current[n], "name": "changed"}
                index.replace(current[n], new)
                current[n] = new

        figures[f"ms_per_1000_replaces_at_{size}"] = median_ms(replace_some, 5)
    figures["load_after"] = load()
    report("email_index_replace", figures)
    small, big = (figures[f"ms_per_1000_replaces_at_{s}"] for s in (SIZES[0], SIZES[-1]))
    assert big < small * 3  # O(1): not ten times more at ten times the size


@pytest.mark.django_db
def test_the_queue_query_for_waiting_changes_stays_flat_as_processed_rows_grow(user):
    integration = Integration.objects.create(owner=user, status=Integration.Status.ACTIVE)
    figures: dict = {"load_before": load()}
    made = 0
    now = timezone.now()
    for size in [1000, *SIZES]:
        PendingChange.objects.bulk_create(
            [
                PendingChange(
                    integration=integration,
                    source=PendingChange.Source.CATCH_UP,
                    kind="prospect.change",
                    dedupe_key=f"done-{n}",
                    record_key=f"snovio:{n}",
                    processed_at=now,
                    outcome="applied",
                )
                for n in range(made, size)
            ],
            batch_size=5000,
        )
        made = size
        for n in range(10):
            queue.store_change(
                integration, PendingChange.Source.CATCH_UP, "prospect.change", f"w{size}-{n}", {}
            )
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE integrations_pendingchange")
        figures[f"ms_per_query_at_{size}_processed"] = median_ms(
            lambda: list(queue.waiting(integration.pk)[: realtime.BATCH]), 50
        )
        PendingChange.objects.filter(processed_at=None).update(processed_at=now)
    if connection.vendor == "postgresql":
        plan = queue.waiting(integration.pk)[: realtime.BATCH].explain()
        figures["plan_at_largest"] = plan.splitlines()
    figures["load_after"] = load()
    report("queue_waiting_query", figures)
    assert figures[f"ms_per_query_at_{SIZES[-1]}_processed"] < 10 * max(
        figures["ms_per_query_at_1000_processed"], 1.0
    )


@pytest.mark.django_db
@pytest.mark.parametrize("prospects", SIZES)
def test_one_catch_up_cycle_at_scale(user, empty_sandbox, prospects):
    box = empty_sandbox
    integration = linked_two_way(user, box, prospects)
    start_campaigns(box, 8)
    tasks.catch_up(integration.pk)  # subscribes: the cycles after it are the idle ones
    cycles = []
    for _ in range(2):
        mark = len(box.request_log)
        tracemalloc.start()
        started = time.monotonic()
        with CaptureQueriesContext(connection) as queries:
            tasks.catch_up(integration.pk)
        seconds = time.monotonic() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        paths = Counter(r[2] for r in box.request_log[mark:] if r[0] == "snovio")
        paths = {p: n for p, n in paths.items() if "oauth" not in p}
        cycles.append(
            {
                "snovio_requests": sum(paths.values()),
                "by_path": paths,
                "seconds": round(seconds, 2),
                "python_heap_peak_mib": round(peak / 2**20, 1),
                "sql_statements": len(queries),
                "load": load(),
            }
        )
    fresh = catchup.freshness(Integration.objects.get(pk=integration.pk))
    figures = {
        "linked": prospects,
        "budget_per_cycle": catchup.snovio_calls_per_cycle(),
        "cycles": cycles,
        "pages": fresh.pages,
        "pages_per_cycle": fresh.pages_per_cycle,
        "list_rows_rechecked_within_minutes": fresh.minutes,
        "profiles_per_cycle": fresh.profiles_per_cycle,
        "profiles_rechecked_within_hours": fresh.profile_hours,
    }
    report(f"catch_up_cycle_{prospects}_linked", figures)
    assert all(c["snovio_requests"] <= catchup.snovio_calls_per_cycle() for c in cycles)


def change_one_percent(box, direction: str, count: int) -> int:
    changed = max(1, count // 100)
    if direction == SyncRun.Direction.TO_PIPEDRIVE:
        sent = [p for p in box.snovio.prospects() if "bench" in p["emails"][0]["email"]]
        for prospect in sent[:changed]:
            box.snovio.update_prospect(prospect["id"], first_name="Changed")
    else:
        sent = [p for p in box.pipedrive.persons() if "bench" in p["emails"][0]["value"]]
        for person in sent[:changed]:
            box.pipedrive.change_person(person["id"], name="Changed Person")
    return changed


def fill_receiving_side(box, direction: str, others: int) -> None:
    """`others` records on the receiving side that match nothing sent (listed, indexed)."""
    if not others:
        return
    with box.lock:
        if direction == SyncRun.Direction.TO_PIPEDRIVE:
            for n in range(others):
                box.pipedrive._insert_person(
                    {"name": f"Other {n}", "emails": [{"value": f"o{n}@o.example"}]},
                    box.pipedrive._admin_id(),
                )
        else:
            box.snovio.create_list("Others")
            box.snovio.add_prospects("Others", others, prefix="other")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("others", [0, 100_000])
@pytest.mark.parametrize("direction", [SyncRun.Direction.TO_PIPEDRIVE, SyncRun.Direction.TO_SNOVIO])
def test_a_transfer_run_again_after_one_percent_changed(user, empty_sandbox, direction, others):
    box = empty_sandbox
    if direction == SyncRun.Direction.TO_PIPEDRIVE:
        box.snovio.create_list("Bench")
        with box.lock:
            box.snovio.add_prospects("Bench", TRANSFER, prefix="bench")
    else:
        with box.lock:
            for n in range(TRANSFER):
                box.pipedrive._insert_person(
                    {"name": f"Bench {n}", "emails": [{"value": f"bench{n}@b.example"}]},
                    box.pipedrive._admin_id(),
                )
        box.snovio.create_list("Target")
    fill_receiving_side(box, direction, others)
    integration = connected_integration(user, box, catalog=True)
    if direction == SyncRun.Direction.TO_SNOVIO:  # the bench list is the only one sent
        target = [x for x in box.snovio.state["lists"].values() if x["name"] == "Target"][0]
        integration.target_list_id = str(target["id"])
        integration.save()
    first = transfer(create_run(integration, direction, None))
    assert first.status == SyncRun.Status.DONE, first.error
    Integration.objects.filter(pk=integration.pk).update(status=Integration.Status.ACTIVE)

    changed = change_one_percent(box, direction, TRANSFER)
    mark = len(box.request_log)
    started = time.monotonic()
    second = transfer(create_run(Integration.objects.get(pk=integration.pk), direction, None))
    seconds = time.monotonic() - started
    assert second.status == SyncRun.Status.DONE, second.error
    calls = Counter((r[0], r[1], r[2]) for r in box.request_log[mark:] if "oauth" not in r[2])
    listing = sum(n for (_, _, path), n in calls.items() if path in LISTING_PATHS)
    by_id_reads = sum(n for (_, _, path), n in calls.items() if path in DETAIL_PATHS)
    writes = sum(calls.values()) - listing - by_id_reads
    figures = {
        "sent": TRANSFER,
        "receiving_side_others": others,
        "changed": changed,
        "updated": second.updated,
        "unchanged": second.unchanged,
        "listing_calls": listing,
        "reads_by_id": by_id_reads,
        "writes": writes,
        "calls_per_changed_record_beyond_listing": round((by_id_reads + writes) / changed, 3),
        "calls": {" ".join(k): n for k, n in calls.items()},
        "seconds": round(seconds, 1),
        "load": load(),
    }
    report(f"one_percent_changed_{direction}_{others}_others", figures)
    assert second.updated == changed


@pytest.mark.django_db
def test_a_transfer_reads_its_counts_once_per_slice_and_writes_one_row_per_page(user):
    """The aggregate a slice starts with, at 10,000 and 100,000 events of the run; per page the
    counts are kept in memory and saved with the run (no recount)."""
    integration = Integration.objects.create(owner=user, status=Integration.Status.ACTIVE)
    run = SyncRun.objects.create(integration=integration, direction=SyncRun.Direction.TO_SNOVIO)
    figures: dict = {"load_before": load()}
    made = 0
    for size in SIZES:
        SyncEvent.objects.bulk_create(
            [
                SyncEvent(integration=integration, run=run, outcome="created", email=f"e{n}@x")
                for n in range(made, size)
            ],
            batch_size=5000,
        )
        made = size
        figures[f"ms_once_per_slice_at_{size}_events"] = median_ms(
            lambda: dict(run.events.values_list("outcome").annotate(n=Count("id")).order_by()),
            5,
        )
        with CaptureQueriesContext(connection) as queries:
            run.save(update_fields=["created", "done"])
        figures[f"sql_per_page_at_{size}_events"] = len(queries)
    figures["load_after"] = load()
    report("transfer_counts", figures)
