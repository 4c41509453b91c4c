"""What every exactly-once test ends with, and a way to start calls at the same moment."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from django.db import connection
from django.db.models import Count

from integrations.models import Integration, SyncRun
from integrations.pipedrive.client import PipedriveClient
from integrations.snovio.client import SnovioClient
from integrations.sync import mapping


def duplicated_emails(integration: Integration) -> dict[str, int]:
    """Emails held by more than one person in Pipedrive, or by more than one prospect."""
    persons = PipedriveClient.for_connection(integration.pipedrive).iter_persons()
    in_pipedrive = Counter(e for p in persons for e in set(mapping.person_emails(p)))
    snovio = SnovioClient.for_connection(integration.snovio)
    prospects: dict[str, dict] = {}
    for lst in snovio.get_user_lists():
        for prospect in snovio.iter_prospects(lst["id"]):
            prospects.setdefault(str(prospect["id"]), prospect)
    in_snovio = Counter(e for p in prospects.values() for e in set(mapping.prospect_emails(p)))
    return {
        f"{side}: {email}": n
        for side, seen in (("Pipedrive", in_pipedrive), ("Snov.io", in_snovio))
        for email, n in seen.items()
        if n > 1
    }


def records_with_two_events(run: SyncRun) -> list[str]:
    repeated = run.events.values("record_id").annotate(n=Count("id")).filter(n__gt=1)
    return [row["record_id"] for row in repeated]


def assert_transferred_exactly_once(integration: Integration, run: SyncRun) -> None:
    run.refresh_from_db()
    assert run.status == SyncRun.Status.DONE, run.error
    assert records_with_two_events(run) == []
    assert run.events.count() == run.total == run.done
    assert duplicated_emails(integration) == {}
    integration.refresh_from_db()
    assert integration.status == Integration.Status.ACTIVE


def at_once(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls in threads released together; their results (or exceptions), in order."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def work(position: int, call: Callable[[], Any]) -> None:
        try:
            barrier.wait()
            results[position] = call()
        except Exception as exc:  # handed to the test, which says what it expected
            results[position] = exc
        finally:
            connection.close()  # each thread has its own connection

    threads = [threading.Thread(target=work, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    return results


def sent_records_missing(integration: Integration, run: SyncRun) -> set[str]:
    """Emails of the sending side that the receiving side does not have after the run."""
    persons = PipedriveClient.for_connection(integration.pipedrive).iter_persons()
    person_emails = {e for p in persons for e in mapping.person_emails(p)}
    snovio = SnovioClient.for_connection(integration.snovio)
    lists = snovio.get_user_lists()
    prospect_emails: set[str] = set()
    for lst in lists:
        for prospect in snovio.iter_prospects(lst["id"]):
            prospect_emails.update(mapping.prospect_emails(prospect))
    if run.direction == SyncRun.Direction.TO_PIPEDRIVE:
        sending = {str(x["id"]) for x in lists if not x.get("isDeleted")}
        sent = {
            mapping.prospect_email(p) for list_id in sending for p in snovio.iter_prospects(list_id)
        }
        return {e for e in sent if e} - person_emails
    sent = {
        mapping.person_email(p)
        for p in PipedriveClient.for_connection(integration.pipedrive).iter_persons()
    }
    return {e for e in sent if e} - prospect_emails
