"""Real time exactly once: a write that failed is tried again, never recorded as done, and
several workers draining one integration end as one would."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections

from integrations import services
from integrations.models import Integration, PendingChange, SyncEvent
from integrations.sync import catchup, realtime
from tests.factories import connected_integration

LEADS = "Leads"


@pytest.fixture
def box(empty_sandbox):
    empty_sandbox.snovio.create_list(LEADS)
    return empty_sandbox


def launched(user, box) -> Integration:
    integration = connected_integration(user, box, catalog=False)
    realtime.drain(integration.pk)  # the baseline
    return Integration.objects.get(pk=integration.pk)


def catch_up_and_drain(integration) -> None:
    catchup.catch_up(Integration.objects.get(pk=integration.pk))
    realtime.drain(integration.pk)


@pytest.mark.django_db
def test_a_create_that_failed_three_times_arrives_exactly_once_at_the_next_catch_up(user, box):
    integration = launched(user, box)
    box.snovio.add_prospect(LEADS, email="late@new.example", first_name="Late", last_name="One")
    box.inject("pipedrive", "503", count=1000, path=r"^/api/v2/persons$", method="POST")

    catchup.catch_up(Integration.objects.get(pk=integration.pk))
    for _ in range(3):  # three drains, each trying the create until its retries run out
        realtime.drain(integration.pk)

    change = PendingChange.objects.get(integration=integration, kind="prospect.change")
    assert change.attempts == 3 and change.outcome.startswith("failed:")
    assert change.last_error_kind == PendingChange.ErrorKind.TEMPORARY
    assert box.pipedrive.persons("late@new.example") == []
    box.faults.clear()  # the fault clears

    catch_up_and_drain(integration)  # the contact is still "to be synced": nothing recorded it
    catch_up_and_drain(integration)

    assert len(box.pipedrive.persons("late@new.example")) == 1
    created = SyncEvent.objects.filter(integration=integration, outcome="created")
    assert created.count() == 1


@pytest.mark.django_db
def test_a_change_waiting_after_a_temporary_failure_counts_its_attempts(user, box):
    integration = launched(user, box)
    box.snovio.add_prospect(LEADS, email="wait@new.example", first_name="Wait", last_name="Er")
    box.inject("pipedrive", "503", count=1000, path=r"^/api/v2/persons$", method="POST")

    catch_up_and_drain(integration)

    change = PendingChange.objects.get(integration=integration, processed_at=None)
    assert change.attempts == 1 and change.outcome.startswith("waiting:")
    assert "attempt 1 of 3" in change.outcome


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="two workers need a database that two connections share (PostgreSQL, as in CI)",
)
@pytest.mark.django_db(transaction=True)
def test_held_changes_drained_by_two_workers_at_once_end_as_with_one(user, box):
    integration = launched(user, box)
    for n in range(30):
        box.snovio.add_prospect(LEADS, email=f"p{n}@held.example", first_name=f"P{n}")
    services.pause(integration)
    catchup.catch_up(Integration.objects.get(pk=integration.pk))
    assert PendingChange.objects.filter(processed_at=None).count() == 30
    services.resume(Integration.objects.get(pk=integration.pk))
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            start.wait()
            realtime.drain(integration.pk)
        except BaseException as exc:  # reported below; a thread must not swallow it
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    realtime.drain(integration.pk)  # whatever the first two left (none, normally)

    assert errors == []
    for n in range(30):
        assert len(box.pipedrive.persons(f"p{n}@held.example")) == 1
    assert SyncEvent.objects.filter(integration=integration, outcome="created").count() == 30
    assert not PendingChange.objects.filter(processed_at=None).exists()


@pytest.mark.django_db
def test_after_three_failed_changes_the_catch_up_waits_for_retry(user, box, client):
    integration = launched(user, box)
    box.snovio.add_prospect(LEADS, email="stuck@new.example", first_name="Stuck", last_name="One")
    box.inject("pipedrive", "400", count=1000, path=r"^/api/v2/persons$", method="POST")

    for _ in range(4):
        catch_up_and_drain(integration)

    failed = PendingChange.objects.filter(integration=integration, outcome__startswith="failed:")
    assert failed.count() == 3  # the fourth catch-up left it alone
    box.faults.clear()
    catch_up_and_drain(integration)
    assert box.pipedrive.persons("stuck@new.example") == []

    client.force_login(user)
    client.post(f"/integrations/{integration.pk}/changes/{failed.first().pk}/retry/")
    realtime.drain(integration.pk)

    assert len(box.pipedrive.persons("stuck@new.example")) == 1


@pytest.mark.django_db
def test_prospects_with_values_a_database_cannot_hold_never_stop_the_others(user, box):
    box.snovio.add_prospect(LEADS, email="old.nul@acme.example", position="Old\x00title")
    integration = launched(user, box)  # the baseline stores a prospect with a NUL character
    box.snovio.add_prospect(LEADS, email="nul@new.example", first_name="Nul", position="A\x00B")
    box.snovio.add_prospect(LEADS, email="bad@@new.example", first_name="Bad")
    box.snovio.add_prospect(LEADS, email="long@new.example", first_name="L" * 400)
    box.snovio.add_prospect(LEADS, email="fine@new.example", first_name="Fine")

    catch_up_and_drain(integration)
    catch_up_and_drain(integration)

    assert len(box.pipedrive.persons("fine@new.example")) == 1
    (nul,) = box.pipedrive.persons("nul@new.example")
    assert nul["job_title"] == "AB"
    assert len(box.pipedrive.persons("long@new.example")) == 1
    assert box.pipedrive.persons("bad@@new.example") == []
    skipped = SyncEvent.objects.get(integration=integration, outcome="skipped")
    assert "bad@@new.example" in skipped.reason
    assert not PendingChange.objects.filter(integration=integration, processed_at=None).exists()
    assert catchup.catch_up(Integration.objects.get(pk=integration.pk)) == 0
