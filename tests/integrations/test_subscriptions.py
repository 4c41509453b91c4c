"""Webhook subscriptions: the remotes switch them off or delete them, the catch-up repairs them.

Through the simulators: Snov.io deactivates a hook after repeated failed deliveries, Pipedrive
deletes one whose deliveries failed for 3 days, and each scheduled catch-up puts them back.
"""

from __future__ import annotations

import time

import pytest

from integrations import tasks
from integrations.models import Integration
from integrations.sandbox.snovio.webhooks import FAILURES_BEFORE_DEACTIVATION
from integrations.snovio import constants as C
from integrations.sync import subscriptions
from tests.factories import launched_integration

pytestmark = pytest.mark.django_db

DAY = 86400


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(sandbox):
    sandbox.clock = Clock()
    return sandbox.clock


@pytest.fixture
def live(sandbox, user, sync_tasks, clock):
    return launched_integration(user, sandbox)


def failing_deliveries(sandbox, monkeypatch) -> list[str]:
    """Every delivery from now on fails with a 503 (an outage of SyncBridge)."""
    failed: list[str] = []

    def refuse(url: str, headers: dict, body: bytes) -> int:
        failed.append(url)
        return 503

    monkeypatch.setattr(sandbox, "deliver", refuse)
    return failed


def snovio_hooks(sandbox) -> dict[tuple[str, str], dict]:
    return {(h["event_object"], h["event_action"]): h for h in sandbox.snovio.webhooks()}


def any_email(sandbox) -> str:
    return sandbox.snovio.prospect_emails()[0]


def test_each_snovio_event_is_subscribed_at_its_own_url(live, sandbox):
    hooks = snovio_hooks(sandbox)

    assert set(hooks) == set(subscriptions.SNOVIO_EVENTS)
    for (obj, action), hook in hooks.items():
        assert hook["end_point"].endswith(f"/{live.webhook_secret}/{obj}/{action}/")
        assert hook["status"] == C.WEBHOOK_ACTIVE
    assert len({h["end_point"] for h in hooks.values()}) == len(hooks)


def test_snovio_deactivates_a_webhook_after_repeated_failed_deliveries(live, sandbox, monkeypatch):
    failing_deliveries(sandbox, monkeypatch)
    email = any_email(sandbox)

    for _ in range(FAILURES_BEFORE_DEACTIVATION - 1):
        sandbox.snovio.fire_campaign_event("email_opened", email, "Demo outreach")
    assert snovio_hooks(sandbox)[("campaign_email", "opened")]["status"] == C.WEBHOOK_ACTIVE

    sandbox.snovio.fire_campaign_event("email_opened", email, "Demo outreach")
    hooks = snovio_hooks(sandbox)
    assert hooks[("campaign_email", "opened")]["status"] == C.WEBHOOK_DEACTIVATED
    assert hooks[("campaign_email", "sent")]["status"] == C.WEBHOOK_ACTIVE  # never failed
    # A deactivated hook delivers nothing more.
    result = sandbox.snovio.fire_campaign_event("email_opened", email, "Demo outreach")
    assert result["deliveries"] == []


def test_the_catch_up_reactivates_a_deactivated_snovio_webhook_and_recreates_a_deleted_one(
    live, sandbox, monkeypatch
):
    failing_deliveries(sandbox, monkeypatch)
    email = any_email(sandbox)
    for _ in range(FAILURES_BEFORE_DEACTIVATION):
        sandbox.snovio.fire_campaign_event("reply_received", email, "Demo outreach")
    monkeypatch.undo()
    replied = snovio_hooks(sandbox)[("campaign_reply", "received")]
    sent = snovio_hooks(sandbox)[("campaign_email", "sent")]
    del sandbox.snovio.state["webhooks"][str(sent["id"])]  # removed in Snov.io's app

    tasks.catch_up(live.pk)

    hooks = snovio_hooks(sandbox)
    assert set(hooks) == set(subscriptions.SNOVIO_EVENTS)  # nothing missing, no duplicate
    assert len(sandbox.snovio.webhooks()) == len(subscriptions.SNOVIO_EVENTS)
    assert hooks[("campaign_reply", "received")]["id"] == replied["id"]  # the same, back on
    assert all(h["status"] == C.WEBHOOK_ACTIVE for h in hooks.values())
    live.refresh_from_db()
    health = live.subscriptions_health["snovio"]
    assert health["reactivated"] == ["campaign_reply/received"]
    assert health["recreated"] == ["campaign_email/sent"]
    assert health["healthy"] is True
    assert live.subscriptions_checked_at is not None


def test_pipedrive_deletes_a_webhook_whose_deliveries_failed_for_three_days(
    live, sandbox, monkeypatch, clock
):
    assert len(sandbox.pipedrive.webhooks()) == len(subscriptions.PIPEDRIVE_EVENTS)
    failing_deliveries(sandbox, monkeypatch)
    person = sandbox.pipedrive.add_person(name="Failing Delivery")
    sandbox.pipedrive.change_person(person["id"], name="First Failure")
    clock.advance(2 * DAY)
    sandbox.pipedrive.change_person(person["id"], name="Still Failing")
    assert len(sandbox.pipedrive.webhooks()) == len(
        subscriptions.PIPEDRIVE_EVENTS
    )  # 2 days of failures: still there

    clock.advance(DAY)
    sandbox.pipedrive.change_person(person["id"], name="Failing For Three Days")

    kinds = {(h["event_action"], h["event_object"]) for h in sandbox.pipedrive.webhooks()}
    assert ("change", "person") not in kinds
    # The create hook failed once, 3 days ago, and has had nothing to deliver since.
    assert ("create", "person") in kinds


def test_a_webhook_that_delivers_again_is_not_deleted(live, sandbox, monkeypatch, clock):
    failing_deliveries(sandbox, monkeypatch)
    person = sandbox.pipedrive.add_person(name="Flaky")
    clock.advance(2 * DAY)
    monkeypatch.undo()
    sandbox.pipedrive.change_person(person["id"], name="Delivered")
    failing_deliveries(sandbox, monkeypatch)
    clock.advance(2 * DAY)
    sandbox.pipedrive.change_person(person["id"], name="Failing again, for two days only")

    assert len(sandbox.pipedrive.webhooks()) == len(subscriptions.PIPEDRIVE_EVENTS)


def test_the_catch_up_recreates_deleted_pipedrive_webhooks(live, sandbox):
    for hook in sandbox.pipedrive.webhooks():
        del sandbox.pipedrive.state["webhooks"][str(hook["id"])]

    tasks.catch_up(live.pk)

    hooks = sandbox.pipedrive.webhooks()
    assert {(h["event_action"], h["event_object"]) for h in hooks} == set(
        subscriptions.PIPEDRIVE_EVENTS
    )
    assert all(h["version"] == "2.0" and h["http_auth_user"] for h in hooks)
    live.refresh_from_db()
    assert sorted(live.subscriptions_health["pipedrive"]["recreated"]) == [
        "change/person",
        "create/person",
        "delete/person",
    ]
    assert sorted(live.pipedrive_webhook_ids) == sorted(h["id"] for h in hooks)


def test_a_healthy_check_changes_nothing(live, sandbox):
    before = (sandbox.pipedrive.webhooks(), sandbox.snovio.webhooks())

    report = subscriptions.check_subscriptions(Integration.objects.get(pk=live.pk))

    assert (sandbox.pipedrive.webhooks(), sandbox.snovio.webhooks()) == before
    assert report["snovio"]["healthy"] and report["pipedrive"]["healthy"]
    assert report["snovio"]["reactivated"] == report["snovio"]["recreated"] == []


def test_a_subscription_to_the_older_shared_snovio_url_is_replaced(live, sandbox):
    shared = subscriptions.snovio_base_url(live)
    (old,) = [h for h in sandbox.snovio.webhooks() if h["event_action"] == "opened"]
    sandbox.snovio.state["webhooks"][str(old["id"])]["end_point"] = shared

    subscriptions.check_subscriptions(Integration.objects.get(pk=live.pk))

    urls = [h["end_point"] for h in sandbox.snovio.webhooks()]
    assert shared not in urls
    assert subscriptions.snovio_event_url(live, ("campaign_email", "opened")) in urls
    assert len(urls) == len(subscriptions.SNOVIO_EVENTS)


def test_a_remote_that_cannot_be_reached_is_reported_not_raised(live, sandbox):
    sandbox.inject("snovio", "503", count=50, path="webhooks")

    report = subscriptions.check_subscriptions(Integration.objects.get(pk=live.pk))

    assert "503" in report["snovio"]["error"] and report["snovio"]["healthy"] is False
    assert report["pipedrive"]["healthy"] is True


def test_a_pipedrive_webhook_created_without_a_version_is_a_2_0_webhook(live, sandbox):
    from integrations.pipedrive.client import PipedriveClient

    live.pipedrive.refresh_from_db()
    client = PipedriveClient.for_connection(live.pipedrive)
    created = client._call(
        "POST",
        "/api/v1/webhooks",
        json={
            "subscription_url": "https://example.com/hook",
            "event_action": "delete",
            "event_object": "deal",
            "name": "no version given",
        },
    )["data"]

    assert created["version"] == "2.0"


def test_the_settings_page_shows_the_webhooks_health(live, sandbox, monkeypatch, client):
    client.force_login(live.owner)
    page = client.get(f"/integrations/{live.pk}/settings/").content.decode()
    assert "Not checked yet" in page
    failing_deliveries(sandbox, monkeypatch)
    for _ in range(FAILURES_BEFORE_DEACTIVATION):
        sandbox.snovio.fire_campaign_event("email_opened", any_email(sandbox), "Demo outreach")
    monkeypatch.undo()

    tasks.catch_up(live.pk)

    page = client.get(f"/integrations/{live.pk}/settings/").content.decode()
    assert "Switched back on: campaign_email/opened" in page
    needed = len(subscriptions.SNOVIO_EVENTS)
    assert f"{needed} of {needed} active" in page
    assert "3 of 3 active" in page  # Pipedrive: person create, change, delete
