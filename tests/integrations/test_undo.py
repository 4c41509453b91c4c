"""Undo of a transfer, or of one record's change, through the simulators."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from integrations.models import SyncEvent, SyncRun, Undo
from integrations.sync import undo as undo_service
from integrations.sync.runs import create_run
from integrations.sync.transfer import transfer
from integrations.sync.undo import UndoRefused, execute, start_undo
from tests.factories import connected_integration, fast_limits  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_limits")]


@pytest.fixture
def queued(monkeypatch):
    """Undos are queued, not run: the test runs them with `execute` (or not at all)."""
    ids: list[int] = []
    monkeypatch.setattr(undo_service, "enqueue", ids.append)
    return ids


def to_pipedrive_scene(user, box):
    """Two prospects with a person each (one whose phone and job title the transfer fills),
    and two prospects new to Pipedrive."""
    box.snovio.create_list("Leads")
    box.snovio.add_prospect(
        "Leads", email="ann@x.example", first_name="Ann", last_name="One", position="CTO"
    )
    box.snovio.add_prospect(
        "Leads", email="bob@x.example", first_name="Bob", last_name="Two", position="CEO"
    )
    box.snovio.add_prospect("Leads", email="cy@x.example", first_name="Cy", last_name="Three")
    box.snovio.add_prospect("Leads", email="di@x.example", first_name="Di", last_name="Four")
    ann = box.pipedrive.add_person(name="Ann One", email="ann@x.example")
    bob = box.pipedrive.add_person(name="Bob Two", email="bob@x.example")
    integration = connected_integration(user, box, catalog=False)
    return integration, ann, bob


def person_by_email(box, email):
    found = box.pipedrive.persons(email)
    return found[0] if found else None


def test_undo_of_a_transfer_to_pipedrive_restores_fields_removes_created_and_lists_changed_since(
    user, empty_sandbox, queued
):
    box = empty_sandbox
    integration, ann, bob = to_pipedrive_scene(user, box)
    run = transfer(create_run(integration, SyncRun.Direction.TO_PIPEDRIVE, "snovio"))
    assert (run.created, run.updated) == (2, 2), run.error
    assert person_by_email(box, "ann@x.example")["job_title"] == "CTO"
    # Since the transfer: Bob's job title edited in Pipedrive, Di's created person renamed.
    box.pipedrive.change_person(bob["id"], job_title="Chief")
    di = person_by_email(box, "di@x.example")
    box.pipedrive.change_person(di["id"], name="Diana Four")

    undo = execute(start_undo(integration, run=run, user=user))

    assert undo.status == SyncRun.Status.DONE, undo.error
    assert not (person_by_email(box, "ann@x.example").get("job_title"))  # back to empty
    assert person_by_email(box, "bob@x.example")["job_title"] == "Chief"  # left alone
    assert person_by_email(box, "cy@x.example") is None  # created, untouched: removed
    assert person_by_email(box, "di@x.example")["name"] == "Diana Four"  # changed: kept
    assert (undo.restored, undo.removed, undo.left_alone, undo.failed) == (1, 1, 2, 0)
    reasons = dict(undo.events.values_list("email", "reason"))
    assert "changed since the transfer" in reasons["bob@x.example"]
    assert "Not removed" in reasons["di@x.example"]
    assert not integration.links.filter(email="cy@x.example").exists()
    integration.refresh_from_db()
    assert integration.status == "active"


def test_undo_twice_is_refused_by_the_page_check_and_by_the_database(user, empty_sandbox, queued):
    box = empty_sandbox
    integration, _, _ = to_pipedrive_scene(user, box)
    run = transfer(create_run(integration, SyncRun.Direction.TO_PIPEDRIVE, "snovio"))
    execute(start_undo(integration, run=run, user=user))

    with pytest.raises(UndoRefused):
        start_undo(integration, run=run, user=user)
    with pytest.raises(IntegrityError), transaction.atomic():
        Undo.objects.create(integration=integration, run=run)
    event = run.events.get(email="ann@x.example")
    with pytest.raises(UndoRefused):
        start_undo(integration, event=event, user=user)
    assert Undo.objects.filter(dry_run=False).count() == 1
