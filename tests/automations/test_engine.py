"""The engine against the sandbox's spec-checked Pipedrive: outcomes, holds, dedupe, ordering,
idempotency."""

from __future__ import annotations

import pytest
from django.utils import timezone

from automations import actions, engine, events, lookups, queue, services
from automations.models import ActionKind, ActionOutcome, AutomationRun, Trigger
from integrations.models import Integration, ListSelection, RecordLink
from tests.automations.conftest import Crash

pytestmark = pytest.mark.django_db

EMAIL = "john.smith@acme.example"


def payload(
    event_object: str = "campaign_email",
    event_action: str = "sent",
    email: str = EMAIL,
    name: str = "John Smith",
    at: str = "2026-03-02 10:00:00",
    campaign: int = 201,
    subject: str = "Quick question",
) -> dict:
    """A delivery shaped like the sandbox's (see integrations/snovio/webhook_payload.py)."""
    first, _, last = name.partition(" ")
    return {
        "event_object": event_object,
        "event_action": event_action,
        "webhook_id": 1,
        "created_at": 1772445600,
        "data": {
            "event_time": at,
            "campaign_id": campaign,
            "campaign_name": "Demo outreach",
            "prospect_id": "p-1",
            "recipient_email": email,
            "recipient_name": name,
            "recipient_first_name": first,
            "recipient_last_name": last,
            "email_subject": subject,
        },
    }


SEARCH = "GET /api/v2/persons/search"
CREATE_PERSON = "POST /api/v2/persons"
UPDATE_DEAL = "PATCH /api/v2/deals/{id}"


@pytest.fixture
def integration(live):
    """The engine tests run on an integration joined to the sandbox's accounts."""
    return live


def chain(integration, pipedrive, trigger=Trigger.EMAIL_SENT, subject="Call John"):
    """The seed's example chain: create a deal -> move it to a stage -> add an activity."""
    sales = pipedrive.pipeline("Sales")
    demo = pipedrive.stage("Sales", "Demo scheduled")
    services.add_action(integration, trigger, ActionKind.CREATE_DEAL, pipeline_id=sales)
    services.add_action(
        integration, trigger, ActionKind.MOVE_TO_STAGE, pipeline_id=sales, stage_id=demo
    )
    services.add_action(integration, trigger, ActionKind.ADD_ACTIVITY, subject=subject)


def receive(integration, body, run_on_commit):
    """Deliver an event with django-q2 inline, as the webhook endpoint does."""
    return run_on_commit(engine.receive_event, integration, body)


def deal_then_next_stages(integration, pipedrive) -> None:
    """Sent creates a deal at the pipeline's first stage; opened and replied move it on."""
    services.add_action(
        integration,
        Trigger.EMAIL_SENT,
        ActionKind.CREATE_DEAL,
        pipeline_id=pipedrive.pipeline("Sales"),
    )
    services.add_action(integration, Trigger.EMAIL_OPENED, ActionKind.NEXT_STAGE)
    services.add_action(integration, Trigger.REPLY_RECEIVED, ActionKind.NEXT_STAGE)


# --- reading events ------------------------------------------------------------------------
def test_an_event_is_read_into_trigger_email_and_name():
    event = events.parse_event(payload(email="  John.Smith@ACME.example "))
    assert event.trigger == Trigger.EMAIL_SENT
    assert event.email == EMAIL
    assert event.name == "John Smith"
    assert event.campaign_id == "201"


@pytest.mark.parametrize(
    "obj, action, trigger",
    [
        ("campaign_email", "sent", Trigger.EMAIL_SENT),
        ("campaign_email", "opened", Trigger.EMAIL_OPENED),
        ("campaign_email", "clicked", Trigger.LINK_CLICKED),
        ("campaign_reply", "received", Trigger.REPLY_RECEIVED),
        ("campaign_email", "bounced", Trigger.EMAIL_BOUNCED),
        ("prospect", "campaign_finished", Trigger.CAMPAIGN_FINISHED),
    ],
)
def test_each_snovio_campaign_event_maps_to_its_trigger(obj, action, trigger):
    assert events.parse_event(payload(obj, action)).trigger == trigger


def test_the_same_event_gets_the_same_key_and_another_event_another_key():
    key = events.event_key(events.parse_event(payload()))
    assert key == events.event_key(events.parse_event(payload()))
    assert key != events.event_key(events.parse_event(payload(at="2026-03-02 10:00:01")))
    assert key != events.event_key(events.parse_event(payload(event_action="opened")))
    assert key != events.event_key(events.parse_event(payload(email="other@acme.example")))
    assert len(key) <= AutomationRun._meta.get_field("event_key").max_length


# --- receiving -----------------------------------------------------------------------------
def test_a_duplicate_delivery_is_stored_once_and_runs_once(
    integration, pipedrive, sync_tasks, run_on_commit
):
    chain(integration, pipedrive)
    first = receive(integration, payload(), run_on_commit)
    again = receive(integration, payload(), run_on_commit)
    assert again.pk == first.pk
    assert AutomationRun.objects.count() == 1
    assert len(pipedrive.deals) == 1
    assert len(pipedrive.activities) == 1


def test_an_event_is_held_while_the_integration_is_paused(
    integration, pipedrive, sync_tasks, run_on_commit
):
    chain(integration, pipedrive)
    integration.status = Integration.Status.PAUSED
    integration.save()
    run = receive(integration, payload(), run_on_commit)
    assert run.status == AutomationRun.Status.PENDING
    assert "Paused" in run.reason
    assert pipedrive.requests() == []


@pytest.mark.parametrize("status", [Integration.Status.SYNCING, Integration.Status.FAILED])
def test_an_event_is_held_while_syncing_or_failed(
    integration, pipedrive, sync_tasks, run_on_commit, status
):
    chain(integration, pipedrive)
    Integration.objects.filter(pk=integration.pk).update(status=status)
    integration.refresh_from_db()
    run = receive(integration, payload(), run_on_commit)
    assert run.status == AutomationRun.Status.PENDING
    assert pipedrive.requests() == []


def test_held_events_run_in_order_when_the_integration_is_active_again(
    integration, pipedrive, sync_tasks, run_on_commit
):
    from integrations import signals

    deal_then_next_stages(integration, pipedrive)
    Integration.objects.filter(pk=integration.pk).update(status=Integration.Status.PAUSED)
    integration.refresh_from_db()
    sent = receive(integration, payload(), run_on_commit)
    opened = receive(integration, payload(event_action="opened"), run_on_commit)
    replied = receive(integration, payload("campaign_reply", "received"), run_on_commit)
    assert pipedrive.deals == {}

    Integration.objects.filter(pk=integration.pk).update(status=Integration.Status.ACTIVE)
    integration.refresh_from_db()
    run_on_commit(
        signals.status_changed.send,
        sender=Integration,
        integration=integration,
        old_status=Integration.Status.PAUSED,
        new_status=Integration.Status.ACTIVE,
        changed_by=None,
    )

    runs = [AutomationRun.objects.get(pk=r.pk) for r in (sent, opened, replied)]
    assert [r.status for r in runs] == [AutomationRun.Status.DONE] * 3
    assert runs[0].finished_at <= runs[1].finished_at <= runs[2].finished_at
    (deal,) = pipedrive.deals.values()
    # created at Lead in, then two steps on, in the order received
    assert deal["stage_id"] == pipedrive.stage("Sales", "Demo scheduled")


def test_automations_are_idle_when_data_does_not_flow_to_pipedrive(
    integration, pipedrive, sync_tasks, run_on_commit
):
    chain(integration, pipedrive)
    Integration.objects.filter(pk=integration.pk).update(direction=Integration.Direction.TO_SNOVIO)
    integration.refresh_from_db()
    run = receive(integration, payload(), run_on_commit)
    assert run.status == AutomationRun.Status.IGNORED
    assert "idle" in run.reason
    assert pipedrive.requests() == []
    assert integration.scenarios.get().actions.count() == 3  # kept


def test_an_event_without_an_enabled_scenario_is_logged_and_does_nothing(
    integration, pipedrive, sync_tasks, run_on_commit
):
    chain(integration, pipedrive)
    services.toggle_scenario(integration, Trigger.EMAIL_SENT)
    run = receive(integration, payload(), run_on_commit)
    assert run.status == AutomationRun.Status.NO_SCENARIO
    assert pipedrive.requests() == []


def test_an_event_the_automations_do_not_use_is_logged_as_ignored(integration, pipedrive):
    run = engine.receive_event(integration, payload("campaign_email", "first_sent"))
    assert run.status == AutomationRun.Status.IGNORED
    assert "first_sent" in run.reason


def test_a_switched_off_action_is_not_run(integration, pipedrive, sync_tasks, run_on_commit):
    chain(integration, pipedrive)
    move = integration.scenarios.get().actions.get(kind=ActionKind.MOVE_TO_STAGE)
    services.toggle_action(move)
    run = receive(integration, payload(), run_on_commit)
    assert [o.kind for o in run.outcomes.all()] == [ActionKind.CREATE_DEAL, ActionKind.ADD_ACTIVITY]
    (deal,) = pipedrive.deals.values()
    assert deal["stage_id"] == pipedrive.stage("Sales", "Lead in")


# --- the actions ---------------------------------------------------------------------------
def test_the_example_chain_creates_a_deal_moves_it_and_adds_a_task(
    integration, pipedrive, sync_tasks, run_on_commit
):
    chain(integration, pipedrive)
    run = receive(integration, payload(), run_on_commit)
    run.refresh_from_db()
    assert run.status == AutomationRun.Status.DONE
    (person,) = pipedrive.persons.values()
    assert person["name"] == "John Smith"
    assert person["emails"] == [{"value": EMAIL, "primary": True, "label": "work"}]
    assert person["owner_id"] == integration.pipedrive_owner_id
    (deal,) = pipedrive.deals.values()
    assert deal["title"] == "John Smith deal"
    assert (deal["person_id"], deal["pipeline_id"], deal["stage_id"]) == (
        person["id"],
        pipedrive.pipeline("Sales"),
        pipedrive.stage("Sales", "Demo scheduled"),
    )
    assert deal["owner_id"] == integration.pipedrive_owner_id
    (activity,) = pipedrive.activities.values()
    assert activity["subject"] == "Call John"
    assert activity["type"] == "task" and activity["done"] is False
    assert activity["due_date"] == timezone.localdate().isoformat()
    assert activity["person_id"] == person["id"]
    outcomes = list(run.outcomes.all())
    assert [o.outcome for o in outcomes] == ["done"] * 3
    assert outcomes[0].pipedrive_objects["deal"]["id"] == deal["id"]
    assert outcomes[0].pipedrive_objects["person"] == {
        "id": person["id"],
        "name": "John Smith",
        "created": True,
    }
    assert outcomes[1].pipedrive_objects["stage"]["id"] == pipedrive.stage(
        "Sales", "Demo scheduled"
    )
    assert outcomes[1].pipedrive_objects["from"] == {
        "pipeline_id": pipedrive.pipeline("Sales"),
        "stage_id": pipedrive.stage("Sales", "Lead in"),
    }
    assert outcomes[2].pipedrive_objects["activity"]["id"] == activity["id"]


def test_the_person_linked_by_the_sync_engine_is_used(
    integration, pipedrive, sync_tasks, run_on_commit
):
    person = pipedrive.add_person("Johnny Smith", EMAIL)
    RecordLink.objects.create(
        integration=integration, email=EMAIL, pipedrive_person_id=person["id"]
    )
    services.add_action(
        integration,
        Trigger.EMAIL_SENT,
        ActionKind.CREATE_DEAL,
        pipeline_id=pipedrive.pipeline("Sales"),
    )
    receive(integration, payload(), run_on_commit)
    assert SEARCH not in pipedrive.requests()
    assert CREATE_PERSON not in pipedrive.requests()
    (deal,) = pipedrive.deals.values()
    assert deal["person_id"] == person["id"]


def test_an_unlinked_person_is_found_by_exact_email_and_linked(
    integration, pipedrive, sync_tasks, run_on_commit
):
    pipedrive.add_person("Jo", "jo" + EMAIL)  # a partial match must not be taken
    person = pipedrive.add_person("John Smith", EMAIL.upper())
    services.add_action(
        integration,
        Trigger.EMAIL_SENT,
        ActionKind.CREATE_DEAL,
        pipeline_id=pipedrive.pipeline("Sales"),
    )
    receive(integration, payload(), run_on_commit)
    assert CREATE_PERSON not in pipedrive.requests()
    (deal,) = pipedrive.deals.values()
    assert deal["person_id"] == person["id"]
    assert (
        RecordLink.objects.get(integration=integration, email=EMAIL).pipedrive_person_id
        == person["id"]
    )


def test_create_deal_starts_at_the_first_stage_of_the_chosen_pipeline(
    integration, pipedrive, sync_tasks, run_on_commit
):
    services.add_action(
        integration,
        Trigger.EMAIL_SENT,
        ActionKind.CREATE_DEAL,
        pipeline_id=pipedrive.pipeline("Partnerships"),
    )
    run = receive(integration, payload(), run_on_commit)
    (deal,) = pipedrive.deals.values()
    assert (deal["pipeline_id"], deal["stage_id"]) == (
        pipedrive.pipeline("Partnerships"),
        pipedrive.stage("Partnerships", "Identified"),
    )
    assert run.outcomes.get().pipedrive_objects["stage"]["name"] == "Identified"


def test_move_without_an_active_deal_is_skipped_with_the_reason(
    integration, pipedrive, sync_tasks, run_on_commit
):
    person = pipedrive.add_person("John Smith", EMAIL)
    pipedrive.add_deal(person["id"], "Sales", "Contact made", status="won")
    pipedrive.add_deal(person["id"], "Sales", "Contact made", status="lost")
    services.add_action(
        integration,
        Trigger.EMAIL_SENT,
        ActionKind.MOVE_TO_STAGE,
        pipeline_id=pipedrive.pipeline("Sales"),
        stage_id=pipedrive.stage("Sales", "Demo scheduled"),
    )
    services.add_action(integration, Trigger.EMAIL_SENT, ActionKind.ADD_ACTIVITY, subject="Call")
    run = receive(integration, payload(), run_on_commit)
    run.refresh_from_db()
    move, activity = run.outcomes.all()
    assert move.outcome == ActionOutcome.Outcome.SKIPPED
    assert "no active deal" in move.reason
    assert activity.outcome == ActionOutcome.Outcome.DONE  # the chain goes on
    assert run.status == AutomationRun.Status.PARTIAL
    assert UPDATE_DEAL not in pipedrive.requests()


def test_move_acts_on_the_open_deal_not_the_closed_ones(
    integration, pipedrive, sync_tasks, run_on_commit
):
    person = pipedrive.add_person("John Smith", EMAIL)
    won = pipedrive.add_deal(person["id"], "Sales", "Lead in", status="won")
    open_deal = pipedrive.add_deal(person["id"], "Sales", "Lead in")
    services.add_action(
        integration,
        Trigger.EMAIL_SENT,
        ActionKind.MOVE_TO_STAGE,
        pipeline_id=pipedrive.pipeline("Partnerships"),
        stage_id=pipedrive.stage("Partnerships", "Signed"),
    )
    receive(integration, payload(), run_on_commit)
    assert (
        pipedrive.deals[open_deal["id"]]["pipeline_id"],
        pipedrive.deals[open_deal["id"]]["stage_id"],
    ) == (pipedrive.pipeline("Partnerships"), pipedrive.stage("Partnerships", "Signed"))
    assert pipedrive.deals[won["id"]]["stage_id"] == pipedrive.stage("Sales", "Lead in")


def test_next_stage_moves_the_deal_one_stage_on_in_its_own_pipeline(
    integration, pipedrive, sync_tasks, run_on_commit
):
    person = pipedrive.add_person("John Smith", EMAIL)
    deal = pipedrive.add_deal(person["id"], "Partnerships", "Contract sent")
    services.add_action(integration, Trigger.EMAIL_OPENED, ActionKind.NEXT_STAGE)
    run = receive(integration, payload(event_action="opened"), run_on_commit)
    assert pipedrive.deals[deal["id"]]["stage_id"] == pipedrive.stage("Partnerships", "Signed")
    outcome = run.outcomes.get()
    assert outcome.outcome == "done"
    assert outcome.pipedrive_objects["stage"]["name"] == "Signed"
    assert "intent" not in outcome.pipedrive_objects


def test_next_stage_at_the_last_stage_is_skipped_with_the_reason(
    integration, pipedrive, sync_tasks, run_on_commit
):
    person = pipedrive.add_person("John Smith", EMAIL)
    deal = pipedrive.add_deal(person["id"], "Partnerships", "Signed", title="Big one")
    services.add_action(integration, Trigger.EMAIL_OPENED, ActionKind.NEXT_STAGE)
    run = receive(integration, payload(event_action="opened"), run_on_commit)
    outcome = run.outcomes.get()
    assert outcome.outcome == ActionOutcome.Outcome.SKIPPED
    assert "last stage" in outcome.reason and "Signed" in outcome.reason
    assert pipedrive.deals[deal["id"]]["stage_id"] == pipedrive.stage("Partnerships", "Signed")
    assert UPDATE_DEAL not in pipedrive.requests()


def test_next_stage_without_an_active_deal_is_skipped(
    integration, pipedrive, sync_tasks, run_on_commit
):
    services.add_action(integration, Trigger.EMAIL_OPENED, ActionKind.NEXT_STAGE)
    run = receive(integration, payload(event_action="opened"), run_on_commit)
    assert run.outcomes.get().outcome == ActionOutcome.Outcome.SKIPPED


def test_several_scenarios_may_add_tasks_to_the_same_person(
    integration, pipedrive, sync_tasks, run_on_commit
):
    services.add_action(integration, Trigger.EMAIL_SENT, ActionKind.ADD_ACTIVITY, subject="Sent")
    services.add_action(
        integration, Trigger.EMAIL_OPENED, ActionKind.ADD_ACTIVITY, subject="Opened"
    )
    receive(integration, payload(), run_on_commit)
    receive(integration, payload(event_action="opened"), run_on_commit)
    subjects = sorted(a["subject"] for a in pipedrive.activities.values())
    assert subjects == ["Opened", "Sent"]
    assert len({a["person_id"] for a in pipedrive.activities.values()}) == 1
    assert len(pipedrive.persons) == 1


def test_a_remote_error_after_retries_is_recorded_as_failed_and_the_chain_goes_on(
    integration, pipedrive, sync_tasks, run_on_commit
):
    chain(integration, pipedrive)
    pipedrive.fail("POST", "/api/v2/deals", 503)
    run = receive(integration, payload(), run_on_commit)
    run.refresh_from_db()
    create, move, activity = run.outcomes.all()
    assert create.outcome == ActionOutcome.Outcome.FAILED
    assert "503" in create.reason
    assert move.outcome == ActionOutcome.Outcome.SKIPPED  # no deal to move
    assert activity.outcome == ActionOutcome.Outcome.DONE
    assert run.status == AutomationRun.Status.PARTIAL


def test_a_person_that_cannot_be_found_fails_every_action_once(
    integration, pipedrive, sync_tasks, run_on_commit, settings
):
    chain(integration, pipedrive)
    settings.HTTP_MAX_RETRIES = 0  # one look-up is one request
    pipedrive.fail("GET", "/api/v2/persons/search", 500)
    run = receive(integration, payload(), run_on_commit)
    assert [o.outcome for o in run.outcomes.all()] == ["failed"] * 3
    assert pipedrive.requests().count(SEARCH) == 1
    assert all("Pipedrive person" in o.reason for o in run.outcomes.all())


# --- idempotency ---------------------------------------------------------------------------
@pytest.mark.parametrize("crash_in", ["create_deal", "create_activity", "update_deal"])
def test_a_task_retried_after_a_crash_creates_nothing_twice(
    integration, pipedrive, sync_tasks, run_on_commit, crash_in, monkeypatch
):
    services.add_action(
        integration,
        Trigger.EMAIL_SENT,
        ActionKind.CREATE_DEAL,
        pipeline_id=pipedrive.pipeline("Sales"),
    )
    services.add_action(integration, Trigger.EMAIL_SENT, ActionKind.NEXT_STAGE)
    services.add_action(integration, Trigger.EMAIL_SENT, ActionKind.ADD_ACTIVITY, subject="Call")
    pipedrive.crash_after(monkeypatch, crash_in)
    with pytest.raises(Crash):
        receive(integration, payload(), run_on_commit)
    run = AutomationRun.objects.get()
    assert run.status == AutomationRun.Status.PENDING  # left to run again

    engine.run_automations(run)  # django-q2 delivers the task again

    run.refresh_from_db()
    assert run.status == AutomationRun.Status.DONE
    assert len(pipedrive.deals) == 1
    assert len(pipedrive.activities) == 1
    (deal,) = pipedrive.deals.values()
    assert deal["stage_id"] == pipedrive.stage("Sales", "Contact made")  # one step on, not two
    assert [o.outcome for o in run.outcomes.all()] == ["done"] * 3


def test_a_finished_run_is_not_run_again(integration, pipedrive, sync_tasks, run_on_commit):
    chain(integration, pipedrive)
    run = receive(integration, payload(), run_on_commit)
    calls = len(pipedrive.requests())
    engine.run_automations(run)
    assert len(pipedrive.requests()) == calls


def test_a_run_claimed_by_another_worker_is_left_alone(integration, pipedrive):
    chain(integration, pipedrive)
    run = engine.receive_event(integration, payload())  # enqueued, not run (no on_commit here)
    AutomationRun.objects.filter(pk=run.pk).update(
        reason=queue.RUNNING_PREFIX + timezone.now().isoformat()
    )
    engine.run_automations(run)
    assert pipedrive.requests() == []
    assert AutomationRun.objects.get(pk=run.pk).status == AutomationRun.Status.PENDING


def test_a_stale_claim_is_taken_over(integration, pipedrive):
    chain(integration, pipedrive)
    run = engine.receive_event(integration, payload())
    stale = timezone.now() - timezone.timedelta(seconds=queue.LEASE_SECONDS + 1)
    AutomationRun.objects.filter(pk=run.pk).update(reason=queue.RUNNING_PREFIX + stale.isoformat())
    engine.run_automations(run)
    assert AutomationRun.objects.get(pk=run.pk).status == AutomationRun.Status.DONE


def test_a_later_event_of_a_contact_waits_for_the_earlier_one(integration, pipedrive):
    """Runs of one contact happen in the order received, whichever task starts first."""
    services.add_action(
        integration,
        Trigger.EMAIL_SENT,
        ActionKind.CREATE_DEAL,
        pipeline_id=pipedrive.pipeline("Sales"),
    )
    services.add_action(integration, Trigger.EMAIL_OPENED, ActionKind.NEXT_STAGE)
    sent = engine.receive_event(integration, payload())
    opened = engine.receive_event(integration, payload(event_action="opened"))
    engine.run_automations(opened)  # the "opened" task happens to start first
    assert AutomationRun.objects.get(pk=sent.pk).status == AutomationRun.Status.DONE
    assert AutomationRun.objects.get(pk=opened.pk).status == AutomationRun.Status.DONE
    (deal,) = pipedrive.deals.values()
    assert deal["stage_id"] == pipedrive.stage("Sales", "Contact made")


# --- synced lists --------------------------------------------------------------------------
def only_the_chosen_list_syncs(integration, sandbox) -> None:
    """The integration syncs Snov.io's list "Chosen" only; "Other" is another list."""
    chosen = sandbox.snovio.create_list("Chosen")
    sandbox.snovio.create_list("Other")
    Integration.objects.filter(pk=integration.pk).update(all_lists=False)
    integration.refresh_from_db()
    ListSelection.objects.create(
        integration=integration, list_id=str(chosen["id"]), list_name="Chosen"
    )


def test_an_event_for_a_prospect_outside_the_synced_lists_is_ignored(
    integration, pipedrive, sandbox, sync_tasks, run_on_commit
):
    only_the_chosen_list_syncs(integration, sandbox)
    sandbox.snovio.add_prospect("Other", email=EMAIL, first_name="John", last_name="Smith")
    chain(integration, pipedrive)
    run = receive(integration, payload(), run_on_commit)
    run.refresh_from_db()
    assert run.status == AutomationRun.Status.IGNORED
    assert "list" in run.reason
    assert pipedrive.requests() == []


def test_an_event_for_a_prospect_in_a_chosen_list_runs(
    integration, pipedrive, sandbox, sync_tasks, run_on_commit
):
    only_the_chosen_list_syncs(integration, sandbox)
    sandbox.snovio.add_prospect("Chosen", email=EMAIL, first_name="John", last_name="Smith")
    chain(integration, pipedrive)
    run = receive(integration, payload(), run_on_commit)
    assert AutomationRun.objects.get(pk=run.pk).status == AutomationRun.Status.DONE


# --- pure helpers --------------------------------------------------------------------------
def test_deal_title_is_the_prospects_name_followed_by_deal():
    assert actions.deal_title("John  Smith") == "John Smith deal"
    assert actions.deal_title("", "Jo Person") == "Jo Person deal"
    assert actions.deal_title("", "", "jo@x.example") == "jo@x.example deal"


def test_stages_follow_pipedrive_order_and_the_last_has_no_next():
    stages = lookups.sorted_stages(
        [
            {"id": 3, "pipeline_id": 1, "order_nr": 3},
            {"id": 1, "pipeline_id": 1, "order_nr": 1},
            {"id": 9, "pipeline_id": 2, "order_nr": 0},
            {"id": 2, "pipeline_id": 1, "order_nr": 2},
        ],
        1,
    )
    assert [s["id"] for s in stages] == [1, 2, 3]
    assert actions.following_stage(stages, 1)["id"] == 2
    assert actions.following_stage(stages, 3) is None


def test_the_active_deal_is_the_newest_open_one():
    deals = [
        {"id": 1, "status": "open", "add_time": "2026-01-01T00:00:00Z"},
        {"id": 2, "status": "won", "add_time": "2026-03-01T00:00:00Z"},
        {"id": 3, "status": "open", "add_time": "2026-02-01T00:00:00Z"},
        {"id": 4, "status": "open", "is_deleted": True, "add_time": "2026-04-01T00:00:00Z"},
    ]
    assert lookups.pick_active_deal(deals)["id"] == 3
    assert lookups.pick_active_deal([{"id": 5, "status": "lost"}]) is None
