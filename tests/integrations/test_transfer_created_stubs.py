"""A transfer keeps the persons it created by id and emails only (its memory stays flat) and
reads one again in full only when a later record of the run shares one of its emails."""

from __future__ import annotations

import re

import pytest

from integrations.models import SyncRun
from integrations.sync.runs import create_run
from integrations.sync.transfer import transfer
from tests.factories import connected_integration, fast_limits  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_limits")]


def test_a_later_prospect_sharing_an_email_with_a_person_just_created_updates_that_person(
    user, empty_sandbox
):
    box = empty_sandbox
    box.snovio.create_list("Leads")
    box.snovio.add_prospect("Leads", email="ann@x.example", first_name="Ann", last_name="One")
    for n in range(3):  # persons created in between are never read again
        box.snovio.add_prospect("Leads", email=f"p{n}@x.example", first_name=f"P{n}")
    later = box.snovio.add_prospect(
        "Leads", email="bea@x.example", first_name="Bea", last_name="Two", position="CTO"
    )
    box.snovio.state["prospects"][later["id"]]["emails"].append(
        {"email": "ann@x.example", "status": "valid"}
    )
    integration = connected_integration(user, box, catalog=False)
    mark = len(box.request_log)

    run = transfer(create_run(integration, SyncRun.Direction.TO_PIPEDRIVE, "snovio"), page_size=1)

    assert run.status == SyncRun.Status.DONE, run.error
    assert (run.created, run.updated) == (4, 1)
    persons = box.pipedrive.persons()
    ann = [p for p in persons if "ann@x.example" in str(p.get("emails"))]
    assert len(ann) == 1 and ann[0]["job_title"] == "CTO"  # one person, updated, no duplicate
    reads = [
        path
        for remote, method, path in box.request_log[mark:]
        if remote == "pipedrive" and method == "GET" and re.fullmatch(r"/api/v2/persons/\d+", path)
    ]
    assert reads == [f"/api/v2/persons/{ann[0]['id']}"]
