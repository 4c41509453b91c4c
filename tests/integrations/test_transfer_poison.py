"""One bad record never stops a transfer: it is cleaned or refused with a reason, the rest go."""

from __future__ import annotations

import random

import pytest
from django.db import connection

from integrations import tasks
from integrations.models import ListSelection, SyncRun
from integrations.sync import records, runs
from tests.factories import connected_integration, fast_limits  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_limits")]

DOMAIN = "imported.example"
REFUSED = {
    "nul@": "contains control characters",
    "long@": "is longer than 254 characters",
    "bad@": "is not an email address",
}


def good_lead(k: int) -> dict:
    return {"email": f"lead{k}@{DOMAIN}", "first_name": f"Lead{k}", "last_name": "Import"}


def bad_leads() -> list[tuple[str, dict]]:
    """Ten prospects no database or remote can take as they are, and what each is."""
    leads = []
    for k in range(4):
        leads.append(("nul@", {"email": f"bad{k}\x00@{DOMAIN}", "first_name": f"Nul{k}"}))
    for k in range(3):
        leads.append(("long@", {"email": "x" * 250 + f"{k}@{DOMAIN}", "first_name": f"Long{k}"}))
    for k, email in enumerate(["no-at-sign.example", "two@@imported.example", "sp ace@x"]):
        kind = "bad@" if "@" not in email else "at@"
        leads.append((kind, {"email": email, "first_name": f"Bad{k}"}))
    return leads


def imported_list(sandbox, seed: int = 13) -> tuple[dict, dict[str, str]]:
    """A Snov.io list of 1,000 prospects, ten of them bad, in a seeded order."""
    lst = sandbox.snovio.create_list("Imported leads")
    leads = [("good", good_lead(k)) for k in range(990)] + bad_leads()
    # Some good ones carry values that are cleaned (not refused): they still arrive.
    leads[3][1]["first_name"] = "Le\x00ad3"
    leads[4][1]["position"] = "Head of " + "P" * 400
    leads[5][1]["last_name"] = "Imp\x1bort"
    random.Random(seed).shuffle(leads)
    kinds = {}
    for kind, fields in leads:
        prospect = sandbox.snovio.add_prospect(lst["id"], **fields)
        kinds[str(prospect["id"])] = kind
    return lst, kinds


def test_ten_bad_records_among_a_thousand_are_reported_and_the_other_990_arrive(user, sandbox):
    lst, kinds = imported_list(sandbox)
    integration = connected_integration(user, sandbox, all_lists=False)
    ListSelection.objects.create(integration=integration, list_id=str(lst["id"]))
    run = runs.create_run(integration, SyncRun.Direction.TO_PIPEDRIVE)

    tasks.run_transfer(run.pk)

    run.refresh_from_db()
    assert run.status == SyncRun.Status.DONE, run.error
    assert (run.total, run.done, run.created, run.skipped, run.failed) == (1000, 1000, 990, 10, 0)
    arrived = [p for p in sandbox.pipedrive.persons() if DOMAIN in str(p["emails"])]
    emails = [e["value"] for p in arrived for e in p["emails"]]
    assert len(arrived) == len(set(emails)) == 990
    assert all("\x00" not in p["name"] and "\x1b" not in p["name"] for p in arrived)
    refused = run.events.filter(outcome="skipped")
    assert (
        sorted(kinds[e.record_id] for e in refused)
        == ["at@"] * 2 + ["bad@"] + ["long@"] * 3 + ["nul@"] * 4
    )
    for event in refused:
        assert event.reason.startswith("Not sent: the email"), event.reason
        assert REFUSED.get(kinds[event.record_id], "invalid part before the @") in event.reason
        assert "\x00" not in event.reason + event.email
    cut = run.events.get(email=f"lead4@{DOMAIN}")
    assert "cut to 255 characters" in cut.reason and cut.outcome == "created"
    cleaned = run.events.get(email=f"lead3@{DOMAIN}")
    assert "removed 1 control character(s) from firstName" in cleaned.reason


def test_a_history_entry_the_database_refuses_is_stored_made_safe_and_the_run_goes_on(
    user, sandbox, monkeypatch
):
    """PostgreSQL refuses a NUL character in JSON; the event is stored without it."""
    integration = connected_integration(user, sandbox)
    changes = records.RecordResult.changes

    def with_a_nul(self, labels=None):
        return {**changes(self, labels), "note": "from a system that wrote \x00 bytes"}

    monkeypatch.setattr(records.RecordResult, "changes", with_a_nul)
    run = runs.create_run(integration, SyncRun.Direction.TO_PIPEDRIVE)

    tasks.run_transfer(run.pk)

    run.refresh_from_db()
    assert run.status == SyncRun.Status.DONE, run.error
    assert run.events.count() == run.total == 150
    # PostgreSQL refused the page's events, then each one's first attempt; SQLite takes the
    # page's events together (and its JSON() drops the character) or keeps it as it is.
    stored = {"\x00", ""} if connection.vendor == "sqlite" else {""}
    notes = {e.changes["note"] for e in run.events.all()}
    assert len(notes) == 1 and notes <= {f"from a system that wrote {c} bytes" for c in stored}
