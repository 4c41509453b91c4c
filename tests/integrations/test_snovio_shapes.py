"""Snov.io answers exactly as documented, and SyncBridge working with exactly that.

docs/specs/snovio-shapes.md: a prospect-list row carries id, name, firstName, lastName and
emails[]; get-prospect-by-id and get-prospects-by-email carry the profile (names, location,
currentJob, lists, campaigns) but no emails, phones or custom fields.
"""

from __future__ import annotations

import pytest
import requests
from django.conf import settings

from integrations.models import PendingChange, RecordLink, SyncEvent, SyncRun
from integrations.snovio.constants import (
    ADD_PROSPECT_PATH,
    PROSPECT_BY_ID_PATH,
    PROSPECTS_BY_EMAIL_PATH,
)
from integrations.sync import catchup
from integrations.sync.realtime import drain
from integrations.sync.receivers import register_webhooks
from integrations.sync.transfer import transfer
from tests.factories import connected_integration, fast_limits  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_limits", "sync_tasks")]

API = "http://sandbox.test/snovio"
ROW_KEYS = {"id", "name", "firstName", "lastName", "emails"}
ROW_EMAIL_KEYS = {
    "email",
    "probability",
    "isVerified",
    "jobStatus",
    "domainType",
    "isValidFormat",
    "isDisposable",
    "isWebmail",
    "isGibberish",
    "smtpStatus",
}
PROFILE_KEYS = {
    "id",
    "name",
    "firstName",
    "lastName",
    "industry",
    "country",
    "locality",
    "social",
    "lastUpdateDate",
    "currentJob",
    "previousJob",
    "lists",
    "campaigns",
}
SHARED = "anna.shared@acme.example"


def raw(path: str, **data) -> dict:
    token = requests.post(
        f"{API}/v1/oauth/access_token",
        data={
            "grant_type": "client_credentials",
            "client_id": settings.SANDBOX_SNOVIO_CLIENT_ID,
            "client_secret": settings.SANDBOX_SNOVIO_CLIENT_SECRET,
        },
    ).json()["access_token"]
    answer = requests.post(API + path, data=data, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    return answer.json()


def calls(sandbox, since: int, remote: str = "snovio") -> list[tuple[str, str]]:
    return [(m, p) for r, m, p in sandbox.request_log[since:] if r == remote and "oauth" not in p]


@pytest.fixture
def box(empty_sandbox):
    box = empty_sandbox
    box.snovio.create_list("Leads")
    box.snovio.add_custom_field("Industry")
    box.snovio.add_prospect(
        "Leads",
        email=SHARED,
        first_name="Anna",
        last_name="Shared",
        position="Head of Sales",
        company="Acme",
        phone="+49 30 1",
        custom_fields={"Industry": "Software"},
    )
    return box


def test_each_prospect_answer_carries_exactly_the_documented_fields(box):
    leads = box.snovio.state["lists"]
    list_id = next(iter(leads))
    page = raw("/v1/prospect-list", listId=list_id)
    [row] = page["prospects"]
    profile = raw("/v1/get-prospect-by-id", id=row["id"])["data"]
    [by_email] = raw("/v1/get-prospects-by-email", email=SHARED)["data"]

    assert set(row) == ROW_KEYS
    assert set(row["emails"][0]) == ROW_EMAIL_KEYS
    assert set(profile) == set(by_email) == PROFILE_KEYS
    assert profile["currentJob"][0]["position"] == "Head of Sales"
    assert profile["currentJob"][0]["companyName"] == "Acme"


@pytest.fixture
def live(user, box):
    """Two-way, Active, the shared contact linked by a first transfer."""
    box.pipedrive.add_person(name="Anna Shared", email=SHARED, job_title="Head of Sales")
    integration = connected_integration(user, box)
    register_webhooks(integration)
    run = transfer(
        SyncRun.objects.create(
            integration=integration, direction="to_pipedrive", source_app="snovio"
        )
    )
    assert run.status == SyncRun.Status.DONE, run.error
    integration.refresh_from_db()
    return integration


@pytest.mark.parametrize(
    "rule, direction, expected",
    [
        ("latest", "to_snovio", [("POST", ADD_PROSPECT_PATH)]),
        # Two-way, a Snov.io edit not seen yet is a conflict to record: read by id, never by
        # email (whatever the rule).
        ("latest", "two_way", [("POST", PROSPECT_BY_ID_PATH), ("POST", ADD_PROSPECT_PATH)]),
        ("pipedrive", "two_way", [("POST", PROSPECT_BY_ID_PATH), ("POST", ADD_PROSPECT_PATH)]),
    ],
)
def test_a_pipedrive_change_to_a_linked_contact_reaches_its_prospect_by_id(
    box, live, rule, direction, expected
):
    live.realtime_rule, live.direction = rule, direction
    live.save()
    person = box.pipedrive.persons(SHARED)[0]
    assert RecordLink.objects.get(integration=live, email=SHARED).snovio_prospect_id
    mark = len(box.request_log)

    box.pipedrive.change_person(person["id"], job_title="Chief Revenue Officer")

    assert calls(box, mark) == expected
    [stored] = box.snovio.prospects()
    assert stored["position"] == "Chief Revenue Officer"
    assert stored["customFields"] == {"Industry": "Software"}  # what it did not change stays


def test_a_pipedrive_change_to_a_contact_already_in_snovio_updates_it_not_creates_it(user, box):
    """Unlinked on both sides (one-way Pipedrive -> Snov.io, no transfer ran): the person's
    email is found in Snov.io by an exact by-email look-up, whose answer has no emails."""
    integration = connected_integration(user, box, direction="to_snovio")
    register_webhooks(integration)
    drain(integration.pk)  # the baseline
    before = len(box.snovio.prospects())
    mark = len(box.request_log)

    person = box.pipedrive.add_person(name="Anna Shared", email=SHARED, job_title="COO")

    assert len(box.snovio.prospects()) == before  # never a second prospect
    [stored] = box.snovio.prospects()
    assert stored["position"] == "COO"
    assert ("POST", PROSPECTS_BY_EMAIL_PATH) in calls(box, mark)
    [event] = SyncEvent.objects.filter(integration=integration, email=SHARED)
    assert event.outcome == SyncEvent.Outcome.UPDATED, event.reason
    assert event.record_id == stored["id"]
    change = PendingChange.objects.get(
        integration=integration, record_key=f"pipedrive:{person['id']}"
    )
    assert change.outcome.startswith("updated"), change.outcome


def test_a_snovio_change_of_a_field_list_rows_lack_is_found_by_the_profile_recheck(
    box, live, settings
):
    settings.SNOVIO_PROFILE_RECHECKS = 1
    box.snovio.update_prospect(SHARED, position="Head of Growth")
    mark = len(box.request_log)

    found = catchup.catch_up(live)

    assert found == 1
    assert calls(box, mark).count(("POST", PROSPECT_BY_ID_PATH)) == 1  # the budget: one
    drain(live.pk)
    assert box.pipedrive.persons(SHARED)[0]["job_title"] == "Head of Growth"
    assert not PendingChange.objects.filter(integration=live, processed_at=None).exists()


def test_the_profile_recheck_never_reads_more_than_its_budget_and_rotates(box, live, settings):
    for n in range(4):
        box.snovio.add_prospect("Leads", email=f"p{n}@acme.example", first_name=f"P{n}")
    transfer(
        SyncRun.objects.create(integration=live, direction="to_pipedrive", source_app="snovio")
    )
    settings.SNOVIO_PROFILE_RECHECKS = 2
    read: list[str] = []
    for _ in range(3):
        mark = len(box.request_log)
        catchup.catch_up(live)
        by_id = [c for c in calls(box, mark) if c[1] == PROSPECT_BY_ID_PATH]
        assert len(by_id) == 2
        read.append(len(by_id))
    linked = RecordLink.objects.filter(integration=live).exclude(snovio_prospect_id="")
    assert linked.count() == 5  # 3 catch-ups x 2 reads cover all 5 linked prospects


def test_a_transfer_reads_profiles_only_for_records_new_or_changed(box, live):
    box.snovio.add_prospect("Leads", email="new@acme.example", first_name="Neu", position="CEO")
    mark = len(box.request_log)

    run = transfer(
        SyncRun.objects.create(integration=live, direction="to_pipedrive", source_app="snovio")
    )

    assert run.status == SyncRun.Status.DONE, run.error
    assert (run.created, run.unchanged) == (1, 1)
    assert calls(box, mark).count(("POST", PROSPECT_BY_ID_PATH)) == 1  # the new one only
    assert box.pipedrive.persons("new@acme.example")[0]["job_title"] == "CEO"
