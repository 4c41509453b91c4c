"""Scenario rules: once per trigger, at most 24, only towards Pipedrive, order, problems."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from automations import services
from automations.models import ActionKind, Scenario, ScenarioAction, Trigger
from integrations.models import Integration
from integrations.problems import settings_problems
from tests.automations.conftest import PIPELINES, STAGES, store_catalog

pytestmark = pytest.mark.django_db


def add(integration, trigger=Trigger.EMAIL_SENT, kind=ActionKind.CREATE_DEAL, **params):
    defaults = {
        ActionKind.CREATE_DEAL: {"pipeline_id": 1},
        ActionKind.MOVE_TO_STAGE: {"pipeline_id": 1, "stage_id": 12},
        ActionKind.NEXT_STAGE: {},
        ActionKind.ADD_ACTIVITY: {"subject": "Call"},
    }[kind]
    return services.add_action(integration, trigger, kind, **{**defaults, **params})


def errors(exc: ValidationError) -> dict:
    return exc.message_dict


def test_adding_the_first_action_creates_the_triggers_scenario_switched_on(integration):
    action = add(integration)
    scenario = Scenario.objects.get(integration=integration, trigger=Trigger.EMAIL_SENT)
    assert scenario.enabled
    assert action.scenario == scenario
    assert action.position == 0


def test_an_action_may_appear_only_once_in_a_triggers_list(integration):
    add(integration)
    with pytest.raises(ValidationError) as exc:
        add(integration)
    assert "already in this trigger's list" in errors(exc.value)["kind"][0]


def test_the_same_action_may_be_used_by_another_trigger(integration):
    add(integration, Trigger.EMAIL_SENT)
    add(integration, Trigger.REPLY_RECEIVED)
    assert ScenarioAction.objects.count() == 2


def test_actions_run_in_the_order_added(integration):
    kinds = [ActionKind.ADD_ACTIVITY, ActionKind.CREATE_DEAL, ActionKind.NEXT_STAGE]
    for kind in kinds:
        add(integration, kind=kind)
    scenario = integration.scenarios.get()
    assert [a.kind for a in scenario.actions.all()] == kinds
    assert [a.position for a in scenario.actions.all()] == [0, 1, 2]


def test_add_another_action_offers_the_next_unused_action(integration):
    assert services.next_kind(None) == ActionKind.CREATE_DEAL
    add(integration)
    scenario = integration.scenarios.get()
    assert services.next_kind(scenario) == ActionKind.MOVE_TO_STAGE
    for kind in (ActionKind.MOVE_TO_STAGE, ActionKind.NEXT_STAGE, ActionKind.ADD_ACTIVITY):
        add(integration, kind=kind)
    assert services.next_kind(scenario) is None


def test_all_six_triggers_with_all_four_actions_make_the_24_allowed(integration):
    for trigger in Trigger.values:
        for kind in ActionKind.values:
            add(integration, trigger, kind)
    assert ScenarioAction.objects.filter(scenario__integration=integration).count() == 24
    assert services.MAX_ACTIONS == 24


def test_no_action_beyond_24_in_all(integration, monkeypatch):
    monkeypatch.setattr(services, "MAX_ACTIONS", 2)
    add(integration, Trigger.EMAIL_SENT)
    add(integration, Trigger.EMAIL_OPENED)
    with pytest.raises(ValidationError) as exc:
        add(integration, Trigger.REPLY_RECEIVED)
    assert "at most 2 actions" in errors(exc.value)["kind"][0]


def test_no_new_action_when_data_does_not_flow_to_pipedrive(integration):
    add(integration)
    Integration.objects.filter(pk=integration.pk).update(direction=Integration.Direction.TO_SNOVIO)
    integration.refresh_from_db()
    with pytest.raises(ValidationError) as exc:
        add(integration, kind=ActionKind.NEXT_STAGE)
    assert "flows to Pipedrive" in exc.value.messages[0]
    assert ScenarioAction.objects.count() == 1  # the existing one is kept, idle


@pytest.mark.parametrize(
    "direction", [Integration.Direction.TWO_WAY, Integration.Direction.TO_PIPEDRIVE]
)
def test_automations_are_available_when_data_flows_to_pipedrive(integration, direction):
    integration.direction = direction
    assert services.automations_enabled(integration)


@pytest.mark.parametrize(
    "kind, params, field, message",
    [
        (ActionKind.CREATE_DEAL, {"pipeline_id": None}, "pipeline_id", "Choose a pipeline"),
        (ActionKind.CREATE_DEAL, {"pipeline_id": 99}, "pipeline_id", "not in Pipedrive"),
        (
            ActionKind.MOVE_TO_STAGE,
            {"pipeline_id": None, "stage_id": 12},
            "pipeline_id",
            "Choose a pipeline",
        ),
        (ActionKind.MOVE_TO_STAGE, {"stage_id": None}, "stage_id", "Choose a stage"),
        (ActionKind.MOVE_TO_STAGE, {"stage_id": 999}, "stage_id", "not in Pipedrive"),
        (
            ActionKind.MOVE_TO_STAGE,
            {"pipeline_id": 2, "stage_id": 12},
            "stage_id",
            "another pipeline",
        ),
        (ActionKind.ADD_ACTIVITY, {"subject": "   "}, "subject", "subject"),
    ],
)
def test_each_required_setting_is_checked_on_its_field(integration, kind, params, field, message):
    with pytest.raises(ValidationError) as exc:
        add(integration, kind=kind, **params)
    assert message in " ".join(errors(exc.value)[field])


def test_settings_an_action_does_not_use_are_not_kept(integration):
    action = add(integration, kind=ActionKind.NEXT_STAGE, pipeline_id=1, stage_id=12, subject="x")
    assert (action.pipeline_id, action.stage_id, action.subject) == (None, None, "")


def test_an_action_can_be_edited(integration):
    action = add(integration, kind=ActionKind.MOVE_TO_STAGE)
    services.update_action(action, pipeline_id=2, stage_id=22)
    action.refresh_from_db()
    assert (action.pipeline_id, action.stage_id) == (2, 22)


def test_an_edit_cannot_take_a_kind_already_in_the_list(integration):
    add(integration)
    activity = add(integration, kind=ActionKind.ADD_ACTIVITY)
    with pytest.raises(ValidationError):
        services.update_action(activity, kind=ActionKind.CREATE_DEAL, pipeline_id=1)


def test_an_action_can_be_switched_off_and_on(integration):
    action = add(integration)
    assert not services.toggle_action(action).enabled
    assert services.toggle_action(action).enabled


def test_a_scenario_can_be_switched_off_keeping_its_actions(integration):
    add(integration)
    scenario = services.toggle_scenario(integration, Trigger.EMAIL_SENT)
    assert not scenario.enabled
    assert scenario.actions.count() == 1


def test_removing_an_action_keeps_the_others_in_order(integration):
    first = add(integration)
    add(integration, kind=ActionKind.NEXT_STAGE)
    add(integration, kind=ActionKind.ADD_ACTIVITY)
    services.remove_action(first)
    scenario = integration.scenarios.get()
    assert [(a.kind, a.position) for a in scenario.actions.all()] == [
        (ActionKind.NEXT_STAGE, 0),
        (ActionKind.ADD_ACTIVITY, 1),
    ]


def test_actions_can_be_reordered(integration):
    a = add(integration)
    b = add(integration, kind=ActionKind.NEXT_STAGE)
    c = add(integration, kind=ActionKind.ADD_ACTIVITY)
    services.reorder_actions(a.scenario, [c.pk, a.pk, b.pk])
    assert [x.pk for x in a.scenario.actions.all()] == [c.pk, a.pk, b.pk]
    services.move_action(ScenarioAction.objects.get(pk=b.pk), -1)
    assert [x.pk for x in a.scenario.actions.all()] == [c.pk, b.pk, a.pk]


def test_a_reorder_must_list_every_action_exactly_once(integration):
    a = add(integration)
    add(integration, kind=ActionKind.NEXT_STAGE)
    with pytest.raises(ValidationError):
        services.reorder_actions(a.scenario, [a.pk])
    with pytest.raises(ValidationError):
        services.reorder_actions(a.scenario, [a.pk, a.pk])


# --- problems ------------------------------------------------------------------------------
def test_a_pipeline_that_disappears_marks_its_scenario(integration):
    action = add(integration, kind=ActionKind.CREATE_DEAL, pipeline_id=2)
    store_catalog(integration, {1: "Sales"}, [s for s in STAGES if s["pipeline_id"] == 1])
    (problem,) = services.scenario_problems(integration)
    assert problem.action_id == action.pk
    assert problem.setting == "pipeline_id"
    assert problem.section == "automations"
    assert "pipeline no longer exists" in problem.message
    assert problem.fix
    (block,) = [b for b in services.scenario_blocks(integration) if b.trigger == Trigger.EMAIL_SENT]
    assert block.has_problems


def test_a_stage_that_disappears_marks_its_scenario(integration):
    add(integration, kind=ActionKind.MOVE_TO_STAGE, pipeline_id=1, stage_id=13)
    store_catalog(integration, PIPELINES, [s for s in STAGES if s["id"] != 13])
    (problem,) = services.scenario_problems(integration)
    assert problem.setting == "stage_id"
    assert "stage no longer exists" in str(problem)


def test_no_problem_while_the_catalogue_still_has_everything(integration):
    for kind in ActionKind.values:
        add(integration, kind=kind)
    assert services.scenario_problems(integration) == []


def test_switched_off_actions_are_marked_but_do_not_block_resume(integration):
    action = add(integration, kind=ActionKind.CREATE_DEAL, pipeline_id=2)
    services.toggle_action(action)
    store_catalog(integration, {1: "Sales"}, STAGES[:3])
    assert services.scenario_problems(integration) == []
    assert services.action_problems(integration)[action.pk]


def test_idle_automations_report_no_problem(integration):
    add(integration, kind=ActionKind.CREATE_DEAL, pipeline_id=2)
    store_catalog(integration, {1: "Sales"}, STAGES[:3])
    Integration.objects.filter(pk=integration.pk).update(direction=Integration.Direction.TO_SNOVIO)
    integration.refresh_from_db()
    assert services.scenario_problems(integration) == []


def test_the_settings_check_reports_a_missing_stage_as_an_automations_problem(integration):

    add(integration, kind=ActionKind.MOVE_TO_STAGE, pipeline_id=1, stage_id=13)
    store_catalog(integration, PIPELINES, [s for s in STAGES if s["id"] != 13])
    found = [p for p in settings_problems(integration) if p.section == "automations"]
    assert len(found) == 1
    assert "stage no longer exists" in found[0].message
