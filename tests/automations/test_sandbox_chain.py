"""Automations against the sandbox: Snov.io fires the event, Pipedrive's API shows the result.

Every Pipedrive request here is checked against the official OpenAPI specs by the sandbox.
"""

from __future__ import annotations

import pytest
from django.utils import timezone

from automations import services
from automations.models import ActionKind, ActionOutcome, AutomationRun, Trigger
from integrations.pipedrive.client import PipedriveClient
from integrations.snovio.constants import TRIGGER_WEBHOOKS
from tests.factories import launched_integration

pytestmark = pytest.mark.django_db

SUBJECT = "Call about the demo"


@pytest.fixture
def live(sandbox, user, sync_tasks):
    """A launched two-way integration on the seeded sandbox, tasks inline."""
    return launched_integration(user, sandbox)


@pytest.fixture
def fire(sandbox, live, django_capture_on_commit_callbacks):
    """Fire a campaign event in the sandbox's Snov.io; it reaches the app's webhook endpoint.

    The sync engine subscribed the endpoint at launch; the delivery goes through Django's test
    client, and the automations task runs inline once the request's transaction commits.
    """

    def _fire(trigger: str, email: str, campaign: str = "Demo outreach") -> dict:
        with django_capture_on_commit_callbacks(execute=True):
            result = sandbox.snovio.fire_campaign_event(trigger, email, campaign)
        statuses = [
            d["status"]
            for d in result["deliveries"]
            if d["event"] == "/".join(TRIGGER_WEBHOOKS[trigger])
        ]
        assert statuses == [200], result
        return result

    return _fire


def api(live) -> PipedriveClient:
    live.pipedrive.refresh_from_db()
    return PipedriveClient.for_connection(live.pipedrive)


def activities_of(client: PipedriveClient, person_id: int) -> list[dict]:
    """GET /api/v2/activities?person_id=... as any API user would read them."""
    return client.list_activities(person_id=person_id)


def new_prospect(sandbox) -> tuple[str, str]:
    """A seeded prospect with an email and no Pipedrive person yet: (email, name)."""
    pipedrive_emails = {e for p in sandbox.pipedrive.persons() for e in _emails(p)}
    for email in sandbox.snovio.prospect_emails():
        if email.lower() not in pipedrive_emails:
            (prospect,) = [
                p
                for p in sandbox.snovio.state["prospects"].values()
                if p["emails"] and p["emails"][0]["email"] == email
            ]
            name = sandbox.snovio._prospect_out(prospect)["name"]
            return email, name
    raise AssertionError("no prospect without a Pipedrive person in the seed")


def _emails(person: dict) -> set[str]:
    return {e["value"].lower() for e in person.get("emails") or []}


def ids(sandbox, stage: str, pipeline: str = "Sales") -> tuple[int, int]:
    stage_id = sandbox.pipedrive.stage_id(pipeline, stage)
    pipeline_id = next(
        p["id"] for p in sandbox.pipedrive.state["pipelines"].values() if p["name"] == pipeline
    )
    return pipeline_id, stage_id


def build_chain(live, sandbox):
    pipeline, stage = ids(sandbox, "Demo scheduled")
    services.add_action(live, Trigger.EMAIL_SENT, ActionKind.CREATE_DEAL, pipeline_id=pipeline)
    services.add_action(
        live, Trigger.EMAIL_SENT, ActionKind.MOVE_TO_STAGE, pipeline_id=pipeline, stage_id=stage
    )
    services.add_action(live, Trigger.EMAIL_SENT, ActionKind.ADD_ACTIVITY, subject=SUBJECT)
    return pipeline, stage


def test_the_seed_example_chain_shows_up_in_pipedrives_api(live, sandbox, fire):
    pipeline, stage = build_chain(live, sandbox)
    email, name = new_prospect(sandbox)

    fire(Trigger.EMAIL_SENT, email)

    client = api(live)
    (person,) = client.find_persons_by_email(email)
    assert person["name"] == name
    assert person["owner_id"] == live.pipedrive_owner_id
    (deal,) = client.list_deals(person_id=person["id"], status=None)
    assert deal["title"] == f"{name} deal"
    assert (deal["pipeline_id"], deal["stage_id"], deal["status"]) == (pipeline, stage, "open")
    (activity,) = activities_of(client, person["id"])
    assert activity["subject"] == SUBJECT
    assert activity["done"] is False
    assert activity["type"] == "task"
    assert activity["due_date"] == timezone.localdate().isoformat()
    run = AutomationRun.objects.get(integration=live)
    assert run.status == AutomationRun.Status.DONE
    assert [o.outcome for o in run.outcomes.all()] == ["done"] * 3
    assert run.outcomes.first().pipedrive_objects["deal"]["id"] == deal["id"]


def test_a_duplicated_event_creates_no_second_deal_or_activity(
    live, sandbox, fire, django_capture_on_commit_callbacks
):
    build_chain(live, sandbox)
    email, _ = new_prospect(sandbox)
    result = fire(Trigger.EMAIL_SENT, email)
    first = AutomationRun.objects.get(integration=live)

    # Snov.io delivers the very same event again (a retry, or a duplicate subscription).
    (delivery,) = [d for d in result["deliveries"] if d["event"] == "campaign_email/sent"]
    with django_capture_on_commit_callbacks(execute=True):
        status = sandbox.send_webhook(delivery["url"], {}, first.payload)

    assert status == 200
    assert AutomationRun.objects.get(integration=live).pk == first.pk
    client = api(live)
    (person,) = client.find_persons_by_email(email)
    assert len(client.list_deals(person_id=person["id"], status=None)) == 1
    assert len(activities_of(client, person["id"])) == 1


def test_an_existing_pipedrive_person_gets_the_deal_not_a_duplicate(live, sandbox, fire):
    pipeline, _ = build_chain(live, sandbox)
    snovio_emails = set(sandbox.snovio.prospect_emails())
    shared = next(
        p for p in sandbox.pipedrive.persons() if _emails(p) & {e.lower() for e in snovio_emails}
    )
    email = next(e for e in snovio_emails if e.lower() in _emails(shared))

    fire(Trigger.EMAIL_SENT, email)

    client = api(live)
    assert [p["id"] for p in client.find_persons_by_email(email)] == [shared["id"]]
    (deal,) = client.list_deals(person_id=shared["id"])
    assert deal["pipeline_id"] == pipeline


def test_next_stage_at_the_last_stage_is_skipped_not_an_error(live, sandbox, fire):
    pipeline, last = ids(sandbox, "Negotiation")
    email, _ = new_prospect(sandbox)
    services.add_action(live, Trigger.EMAIL_SENT, ActionKind.CREATE_DEAL, pipeline_id=pipeline)
    services.add_action(
        live, Trigger.EMAIL_SENT, ActionKind.MOVE_TO_STAGE, pipeline_id=pipeline, stage_id=last
    )
    services.add_action(live, Trigger.EMAIL_OPENED, ActionKind.NEXT_STAGE)
    fire(Trigger.EMAIL_SENT, email)

    fire(Trigger.EMAIL_OPENED, email)

    run = AutomationRun.objects.get(integration=live, trigger=Trigger.EMAIL_OPENED)
    outcome = run.outcomes.get()
    assert outcome.outcome == ActionOutcome.Outcome.SKIPPED
    assert "last stage (Negotiation)" in outcome.reason
    client = api(live)
    (person,) = client.find_persons_by_email(email)
    (deal,) = client.list_deals(person_id=person["id"])
    assert deal["stage_id"] == last


def test_next_stage_moves_the_deal_along_its_pipeline(live, sandbox, fire):
    pipeline, first = ids(sandbox, "Lead in")
    _, second = ids(sandbox, "Contact made")
    email, _ = new_prospect(sandbox)
    services.add_action(live, Trigger.EMAIL_SENT, ActionKind.CREATE_DEAL, pipeline_id=pipeline)
    services.add_action(live, Trigger.REPLY_RECEIVED, ActionKind.NEXT_STAGE)
    fire(Trigger.EMAIL_SENT, email)
    fire(Trigger.REPLY_RECEIVED, email)
    client = api(live)
    (person,) = client.find_persons_by_email(email)
    (deal,) = client.list_deals(person_id=person["id"])
    assert deal["stage_id"] == second != first


def test_move_with_no_active_deal_is_skipped_not_an_error(live, sandbox, fire):
    pipeline, stage = ids(sandbox, "Proposal made")
    email, _ = new_prospect(sandbox)
    services.add_action(
        live, Trigger.EMAIL_BOUNCED, ActionKind.MOVE_TO_STAGE, pipeline_id=pipeline, stage_id=stage
    )

    fire(Trigger.EMAIL_BOUNCED, email)

    run = AutomationRun.objects.get(integration=live)
    outcome = run.outcomes.get()
    assert outcome.outcome == ActionOutcome.Outcome.SKIPPED
    assert "no active deal" in outcome.reason
    assert run.status == AutomationRun.Status.PARTIAL


def test_a_won_deal_is_not_moved(live, sandbox, fire):
    pipeline, stage = ids(sandbox, "Proposal made")
    email, _ = new_prospect(sandbox)
    services.add_action(live, Trigger.EMAIL_SENT, ActionKind.CREATE_DEAL, pipeline_id=pipeline)
    services.add_action(
        live,
        Trigger.CAMPAIGN_FINISHED,
        ActionKind.MOVE_TO_STAGE,
        pipeline_id=pipeline,
        stage_id=stage,
    )
    fire(Trigger.EMAIL_SENT, email)
    client = api(live)
    (person,) = client.find_persons_by_email(email)
    (deal,) = client.list_deals(person_id=person["id"])
    client.update_deal(deal["id"], {"status": "won"})

    fire(Trigger.CAMPAIGN_FINISHED, email)

    outcome = AutomationRun.objects.get(trigger=Trigger.CAMPAIGN_FINISHED).outcomes.get()
    assert outcome.outcome == ActionOutcome.Outcome.SKIPPED
    (won,) = client.list_deals(person_id=person["id"], status=None)
    assert won["stage_id"] != stage


def test_a_pipedrive_outage_is_recorded_as_failed_after_retries(live, sandbox, fire):
    build_chain(live, sandbox)
    email, _ = new_prospect(sandbox)
    sandbox.inject("pipedrive", "503", count=50, path=r"^/api/v2/deals$")

    fire(Trigger.EMAIL_SENT, email)

    run = AutomationRun.objects.get(integration=live)
    create, move, activity = run.outcomes.all()
    assert create.outcome == ActionOutcome.Outcome.FAILED
    assert "503" in create.reason
    assert move.outcome == ActionOutcome.Outcome.FAILED  # listing the deals failed too
    assert activity.outcome == ActionOutcome.Outcome.DONE  # the chain went on
    assert run.status == AutomationRun.Status.PARTIAL
    sandbox.faults.clear()


def test_the_sandbox_can_fire_each_trigger_and_each_runs_its_scenario(live, sandbox, fire):
    email, _ = new_prospect(sandbox)
    for trigger in Trigger.values:
        services.add_action(live, trigger, ActionKind.ADD_ACTIVITY, subject=f"After {trigger}")
        fire(trigger, email)
        run = AutomationRun.objects.get(integration=live, trigger=trigger)
        assert run.status == AutomationRun.Status.DONE
    client = api(live)
    (person,) = client.find_persons_by_email(email)
    subjects = sorted(a["subject"] for a in activities_of(client, person["id"]))
    assert subjects == sorted(f"After {t}" for t in Trigger.values)


def test_events_held_while_paused_run_after_resume_in_order(
    live, sandbox, fire, user, django_capture_on_commit_callbacks
):
    from integrations import services as lifecycle

    pipeline, _ = ids(sandbox, "Lead in")
    _, third = ids(sandbox, "Demo scheduled")
    email, _ = new_prospect(sandbox)
    services.add_action(live, Trigger.EMAIL_SENT, ActionKind.CREATE_DEAL, pipeline_id=pipeline)
    services.add_action(live, Trigger.EMAIL_OPENED, ActionKind.NEXT_STAGE)
    services.add_action(live, Trigger.REPLY_RECEIVED, ActionKind.NEXT_STAGE)
    lifecycle.pause(live, user)

    for trigger in (Trigger.EMAIL_SENT, Trigger.EMAIL_OPENED, Trigger.REPLY_RECEIVED):
        fire(trigger, email)

    held = list(AutomationRun.objects.filter(integration=live).order_by("received_at", "pk"))
    assert [r.status for r in held] == [AutomationRun.Status.PENDING] * 3
    client = api(live)
    assert client.find_persons_by_email(email) == []  # nothing happened in Pipedrive yet

    with django_capture_on_commit_callbacks(execute=True):
        assert lifecycle.resume(live, user) == []

    runs = [AutomationRun.objects.get(pk=r.pk) for r in held]
    assert [r.status for r in runs] == [AutomationRun.Status.DONE] * 3
    assert runs[0].finished_at <= runs[1].finished_at <= runs[2].finished_at
    (person,) = client.find_persons_by_email(email)
    (deal,) = client.list_deals(person_id=person["id"])
    assert deal["stage_id"] == third  # created, then moved on twice, in the order received


def test_a_stage_deleted_in_pipedrive_marks_the_scenario_and_fails_the_resume(live, sandbox, user):
    from integrations import services as lifecycle

    pipeline, stage = ids(sandbox, "Negotiation")
    action = services.add_action(
        live, Trigger.EMAIL_SENT, ActionKind.MOVE_TO_STAGE, pipeline_id=pipeline, stage_id=stage
    )
    lifecycle.pause(live, user)
    with sandbox.lock:
        del sandbox.pipedrive.state["stages"][str(stage)]

    problems = lifecycle.resume(live, user)

    live.refresh_from_db()
    assert live.status == live.Status.FAILED
    (problem,) = [p for p in problems if p.section == "automations"]
    assert problem.field == f"action-{action.pk}"
    assert services.scenario_problems(live)
