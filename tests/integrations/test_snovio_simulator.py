"""The Snov.io simulator itself: raw HTTP behaviour, strict mode, state, campaign events."""

from __future__ import annotations

import json

import pytest
import requests
from django.conf import settings

from automations.models import Trigger
from integrations.snovio.webhook_payload import read_webhook

API = "http://sandbox.test/snovio"


def token() -> str:
    answer = requests.post(
        f"{API}/v1/oauth/access_token",
        data={
            "grant_type": "client_credentials",
            "client_id": settings.SANDBOX_SNOVIO_CLIENT_ID,
            "client_secret": settings.SANDBOX_SNOVIO_CLIENT_SECRET,
        },
    )
    assert answer.status_code == 200
    body = answer.json()
    assert (body["token_type"], body["expires_in"]) == ("Bearer", 3600)
    return body["access_token"]


def bearer(value: str) -> dict:
    return {"Authorization": f"Bearer {value}"}


@pytest.fixture
def deliveries(empty_sandbox):
    """Capture webhook deliveries instead of posting them anywhere."""
    received = []

    def deliver(url, headers, body):
        received.append({"url": url, "headers": headers, "payload": json.loads(body)})
        return 200

    empty_sandbox.deliver = deliver
    return received


@pytest.fixture
def lea(empty_sandbox):
    leads = empty_sandbox.snovio.create_list("Leads")
    return empty_sandbox.snovio.add_prospect(
        leads["id"], email="lea@acme.example", first_name="Lea", last_name="Roth", company="Acme"
    )


def subscribe(event_object: str, event_action: str, url: str) -> dict:
    answer = requests.post(
        f"{API}/v2/webhooks",
        json={"event_object": event_object, "event_action": event_action, "endpoint_url": url},
        headers=bearer(token()),
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]


def test_a_token_works_for_an_hour_by_the_sandbox_clock(empty_sandbox):
    issued = token()
    start = empty_sandbox.clock()

    empty_sandbox.clock = lambda: start + 3599
    assert requests.get(f"{API}/v1/get-user-lists", headers=bearer(issued)).status_code == 200
    empty_sandbox.clock = lambda: start + 3601
    assert requests.get(f"{API}/v1/get-user-lists", headers=bearer(issued)).status_code == 401


def test_calls_without_a_valid_token_are_refused(empty_sandbox):
    assert requests.get(f"{API}/v1/get-user-lists").status_code == 401
    assert requests.get(f"{API}/v1/get-user-lists", headers=bearer("made-up")).status_code == 401
    # The access_token parameter the docs' examples use is accepted too.
    assert requests.get(f"{API}/v1/get-user-lists", params={"access_token": token()}).ok


def test_the_token_endpoint_refuses_other_grants_and_wrong_pairs(empty_sandbox):
    wrong_grant = requests.post(f"{API}/v1/oauth/access_token", data={"grant_type": "password"})
    wrong_pair = requests.post(
        f"{API}/v1/oauth/access_token",
        data={"grant_type": "client_credentials", "client_id": "x", "client_secret": "y"},
    )

    assert wrong_grant.status_code == 400
    assert (wrong_pair.status_code, wrong_pair.json()["error"]) == (401, "invalid_client")


def test_after_revocation_even_the_right_pair_gets_no_token_until_reset(empty_sandbox):
    empty_sandbox.snovio.revoke_all()
    assert (
        requests.post(
            f"{API}/v1/oauth/access_token",
            data={
                "grant_type": "client_credentials",
                "client_id": settings.SANDBOX_SNOVIO_CLIENT_ID,
                "client_secret": settings.SANDBOX_SNOVIO_CLIENT_SECRET,
            },
        ).status_code
        == 401
    )

    empty_sandbox.reset(seed=False)
    assert token()


def test_strict_mode_rejects_a_request_missing_a_required_parameter(empty_sandbox):
    auth = bearer(token())

    strict = requests.post(f"{API}/v1/prospect-list", data={"page": 1}, headers=auth)
    empty_sandbox.config["strict_spec"] = False
    lenient = requests.post(f"{API}/v1/prospect-list", data={"page": 1}, headers=auth)

    assert strict.status_code == 400
    assert strict.json() == {"success": False, "message": "Missing required parameter: listId"}
    assert lenient.status_code == 400 and "not found" in lenient.json()["message"]


def test_unknown_paths_and_wrong_methods_are_told_apart(empty_sandbox):
    auth = bearer(token())

    assert requests.get(f"{API}/v1/get-prospect-by-email", headers=auth).status_code == 404
    assert requests.post(f"{API}/v1/get-user-lists", headers=auth).status_code == 405


def test_form_posts_use_the_documented_bracket_notation(empty_sandbox):
    target = empty_sandbox.snovio.create_list("Target")
    empty_sandbox.snovio.add_custom_field("Industry")
    answer = requests.post(
        f"{API}/v1/add-prospect-to-list",
        data={
            "listId": target["id"],
            "email": "kai@orbit.example",
            "fullName": "Kai Lund",
            "phones[]": ["+1 555 0100", "+1 555 0101"],
            "customFields[Industry]": "Retail",
            "socialLinks[linkedIn]": "https://www.linkedin.com/in/kai",
        },
        headers=bearer(token()),
    )

    prospect = empty_sandbox.snovio.dump()["prospects"][answer.json()["id"]]
    assert (prospect["firstName"], prospect["lastName"]) == ("Kai", "Lund")
    assert prospect["phones"] == ["+1 555 0100", "+1 555 0101"]
    assert prospect["customFields"] == {"Industry": "Retail"}
    assert prospect["socialLinks"] == {"linkedIn": "https://www.linkedin.com/in/kai"}


def test_state_dumps_to_json_and_loads_into_a_fresh_simulator(empty_sandbox, lea):
    from integrations.sandbox.snovio import SnovioSimulator

    empty_sandbox.snovio.fire_campaign_event("email_sent", "lea@acme.example", "")
    dumped = json.loads(json.dumps(empty_sandbox.snovio.dump()))

    twin = SnovioSimulator(empty_sandbox)
    twin.load(dumped)

    assert twin.dump() == empty_sandbox.snovio.dump()
    assert twin.summary() == empty_sandbox.snovio.summary()
    assert twin.prospect_emails() == ["lea@acme.example"]
    assert twin.history("Demo outreach", "sent")[0]["userEmail"] == "lea@acme.example"


def test_the_event_choices_are_the_six_automation_triggers(empty_sandbox):
    assert empty_sandbox.snovio.event_choices() == list(Trigger.choices)


def test_firing_an_unknown_event_or_email_says_what_is_wrong(empty_sandbox, lea):
    with pytest.raises(ValueError, match="Unknown event 'email_exploded'"):
        empty_sandbox.snovio.fire_campaign_event("email_exploded", "lea@acme.example", "Demo")
    with pytest.raises(ValueError, match="No Snov.io prospect has the email 'ghost@acme.example'"):
        empty_sandbox.snovio.fire_campaign_event("email_sent", "ghost@acme.example", "Demo")


def test_a_reply_is_delivered_only_to_matching_active_subscriptions(empty_sandbox, lea, deliveries):
    replies = subscribe("campaign_reply", "received", "http://app.test/hooks/snovio/secret-1")
    subscribe("campaign_email", "opened", "http://app.test/hooks/snovio/secret-1")
    paused = subscribe("campaign_reply", "received", "http://app.test/hooks/snovio/secret-2")
    requests.put(
        f"{API}/v2/webhooks/{paused['id']}", json={"status": "deactivated"}, headers=bearer(token())
    )

    result = empty_sandbox.snovio.fire_campaign_event(
        "reply_received", "LEA@acme.example", "Q3 push"
    )

    assert [d["url"] for d in deliveries] == ["http://app.test/hooks/snovio/secret-1"]
    assert result["deliveries"] == [
        {
            "webhook_id": replies["id"],
            "url": replies["end_point"],
            "event": "campaign_reply/received",
            "status": 200,
        }
    ]
    assert "Reply received for lea@acme.example" in result["summary"]
    event = read_webhook(deliveries[0]["payload"])
    assert (event.trigger, event.email, event.campaign_name) == (
        "reply_received",
        "lea@acme.example",
        "Q3 push",
    )
    assert event.campaign_id == str(result["campaign"]["id"])
    assert event.prospect_id == lea["id"]
    assert event.occurred_at is not None


def test_first_sent_fires_only_for_the_first_email_of_a_campaign(empty_sandbox, lea, deliveries):
    subscribe("campaign_email", "first_sent", "http://app.test/first")
    subscribe("campaign_email", "sent", "http://app.test/every")

    for _ in range(2):
        empty_sandbox.snovio.fire_campaign_event("email_sent", "lea@acme.example", "Demo outreach")

    assert [d["url"] for d in deliveries] == [
        "http://app.test/first",
        "http://app.test/every",
        "http://app.test/every",
    ]


def test_link_clicks_are_recorded_for_the_history_and_sent_to_clicked_hooks(
    empty_sandbox, lea, deliveries
):
    subscribe("campaign_email", "clicked", "http://app.test/clicks")

    empty_sandbox.snovio.fire_campaign_event("link_clicked", "lea@acme.example", "Demo outreach")

    assert read_webhook(deliveries[0]["payload"]).trigger == "link_clicked"
    assert empty_sandbox.snovio.history("Demo outreach", "clicked")[0]["prospectName"] == "Lea Roth"


def test_the_demo_seed_has_lists_prospects_fields_and_campaigns(sandbox):
    snovio = sandbox.snovio
    state = snovio.dump()
    prospects = list(state["prospects"].values())

    assert snovio.summary() == {
        "Snov.io lists": 3,
        "Snov.io prospects": 150,
        "Snov.io campaigns": 3,
        "Snov.io webhooks": 0,
    }
    assert sum(1 for p in prospects if not p["emails"]) == 10
    assert sum(1 for p in prospects if p["customFields"].get("Industry")) == 50
    assert {e["status"] for p in prospects for e in p["emails"]} == {"valid", "unknown"}
    assert [c["campaign"] for c in state["campaigns"].values()][0] == "Demo outreach"
    assert len(snovio.prospect_emails()) == 140
