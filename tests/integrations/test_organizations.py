"""Company name <-> Pipedrive organization: client, simulator and both transfer directions."""

from __future__ import annotations

import pytest

from integrations.http import RemoteError
from integrations.models import SyncRun
from integrations.pipedrive.client import PipedriveClient
from integrations.sandbox import seed
from integrations.snovio.client import SnovioClient
from integrations.sync.runs import create_run
from integrations.sync.transfer import transfer
from tests.factories import connected_integration, fast_limits  # noqa: F401
from tests.integrations.pipedrive_support import make_owner, oauth_connection

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_limits")]


def run_transfer(integration, direction: str) -> SyncRun:
    run = transfer(create_run(integration, direction, None))
    assert run.status == SyncRun.Status.DONE, run.error
    return run


def pipedrive_requests(sandbox, method: str, path: str) -> int:
    return sum(1 for r in sandbox.request_log if r[0] == "pipedrive" and r[1:] == (method, path))


@pytest.fixture
def client(django_user_model, empty_sandbox) -> PipedriveClient:
    owner = make_owner(django_user_model)
    return PipedriveClient.for_connection(oauth_connection(owner, empty_sandbox))


# --- the client against the strict simulator -------------------------------------------------
def test_iter_organizations_lists_every_organization_in_pages_of_500(client, empty_sandbox):
    for k in range(1200):
        empty_sandbox.pipedrive.add_organization(f"Org {k}")

    orgs = list(client.iter_organizations())

    assert len({o["id"] for o in orgs}) == 1200
    assert client.http.calls == 3  # 500 + 500 + 200


def test_an_organization_is_created_and_read_back_in_the_v2_shape(client, empty_sandbox):
    owner = empty_sandbox.pipedrive.user_id("Sam Seller")

    created = client.create_organization({"name": " Kestrel Robotics ", "owner_id": owner})
    fetched = client.get_organization(created["id"])

    assert fetched == created
    assert (fetched["name"], fetched["owner_id"], fetched["is_deleted"]) == (
        "Kestrel Robotics",
        owner,
        False,
    )
    assert empty_sandbox.pipedrive.organizations("kestrel robotics") == [fetched]


@pytest.mark.parametrize(
    "body", [{"owner_id": 1}, {"name": "Acme", "domain": "acme.example"}, {"name": 5}]
)
def test_an_organization_body_the_spec_refuses_is_refused(client, body):
    with pytest.raises(RemoteError) as refused:
        client.create_organization(body)

    assert refused.value.status == 400 and refused.value.permanent


def test_finding_organizations_by_name_ignores_case_and_partial_matches(client, empty_sandbox):
    box = empty_sandbox.pipedrive
    acme = box.add_organization("Acme")
    upper = box.add_organization("ACME")
    box.add_organization("Acme Logistics")

    found = client.find_organizations_by_name(" acme ")

    assert sorted(o["id"] for o in found) == [acme["id"], upper["id"]]
    assert client.find_organizations_by_name("Nobody Inc") == []


def test_the_seed_links_every_person_to_its_companys_organization(sandbox):
    box = sandbox.pipedrive
    companies = {
        p["email"].lower(): p["company"] for p in seed.pipedrive_persons(seed.demo_people())
    }
    orgs = {o["id"]: o["name"] for o in box.organizations()}

    persons = box.persons()

    assert len(orgs) == len(set(companies.values())) == box.summary()["Pipedrive organizations"]
    for person in persons:
        assert orgs[person["org_id"]] == companies[person["emails"][0]["value"].lower()]


# --- the sync engine ---------------------------------------------------------------------------
@pytest.fixture
def accounts(empty_sandbox):
    """Snov.io prospects of three companies (one already in Pipedrive) and one of none."""
    box = empty_sandbox
    box.snovio.create_list("Leads")
    for email, company in (
        ("ann@acme.example", "acme logistics"),  # the organization exists, in another case
        ("ben@bright.example", "Brightpath Labs"),  # two prospects of a new company...
        ("cy@bright.example", "Brightpath Labs"),  # ...make one organization
        ("dee@cobalt.example", "Cobalt Health"),
        ("eve@nowhere.example", ""),
    ):
        first = email.split("@")[0].capitalize()
        box.snovio.add_prospect(
            "Leads", email=email, first_name=first, last_name="Example", company=company
        )
    box.pipedrive.add_organization("Acme Logistics")
    return box


def org_name(box, person: dict) -> str | None:
    orgs = {o["id"]: o["name"] for o in box.organizations()}
    return orgs.get(person.get("org_id"))


def test_a_transfer_to_pipedrive_links_persons_to_organizations_by_name(user, accounts):
    integration = connected_integration(user, accounts, catalog=False)
    accounts.request_log.clear()

    run = run_transfer(integration, SyncRun.Direction.TO_PIPEDRIVE)

    box = accounts.pipedrive
    assert run.created == 5 and run.failed == 0
    assert org_name(box, box.persons("ann@acme.example")[0]) == "Acme Logistics"
    assert org_name(box, box.persons("ben@bright.example")[0]) == "Brightpath Labs"
    assert (
        box.persons("cy@bright.example")[0]["org_id"]
        == box.persons("ben@bright.example")[0]["org_id"]
    )
    assert org_name(box, box.persons("dee@cobalt.example")[0]) == "Cobalt Health"
    assert "org_id" not in box.persons("eve@nowhere.example")[0]
    assert sorted(o["name"] for o in box.organizations()) == [
        "Acme Logistics",
        "Brightpath Labs",
        "Cobalt Health",
    ]  # found by name, or created once: no duplicate
    # Listed once for the whole transfer, never searched per record.
    assert pipedrive_requests(accounts, "GET", "/api/v2/organizations") == 1
    assert pipedrive_requests(accounts, "POST", "/api/v2/organizations") == 2
    assert not any("/search" in r[2] for r in accounts.request_log)


def test_a_second_transfer_to_pipedrive_writes_nothing_for_the_same_companies(user, accounts):
    integration = connected_integration(user, accounts, catalog=False)
    run_transfer(integration, SyncRun.Direction.TO_PIPEDRIVE)
    accounts.request_log.clear()

    again = run_transfer(integration, SyncRun.Direction.TO_PIPEDRIVE)

    assert again.created == again.updated == again.conflicts == 0  # "acme" is "Acme"
    assert not [r for r in accounts.request_log if r[0] == "pipedrive" and r[1] != "GET"]


def test_a_transfer_to_snovio_carries_the_organization_name_as_company_name(user, empty_sandbox):
    box = empty_sandbox
    box.snovio.create_list("From Pipedrive")
    box.snovio.add_prospect("From Pipedrive", email="kim@kestrel.example", first_name="Kim")
    kestrel = box.pipedrive.add_organization("Kestrel Robotics")
    lumen = box.pipedrive.add_organization("Lumen Media")
    box.pipedrive.add_person(name="Kim Berg", email="kim@kestrel.example", org_id=kestrel["id"])
    box.pipedrive.add_person(name="Lou Weber", email="lou@lumen.example", org_id=lumen["id"])
    box.pipedrive.add_person(name="Max Solo", email="max@solo.example")
    integration = connected_integration(user, box, catalog=False)
    box.request_log.clear()

    run = run_transfer(integration, SyncRun.Direction.TO_SNOVIO)

    assert (run.created, run.updated, run.failed) == (2, 1, 0)
    snovio = SnovioClient.for_connection(integration.snovio)
    companies = {
        email: snovio.get_prospect_by_email(email)[0]["companyName"]
        for email in ("kim@kestrel.example", "lou@lumen.example", "max@solo.example")
    }
    assert companies == {
        "kim@kestrel.example": "Kestrel Robotics",  # filled into the existing prospect
        "lou@lumen.example": "Lumen Media",
        "max@solo.example": "",
    }
    assert pipedrive_requests(box, "GET", "/api/v2/organizations") == 1  # names listed once
    assert not any(r[2].startswith("/api/v2/organizations/") for r in box.request_log)


def test_an_organization_whose_create_answer_was_lost_is_found_not_made_twice(user, accounts):
    integration = connected_integration(user, accounts, catalog=False)
    accounts.inject("pipedrive", "lost_response", path=r"^/api/v2/organizations$", method="POST")

    run = run_transfer(integration, SyncRun.Direction.TO_PIPEDRIVE)

    box = accounts.pipedrive
    assert run.created == 5 and run.failed == 0
    assert len(box.organizations("Brightpath Labs")) == 1
    assert org_name(box, box.persons("cy@bright.example")[0]) == "Brightpath Labs"
    assert len(box.organizations()) == 3
