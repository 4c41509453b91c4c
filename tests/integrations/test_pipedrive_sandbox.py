"""The Pipedrive simulator's own behaviour: seed data, webhooks out, validation, state."""

from __future__ import annotations

import base64
import json

import pytest

from integrations.http import RemoteError
from integrations.pipedrive.client import PipedriveClient
from integrations.sandbox.core import Sandbox
from integrations.sandbox.pipedrive import custom_field_key
from tests.integrations.pipedrive_support import make_owner, oauth_connection

pytestmark = pytest.mark.django_db


@pytest.fixture
def deliveries(sandbox):
    """Webhook deliveries, captured instead of posted to the app."""
    received = []

    def deliver(url, headers, body):
        received.append({"url": url, "headers": headers, "payload": json.loads(body)})
        return 200

    sandbox.deliver = deliver
    return received


@pytest.fixture
def client(django_user_model, sandbox):
    return PipedriveClient.for_connection(oauth_connection(make_owner(django_user_model), sandbox))


def subscribe(client: PipedriveClient, action: str = "*") -> dict:
    return client.create_webhook("https://app.example/hooks/pd/", action, "person", "hook", "s3c")


def test_seed_has_the_demo_company(sandbox):
    box = sandbox.pipedrive
    persons = box.persons()

    assert box.summary()["Pipedrive persons"] == 100
    assert {u["name"] for u in box.state["users"].values()} == {
        "Sam Seller",
        "Pat Pipeline",
        "Robin Admin",
    }
    assert persons[0]["owner_id"] != persons[1]["owner_id"]  # owners taken from the seed
    assert all(p["org_id"] and p["emails"] and p["job_title"] for p in persons)
    assert persons[0]["custom_fields"][custom_field_key("Industry")]
    assert len(custom_field_key("Industry")) == 40
    assert box.stage_id("Partnerships", "Signed")


def test_person_changes_reach_subscribed_webhooks_as_v2_payloads(client, sandbox, deliveries):
    subscribe(client)
    person = sandbox.pipedrive.add_person(name="Hook Person", email="hook@example.com")
    sandbox.pipedrive.change_person(person["id"], job_title="CEO")
    client.update_person(person["id"], {"phones": [{"value": "+1 555", "primary": True}]})
    sandbox.pipedrive.remove_person(person["id"])

    metas = [d["payload"]["meta"] for d in deliveries]
    assert [(m["action"], m["change_source"]) for m in metas] == [
        ("create", "app"),
        ("change", "app"),
        ("change", "api"),
        ("delete", "app"),
    ]
    assert {m["entity"] for m in metas} == {"person"}
    assert {m["entity_id"] for m in metas} == {str(person["id"])}
    assert metas[0]["version"] == "2.0" and metas[0]["attempt"] == 1
    created, changed, _, deleted = (d["payload"] for d in deliveries)
    assert created["data"]["emails"][0]["value"] == "hook@example.com"
    assert created["previous"] is None
    assert changed["data"]["job_title"] == "CEO" and changed["previous"] == {"job_title": None}
    assert deleted["data"] is None and deleted["previous"]["id"] == person["id"]


def test_webhook_deliveries_carry_the_subscription_basic_auth(client, sandbox, deliveries):
    subscribe(client)
    sandbox.pipedrive.add_person(name="Auth Person")

    header = deliveries[0]["headers"]["Authorization"]
    assert base64.b64decode(header.split()[1]).decode() == "hook:s3c"
    assert deliveries[0]["url"] == "https://app.example/hooks/pd/"


def test_custom_fields_arrive_typed_in_webhooks(client, sandbox, deliveries):
    subscribe(client, "change")
    box = sandbox.pipedrive
    person = box.add_person(name="Typed")
    key = box.field_key("Employees")

    box.change_person(person["id"], custom_fields={key: 250})

    payload = deliveries[0]["payload"]
    assert payload["data"]["custom_fields"][key] == {"type": "double", "value": 250}
    assert payload["previous"] == {"custom_fields": {key: None}}


def test_only_matching_subscriptions_receive_events(client, sandbox, deliveries):
    subscribe(client, "delete")
    sandbox.pipedrive.add_person(name="Quiet")

    assert deliveries == []


def test_a_user_may_have_at_most_40_webhooks_and_the_41st_is_refused_with_422(client):
    for _ in range(40):
        subscribe(client)

    with pytest.raises(RemoteError) as refused:
        subscribe(client)
    assert refused.value.status == 422 and "limit" in str(refused.value.body)  # as documented


def test_invalid_custom_field_values_are_refused(client, sandbox):
    box = sandbox.pipedrive
    for custom_fields in (
        {box.field_key("Lead source"): 99999},  # no such option
        {box.field_key("Employees"): "many"},
        {box.field_key("Last event date"): "01/02/2026"},
        {"0" * 40: "unknown key"},
    ):
        with pytest.raises(RemoteError) as refused:
            client.create_person({"name": "X", "custom_fields": custom_fields})
        assert refused.value.status == 400


def test_deals_move_between_stages_and_close(client, sandbox):
    box = sandbox.pipedrive
    person = box.add_person(name="Buyer")
    deal = client.create_deal({"title": "Big one", "person_id": person["id"]})
    assert deal["stage_id"] == box.stage_id("Sales", "Lead in") and deal["status"] == "open"

    moved = client.update_deal(deal["id"], {"stage_id": box.stage_id("Partnerships", "Pilot")})
    lost = client.update_deal(deal["id"], {"status": "lost"})

    assert moved["pipeline_id"] == 2 and "stage_change_time" in moved
    assert lost["status"] == "lost" and "lost_time" in lost and "won_time" not in lost
    with pytest.raises(RemoteError):
        client.update_deal(deal["id"], {"stage_id": 1, "pipeline_id": 2})
    with pytest.raises(RemoteError):
        client.create_deal({"title": "Orphan", "person_id": 999999})


def test_activities_refuse_unknown_types_and_bad_dates(client, sandbox):
    person = sandbox.pipedrive.add_person(name="Busy")
    for data in ({"type": "carrier pigeon"}, {"due_date": "tomorrow"}):
        with pytest.raises(RemoteError):
            client.create_activity({"subject": "x", "person_id": person["id"]} | data)

    done = client.create_activity({"subject": "Call", "person_id": person["id"], "done": True})
    assert done["marked_as_done_time"] and done["type"] == "task"


def test_state_survives_dump_and_load(sandbox):
    box = sandbox.pipedrive
    box.add_person(name="Kept", email="kept@example.com")
    token = box.issue_token()

    again = Sandbox(seed=False)
    again.pipedrive.load(json.loads(json.dumps(box.dump())))

    assert again.pipedrive.summary() == box.summary()
    assert again.pipedrive.persons(email="KEPT@example.com")[0]["name"] == "Kept"
    assert token["access_token"] in again.pipedrive.state["access_tokens"]


def test_an_empty_sandbox_still_has_users_pipelines_and_fields(empty_sandbox):
    summary = empty_sandbox.pipedrive.summary()

    assert summary["Pipedrive persons"] == 0 and summary["Pipedrive users"] == 3
    assert empty_sandbox.pipedrive.field_key("Lead source")
