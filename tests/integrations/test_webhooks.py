"""The webhook endpoints, the contact history page and the transfer progress endpoint."""

from __future__ import annotations

import base64
import json

import pytest
from django.test import Client
from django.urls import reverse

from integrations.models import Integration, PendingChange, SyncEvent, SyncRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def integration(user):
    return Integration.objects.create(
        owner=user, status=Integration.Status.PAUSED, include_email_history=True
    )


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def person_event(action: str = "change", job_title: str = "CTO", timestamp: str = "t1") -> dict:
    return {
        "meta": {
            "action": action,
            "entity": "person",
            "entity_id": "1001",
            "timestamp": timestamp,
            "version": "2.0",
            "attempt": 1,
        },
        "data": {
            "id": 1001,
            "name": "Anna",
            "job_title": job_title,
            "emails": [{"value": "anna@x.example", "primary": True}],
        },
        "previous": {"job_title": "CEO"},
    }


def post_pipedrive(integration, payload, auth=None, client=None):
    client = client or Client(enforce_csrf_checks=True)
    auth = (
        auth
        if auth is not None
        else basic(integration.pipedrive_webhook_user, integration.pipedrive_webhook_password)
    )
    return client.post(
        reverse("sync:pipedrive_hook", args=[integration.webhook_secret]),
        data=json.dumps(payload),
        content_type="application/json",
        HTTP_AUTHORIZATION=auth,
    )


def test_a_pipedrive_delivery_is_stored_without_login_or_csrf_token(integration):
    response = post_pipedrive(integration, person_event())
    assert response.status_code == 200
    change = PendingChange.objects.get(integration=integration)
    assert (change.source, change.kind, change.processed_at) == ("pipedrive", "person.change", None)


def test_a_pipedrive_delivery_without_the_right_basic_credentials_is_refused(integration):
    assert post_pipedrive(integration, person_event(), auth="").status_code == 401
    wrong = basic(integration.pipedrive_webhook_user, "guess")
    assert post_pipedrive(integration, person_event(), auth=wrong).status_code == 401
    assert not PendingChange.objects.exists()


def test_a_webhook_to_an_unknown_secret_is_not_found(integration):
    response = Client().post(
        reverse("sync:pipedrive_hook", args=["nope"]), data="{}", content_type="application/json"
    )
    assert response.status_code == 404
    response = Client().post(
        reverse("sync:snovio_hook", args=["nope"]), data="{}", content_type="application/json"
    )
    assert response.status_code == 404


def test_the_same_pipedrive_delivery_twice_is_stored_once(integration):
    first = post_pipedrive(integration, person_event()).json()
    retry = person_event()
    retry["meta"]["attempt"] = 2
    second = post_pipedrive(integration, retry).json()
    assert (first["duplicate"], second["duplicate"]) == (False, True)
    assert PendingChange.objects.count() == 1


def test_two_changes_to_one_waiting_person_are_one_change_and_other_persons_keep_theirs(
    integration,
):
    post_pipedrive(integration, person_event(job_title="A", timestamp="same"))
    post_pipedrive(integration, person_event(job_title="B", timestamp="same"))
    assert PendingChange.objects.count() == 1  # the person is read fresh when it is applied
    assert PendingChange.objects.get().record_key == "pipedrive:1001"

    other = person_event(job_title="B", timestamp="same")
    other["meta"]["entity_id"], other["data"]["id"] = "1002", 1002
    post_pipedrive(integration, other)
    assert PendingChange.objects.count() == 2


def test_v1_payloads_and_other_objects_are_acknowledged_but_not_stored(integration):
    v1 = {"v": 1, "event": "updated.person", "current": {"id": 1}, "meta": {"v": 1}}
    assert post_pipedrive(integration, v1).json()["ignored"]
    deal = person_event()
    deal["meta"]["entity"] = "deal"
    assert post_pipedrive(integration, deal).json()["ignored"]
    assert not PendingChange.objects.exists()


def test_a_body_that_is_not_json_is_a_bad_request(integration):
    client = Client()
    response = client.post(
        reverse("sync:pipedrive_hook", args=[integration.webhook_secret]),
        data="not json",
        content_type="application/json",
        HTTP_AUTHORIZATION=basic(
            integration.pipedrive_webhook_user, integration.pipedrive_webhook_password
        ),
    )
    assert response.status_code == 400


def test_webhook_endpoints_accept_only_post(integration):
    url = reverse("sync:pipedrive_hook", args=[integration.webhook_secret])
    assert Client().get(url).status_code == 405


SNOVIO_EVENT = {
    "event_object": "campaign_email",
    "event_action": "opened",
    "webhook_id": 7,
    "created_at": 1767225600,
    "data": {
        "event_time": "2026-01-01 00:00:00",
        "campaign_id": 201,
        "campaign_name": "Demo outreach",
        "recipient_email": "Anna@X.example",
        "email_subject": "Hello",
        "email_body": "<p>Hi</p>",
    },
}


def post_snovio(integration, payload):
    return Client(enforce_csrf_checks=True).post(
        reverse("sync:snovio_hook", args=[integration.webhook_secret]),
        data=json.dumps(payload),
        content_type="application/json",
    )


def test_a_snovio_campaign_event_goes_to_automations_and_the_email_history(
    integration, monkeypatch
):
    handed = []
    monkeypatch.setattr(
        "automations.engine.receive_event_once",
        lambda integration, payload: (handed.append(payload), True),
    )
    first = post_snovio(integration, SNOVIO_EVENT).json()
    again = post_snovio(integration, SNOVIO_EVENT).json()

    assert handed == [SNOVIO_EVENT, SNOVIO_EVENT]  # the engine dedupes its own runs
    assert (first["email_history"], again["email_history"]) == (True, False)
    change = PendingChange.objects.get()
    assert (change.source, change.kind) == ("snovio", "campaign_email.opened")


def test_a_snovio_event_is_not_kept_for_the_history_when_it_is_off(integration, monkeypatch):
    monkeypatch.setattr(
        "automations.engine.receive_event_once", lambda integration, payload: (None, True)
    )
    integration.include_email_history = False
    integration.save()
    assert post_snovio(integration, SNOVIO_EVENT).json()["email_history"] is False
    assert not PendingChange.objects.exists()


def test_a_failing_automation_asks_snovio_to_deliver_again_and_loses_nothing(
    integration, monkeypatch
):
    calls = []

    def broken_once(integration, payload):
        calls.append(payload)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return None, True

    monkeypatch.setattr("automations.engine.receive_event_once", broken_once)
    failed = post_snovio(integration, SNOVIO_EVENT)
    retried = post_snovio(integration, SNOVIO_EVENT)

    assert failed.status_code == 503 and "retry" in failed.json()["error"]
    assert retried.status_code == 200 and retried.json()["automations"] is True
    assert len(calls) == 2
    assert PendingChange.objects.count() == 1  # the email history kept it once


# --- pages -----------------------------------------------------------------------------------
def test_the_history_page_shows_what_happened_to_a_contact_and_why(client_logged_in, integration):
    SyncEvent.objects.create(
        integration=integration,
        direction="to_pipedrive",
        email="anna@x.example",
        outcome="skipped",
        reason="No email on the other side",
    )
    SyncEvent.objects.create(
        integration=integration,
        direction="to_snovio",
        email="anna@x.example",
        outcome="updated",
        reason="Updated position",
        changes={"fields": {"position": {"old": "CEO", "new": "CTO"}}},
    )
    SyncEvent.objects.create(
        integration=integration,
        direction="to_snovio",
        email="bob@x.example",
        outcome="created",
        reason="Created",
    )
    url = reverse("sync:history", args=[integration.pk])

    page = client_logged_in.get(url, {"email": " ANNA@x.example "}).content.decode()

    assert "No email on the other side" in page and "Updated position" in page
    assert "CEO → CTO" in page
    assert "bob@x.example" not in page


def test_the_history_page_needs_a_login_and_shows_only_your_integrations(
    client, other_user, integration
):
    url = reverse("sync:history", args=[integration.pk])
    assert client.get(url).status_code == 302  # to the login page
    client.force_login(other_user)
    assert client.get(url).status_code == 404


def test_transfer_progress_is_served_as_json_and_as_the_partial(client_logged_in, integration):
    run = SyncRun.objects.create(
        integration=integration,
        direction="to_pipedrive",
        source_app="snovio",
        status="running",
        total=150,
        done=50,
        created=20,
        updated=10,
        unchanged=15,
        conflicts=4,
        skipped=5,
    )
    url = reverse("sync:transfer_progress", args=[integration.pk, run.pk])

    data = client_logged_in.get(url, {"format": "json"}).json()
    html = client_logged_in.get(url).content.decode()

    assert (data["done"], data["total"], data["percent"], data["finished"]) == (50, 150, 33, False)
    assert (data["created"], data["conflicts"], data["skipped"]) == (20, 4, 5)
    assert 'id="transfer-progress"' in html and "data-progress-url" in html
    assert '>50</span> of <span data-k="total">150</span>' in html


@pytest.mark.parametrize("meta", ["action entity", ["action", "entity"], 7])
def test_a_pipedrive_delivery_whose_meta_is_not_an_object_is_answered_not_crashed(
    integration, meta
):
    response = post_pipedrive(integration, {"meta": meta, "data": {}})
    assert response.status_code == 200 and response.json()["ignored"]
    assert not PendingChange.objects.exists()


def test_a_pipedrive_person_event_with_an_unknown_action_is_not_stored(integration):
    """Only create/change/delete are synced; anything else would be a kind no worker knows
    (and a huge action would not even fit the column)."""
    for action in ("merge", "x" * 5000):
        response = post_pipedrive(integration, person_event(action=action))
        assert response.status_code == 200 and response.json()["ignored"]
        assert len(response.json()["ignored"]) < 200
    assert not PendingChange.objects.exists()


def test_the_webhook_secret_in_the_path_is_never_logged(integration, caplog):
    """Django logs every 4xx with the request path; the path holds the webhook secret."""
    import logging

    caplog.set_level(logging.DEBUG)
    post_pipedrive(integration, person_event(), auth=basic("who", "guess"))  # 401
    Client().post(
        reverse("sync:snovio_hook", args=[integration.webhook_secret]),
        data="not json",
        content_type="application/json",
    )  # 400
    Client().get(reverse("sync:snovio_hook", args=[integration.webhook_secret]))  # 405
    assert caplog.records, "Django logs these answers"
    assert integration.webhook_secret not in caplog.text
    assert "/hooks/pipedrive/" in caplog.text  # still says which endpoint
