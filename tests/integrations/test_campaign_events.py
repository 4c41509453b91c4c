"""Campaign events are never lost for good, and never taken twice.

Snov.io campaign events reach SyncBridge by webhook and, on every scheduled catch-up, from
Snov.io's campaign history. Whatever arrives, in whatever order and however often, each event
runs its automation once and reaches the email history once.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from urllib.parse import urlsplit

import pytest

from automations import services
from automations.models import ActionKind, AutomationRun, Trigger
from integrations import tasks
from integrations.models import Integration, PendingChange, SyncRun
from integrations.sync import subscriptions
from integrations.sync.transfer import transfer
from tests.conftest import _deliver_to_django
from tests.factories import launched_integration

pytestmark = pytest.mark.django_db

# The triggers whose events Snov.io's campaign history also lists.
HISTORY_TRIGGERS = (
    Trigger.EMAIL_SENT,
    Trigger.EMAIL_OPENED,
    Trigger.LINK_CLICKED,
    Trigger.REPLY_RECEIVED,
)
CAMPAIGN = "Demo outreach"


class Clock:
    """The sandbox's clock: each event happens at its own second, as real events would."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def action_subject(trigger: str) -> str:
    return f"Follow up: {trigger}"


@pytest.fixture
def live(sandbox, user, sync_tasks):
    """Launched, prospects transferred, email history on, an 'add activity' action per
    history trigger."""
    sandbox.clock = Clock()
    integration = launched_integration(user, sandbox)
    integration.include_email_history = True
    integration.save()
    for trigger in HISTORY_TRIGGERS:
        services.add_action(
            integration, trigger, ActionKind.ADD_ACTIVITY, subject=action_subject(trigger)
        )
    run = transfer(
        SyncRun.objects.create(
            integration=integration, direction=SyncRun.Direction.TO_PIPEDRIVE, source_app="snovio"
        )
    )
    assert run.status == SyncRun.Status.DONE, run.error  # every prospect has its person
    sandbox.clock.now = max(sandbox.clock.now, time.time())  # the launch took a moment
    return Integration.objects.get(pk=integration.pk)


class Outbox:
    """Snov.io's deliveries, under the test's control: delivered, refused, held or doubled."""

    def __init__(self, sandbox, capture) -> None:
        self.sandbox, self.capture = sandbox, capture
        self.mode = "deliver"
        self.held: list[tuple[str, dict, bytes]] = []
        sandbox.deliver = self.deliver

    def deliver(self, url: str, headers: dict, body: bytes) -> int:
        if self.mode == "refuse":  # SyncBridge is down
            return 503
        if self.mode == "hold":  # delivered later (a slow queue, a retry)
            self.held.append((url, headers, body))
            return 200
        status = self.post(url, headers, body)
        if self.mode == "twice":
            self.post(url, headers, body)
        return status

    def post(self, url: str, headers: dict, body: bytes) -> int:
        with self.capture(execute=True):
            return _deliver_to_django(url, headers, body)

    def release(self, rng: random.Random | None = None) -> None:
        held, self.held = self.held, []
        if rng:
            rng.shuffle(held)
        for url, headers, body in held:
            self.post(url, headers, body)


@pytest.fixture
def outbox(sandbox, django_capture_on_commit_callbacks):
    return Outbox(sandbox, django_capture_on_commit_callbacks)


@pytest.fixture
def catch_up(live, django_capture_on_commit_callbacks):
    def _catch_up() -> None:
        with django_capture_on_commit_callbacks(execute=True):
            tasks.catch_up(live.pk)

    return _catch_up


@pytest.fixture
def fire(sandbox, django_capture_on_commit_callbacks):
    def _fire(trigger: str, email: str) -> dict:
        sandbox.clock.advance(2)
        with django_capture_on_commit_callbacks(execute=True):
            return sandbox.snovio.fire_campaign_event(trigger, email, CAMPAIGN)

    return _fire


def recipients(sandbox, count: int) -> list[str]:
    """Prospects in a list (so automations act on them), with an email."""
    emails = [
        p["emails"][0]["email"]
        for p in sandbox.snovio.state["prospects"].values()
        if p["emails"] and p["lists"]
    ]
    assert len(emails) >= count
    return emails[:count]


def automation_activities(sandbox, email: str) -> Counter:
    """How many times each trigger's action added its activity to the person of `email`."""
    (person,) = sandbox.pipedrive.persons(email=email)
    subjects = {action_subject(t): t for t in HISTORY_TRIGGERS}
    return Counter(
        subjects[a["subject"]]
        for a in sandbox.pipedrive.activities(person_id=person["id"])
        if a["subject"] in subjects
    )


def emails_shown(sandbox) -> list[tuple]:
    """The email-history activities in Pipedrive, one (person, subject, note) per email shown."""
    return [
        (a.get("person_id"), a.get("subject"), (a.get("note") or "").splitlines()[:1])
        for a in sandbox.pipedrive.activities()
        if a.get("type") == "email"
    ]


def test_an_event_the_webhook_missed_runs_once_at_the_next_catch_up(
    live, sandbox, outbox, fire, catch_up
):
    (email,) = recipients(sandbox, 1)
    outbox.mode = "refuse"
    fire(Trigger.EMAIL_SENT, email)
    fire(Trigger.EMAIL_OPENED, email)
    assert not AutomationRun.objects.filter(integration=live).exists()

    outbox.mode = "deliver"
    catch_up()
    catch_up()  # a second catch-up reads the same history again: nothing more happens

    runs = AutomationRun.objects.filter(integration=live)
    assert sorted(runs.values_list("trigger", flat=True)) == ["email_opened", "email_sent"]
    assert {r.status for r in runs} == {AutomationRun.Status.DONE}
    assert all(r.payload["source"] == "campaign_history" for r in runs)
    assert automation_activities(sandbox, email) == {"email_sent": 1, "email_opened": 1}
    history = PendingChange.objects.filter(integration=live, source="snovio")
    assert history.count() == 2 and not history.filter(processed_at__isnull=True).exists()
    shown = [str(email) for email in emails_shown(sandbox)]
    assert len(shown) == len(set(shown)) >= 1  # shown, and no email shown twice


def test_an_event_the_webhook_delivered_is_not_run_again_by_the_catch_up(
    live, sandbox, outbox, fire, catch_up
):
    (email,) = recipients(sandbox, 1)
    fire(Trigger.REPLY_RECEIVED, email)
    fire(Trigger.LINK_CLICKED, email)

    catch_up()

    assert AutomationRun.objects.filter(integration=live).count() == 2
    assert automation_activities(sandbox, email) == {"reply_received": 1, "link_clicked": 1}
    assert PendingChange.objects.filter(integration=live, source="snovio").count() == 2


def test_a_delivery_that_arrives_after_the_catch_up_found_its_event_is_a_duplicate(
    live, sandbox, outbox, fire, catch_up
):
    (email,) = recipients(sandbox, 1)
    outbox.mode = "hold"
    fire(Trigger.EMAIL_OPENED, email)
    catch_up()
    outbox.release()

    (run,) = AutomationRun.objects.filter(integration=live)
    assert run.payload["source"] == "campaign_history"
    assert automation_activities(sandbox, email) == {"email_opened": 1}


def test_a_delivery_whose_body_names_no_event_is_understood_from_its_url(
    live, sandbox, outbox, fire
):
    (email,) = recipients(sandbox, 1)

    def without_event_names(url: str, headers: dict, body: bytes) -> int:
        import json

        payload = json.loads(body)
        payload.pop("event_object"), payload.pop("event_action")
        return outbox.post(url, headers, json.dumps(payload).encode())

    sandbox.deliver = without_event_names
    fire(Trigger.LINK_CLICKED, email)

    (run,) = AutomationRun.objects.filter(integration=live)
    assert run.trigger == Trigger.LINK_CLICKED and run.status == AutomationRun.Status.DONE
    (change,) = PendingChange.objects.filter(integration=live, source="snovio")
    assert change.kind == "campaign_email.clicked"


def test_events_from_before_the_launch_are_not_run(live, sandbox, outbox, fire, catch_up):
    (email,) = recipients(sandbox, 1)
    outbox.mode = "refuse"
    sandbox.clock.advance(-3600 * 24)  # the event happened a day before the launch
    fire(Trigger.EMAIL_SENT, email)

    catch_up()

    assert not AutomationRun.objects.filter(integration=live).exists()


@pytest.mark.parametrize("seed", [11, 2026, 90210])
def test_each_event_runs_exactly_once_whatever_the_deliveries_do(
    seed, live, sandbox, outbox, fire, catch_up
):
    """Seeded random histories: deliveries dropped, held and released out of order, doubled;
    catch-ups at random moments. Every event runs its automation once and reaches the email
    history once."""
    rng = random.Random(seed)
    emails = recipients(sandbox, 3)
    fired: Counter = Counter()
    for _ in range(24):
        outbox.mode = rng.choice(["deliver", "refuse", "refuse", "hold", "twice"])
        trigger, email = rng.choice(HISTORY_TRIGGERS), rng.choice(emails)
        fire(trigger, email)
        fired[(email, trigger)] += 1
        if rng.random() < 0.2:
            outbox.mode = "deliver"
            catch_up()
        if rng.random() < 0.2:
            outbox.release(rng)
    outbox.mode = "deliver"
    catch_up()
    outbox.release(rng)
    catch_up()

    context = f"seed={seed}"
    runs = AutomationRun.objects.filter(integration=live)
    assert runs.count() == sum(fired.values()), context
    assert set(runs.values_list("status", flat=True)) == {AutomationRun.Status.DONE}, context
    for email in emails:
        expected = {t: n for (e, t), n in fired.items() if e == email}
        assert automation_activities(sandbox, email) == expected, context
    history = PendingChange.objects.filter(integration=live, source="snovio")
    assert history.count() == sum(fired.values()), context
    assert not history.filter(processed_at__isnull=True).exists(), context
    shown = [str(email) for email in emails_shown(sandbox)]
    assert len(shown) == len(set(shown)), context
    paths = {urlsplit(h["end_point"]).path for h in sandbox.snovio.webhooks()}
    assert len(paths) == len(sandbox.snovio.webhooks()), context  # no duplicate subscription
    live.refresh_from_db()
    assert live.subscriptions_health["snovio"]["healthy"], context


def test_the_catch_up_reads_history_only_since_the_previous_one(
    live, sandbox, outbox, fire, catch_up
):
    (email,) = recipients(sandbox, 1)
    fire(Trigger.EMAIL_SENT, email)
    catch_up()
    first = Integration.objects.get(pk=live.pk).campaign_history_until
    sandbox.clock.advance(3 * 3600)
    fire(Trigger.EMAIL_OPENED, email)
    catch_up()

    assert Integration.objects.get(pk=live.pk).campaign_history_until > first
    assert AutomationRun.objects.filter(integration=live).count() == 2


# --- the recovery test ----------------------------------------------------------------------
DAY = 86400


def snovio_prospect(sandbox, email: str) -> dict:
    (found,) = [
        p
        for p in sandbox.snovio.state["prospects"].values()
        if any(e["email"].lower() == email.lower() for e in p["emails"])
    ]
    return found


def test_after_a_day_without_webhooks_the_next_catch_up_recovers_every_event_and_change(
    live, sandbox, outbox, fire, catch_up
):
    emails = recipients(sandbox, 2)
    persons = {e: sandbox.pipedrive.persons(email=e)[0] for e in emails}
    fired: Counter = Counter()

    # SyncBridge is down: Snov.io switches its webhooks off after repeated failures, and
    # Pipedrive deletes the webhooks whose deliveries failed for 3 days.
    outbox.mode = "refuse"
    for trigger in HISTORY_TRIGGERS:
        for _ in range(7):
            fire(trigger, emails[0])
            fired[(emails[0], trigger)] += 1
    person = persons[emails[1]]
    sandbox.pipedrive.change_person(person["id"], job_title="Outage day 0")
    sandbox.clock.advance(3 * DAY)
    sandbox.pipedrive.change_person(person["id"], job_title="Outage day 3")
    assert {h["status"] for h in sandbox.snovio.webhooks() if h["event_object"] != "prospect"} >= {
        "deactivated"
    }
    assert ("change", "person") not in {
        (h["event_action"], h["event_object"]) for h in sandbox.pipedrive.webhooks()
    }

    # SyncBridge is back, but for a simulated day no webhook tells it anything.
    outbox.mode = "deliver"
    for hour in range(0, 24, 3):
        sandbox.clock.advance(3 * 3600)
        trigger, email = HISTORY_TRIGGERS[hour % 4], emails[hour % 2]
        fire(trigger, email)
        fired[(email, trigger)] += 1
    sandbox.pipedrive.change_person(persons[emails[0]]["id"], job_title="Changed during the day")
    sandbox.pipedrive.change_person(person["id"], job_title="Last edit of the day")
    added = sandbox.pipedrive.add_person(name="Dana Daylong", email="dana.daylong@acme.example")
    assert not AutomationRun.objects.filter(integration=live).exists()

    catch_up()

    runs = AutomationRun.objects.filter(integration=live)
    assert runs.count() == sum(fired.values())
    assert set(runs.values_list("status", flat=True)) == {AutomationRun.Status.DONE}
    for email in emails:
        expected = {t: n for (e, t), n in fired.items() if e == email}
        assert automation_activities(sandbox, email) == expected
    history = PendingChange.objects.filter(integration=live, source="snovio")
    assert history.count() == sum(fired.values())
    assert snovio_prospect(sandbox, emails[0])["position"] == "Changed during the day"
    assert snovio_prospect(sandbox, emails[1])["position"] == "Last edit of the day"
    assert snovio_prospect(sandbox, "dana.daylong@acme.example")["firstName"] == "Dana"
    # The webhooks are back: the next event arrives in real time, once.
    assert {h["status"] for h in sandbox.snovio.webhooks()} == {"active"}
    assert len(sandbox.pipedrive.webhooks()) == len(subscriptions.PIPEDRIVE_EVENTS)
    fire(Trigger.EMAIL_OPENED, emails[1])
    assert runs.count() == sum(fired.values()) + 1
    assert added["id"] in {p["id"] for p in sandbox.pipedrive.persons()}
