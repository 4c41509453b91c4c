"""What a transfer writes to the database: one write before each remote write (its intent),
then each page's links and events together, never a write per record after the page."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from integrations.models import SyncRun
from integrations.sync.context import INTENT
from integrations.sync.runs import create_run
from integrations.sync.transfer import transfer
from tests.factories import connected_integration, fast_limits  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_limits")]

WRITE = re.compile(r'^\s*(INSERT INTO|UPDATE|DELETE FROM)\s+"?(\w+)"?', re.IGNORECASE)


def writes_by_table(queries: CaptureQueriesContext) -> Counter:
    found = (WRITE.match(q["sql"]) for q in queries.captured_queries)
    return Counter(f"{m.group(1).split()[0].upper()} {m.group(2)}" for m in found if m)


@pytest.mark.parametrize("direction", [SyncRun.Direction.TO_PIPEDRIVE, SyncRun.Direction.TO_SNOVIO])
def test_a_transfer_writes_once_per_remote_write_and_once_per_page_for_links_and_events(
    user, sandbox, direction
):
    integration = connected_integration(user, sandbox)
    run = create_run(integration, direction)
    pages = []

    with CaptureQueriesContext(connection) as queries:
        transfer(run, page_size=40, after_page=lambda r: pages.append(r.done))

    run.refresh_from_db()
    assert run.status == SyncRun.Status.DONE, run.error
    writes = writes_by_table(queries)
    # Every event of a page in one INSERT, none on its own.
    assert writes["INSERT integrations_syncevent"] == len([p for p in pages if p]) > 1
    assert run.events.count() == run.done
    # Links: one write before each create or update (its intent), then per page at most three
    # statements: DELETE the placeholders the page's contacts replace, INSERT the new links,
    # UPDATE the rest. Contacts without an email (skipped when only contacts with one are
    # sent) are written at once, as before: nothing could find them again after a crash.
    remote_writes = run.created + run.updated
    link_writes = sum(n for kind, n in writes.items() if kind.endswith("_recordlink"))
    assert link_writes <= remote_writes + 2 * run.skipped + 3 * len(pages), writes
    assert remote_writes <= link_writes
    # Nothing of an intent is left once its page was written.
    assert not integration.links.filter(base__has_key=INTENT).exists()
    print(f"\n{direction}: {run.summary()}, {len(pages)} pages, writes {dict(writes)}")
