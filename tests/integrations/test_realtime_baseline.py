"""What real time carries after Launch: only what is created or changed since, merged field by
field (the defects seen in a fresh demo, and the rules that replace them)."""

from __future__ import annotations

import copy
import time

import pytest

from integrations import services, tasks
from integrations.models import Integration, PendingChange, RecordLink, SyncEvent, SyncRun
from integrations.sync import catchup, realtime
from integrations.sync.transfer import transfer
from tests.factories import connected_integration, ready_integration

pytestmark = [pytest.mark.django_db]


def pipedrive_state(sandbox) -> dict:
    return {p["id"]: copy.deepcopy(p) for p in sandbox.pipedrive.persons()}


def snovio_state(sandbox) -> dict:
    volatile = {"updatedAt", "lists", "campaigns"}
    return {
        pid: {k: copy.deepcopy(v) for k, v in p.items() if k not in volatile}
        for pid, p in sandbox.snovio.state["prospects"].items()
    }


def waiting(integration) -> int:
    return PendingChange.objects.filter(integration=integration, processed_at=None).count()


def launched_two_way(user, sandbox) -> Integration:
    """The demo as a new user leaves it: two-way, all lists, launched, no transfer."""
    integration = ready_integration(user, sandbox)
    assert services.launch(integration, user) == []
    integration.refresh_from_db()
    return integration


# --- 1. Launch writes nothing --------------------------------------------------------------
def test_launch_and_two_catch_ups_rewrite_no_existing_contact_on_either_side(
    user, sandbox, sync_tasks
):
    persons, prospects = pipedrive_state(sandbox), snovio_state(sandbox)

    integration = launched_two_way(user, sandbox)
    first, second = tasks.catch_up(integration.pk), tasks.catch_up(integration.pk)

    integration.refresh_from_db()
    assert integration.baseline_at is not None
    assert (first, second) == ("catch-up found 0 change(s)", "catch-up found 0 change(s)")
    assert pipedrive_state(sandbox) == persons  # no phone or job title replaced, none created
    assert snovio_state(sandbox) == prospects
    assert waiting(integration) == 0
    assert not SyncEvent.objects.filter(integration=integration).exists()
    assert RecordLink.objects.filter(integration=integration).count() >= len(persons)


# --- 2. the transfer is still what moves them -------------------------------------------------
def test_a_transfer_after_launch_still_moves_the_contacts_that_differ(user, sandbox, sync_tasks):
    integration = launched_two_way(user, sandbox)
    tasks.catch_up(integration.pk)

    run = transfer(
        SyncRun.objects.create(
            integration=integration,
            direction=SyncRun.Direction.TO_SNOVIO,
            source_app="pipedrive",
        )
    )

    assert run.status == SyncRun.Status.DONE, run.error
    assert run.conflicts > 0 and run.updated > 0  # the shared contacts were not pre-empted
    for event in run.events.filter(outcome="updated")[:5]:
        (person,) = sandbox.pipedrive.persons(event.email)
        prospect = sandbox.snovio._prospect_by_email(event.email)
        assert prospect["position"] == (person["job_title"] or prospect["position"])


# --- 3. a change made right after launch -------------------------------------------------------
def test_an_edit_right_after_launch_reaches_snovio_and_nothing_else_moves(
    user, sandbox, sync_tasks
):
    integration = launched_two_way(user, sandbox)
    prospects = snovio_state(sandbox)
    person = next(p for p in sandbox.pipedrive.persons() if p["emails"])
    email = person["emails"][0]["value"].lower()
    target = next(
        (pid for pid, p in prospects.items() if email in [e["email"] for e in p["emails"]]), None
    )

    sandbox.pipedrive.change_person(person["id"], job_title="Chief Listener")
    tasks.catch_up(integration.pk)  # its 2-minute overlap lists every person again

    after = snovio_state(sandbox)
    changed = {pid for pid in after if after[pid] != prospects.get(pid)}
    if target:
        assert changed == {target} and after[target]["position"] == "Chief Listener"
    else:  # the person was only in Pipedrive: it is created in Snov.io, nothing else changes
        assert len(changed) == 1
    assert waiting(integration) == 0


# --- 4. lists --------------------------------------------------------------------------------
def test_a_list_created_after_launch_brings_its_prospects_to_pipedrive(user, sandbox, sync_tasks):
    integration = launched_two_way(user, sandbox)  # "All lists, including lists created later"
    count = len(sandbox.pipedrive.persons())
    sandbox.snovio.create_list("Created after launch")
    sandbox.snovio.add_prospect(
        "Created after launch", email="late.list@new.example", first_name="Late", last_name="List"
    )

    tasks.catch_up(integration.pk)

    assert len(sandbox.pipedrive.persons("late.list@new.example")) == 1
    assert len(sandbox.pipedrive.persons()) == count + 1
    integration.refresh_from_db()
    assert "is new since launch" in integration.last_catch_up_note


def test_an_older_list_chosen_after_launch_joins_the_baseline_and_writes_nothing(
    user, sandbox, sync_tasks
):
    integration = ready_integration(user, sandbox)
    lists = sorted(sandbox.snovio.state["lists"].values(), key=lambda x: x["id"])
    for item in lists:  # made long before launch (Snov.io's dates have whole seconds)
        item["createdAt"] -= 3600
    integration.all_lists = False
    integration.save()
    integration.list_selections.create(list_id=str(lists[0]["id"]), list_name=lists[0]["name"])
    assert services.launch(integration, user) == []
    persons = pipedrive_state(sandbox)

    integration.list_selections.create(list_id=str(lists[1]["id"]), list_name=lists[1]["name"])
    tasks.catch_up(integration.pk)

    integration.refresh_from_db()
    assert "joined the sending lists" in integration.last_catch_up_note
    assert str(lists[1]["id"]) in integration.baseline_lists
    assert pipedrive_state(sandbox) == persons
    assert waiting(integration) == 0


# --- the merge rule -----------------------------------------------------------------------------
SHARED = "anna.shared@acme.example"


@pytest.fixture
def small(empty_sandbox):
    box = empty_sandbox
    box.snovio.create_list("Leads")
    box.snovio.add_prospect(
        "Leads", email=SHARED, first_name="Anna", last_name="Shared", position="Head of Sales"
    )
    box.pipedrive.add_person(name="Anna Shared", email=SHARED, job_title="Director of Sales")
    return box


def linked(user, box, **options) -> Integration:
    """Launched, and the shared contact transferred once (so both sides agree)."""
    integration = connected_integration(user, box, catalog=False, **options)
    run = transfer(
        SyncRun.objects.create(
            integration=integration, direction=SyncRun.Direction.TO_SNOVIO, source_app="pipedrive"
        )
    )
    assert run.status == SyncRun.Status.DONE, run.error
    realtime.drain(integration.pk)
    return Integration.objects.get(pk=integration.pk)


def person_of(box) -> dict:
    (person,) = box.pipedrive.persons(SHARED)
    return person


def prospect_of(box) -> dict:
    return box.snovio._prospect_by_email(SHARED)


def both_sides_change_while_paused(integration, box, first: str) -> None:
    services.pause(integration)
    edits = {
        "snovio": lambda: box.snovio.update_prospect(SHARED, position="Snov.io's title"),
        "pipedrive": lambda: box.pipedrive.change_person(
            person_of(box)["id"], job_title="Pipedrive's title"
        ),
    }
    edits[first]()
    catchup.catch_up(Integration.objects.get(pk=integration.pk))  # Snov.io's change is seen now
    time.sleep(1.1)  # Pipedrive's update times have whole seconds
    edits["pipedrive" if first == "snovio" else "snovio"]()
    catchup.catch_up(Integration.objects.get(pk=integration.pk))
    services.resume(Integration.objects.get(pk=integration.pk))
    realtime.drain(integration.pk)


def test_a_field_changed_in_both_apps_keeps_the_most_recent_change_and_records_both(user, small):
    integration = linked(user, small)

    both_sides_change_while_paused(integration, small, first="snovio")

    assert person_of(small)["job_title"] == "Pipedrive's title"
    assert prospect_of(small)["position"] == "Pipedrive's title"
    event = SyncEvent.objects.get(integration=integration, changes__has_key="realtime_conflicts")
    (conflict,) = event.changes["realtime_conflicts"].values()
    assert conflict["snovio"] == "Snov.io's title"
    assert conflict["pipedrive"] == "Pipedrive's title"
    # The pair's rule (the source app wins) left it to the card: the most recent change.
    assert (conflict["winner"], conflict["rule"], conflict["decider"]) == (
        "pipedrive",
        "source_app",
        "latest",
    )
    assert "changed on both sides" in event.reason


def test_with_snovio_as_the_fixed_winner_snovios_value_stays_even_when_older(user, small):
    integration = linked(user, small, realtime_rule="snovio")

    both_sides_change_while_paused(integration, small, first="snovio")

    assert person_of(small)["job_title"] == "Snov.io's title"
    assert prospect_of(small)["position"] == "Snov.io's title"


def test_emptying_a_synced_field_in_snovio_empties_it_in_pipedrive(user, small):
    integration = linked(user, small)  # the job titles agree after the transfer

    small.snovio.update_prospect(SHARED, position="")  # the user empties it
    catchup.catch_up(Integration.objects.get(pk=integration.pk))
    realtime.drain(integration.pk)

    assert not person_of(small)["job_title"]


def test_emptying_a_synced_field_in_pipedrive_is_reported_as_not_carried_to_snovio(user, small):
    integration = linked(user, small)

    small.pipedrive.change_person(person_of(small)["id"], job_title=None)
    catchup.catch_up(Integration.objects.get(pk=integration.pk))
    realtime.drain(integration.pk)

    assert prospect_of(small)["position"] == "Director of Sales"
    event = SyncEvent.objects.filter(integration=integration, outcome="unchanged").last()
    assert "no way to empty a field" in event.reason


def test_emptying_a_field_that_never_agreed_does_not_erase_the_other_side(user, small):
    integration = connected_integration(user, small, catalog=False)
    realtime.drain(integration.pk)  # the baseline: the two titles differ, nothing is written
    # The first catch-up reads the profile the baseline's list rows lacked (the job title).
    catchup.catch_up(Integration.objects.get(pk=integration.pk))

    small.snovio.update_prospect(SHARED, position="")
    catchup.catch_up(Integration.objects.get(pk=integration.pk))
    realtime.drain(integration.pk)

    assert person_of(small)["job_title"] == "Director of Sales"
    event = SyncEvent.objects.get(integration=integration, outcome="unchanged")
    assert "never erases one that was not synced" in event.reason


def test_changes_held_while_paused_are_one_per_contact_and_read_fresh(user, small):
    integration = linked(user, small)
    services.pause(integration)
    for title in ("One", "Two", "Three"):
        small.snovio.update_prospect(SHARED, position=title)
        catchup.catch_up(Integration.objects.get(pk=integration.pk))

    assert waiting(integration) == 1
    services.resume(Integration.objects.get(pk=integration.pk))
    realtime.drain(integration.pk)
    assert person_of(small)["job_title"] == "Three"


# --- what the pages show -------------------------------------------------------------------
def test_the_settings_page_and_the_list_show_the_changes_waiting_and_the_last_catch_up(
    user, small, client_logged_in
):
    integration = linked(user, small)
    services.pause(integration)
    small.snovio.update_prospect(SHARED, position="Waiting title")
    catchup.catch_up(Integration.objects.get(pk=integration.pk))

    page = client_logged_in.get(f"/integrations/{integration.pk}/settings/").content.decode()
    listing = client_logged_in.get("/").content.decode()

    assert 'data-waiting="1"' in page and "1 change(s) found" in page
    assert "applied when the integration is Active" in page
    assert '<td class="waiting">1</td>' in listing


def test_a_change_that_failed_for_good_is_listed_and_retry_queues_it_again(
    user, small, client_logged_in
):
    integration = linked(user, small)
    small.snovio.update_prospect(SHARED, position="Refused at first")
    small.inject("pipedrive", "400", path=r"^/api/v2/persons/\d+$", method="PATCH")
    catchup.catch_up(Integration.objects.get(pk=integration.pk))
    realtime.drain(integration.pk)
    failed = PendingChange.objects.get(integration=integration, outcome__startswith="failed:")
    assert failed.last_error_kind == PendingChange.ErrorKind.PERMANENT

    page = client_logged_in.get(f"/integrations/{integration.pk}/settings/").content.decode()
    assert 'id="failed-changes"' in page
    response = client_logged_in.post(f"/integrations/{integration.pk}/changes/{failed.pk}/retry/")
    assert response.status_code == 302
    realtime.drain(integration.pk)
    assert person_of(small)["job_title"] == "Refused at first"
    missing = client_logged_in.post(f"/integrations/{integration.pk}/changes/999999/retry/")
    assert missing.status_code == 302  # told, in a message, that there is no such failure


def test_a_value_changed_back_to_an_earlier_one_in_snovio_still_reaches_pipedrive(user, small):
    integration = linked(user, small)
    for title in ("First title", "Second title", "First title"):
        small.snovio.update_prospect(SHARED, position=title)
        catchup.catch_up(Integration.objects.get(pk=integration.pk))
        realtime.drain(integration.pk)
        assert person_of(small)["job_title"] == title
