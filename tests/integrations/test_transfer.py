"""The manual transfer against the sandbox: exact results, idempotence, preview, resume, cost."""

from __future__ import annotations

import math
from contextlib import contextmanager
from datetime import timedelta

import pytest
import responses
from django.utils import timezone

from integrations.models import Integration, ListSelection, Provider, SyncRun
from integrations.pipedrive.client import PipedriveClient
from integrations.sandbox import seed
from integrations.sandbox.pipedrive import custom_field_key
from integrations.sandbox.testing import serve_in_process
from integrations.snovio.client import SnovioClient
from integrations.sync import runs
from integrations.sync.locks import LEASE
from integrations.sync.runs import create_run
from integrations.sync.transfer import Slice, run_slice, transfer
from tests.conftest import make_sandbox
from tests.factories import connected_integration, fast_limits  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_limits")]

INDUSTRY = custom_field_key("Industry")
EMPLOYEES = custom_field_key("Employees")
LEAD_SOURCE = custom_field_key("Lead source")
PEOPLE = seed.demo_people()
PROSPECTS = seed.snovio_prospects(PEOPLE)  # index i = person i (0..149)
PERSONS = {i: p for i, p in enumerate(seed.pipedrive_persons(PEOPLE), start=110)}  # 110..209


def prospect_emails() -> dict[str, int]:
    return {p["email"].lower(): i for i, p in enumerate(PROSPECTS) if p["email"]}


def person_emails() -> dict[str, int]:
    return {p["email"].lower(): i for i, p in PERSONS.items()}


@pytest.fixture
def integration(user, sandbox):
    """Two-way, system pairs + Industry and Employees, a constant on each receiving side."""
    with sandbox.lock:  # a Snov.io custom field for the Snov.io constant
        sandbox.snovio.state["custom_fields"].append(
            {"label": "Lead source", "type": "string", "required": False}
        )
    return connected_integration(
        user,
        sandbox,
        pairs=[
            ("customFields[Industry]", INDUSTRY, "text"),
            ("customFields[Employees]", EMPLOYEES, "number"),
        ],
        constants=[
            (Provider.PIPEDRIVE, LEAD_SOURCE, "Snov.io campaign"),
            (Provider.SNOVIO, "customFields[Lead source]", "Pipedrive"),
        ],
    )


def all_persons(integration) -> list[dict]:
    return list(PipedriveClient.for_connection(integration.pipedrive).iter_persons())


def all_prospects(sandbox) -> list[dict]:
    """What Snov.io holds, read from the sandbox: no API answer carries phones or custom
    fields (docs/specs/snovio-shapes.md)."""
    return sandbox.snovio.prospects()


def readable_conflicts() -> int:
    """Contacts on both sides whose job titles differ. Their phones differ too, but Snov.io's
    API returns no phones, so a phone can never be compared (docs/specs/snovio-shapes.md)."""
    return sum(
        1
        for email, i in prospect_emails().items()
        if email in person_emails() and PROSPECTS[i]["position"] != PERSONS[i]["position"]
    )


def by_email(records: list[dict], emails_of) -> dict[str, dict]:
    index: dict[str, dict] = {}
    for record in records:
        for email in emails_of(record):
            assert email not in index, f"two records share the email {email}"
            index[email] = record
    return index


def person_email_list(person: dict) -> list[str]:
    return [e["value"].lower() for e in person.get("emails") or []]


def prospect_email_list(prospect: dict) -> list[str]:
    return [e["email"].lower() for e in prospect.get("emails") or []]


def primary_phone(person: dict) -> str | None:
    return next((p["value"] for p in person.get("phones") or [] if p["primary"]), None)


def remote_writes(sandbox) -> list[tuple[str, str, str]]:
    """Requests that change data: Pipedrive POST/PATCH/DELETE, Snov.io add-prospect-to-list."""
    return [
        (remote, method, path)
        for remote, method, path in sandbox.request_log
        if (
            remote == "pipedrive"
            and method in ("POST", "PATCH", "PUT", "DELETE")
            and "/oauth/" not in path
        )
        or (remote == "snovio" and path.endswith("add-prospect-to-list"))
    ]


def run_transfer(integration, direction, source, **kwargs) -> SyncRun:
    run = transfer(
        create_run(integration, direction, source, kwargs.pop("dry_run", False)), **kwargs
    )
    assert run.status == SyncRun.Status.DONE, run.error
    return run


# --- exact results ---------------------------------------------------------------------------
@pytest.mark.parametrize("source", [Provider.SNOVIO, Provider.PIPEDRIVE])
def test_transfer_to_pipedrive_gives_exactly_the_expected_persons(sandbox, integration, source):
    run = run_transfer(integration, SyncRun.Direction.TO_PIPEDRIVE, source)

    persons = by_email(all_persons(integration), person_email_list)  # no duplicate email
    prospects = prospect_emails()
    existing = person_emails()
    assert len(all_persons(integration)) == len(PERSONS) + len(set(prospects) - set(existing))
    sam = sandbox.pipedrive.user_id("Sam Seller")
    campaign = sandbox.pipedrive.option_id("Lead source", "Snov.io campaign")
    org_names = {o["id"]: o["name"] for o in sandbox.pipedrive.organizations()}
    assert len(org_names) == len(
        {p["company"] for p in PROSPECTS} | {p["company"] for p in PERSONS.values()}
    )
    # Snov.io's API returns no phones and no custom fields (docs/specs/snovio-shapes.md): those
    # pairs carry nothing to Pipedrive, and Pipedrive's own values stay.
    for email, i in prospects.items():
        person, prospect = persons[email], PROSPECTS[i]
        if email in existing:  # a conflict: the source app wins the job title
            winner = prospect if source == Provider.SNOVIO else PERSONS[i]
            assert primary_phone(person) == PERSONS[i]["phone"]
            assert person["job_title"] == winner["position"]
            assert person["owner_id"] == sandbox.pipedrive.user_id(PERSONS[i]["owner"])
            assert person["custom_fields"][LEAD_SOURCE] is not None  # filled, never overwritten
        else:
            assert person["owner_id"] == sam
            assert person["name"] == f"{prospect['first_name']} {prospect['last_name']}"
            assert primary_phone(person) is None
            assert person["job_title"] == prospect["position"]
            assert org_names[person["org_id"]] == prospect["company"]
            assert person["custom_fields"][LEAD_SOURCE] == campaign
            assert person["custom_fields"][INDUSTRY] is None
    overlap = len(set(prospects) & set(existing))
    assert (run.created, run.conflicts, run.skipped, run.failed) == (
        len(prospects) - overlap,
        readable_conflicts(),
        len(PROSPECTS) - len(prospects),
        0,
    )
    assert run.updated + run.unchanged == overlap
    assert run.done == run.total == len(PROSPECTS)
    reasons = set(run.events.filter(outcome="skipped").values_list("reason", flat=True))
    assert len(reasons) == 1 and "No email" in reasons.pop()


@pytest.mark.parametrize("source", [Provider.PIPEDRIVE, Provider.SNOVIO])
def test_transfer_to_snovio_gives_exactly_the_expected_prospects(sandbox, integration, source):
    run = run_transfer(integration, SyncRun.Direction.TO_SNOVIO, source)

    everything = all_prospects(sandbox)
    prospects = by_email(everything, prospect_email_list)  # no duplicate email
    persons, known = person_emails(), prospect_emails()
    created = set(persons) - set(known)
    assert len(everything) == len(PROSPECTS) + len(created)
    target = str(integration.target_list_id)
    for email, i in persons.items():
        prospect, person = prospects[email], PERSONS[i]
        assert prospect["customFields"]["Lead source"] == "Pipedrive"  # constant, empty before
        if email in known:
            winner = person if source == Provider.PIPEDRIVE else PROSPECTS[i]
            assert prospect["phones"] == [winner["phone"]]
            assert prospect["position"] == winner["position"]
            assert prospect["emails"][0]["isVerified"] is True  # found and verified by Snov.io
        else:  # a Pipedrive contact that is new to Snov.io: in the sync-to list, unverified
            assert prospect["emails"][0]["isVerified"] is False
            assert prospect["emails"][0]["status"] == "unverified"
            assert target in {
                str(x) for x in sandbox.snovio.state["prospects"][prospect["id"]]["lists"]
            }
            assert prospect["phones"] == [person["phone"]]
            assert prospect["position"] == person["position"]
            assert prospect["companyName"] == person["company"]  # the organization's name
            assert prospect["customFields"]["Industry"] == person["industry"]
            assert prospect["customFields"]["Employees"] == str(person["employees"])
    assert (run.created, run.conflicts, run.skipped, run.failed) == (
        len(created),
        readable_conflicts(),
        0,
        0,
    )
    assert run.done == len(PERSONS)


@pytest.mark.parametrize("source", [Provider.SNOVIO, Provider.PIPEDRIVE])
def test_a_two_way_transfer_leaves_both_sides_with_the_source_apps_values(
    sandbox, integration, source
):
    run_transfer(integration, SyncRun.Direction.TO_PIPEDRIVE, source)
    run_transfer(integration, SyncRun.Direction.TO_SNOVIO, source)

    persons = by_email(all_persons(integration), person_email_list)
    prospects = by_email(all_prospects(sandbox), prospect_email_list)
    assert set(persons) == set(prospects)  # every contact with an email is on both sides
    for email in set(prospect_emails()) & set(person_emails()):
        i = prospect_emails()[email]
        winner = PROSPECTS[i] if source == Provider.SNOVIO else PERSONS[i]
        assert persons[email]["job_title"] == winner["position"] == prospects[email]["position"]
        # Phones reach Snov.io from Pipedrive, never back (Snov.io's API returns none).
        assert primary_phone(persons[email]) == PERSONS[i]["phone"]
        assert prospects[email]["phones"] == [winner["phone"]]


# --- idempotence and preview -------------------------------------------------------------------
@pytest.mark.parametrize("direction", [SyncRun.Direction.TO_PIPEDRIVE, SyncRun.Direction.TO_SNOVIO])
def test_running_the_transfer_again_changes_nothing_and_writes_nothing(
    sandbox, integration, direction
):
    first = run_transfer(integration, direction, None)
    writes = len(remote_writes(sandbox))

    again = run_transfer(integration, direction, None)

    assert len(remote_writes(sandbox)) == writes, remote_writes(sandbox)[writes:]
    assert (again.created, again.updated, again.conflicts, again.failed) == (0, 0, 0, 0)
    assert again.unchanged == first.created + first.updated + first.unchanged
    assert again.skipped == first.skipped


def test_a_preview_counts_what_the_transfer_will_do_and_shows_each_conflicts_fields(
    sandbox, integration
):
    integration.refresh_from_db()
    preview = run_transfer(
        integration, SyncRun.Direction.TO_PIPEDRIVE, Provider.SNOVIO, dry_run=True
    )

    assert remote_writes(sandbox) == []
    assert integration.status_changes.count() == 0  # a preview never touches the status
    conflicts = [row for row in preview.preview if row.get("conflicts")]
    assert len(conflicts) == preview.conflicts
    row = conflicts[0]
    i = prospect_emails()[row["email"]]
    assert row["fields"]["job_title"] == {
        "old": PERSONS[i]["position"],
        "new": PROSPECTS[i]["position"],
        "label": "Job title",
        "rule_label": "The source app wins",  # the preview row names the rule that decided
    }
    assert row["conflicts"]["job_title"]["winner"] == "sending"

    real = run_transfer(integration, SyncRun.Direction.TO_PIPEDRIVE, Provider.SNOVIO)
    assert real.summary() == preview.summary()


def test_the_integration_is_syncing_while_a_transfer_runs_and_active_after(sandbox, integration):
    seen = []
    run_transfer(
        integration,
        SyncRun.Direction.TO_PIPEDRIVE,
        None,
        page_size=20,
        after_page=lambda run: seen.append(Integration.objects.get(pk=integration.pk).status),
    )
    assert set(seen) == {Integration.Status.SYNCING}
    integration.refresh_from_db()
    assert integration.status == Integration.Status.ACTIVE
    assert list(integration.status_changes.values_list("to_status", flat=True)) == [
        "active",
        "syncing",
    ]


# --- crash and resume ------------------------------------------------------------------------
class WorkerKilled(BaseException):
    """Stands for the worker process ending: nothing in the transfer catches it."""


def end_state(integration, sandbox) -> dict:
    persons = {
        e: (p["name"], primary_phone(p), p.get("job_title"), p["owner_id"])
        for e, p in by_email(all_persons(integration), person_email_list).items()
    }
    prospects = {
        e: (p["name"], tuple(p["phones"]), p["position"])
        for e, p in by_email(all_prospects(sandbox), prospect_email_list).items()
    }
    return {"persons": persons, "prospects": prospects}


def counts(run: SyncRun) -> tuple:
    return (
        run.done,
        run.created,
        run.updated,
        run.unchanged,
        run.conflicts,
        run.skipped,
        run.failed,
    )


@pytest.mark.parametrize("direction", [SyncRun.Direction.TO_PIPEDRIVE, SyncRun.Direction.TO_SNOVIO])
@pytest.mark.parametrize("where", ["after a checkpoint", "in the middle of a page"])
def test_a_transfer_killed_mid_way_and_started_again_ends_like_an_uninterrupted_one(
    sandbox, integration, direction, where, monkeypatch
):
    before = sandbox.dump()
    clean = run_transfer(integration, direction, None, page_size=20)
    expected_state, expected_counts = end_state(integration, sandbox), counts(clean)

    # Same starting point again: the sandbox as it was, and a fresh integration's records.
    sandbox.pipedrive.load(before["pipedrive"])
    sandbox.snovio.load(before["snovio"])
    integration.links.all().delete()
    run = create_run(integration, direction, None)
    if where == "after a checkpoint":

        def die(run):
            if run.checkpoint.get("page", 1) > 2 or run.done >= 60:
                raise WorkerKilled

        with pytest.raises(WorkerKilled):
            transfer(run, page_size=20, after_page=die)
    else:
        calls = {"n": 0}
        method = (
            "create_person"
            if direction == SyncRun.Direction.TO_PIPEDRIVE
            else "add_prospect_to_list"
        )
        cls = PipedriveClient if direction == SyncRun.Direction.TO_PIPEDRIVE else SnovioClient
        original = getattr(cls, method)

        def dying(self, *args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 30:
                raise WorkerKilled
            return original(self, *args, **kwargs)

        monkeypatch.setattr(cls, method, dying)
        with pytest.raises(WorkerKilled):
            transfer(run, page_size=20)
        monkeypatch.setattr(cls, method, original)

    run.refresh_from_db()
    integration.refresh_from_db()
    assert run.status == SyncRun.Status.RUNNING and run.done > 0  # left resumable
    assert integration.status == Integration.Status.SYNCING
    assert create_run(integration, direction, None) == run  # never a second transfer
    # Until its lease expires the dead worker might be alive: no one else touches the run.
    assert run_slice(run, page_size=20)[1] is Slice.BUSY

    resumed, _ = run_slice(run, page_size=20, now=timezone.now() + LEASE)

    assert resumed.status == SyncRun.Status.DONE
    assert end_state(integration, sandbox) == expected_state
    assert counts(resumed) == expected_counts
    integration.refresh_from_db()
    assert integration.status == Integration.Status.ACTIVE


# --- cost ------------------------------------------------------------------------------------
@contextmanager
def fresh_sandbox(settings):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        with serve_in_process(make_sandbox(settings, seed=False), rsps) as box:
            yield box


COMPANIES = ("Acme Logistics", "Brightpath Labs", "Cobalt Health", "Delta Freight", "Juniper")


def fill(box, direction: str, existing: int, records: int) -> None:
    """`existing` contacts on the receiving side and one organization per ten of them (two of
    them companies of the new records), `records` new contacts of five companies to send."""
    for k in range(existing // 10):
        box.pipedrive.add_organization(f"Existing Org {k}")
    org_ids = [box.pipedrive.add_organization(name)["id"] for name in COMPANIES[:2]]
    if direction == SyncRun.Direction.TO_PIPEDRIVE:
        box.pipedrive.add_persons(existing)
        for k in range(records):
            box.snovio.add_prospect(
                "Campaign list",
                email=f"new{k}@n.example",
                first_name=f"New{k}",
                company=COMPANIES[k % len(COMPANIES)],
            )
    else:
        box.snovio.add_prospects("Campaign list", existing)
        for k in range(records):
            box.pipedrive.add_persons(
                1, name=f"New Person {k}", email=f"new{k}@n.example", org_id=org_ids[k % 2]
            )


def is_listing(request: tuple[str, str, str], receiving: str) -> bool:
    """A page of the receiving side's contacts, or of Pipedrive's organizations."""
    remote, method, path = request
    if remote == "pipedrive" and method == "GET" and path == "/api/v2/organizations":
        return True
    return remote == receiving and (
        method == "GET" and "/persons" in path or path.endswith("prospect-list")
    )


def measure(user, settings, direction: str, existing: int, records: int = 50) -> dict:
    """Transfer `records` contacts against `existing` ones already on the receiving side."""
    with fresh_sandbox(settings) as box:
        box.snovio.create_list("Campaign list")
        fill(box, direction, existing, records)
        integration = connected_integration(user, box, catalog=False)
        box.request_log.clear()
        run = run_transfer(integration, direction, None)
        log = list(box.request_log)
        organizations = len(box.pipedrive.organizations())
    receiving = "pipedrive" if direction == SyncRun.Direction.TO_PIPEDRIVE else "snovio"
    listing = [r for r in log if is_listing(r, receiving)]
    assert run.created == records
    assert not [r for r in log if "/search" in r[2]]  # nothing is searched per record
    per_record = (run.api_calls - len(listing)) / records
    return {
        "calls": run.api_calls,
        "listing": len(listing),
        "per_record": per_record,
        "total_per_record": run.api_calls / records,
        "organizations": organizations,
    }


@pytest.mark.parametrize("direction", [SyncRun.Direction.TO_PIPEDRIVE, SyncRun.Direction.TO_SNOVIO])
def test_api_calls_per_transferred_record_do_not_grow_with_the_other_sides_size(
    user, settings, direction
):
    small = measure(user, settings, direction, existing=100)
    large = measure(user, settings, direction, existing=1000)
    print(
        f"\n{direction}: 50 records against 100 existing -> {small['calls']} calls "
        f"({small['total_per_record']:.2f}/record, listing {small['listing']}); "
        f"against 1000 -> {large['calls']} calls ({large['total_per_record']:.2f}/record, "
        f"listing {large['listing']})"
    )
    # Everything but listing the other side (once) costs the same per record (three missing
    # organizations created once each included); a new prospect is read by id first, since
    # Snov.io's list rows carry names and emails only (docs/specs/snovio-shapes.md)...
    bound = 2.2 if direction == SyncRun.Direction.TO_PIPEDRIVE else 1.2
    assert large["per_record"] == small["per_record"] <= bound
    # ...and listing it once costs one call per page of it, not one per record.
    page = 500 if direction == SyncRun.Direction.TO_PIPEDRIVE else 100
    assert large["listing"] <= math.ceil(1000 / page) + 1 + math.ceil(large["organizations"] / 500)
    if direction == SyncRun.Direction.TO_PIPEDRIVE:  # one per company, never a duplicate
        assert large["organizations"] == 1000 // 10 + len(COMPANIES)


def test_only_the_selected_lists_are_sent_when_all_lists_is_off(sandbox, integration):
    lists = SnovioClient.for_connection(integration.snovio).get_user_lists()
    integration.all_lists = False
    integration.save()
    ListSelection.objects.create(integration=integration, list_id=str(lists[1]["id"]))
    run = run_transfer(integration, SyncRun.Direction.TO_PIPEDRIVE, None)
    assert run.done == run.total == lists[1]["contacts"]


# --- failures --------------------------------------------------------------------------------
def test_a_record_the_remote_keeps_refusing_is_failed_with_its_error_and_sent_next_time(
    sandbox, integration
):
    def break_next_create(run):
        if run.checkpoint["page"] == 2 and run.checkpoint["list_index"] == 0:
            sandbox.inject("pipedrive", "503", count=5, path=r"^/api/v2/persons$")

    first = run_transfer(
        integration,
        SyncRun.Direction.TO_PIPEDRIVE,
        None,
        page_size=20,
        after_page=break_next_create,
    )
    failed = first.events.get(outcome="failed")
    assert "answered 503" in failed.reason and "after 5 attempts" in failed.reason
    assert sandbox.pipedrive.persons(failed.email) == []  # checked before every new attempt
    assert first.failed == 1 and first.created == 102

    again = run_transfer(integration, SyncRun.Direction.TO_PIPEDRIVE, None)
    assert (again.created, again.failed) == (1, 0)
    assert again.events.get(outcome="created").email == failed.email


@pytest.mark.parametrize("fault", ["lost_response", "timeout", "502"])
def test_a_person_create_whose_answer_is_lost_ends_with_exactly_one_person(
    sandbox, integration, fault
):
    """`lost_response`: created, then answered 504; `timeout` / 502: never processed."""
    sandbox.inject("pipedrive", fault, path=r"^/api/v2/persons$", method="POST")

    run = run_transfer(integration, SyncRun.Direction.TO_PIPEDRIVE, None)

    assert sandbox.faults[0].count == 0  # the fault did hit a create
    assert run.failed == 0
    persons = all_persons(integration)
    by_email(persons, person_email_list)  # no email twice
    new = set(prospect_emails()) - set(person_emails())
    assert len(persons) == len(PERSONS) + len(new) == run.created + len(PERSONS)
    searches = [r for r in sandbox.request_log if r[2] == "/api/v2/persons/search"]
    assert len(searches) == 1  # looked for once, after the one ambiguous failure


def test_a_transfer_whose_worker_died_is_resumed_by_the_scheduled_catch_up(
    sandbox, integration, request
):
    from integrations.sync.runs import resume_stalled_transfers

    run = create_run(integration, SyncRun.Direction.TO_PIPEDRIVE, None)

    def die(run):
        raise WorkerKilled

    with pytest.raises(WorkerKilled):
        transfer(run, page_size=20, after_page=die)
    assert resume_stalled_transfers() == 0  # its lease has not expired: maybe still alive
    request.getfixturevalue("sync_tasks")  # from here on, tasks run inline
    # The lease expiring stands for its 20 seconds passing.
    SyncRun.objects.filter(pk=run.pk).update(lease_expires_at=timezone.now())

    assert resume_stalled_transfers() == 1

    run.refresh_from_db()
    assert run.status == SyncRun.Status.DONE and run.done == run.total == len(PROSPECTS)
    integration.refresh_from_db()
    assert integration.status == Integration.Status.ACTIVE


def test_a_queued_transfer_whose_task_was_lost_is_queued_again_after_a_minute(
    sandbox, integration, request
):
    from integrations.sync.runs import QUEUED_GRACE, resume_stalled_transfers

    run = create_run(integration, SyncRun.Direction.TO_PIPEDRIVE, None)  # its task never ran
    assert resume_stalled_transfers() == 0  # a worker may still be about to take it
    request.getfixturevalue("sync_tasks")  # from here on, tasks run inline

    assert resume_stalled_transfers(now=timezone.now() + QUEUED_GRACE) == 1

    run.refresh_from_db()
    assert run.status == SyncRun.Status.DONE and run.done == len(PROSPECTS)


def test_the_watch_of_a_live_transfer_only_looks_again_when_its_lease_would_expire(
    sandbox, integration
):
    from django_q.models import Schedule

    from integrations import tasks
    from integrations.sync.locks import RunLease

    run = create_run(integration, SyncRun.Direction.TO_PIPEDRIVE, None)
    assert RunLease(run.pk, owner="worker-a").take()  # a live worker executes it
    run.refresh_from_db()
    sandbox.request_log.clear()

    assert tasks.watch_transfer(run.pk) == f"transfer {run.pk}: alive"

    watch = Schedule.objects.get(name=runs.watch_name(run.pk))
    assert watch.next_run == run.lease_expires_at + runs.WATCH_DELAY
    assert watch.func == "integrations.tasks.watch_transfer" and watch.args == str(run.pk)
    assert not sandbox.request_log and not run.events.exists()  # nothing was done to the run
    # The worst case from a worker's death to its run taken over: the lease, then the watch,
    # then a full cycle of django-q2's scheduler.
    assert LEASE + runs.WATCH_DELAY + runs.SCHEDULER_CYCLE <= timedelta(seconds=60)


def test_a_worker_that_lost_its_lease_stops_without_touching_the_run(sandbox, integration):
    from integrations.sync.locks import RunLease

    run = create_run(integration, SyncRun.Direction.TO_PIPEDRIVE, None)

    def taken_over(run):
        # Another worker took the run over (this one was thought dead).
        SyncRun.objects.filter(pk=run.pk).update(lease_owner="worker-b")

    stopped, state = run_slice(run, page_size=20, after_page=taken_over)

    assert state is Slice.BUSY
    stopped.refresh_from_db()
    assert stopped.status == SyncRun.Status.RUNNING and stopped.lease_owner == "worker-b"
    assert stopped.done == 20  # the first page only: it stopped at its next renewal
    assert RunLease(run.pk, owner="worker-b").take()


def test_a_transfer_is_cut_into_slices_that_each_queue_the_next(sandbox, integration, monkeypatch):
    from integrations import tasks

    queued = []
    monkeypatch.setattr(runs, "SLICE_SECONDS", 0.000001)  # every page uses the slice up
    monkeypatch.setattr(runs, "enqueue_transfer", queued.append)
    run = create_run(integration, SyncRun.Direction.TO_PIPEDRIVE, None)
    run.checkpoint["page_size"] = 50
    run.save()

    slices = [tasks.run_transfer(run.pk)]
    while queued:
        slices.append(tasks.run_transfer(queued.pop()))

    ends = [s.split(",")[0].removeprefix(f"transfer {run.pk}: ") for s in slices]
    assert len(ends) >= 3 and ends == ["more"] * (len(ends) - 1) + ["finished"]
    run.refresh_from_db()
    assert run.status == SyncRun.Status.DONE and run.done == run.total == len(PROSPECTS)
    assert run.events.values("record_id").distinct().count() == run.done


def test_a_transfer_stopped_by_a_rate_limit_is_resumed_by_its_schedule_only(sandbox, integration):
    from django_q.models import Schedule

    from integrations import tasks

    run = create_run(integration, SyncRun.Direction.TO_PIPEDRIVE, None)
    sandbox.inject("pipedrive", "429", count=50, path=r"^/api/v2/persons$", method="POST")
    tasks.run_transfer(run.pk)
    run.refresh_from_db()
    assert run.status == SyncRun.Status.FAILED and "rate limit" in run.error
    retry = Schedule.objects.get(func="integrations.tasks.run_transfer")
    assert (retry.args, retry.kwargs) == (str(run.pk), "resume_failed=True")
    sandbox.faults.clear()

    # A stray copy of its task (a duplicate delivery) leaves the failed run alone...
    assert tasks.run_transfer(run.pk).startswith(f"transfer {run.pk}: finished, failed")
    assert Schedule.objects.filter(func="integrations.tasks.run_transfer").count() == 1
    # ...the schedule resumes it from its checkpoint.
    tasks.run_transfer(run.pk, resume_failed=True)

    run.refresh_from_db()
    assert run.status == SyncRun.Status.DONE and run.done == run.total == len(PROSPECTS)
    assert run.events.values("record_id").distinct().count() == run.done
