"""Benchmark: a backlog of 1,000 held real-time changes drained at the remotes' default limits.

Not part of `make test`; `make bench` runs it and prints the figures. The sandbox is a real
HTTP server in a thread with Pipedrive's default burst limit (80 requests per 2 s, Lite) and
Snov.io's 60 requests per minute enforced (429 beyond them), and the client limiters at their
defaults. 1,000 linked contacts are edited in Snov.io while the integration is Paused; one
catch-up finds them; on resume one drain applies them. Printed: changes per second, API calls
per change (each remote), the share of each remote's ceiling the drain used, and 429s.

Knobs (environment): BENCH_CHANGES (1000).
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from http.server import ThreadingHTTPServer

import pytest

from integrations import lifecycle
from integrations.models import Integration, PendingChange
from integrations.sync import catchup, realtime
from tests.factories import connected_integration

CHANGES = int(os.environ.get("BENCH_CHANGES", 1000))
PIPEDRIVE_LIMIT, PIPEDRIVE_PERIOD = 80, 2.0  # Lite plan, OAuth: 80 requests per 2 s
SNOVIO_LIMIT, SNOVIO_PERIOD = 60, 60.0  # 60 requests per minute


@pytest.fixture
def sandbox_http(settings):
    from integrations.sandbox.core import Sandbox, remote_settings
    from integrations.sandbox.server import make_handler

    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(Sandbox(seed=False)))
    server.daemon_threads = True
    url = f"http://127.0.0.1:{server.server_address[1]}"
    sandbox = Sandbox(public_url=url, seed=False)
    sandbox.deliver = lambda url, headers, body: 200  # no webhooks registered here
    sandbox.statuses = Counter()
    answer = sandbox.handle

    def counted(remote, request):
        response = answer(remote, request)
        sandbox.statuses[(remote, response.status)] += 1
        return response

    sandbox.handle = counted
    server.RequestHandlerClass = make_handler(sandbox)
    for name, value in remote_settings(url).items():
        setattr(settings, name, value)
    settings.PIPEDRIVE_BURST_LIMIT = PIPEDRIVE_LIMIT
    settings.SNOVIO_RATE_LIMIT = SNOVIO_LIMIT
    thread = threading.Thread(target=server.serve_forever, name="sandbox", daemon=True)
    thread.start()
    try:
        yield sandbox
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def calls(sandbox, since: int) -> Counter:
    return Counter(entry[0] for entry in sandbox.request_log[since:])


@pytest.mark.django_db(transaction=True)
def test_a_backlog_of_held_changes_drains_at_the_remote_limits(user, sandbox_http):
    box = box_with_linked_contacts(sandbox_http, CHANGES)
    integration = connected_integration(user, box, catalog=False)
    realtime.drain(integration.pk)  # records the baseline: every contact is linked
    box.set_rate_limit("pipedrive", PIPEDRIVE_LIMIT, PIPEDRIVE_PERIOD)
    box.set_rate_limit("snovio", SNOVIO_LIMIT, SNOVIO_PERIOD)

    lifecycle.set_status(integration, Integration.Status.PAUSED, None, "bench")
    for n, prospect in enumerate(list(box.snovio.state["prospects"].values())[:CHANGES]):
        box.snovio.update_prospect(prospect["id"], position=f"Bench title {n}")
    mark = len(box.request_log)
    started = time.monotonic()
    found = catchup.catch_up(Integration.objects.get(pk=integration.pk))
    catch_up_seconds = time.monotonic() - started
    catch_up_calls = calls(box, mark)
    assert found == CHANGES

    lifecycle.set_status(integration, Integration.Status.ACTIVE, None, "bench")
    mark = len(box.request_log)
    started = time.monotonic()
    applied = realtime.drain(integration.pk)
    seconds = time.monotonic() - started
    used = calls(box, mark)
    refused = sum(n for (_, status), n in box.statuses.items() if status == 429)

    titles = {p["job_title"] for p in box.pipedrive.persons()}
    assert applied == CHANGES
    assert {f"Bench title {n}" for n in range(CHANGES)} <= titles
    assert not PendingChange.objects.filter(processed_at=None).exists()
    pipedrive_ceiling = PIPEDRIVE_LIMIT / PIPEDRIVE_PERIOD * seconds
    snovio_ceiling = SNOVIO_LIMIT / SNOVIO_PERIOD * seconds
    print(
        f"\ncatch-up: {found} changes found in {catch_up_seconds:.1f} s with "
        f"{catch_up_calls['pipedrive']} Pipedrive and {catch_up_calls['snovio']} Snov.io calls"
        f"\ndrain: {applied} changes in {seconds:.1f} s = {applied / seconds:.1f} changes/s"
        f"\n  calls per change: {(used['pipedrive'] + used['snovio']) / applied:.3f} "
        f"(Pipedrive {used['pipedrive'] / applied:.3f}, Snov.io {used['snovio'] / applied:.3f})"
        f"\n  share of the ceiling used: Pipedrive {used['pipedrive'] / pipedrive_ceiling:.0%} "
        f"of {PIPEDRIVE_LIMIT}/{PIPEDRIVE_PERIOD:.0f}s, Snov.io "
        f"{used['snovio'] / snovio_ceiling:.0%} of {SNOVIO_LIMIT}/min"
        f"\n  answered 429: {refused}"
    )


def box_with_linked_contacts(box, count: int):
    """`count` contacts, the same in both apps (a prospect in one list, a person)."""
    box.snovio.create_list("Leads")
    for n in range(count):
        email = f"bench{n}@bench.example"
        box.snovio.add_prospect("Leads", email=email, first_name=f"Pat{n}", last_name="Bench")
    with box.lock:
        for n in range(count):
            box.pipedrive._insert_person(
                {
                    "name": f"Pat{n} Bench",
                    "emails": [{"value": f"bench{n}@bench.example", "primary": True}],
                },
                box.pipedrive._admin_id(),
            )
    return box
