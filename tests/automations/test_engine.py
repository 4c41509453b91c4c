"""The engine against an in-memory Pipedrive: outcomes, holds, dedupe, ordering, idempotency."""

from __future__ import annotations

import pytest
from django.utils import timezone

from automations import engine, services
from automations.models import ActionKind, ActionOutcome, AutomationRun, Trigger
from integrations.http import RemoteError
from integrations.models import Integration, ListSelection, RecordLink
from tests.automations.fakes import Crash

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


def chain(integration, trigger=Trigger.EMAIL_SENT, subject="Call John"):
    """The seed's example chain: create a deal -> move it to a stage -> add an activity."""
    services.add_action(integration, trigger, ActionKind.CREATE_DEAL, pipeline_id=1)
    services.add_action(integration, trigger, ActionKind.MOVE_TO_STAGE, pipeline_id=1, stage_id=13)
    services.add_action(integration, trigger, ActionKind.ADD_ACTIVITY, subject=subject)


def receive(integration, body, run_on_commit):
    """Deliver an event with django-q2 inline, as the webhook endpoint does."""
    return run_on_commit(engine.receive_event, integration, body)


# --- reading events ------------------------------------------------------------------------
def test_an_event_is_read_into_trigger_email_and_name():
    event = engine.parse_event(payload(email="  John.Smith@ACME.example "))
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
    assert engine.parse_event(payload(obj, action)).trigger == trigger


def test_the_same_event_gets_the_same_key_and_another_event_another_key():
    key = engine.event_key(engine.parse_event(payload()))
    assert key == engine.event_key(engine.parse_event(payload()))
    assert key != engine.event_key(engine.parse_event(payload(at="2026-03-02 10:00:01")))
    assert key != engine.event_key(engine.parse_event(payload(event_action="opened")))
    assert key != engine.event_key(engine.parse_event(payload(email="other@acme.example")))
    assert len(key) <= AutomationRun._meta.get_field("event_key").max_length


# --- receiving -----------------------------------------------------------------------------
def test_a_duplicate_delivery_is_stored_once_and_runs_once(
    integration, fake_pipedrive, sync_tasks, run_on_commit
):
    chain(integration)
    first = receive(integration, payload(), run_on_commit)
    again = receive(integration, payload(), run_on_commit)
    assert again.pk == first.pk
    assert AutomationRun.objects.count() == 1
    assert len(fake_pipedrive.deals) == 1
    assert len(fake_pipedrive.activities) == 1


def test_an_event_is_held_while_the_integration_is_paused(
    integration, fake_pipedrive, sync_tasks, run_on_commit
):
    chain(integration)
    integration.status = Integration.Status.PAUSED
    integration.save()
    run = receive(integration, payload(), run_on_commit)
    assert run.status == AutomationRun.Status.PENDING
    assert "Paused" in run.reason
    assert fake_pipedrive.calls == []


@pytest.mark.parametrize("status", [Integration.Status.SYNCING, Integration.Status.FAILED])
def test_an_event_is_held_while_syncing_or_failed(
    integration, fake_pipedrive, sync_tasks, run_on_commit, status
):
    chain(integration)
    Integration.objects.filter(pk=integration.pk).update(status=status)
    integration.refresh_from_db()
    run = receive(integration, payload(), run_on_commit)
    assert run.status == AutomationRun.Status.PENDING
    assert fake_pipedrive.calls == []


def test_held_events_run_in_order_when_the_integration_is_active_again(
    integration, fake_pipedrive, sync_tasks, run_on_commit
):
    from integrations import signals

    services.add_action(integration, Trigger.EMAIL_SENT, ActionKind.CREATE_DEAL, pipeline_id=1)
    services.add_action(integration, Trigger.EMAIL_OPENED, ActionKind.NEXT_STAGE)
    services.add_action(integration, Trigger.REPLY_RECEIVED, ActionKind.NEXT_STAGE)
    Integration.objects.filter(pk=integration.pk).update(status=Integration.Status.PAUSED)
    integration.refresh_from_db()
    sent = receive(integration, payload(), run_on_commit)
    opened = receive(integration, payload(event_action="opened"), run_on_commit)
    replied = receive(integration, payload("campaign_reply", "received"), run_on_commit)
    assert fake_pipedrive.deals == {}

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
    (deal,) = fake_pipedrive.deals.values()
    assert deal["stage_id"] == 13  # created at 11, then two steps on, in the order received


def test_automations_are_idle_when_data_does_not_flow_to_pipedrive(
    integration, fake_pipedrive, sync_tasks, run_on_commit
):
    chain(integration)
    Integration.objects.filter(pk=integration.pk).update(direction=Integration.Direction.TO_SNOVIO)
    integration.refresh_from_db()
    run = receive(integration, payload(), run_on_commit)
    assert run.status == AutomationRun.Status.IGNORED
    assert "idle" in run.reason
    assert fake_pipedrive.calls == []
    assert integration.scenarios.get().actions.count() == 3  # kept


def test_an_event_without_an_enabled_scenario_is_logged_and_does_nothing(
    integration, fake_pipedrive, sync_tasks, run_on_commit
):
    chain(integration)
    services.toggle_scenario(integration, Trigger.EMAIL_SENT)
    run = receive(integration, payload(), run_on_commit)
    assert run.status == AutomationRun.Status.NO_SCENARIO
    assert fake_pipedrive.calls == []


def test_an_event_the_automations_do_not_use_is_logged_as_ignored(integration, fake_pipedrive):
    run = engine.receive_event(integration, payload("campaign_email", "first_sent"))
    assert run.status == AutomationRun.Status.IGNORED
    assert "first_sent" in run.reason


def test_a_switched_off_action_is_not_run(integration, fake_pipedrive, sync_tasks, run_on_commit):
    chain(integration)
    move = integration.scenarios.get().actions.get(kind=ActionKind.MOVE_TO_STAGE)
    services.toggle_action(move)
    run = receive(integration, payload(), run_on_commit)
    assert [o.kind for o in run.outcomes.all()] == [ActionKind.CREATE_DEAL, ActionKind.ADD_ACTIVITY]
    (deal,) = fake_pipedrive.deals.values()
    assert deal["stage_id"] == 11


# --- the actions ---------------------------------------------------------------------------
def test_the_example_chain_creates_a_deal_moves_it_and_adds_a_task(
    integration, fake_pipedrive, sync_tasks, run_on_commit
):
    chain(integration)
    run = receive(integration, payload(), run_on_commit)
    run.refresh_from_db()
    assert run.status == AutomationRun.Status.DONE
    (person,) = fake_pipedrive.persons.values()
    assert person["name"] == "John Smith"
    assert person["emails"] == [{"value": EMAIL, "primary": True, "label": "work"}]
    assert person["owner_id"] == 7
    (deal,) = fake_pipedrive.deals.values()
    assert deal["title"] == "John Smith deal"
    assert (deal["person_id"], deal["pipeline_id"], deal["stage_id"]) == (person["id"], 1, 13)
    assert deal["owner_id"] == 7
    (activity,) = fake_pipedrive.activities.values()
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
    assert outcomes[1].pipedrive_objects["stage"]["id"] == 13
    assert outcomes[1].pipedrive_objects["from"] == {"pipeline_id": 1, "stage_id": 11}
    assert outcomes[2].pipedrive_objects["activity"]["id"] == activity["id"]


def test_the_person_linked_by_the_sync_engine_is_used(
    integration, fake_pipedrive, sync_tasks, run_on_commit
):
    person = fake_pipedrive.add_person("Johnny Smith", EMAIL)
    RecordLink.objects.create(
        integration=integration, email=EMAIL, pipedrive_person_id=person["id"]
    )
    services.add_action(integration, Trigger.EMAIL_SENT, ActionKind.CREATE_DEAL, pipeline_id=1)
    receive(integration, payload(), run_on_commit)
    assert "find_persons_by_email" not in fake_pipedrive.calls
    assert "create_person" not in fake_pipedrive.calls
    (deal,) = fake_pipedrive.deals.values()
    assert deal["person_id"] == person["id"]


def test_an_unlinked_person_is_found_by_exact_email_and_linked(
    integration, fake_pipedrive, sync_tasks, run_on_commit
):
    fake_pipedrive.add_person("Jo", "jo" + EMAIL)  # a partial match must not be taken
    person = fake_pipedrive.add_person("John Smith", EMAIL.upper())
    services.add_action(integration, Trigger.EMAIL_SENT, ActionKind.CREATE_DEAL, pipeline_id=1)
    receive(integration, payload(), run_on_commit)
    assert "create_person" not in fake_pipedrive.calls
    (deal,) = fake_pipedrive.deals.values()
    assert deal["person_id"] == person["id"]
    assert (
        RecordLink.objects.get(integration=integration, email=EMAIL).pipedrive_person_id
        == person["id"]
    )


def test_create_deal_starts_at_the_first_stage_of_the_chosen_pipeline(
    integration, fake_pipedrive, sync_tasks, run_on_commit
):
    services.add_action(integration, Trigger.EMAIL_SENT, ActionKind.CREATE_DEAL, pipeline_id=2)
    run = receive(integration, payload(), run_on_commit)
    (deal,) = fake_pipedrive.deals.values()
    assert (deal["pipeline_id"], deal["stage_id"]) == (2, 21)
    assert run.outcomes.get().pipedrive_objects["stage"]["name"] == "Intro"


def test_move_without_an_active_deal_is_skipped_with_the_reason(
    integration, fake_pipedrive, sync_tasks, run_on_commit
):
    person = fake_pipedrive.add_person("John Smith", EMAIL)
    fake_pipedrive.add_deal(person["id"], 1, 12, status="won")
    fake_pipedrive.add_deal(person["id"], 1, 12, status="lost")
    services.add_action(
        integration, Trigger.EMAIL_SENT, ActionKind.MOVE_TO_STAGE, pipeline_id=1, stage_id=13
    )
    services.add_action(integration, Trigger.EMAIL_SENT, ActionKind.ADD_ACTIVITY, subject="Call")
    run = receive(integration, payload(), run_on_commit)
    run.refresh_from_db()
    move, activity = run.outcomes.all()
    assert move.outcome == ActionOutcome.Outcome.SKIPPED
    assert "no active deal" in move.reason
    assert activity.outcome == ActionOutcome.Outcome.DONE  # the chain goes on
    assert run.status == AutomationRun.Status.PARTIAL
    assert "update_deal" not in fake_pipedrive.calls


def test_move_acts_on_the_open_deal_not_the_closed_ones(
    integration, fake_pipedrive, sync_tasks, run_on_commit
):
    person = fake_pipedrive.add_person("John Smith", EMAIL)
    won = fake_pipedrive.add_deal(person["id"], 1, 11, status="won")
    open_deal = fake_pipedrive.add_deal(person["id"], 1, 11)
    services.add_action(
        integration, Trigger.EMAIL_SENT, ActionKind.MOVE_TO_STAGE, pipeline_id=2, stage_id=22
    )
    receive(integration, payload(), run_on_commit)
    assert (
        fake_pipedrive.deals[open_deal["id"]]["pipeline_id"],
        fake_pipedrive.deals[open_deal["id"]]["stage_id"],
    ) == (2, 22)
    assert fake_pipedrive.deals[won["id"]]["stage_id"] == 11


def test_next_stage_moves_the_deal_one_stage_on_in_its_own_pipeline(
    integration, fake_pipedrive, sync_tasks, run_on_commit
):
    person = fake_pipedrive.add_person("John Smith", EMAIL)
    deal = fake_pipedrive.add_deal(person["id"], 2, 21)
    services.add_action(integration, Trigger.EMAIL_OPENED, ActionKind.NEXT_STAGE)
    run = receive(integration, payload(event_action="opened"), run_on_commit)
    assert fake_pipedrive.deals[deal["id"]]["stage_id"] == 22
    outcome = run.outcomes.get()
    assert outcome.outcome == "done"
    assert outcome.pipedrive_objects["stage"]["name"] == "Signed"
    assert "intent" not in outcome.pipedrive_objects


def test_next_stage_at_the_last_stage_is_skipped_with_the_reason(
    integration, fake_pipedrive, sync_tasks, run_on_commit
):
    person = fake_pipedrive.add_person("John Smith", EMAIL)
    deal = fake_pipedrive.add_deal(person["id"], 2, 22, title="Big one")
    services.add_action(integration, Trigger.EMAIL_OPENED, ActionKind.NEXT_STAGE)
    run = receive(integration, payload(event_action="opened"), run_on_commit)
    outcome = run.outcomes.get()
    assert outcome.outcome == ActionOutcome.Outcome.SKIPPED
    assert "last stage" in outcome.reason and "Signed" in outcome.reason
    assert fake_pipedrive.deals[deal["id"]]["stage_id"] == 22
    assert "update_deal" not in fake_pipedrive.calls


def test_next_stage_without_an_active_deal_is_skipped(
    integration, fake_pipedrive, sync_tasks, run_on_commit
):
    services.add_action(integration, Trigger.EMAIL_OPENED, ActionKind.NEXT_STAGE)
    run = receive(integration, payload(event_action="opened"), run_on_commit)
    assert run.outcomes.get().outcome == ActionOutcome.Outcome.SKIPPED


def test_several_scenarios_may_add_tasks_to_the_same_person(
    integration, fake_pipedrive, sync_tasks, run_on_commit
):
    services.add_action(integration, Trigger.EMAIL_SENT, ActionKind.ADD_ACTIVITY, subject="Sent")
    services.add_action(
        integration, Trigger.EMAIL_OPENED, ActionKind.ADD_ACTIVITY, subject="Opened"
    )
    receive(integration, payload(), run_on_commit)
    receive(integration, payload(event_action="opened"), run_on_commit)
    subjects = sorted(a["subject"] for a in fake_pipedrive.activities.values())
    assert subjects == ["Opened", "Sent"]
    assert len({a["person_id"] for a in fake_pipedrive.activities.values()}) == 1
    assert len(fake_pipedrive.persons) == 1


def test_a_remote_error_after_retries_is_recorded_as_failed_and_the_chain_goes_on(
    integration, fake_pipedrive, sync_tasks, run_on_commit
):
    chain(integration)
    fake_pipedrive.fail["create_deal"] = RemoteError(
        "pipedrive: POST /api/v2/deals answered 503 after 5 attempts"
    )
    run = receive(integration, payload(), run_on_commit)
    run.refresh_from_db()
    create, move, activity = run.outcomes.all()
    assert create.outcome == ActionOutcome.Outcome.FAILED
    assert "503" in create.reason
    assert move.outcome == ActionOutcome.Outcome.SKIPPED  # no deal to move
    assert activity.outcome == ActionOutcome.Outcome.DONE
    assert run.status == AutomationRun.Status.PARTIAL


def test_a_person_that_cannot_be_found_fails_every_action_once(
    integration, fake_pipedrive, sync_tasks, run_on_commit
):
    chain(integration)
    fake_pipedrive.fail["find_persons_by_email"] = RemoteError("pipedrive: search answered 500")
    run = receive(integration, payload(), run_on_commit)
    assert [o.outcome for o in run.outcomes.all()] == ["failed"] * 3
    assert fake_pipedrive.calls.count("find_persons_by_email") == 1
    assert all("Pipedrive person" in o.reason for o in run.outcomes.all())


# --- idempotency ---------------------------------------------------------------------------
@pytest.mark.parametrize("crash_in", ["create_deal", "create_activity", "update_deal"])
def test_a_task_retried_after_a_crash_creates_nothing_twice(
    integration, fake_pipedrive, sync_tasks, run_on_commit, crash_in
):
    services.add_action(integration, Trigger.EMAIL_SENT, ActionKind.CREATE_DEAL, pipeline_id=1)
    services.add_action(integration, Trigger.EMAIL_SENT, ActionKind.NEXT_STAGE)
    services.add_action(integration, Trigger.EMAIL_SENT, ActionKind.ADD_ACTIVITY, subject="Call")
    fake_pipedrive.crash_after.add(crash_in)
    with pytest.raises(Crash):
        receive(integration, payload(), run_on_commit)
    run = AutomationRun.objects.get()
    assert run.status == AutomationRun.Status.PENDING  # left to run again

    engine.run_automations(run)  # django-q2 delivers the task again

    run.refresh_from_db()
    assert run.status == AutomationRun.Status.DONE
    assert len(fake_pipedrive.deals) == 1
    assert len(fake_pipedrive.activities) == 1
    (deal,) = fake_pipedrive.deals.values()
    assert deal["stage_id"] == 12  # one step on, not two
    assert [o.outcome for o in run.outcomes.all()] == ["done"] * 3


def test_a_finished_run_is_not_run_again(integration, fake_pipedrive, sync_tasks, run_on_commit):
    chain(integration)
    run = receive(integration, payload(), run_on_commit)
    calls = len(fake_pipedrive.calls)
    engine.run_automations(run)
    assert len(fake_pipedrive.calls) == calls


def test_a_run_claimed_by_another_worker_is_left_alone(integration, fake_pipedrive):
    chain(integration)
    run = engine.receive_event(integration, payload())  # enqueued, not run (no on_commit here)
    AutomationRun.objects.filter(pk=run.pk).update(
        reason=engine.RUNNING_PREFIX + timezone.now().isoformat()
    )
    engine.run_automations(run)
    assert fake_pipedrive.calls == []
    assert AutomationRun.objects.get(pk=run.pk).status == AutomationRun.Status.PENDING


def test_a_stale_claim_is_taken_over(integration, fake_pipedrive):
    chain(integration)
    run = engine.receive_event(integration, payload())
    stale = timezone.now() - timezone.timedelta(seconds=engine.LEASE_SECONDS + 1)
    AutomationRun.objects.filter(pk=run.pk).update(reason=engine.RUNNING_PREFIX + stale.isoformat())
    engine.run_automations(run)
    assert AutomationRun.objects.get(pk=run.pk).status == AutomationRun.Status.DONE


def test_a_later_event_of_a_contact_waits_for_the_earlier_one(integration, fake_pipedrive):
    """Runs of one contact happen in the order received, whichever task starts first."""
    services.add_action(integration, Trigger.EMAIL_SENT, ActionKind.CREATE_DEAL, pipeline_id=1)
    services.add_action(integration, Trigger.EMAIL_OPENED, ActionKind.NEXT_STAGE)
    sent = engine.receive_event(integration, payload())
    opened = engine.receive_event(integration, payload(event_action="opened"))
    engine.run_automations(opened)  # the "opened" task happens to start first
    assert AutomationRun.objects.get(pk=sent.pk).status == AutomationRun.Status.DONE
    assert AutomationRun.objects.get(pk=opened.pk).status == AutomationRun.Status.DONE
    (deal,) = fake_pipedrive.deals.values()
    assert deal["stage_id"] == 12


# --- synced lists --------------------------------------------------------------------------
def test_an_event_for_a_prospect_outside_the_synced_lists_is_ignored(
    integration, fake_pipedrive, sync_tasks, run_on_commit, monkeypatch
):
    class FakeSnovio:
        def get_prospect_by_email(self, email):
            return [
                {"id": "p-1", "emails": [{"email": email}], "lists": [{"id": 5, "name": "Other"}]}
            ]

    monkeypatch.setattr(engine, "snovio_client_for", lambda integration: FakeSnovio())
    Integration.objects.filter(pk=integration.pk).update(all_lists=False)
    integration.refresh_from_db()
    ListSelection.objects.create(integration=integration, list_id="9", list_name="Chosen")
    chain(integration)
    run = receive(integration, payload(), run_on_commit)
    run.refresh_from_db()
    assert run.status == AutomationRun.Status.IGNORED
    assert "list" in run.reason
    assert fake_pipedrive.calls == []


def test_an_event_for_a_prospect_in_a_chosen_list_runs(
    integration, fake_pipedrive, sync_tasks, run_on_commit, monkeypatch
):
    class FakeSnovio:
        def get_prospect_by_email(self, email):
            return [
                {"id": "p-1", "emails": [{"email": email}], "lists": [{"id": 9, "name": "Chosen"}]}
            ]

    monkeypatch.setattr(engine, "snovio_client_for", lambda integration: FakeSnovio())
    Integration.objects.filter(pk=integration.pk).update(all_lists=False)
    integration.refresh_from_db()
    ListSelection.objects.create(integration=integration, list_id="9", list_name="Chosen")
    chain(integration)
    run = receive(integration, payload(), run_on_commit)
    assert AutomationRun.objects.get(pk=run.pk).status == AutomationRun.Status.DONE


# --- pure helpers --------------------------------------------------------------------------
def test_deal_title_is_the_prospects_name_followed_by_deal():
    assert engine.deal_title("John  Smith") == "John Smith deal"
    assert engine.deal_title("", "Jo Person") == "Jo Person deal"
    assert engine.deal_title("", "", "jo@x.example") == "jo@x.example deal"


def test_stages_follow_pipedrive_order_and_the_last_has_no_next():
    stages = engine.sorted_stages(
        [
            {"id": 3, "pipeline_id": 1, "order_nr": 3},
            {"id": 1, "pipeline_id": 1, "order_nr": 1},
            {"id": 9, "pipeline_id": 2, "order_nr": 0},
            {"id": 2, "pipeline_id": 1, "order_nr": 2},
        ],
        1,
    )
    assert [s["id"] for s in stages] == [1, 2, 3]
    assert engine.following_stage(stages, 1)["id"] == 2
    assert engine.following_stage(stages, 3) is None


def test_the_active_deal_is_the_newest_open_one():
    deals = [
        {"id": 1, "status": "open", "add_time": "2026-01-01T00:00:00Z"},
        {"id": 2, "status": "won", "add_time": "2026-03-01T00:00:00Z"},
        {"id": 3, "status": "open", "add_time": "2026-02-01T00:00:00Z"},
        {"id": 4, "status": "open", "is_deleted": True, "add_time": "2026-04-01T00:00:00Z"},
    ]
    assert engine.pick_active_deal(deals)["id"] == 3
    assert engine.pick_active_deal([{"id": 5, "status": "lost"}]) is None
