"""The strict sandbox holds both sides to Pipedrive's official OpenAPI specs."""

from __future__ import annotations

import json

import pytest
import requests

from integrations.http import RemoteError
from integrations.pipedrive.client import PipedriveClient
from integrations.sandbox import spec
from integrations.sandbox.core import SandboxRequest, SandboxResponse
from tests.integrations.pipedrive_support import make_owner, oauth_connection

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(django_user_model, sandbox):
    return PipedriveClient.for_connection(oauth_connection(make_owner(django_user_model), sandbox))


@pytest.fixture
def checked(monkeypatch):
    """Record every request and answer the strict sandbox checked against the spec."""
    seen = {"requests": [], "responses": []}
    request_error, check_response = spec.request_error, spec.check_response

    def record_request(request):
        problem = request_error(request)
        seen["requests"].append((request.method, request.path, problem))
        return problem

    def record_response(request, response):
        check_response(request, response)  # raises on a violation
        seen["responses"].append((request.method, request.path, response.status))

    monkeypatch.setattr(spec, "request_error", record_request)
    monkeypatch.setattr(spec, "check_response", record_response)
    return seen


def post(client: PipedriveClient, path: str, body: dict) -> requests.Response:
    return requests.post(
        client.base_url + path,
        data=json.dumps(body),
        headers=client._headers() | {"Content-Type": "application/json"},
        timeout=5,
    )


def test_strict_sandbox_refuses_a_request_that_violates_the_spec(client):
    wrong_type = post(client, "/api/v2/persons", {"name": 42})
    unknown_field = post(client, "/api/v2/persons", {"name": "Ann", "first_name": "Ann"})
    missing_required = post(client, "/api/v1/webhooks", {"subscription_url": "http://x.test/"})

    assert wrong_type.status_code == 400
    assert "name: 42 is not of type 'string'" in wrong_type.json()["error"]
    assert unknown_field.status_code == 400 and "first_name" in unknown_field.json()["error"]
    assert missing_required.status_code == 400
    assert "'event_action' is a required property" in missing_required.json()["error"]
    assert client.http.calls == 0  # these went around the client


def test_strict_mode_is_what_refuses_an_off_spec_query(client, sandbox):
    with pytest.raises(RemoteError) as refused:
        client.list_deals(status="archived")  # not in the spec's enum
    assert refused.value.status == 400 and "archived" in str(refused.value)

    sandbox.config["strict_spec"] = False
    assert client.list_deals(status="archived") == []


def test_a_request_without_credentials_violates_the_spec():
    problem = spec.request_error(SandboxRequest("GET", "/api/v2/persons"))

    assert problem and "Security" in problem


def test_an_answer_that_breaks_the_response_schema_raises():
    answer = SandboxResponse(200, {"success": True, "data": [{"id": "1001", "name": 5}]})

    with pytest.raises(spec.SpecViolation, match="data/0/id"):
        spec.check_response(SandboxRequest("GET", "/api/v2/persons"), answer)


def test_oauth_endpoints_are_not_in_the_spec_and_pass_unchecked():
    assert spec.request_error(SandboxRequest("POST", "/oauth/token", body=b"x=1")) is None


def test_every_client_method_sends_valid_requests_and_gets_valid_answers(client, sandbox, checked):
    box = sandbox.pipedrive
    industry, lead_source = box.field_key("Industry"), box.field_key("Lead source")
    sales = client.list_pipelines()[0]
    stages = client.list_stages(sales["id"])
    assert [s["order_nr"] for s in stages] == [1, 2, 3, 4, 5]
    owner = client.list_users()[0]["id"]
    assert client.me()["is_you"] is True
    fields = {f["key"]: f for f in client.list_person_fields()}
    option = fields[lead_source]["options"][0]["id"]

    org = client.create_organization({"name": "Spec Org", "owner_id": owner})
    assert client.get_organization(org["id"])["name"] == "Spec Org"
    assert org["id"] in {o["id"] for o in client.iter_organizations()}
    assert [o["id"] for o in client.find_organizations_by_name("spec org")] == [org["id"]]

    person = client.create_person(
        {
            "name": "Spec Person",
            "owner_id": owner,
            "org_id": org["id"],
            "emails": [{"value": "spec.person@example.com", "primary": True, "label": "work"}],
            "phones": [{"value": "+49 30 1234567", "primary": True, "label": "work"}],
            "job_title": "Buyer",
            "custom_fields": {industry: "Retail", lead_source: option},
        }
    )
    client.update_person(person["id"], {"job_title": "Head of Buying"})
    assert client.get_person(person["id"])["job_title"] == "Head of Buying"
    assert [p["id"] for p in client.find_persons_by_email("spec.person@example.com")] == [
        person["id"]
    ]
    page, _ = client.list_persons_page(limit=10)
    assert page

    deal = client.create_deal(
        {"title": "Spec deal", "person_id": person["id"], "stage_id": stages[0]["id"]}
    )
    client.update_deal(deal["id"], {"stage_id": stages[1]["id"]})
    client.update_deal(deal["id"], {"status": "won"})
    assert client.list_deals(person_id=person["id"], status="won")[0]["id"] == deal["id"]
    assert client.list_deals(person_id=person["id"]) == []  # open only, by default

    activity = client.create_activity(
        {
            "subject": "Follow up",
            "type": "email",
            "person_id": person["id"],
            "deal_id": deal["id"],
            "due_date": "2026-03-01",
            "due_time": "10:30",
        }
    )
    client.update_activity(activity["id"], {"done": True})
    assert client.list_activities(person_id=person["id"], done=True)[0]["id"] == activity["id"]

    hook = client.create_webhook("https://app.example/hooks/pd/", "*", "person", "u", "p")
    assert [w["id"] for w in client.list_webhooks()] == [hook["id"]]
    client.delete_webhook(hook["id"])
    client.delete_person(person["id"])

    assert client.http.calls == len(checked["requests"])
    assert all(problem is None for *_, problem in checked["requests"])
    assert len(checked["responses"]) == len(checked["requests"])  # every answer checked too


def test_the_seeded_sandbox_answers_match_the_response_schemas(client, sandbox, checked):
    box = sandbox.pipedrive
    person = box.persons()[0]
    list(client.iter_persons())
    client.get_person(person["id"])
    client.list_person_fields()
    client.list_users()
    client.list_stages()
    orgs = list(client.iter_organizations())
    client.get_organization(person["org_id"])

    paths = {path for _, path, _ in checked["responses"]}
    assert {"/api/v2/persons", "/api/v1/personFields", "/api/v1/users", "/api/v2/stages"} <= paths
    assert f"/api/v2/persons/{person['id']}" in paths
    assert "/api/v2/organizations" in paths and len(orgs) == 12


def test_the_client_refuses_person_fields_that_v2_does_not_take(client):
    with pytest.raises(ValueError, match="first_name"):
        client.create_person({"name": "Ann Lee", "first_name": "Ann"})
    with pytest.raises(ValueError, match="email"):
        client.update_person(1001, {"email": "ann@example.com"})

    assert client.http.calls == 0


def test_the_shipped_specs_are_pipedrives_official_files_unchanged():
    """docs/specs/pipedrive/SOURCE.md records each file's sha256 as published."""
    import hashlib
    import re

    from integrations.sandbox.spec import spec_dir

    folder = spec_dir()
    source = (folder / "SOURCE.md").read_text()
    for name in ("openapi-v1.yaml", "openapi-v2.yaml"):
        row = next(line for line in source.splitlines() if line.startswith(f"| `{name}`"))
        expected = re.findall(r"\b[0-9a-f]{64}\b", row)[0]
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == expected
