"""The scenario pages: build, edit, reorder, switch and remove actions; the log; no 500s."""

from __future__ import annotations

import pytest
from django.urls import reverse

from automations import services
from automations.models import ActionKind, ActionOutcome, AutomationRun, ScenarioAction, Trigger
from integrations.models import Integration
from tests.automations.conftest import PIPELINES, STAGES, store_catalog

pytestmark = pytest.mark.django_db


def url(name, integration, *args):
    return reverse(f"automations:{name}", args=[integration.pk, *args])


def test_the_page_shows_the_six_triggers(client_logged_in, integration):
    page = client_logged_in.get(url("index", integration))
    assert page.status_code == 200
    html = page.content.decode()
    for _, label in Trigger.choices:
        assert label in html
    assert "+ Add an action" in html


def test_an_action_is_added_from_the_page_and_the_user_goes_back(client_logged_in, integration):
    back = "/somewhere/step-5/"
    response = client_logged_in.post(
        url("add", integration),
        {
            "trigger": Trigger.EMAIL_SENT,
            "kind": ActionKind.CREATE_DEAL,
            "pipeline_id": 1,
            "next": back,
        },
    )
    assert response.status_code == 302
    assert response["Location"] == back + "#automations"
    action = ScenarioAction.objects.get()
    assert (action.scenario.trigger, action.kind, action.pipeline_id) == (
        Trigger.EMAIL_SENT,
        "create_deal",
        1,
    )


def test_a_foreign_next_url_is_not_followed(client_logged_in, integration):
    response = client_logged_in.post(
        url("add", integration),
        {
            "trigger": Trigger.EMAIL_SENT,
            "kind": ActionKind.NEXT_STAGE,
            "next": "https://evil.example/",
        },
    )
    assert response.status_code == 302
    assert response["Location"].startswith(url("index", integration))


@pytest.mark.parametrize(
    "data, field, message",
    [
        ({"kind": "create_deal", "pipeline_id": ""}, "pipeline_id", "Choose a pipeline"),
        ({"kind": "create_deal", "pipeline_id": "abc"}, "pipeline_id", "Select a valid choice"),
        ({"kind": "create_deal", "pipeline_id": "99"}, "pipeline_id", "Select a valid choice"),
        (
            {"kind": "move_to_stage", "pipeline_id": "2", "stage_id": "12"},
            "stage_id",
            "another pipeline",
        ),
        (
            {"kind": "move_to_stage", "pipeline_id": "1", "stage_id": ""},
            "stage_id",
            "Choose a stage",
        ),
        ({"kind": "add_activity", "subject": ""}, "subject", "Give the activity a subject"),
        ({"kind": "add_activity", "subject": "x" * 300}, "subject", "at most 255"),
        ({"kind": "explode"}, "kind", "Select a valid choice"),
    ],
)
def test_every_invalid_choice_is_reported_next_to_its_field(
    client_logged_in, integration, data, field, message
):
    response = client_logged_in.post(
        url("add", integration), {"trigger": Trigger.EMAIL_SENT, **data}
    )
    assert response.status_code == 400
    form = response.context["form"]
    assert any(message in e for e in form.errors[field]), form.errors
    html = response.content.decode()
    assert f'id="id_{field}_error"' in html
    assert ScenarioAction.objects.count() == 0


def test_an_unknown_trigger_never_answers_500(client_logged_in, integration):
    response = client_logged_in.post(
        url("add", integration), {"trigger": "nope", "kind": "next_stage"}
    )
    assert response.status_code in (302, 400)
    for name in ("toggle_scenario", "reorder"):
        assert (
            client_logged_in.post(url(name, integration, "nope"), {"order": "x"}).status_code == 302
        )


def test_an_empty_post_is_answered_with_an_error_by_each_field(client_logged_in, integration):
    """A POST with no fields at all is an invalid form, not a silent blank one."""
    response = client_logged_in.post(url("add", integration), {})
    assert response.status_code == 400
    assert response.context["form"].errors.get("kind"), response.context["form"].errors
    assert 'id="id_kind_error"' in response.content.decode()
    action = services.add_action(
        integration, Trigger.EMAIL_SENT, ActionKind.ADD_ACTIVITY, subject="Call back"
    )
    response = client_logged_in.post(url("edit", integration, action.pk), {})
    assert response.status_code == 400
    assert response.context["form"].errors.get("kind"), response.context["form"].errors
    action.refresh_from_db()
    assert action.kind == ActionKind.ADD_ACTIVITY


def test_a_kind_already_in_the_list_is_refused_on_the_kind_field(client_logged_in, integration):
    services.add_action(integration, Trigger.EMAIL_SENT, ActionKind.NEXT_STAGE)
    response = client_logged_in.post(
        url("add", integration), {"trigger": Trigger.EMAIL_SENT, "kind": ActionKind.NEXT_STAGE}
    )
    assert response.status_code == 400
    assert response.context["form"].errors["kind"]


def test_add_another_action_offers_only_the_unused_actions(client_logged_in, integration):
    services.add_action(integration, Trigger.EMAIL_SENT, ActionKind.CREATE_DEAL, pipeline_id=1)
    page = client_logged_in.get(url("add", integration) + "?trigger=email_sent")
    choices = [value for value, _ in page.context["form"].fields["kind"].choices]
    assert choices == ["move_to_stage", "next_stage", "add_activity"]


def test_an_action_is_edited(client_logged_in, integration):
    action = services.add_action(
        integration, Trigger.EMAIL_SENT, ActionKind.MOVE_TO_STAGE, pipeline_id=1, stage_id=12
    )
    page = client_logged_in.get(url("edit", integration, action.pk))
    assert page.status_code == 200
    response = client_logged_in.post(
        url("edit", integration, action.pk),
        {"kind": "move_to_stage", "pipeline_id": 2, "stage_id": 22},
    )
    assert response.status_code == 302
    action.refresh_from_db()
    assert (action.pipeline_id, action.stage_id) == (2, 22)


def test_actions_are_switched_moved_and_removed(client_logged_in, integration):
    a = services.add_action(integration, Trigger.EMAIL_SENT, ActionKind.CREATE_DEAL, pipeline_id=1)
    b = services.add_action(integration, Trigger.EMAIL_SENT, ActionKind.NEXT_STAGE)
    client_logged_in.post(url("toggle_action", integration, a.pk))
    assert not ScenarioAction.objects.get(pk=a.pk).enabled
    client_logged_in.post(url("move", integration, b.pk), {"direction": "up"})
    assert [x.pk for x in a.scenario.actions.all()] == [b.pk, a.pk]
    client_logged_in.post(
        url("reorder", integration, Trigger.EMAIL_SENT), {"order": f"{a.pk},{b.pk}"}
    )
    assert [x.pk for x in a.scenario.actions.all()] == [a.pk, b.pk]
    client_logged_in.post(url("remove", integration, a.pk))
    assert list(ScenarioAction.objects.values_list("pk", flat=True)) == [b.pk]


def test_a_bad_reorder_or_move_is_reported_not_a_500(client_logged_in, integration):
    a = services.add_action(integration, Trigger.EMAIL_SENT, ActionKind.CREATE_DEAL, pipeline_id=1)
    for data in ({"order": "x,y"}, {"order": "999"}, {}):
        response = client_logged_in.post(
            url("reorder", integration, Trigger.EMAIL_SENT), data, follow=True
        )
        assert response.status_code == 200
    response = client_logged_in.post(
        url("move", integration, a.pk), {"direction": "sideways"}, follow=True
    )
    assert response.status_code == 200


def test_a_scenario_is_switched_off_and_on(client_logged_in, integration):
    client_logged_in.post(url("toggle_scenario", integration, Trigger.REPLY_RECEIVED))
    assert not integration.scenarios.get(trigger=Trigger.REPLY_RECEIVED).enabled
    client_logged_in.post(url("toggle_scenario", integration, Trigger.REPLY_RECEIVED))
    assert integration.scenarios.get(trigger=Trigger.REPLY_RECEIVED).enabled


def test_a_missing_stage_is_marked_in_red_on_the_page(client_logged_in, integration):
    action = services.add_action(
        integration, Trigger.EMAIL_SENT, ActionKind.MOVE_TO_STAGE, pipeline_id=1, stage_id=13
    )
    store_catalog(integration, PIPELINES, [s for s in STAGES if s["id"] != 13])
    html = client_logged_in.get(url("index", integration)).content.decode()
    assert f'id="action-{action.pk}"' in html
    assert "has-problem" in html
    assert "its stage no longer exists" in html


def test_idle_automations_are_shown_but_cannot_grow(client_logged_in, integration):
    services.add_action(integration, Trigger.EMAIL_SENT, ActionKind.NEXT_STAGE)
    Integration.objects.filter(pk=integration.pk).update(direction=Integration.Direction.TO_SNOVIO)
    html = client_logged_in.get(url("index", integration)).content.decode()
    assert "Move the active deal to the next stage" in html
    assert "only when data flows to Pipedrive" in html
    assert "+ Add another action" not in html
    response = client_logged_in.post(
        url("add", integration), {"trigger": Trigger.EMAIL_OPENED, "kind": "next_stage"}
    )
    assert response.status_code == 400


def test_the_log_shows_each_run_and_its_outcomes(client_logged_in, integration):
    run = AutomationRun.objects.create(
        integration=integration,
        event_key="k1",
        trigger=Trigger.EMAIL_SENT,
        email="john@acme.example",
        status=AutomationRun.Status.PARTIAL,
        payload={"data": {"campaign_name": "Spring push"}},
    )
    ActionOutcome.objects.create(
        run=run,
        kind=ActionKind.CREATE_DEAL,
        outcome="done",
        pipedrive_objects={
            "deal": {"id": 55, "title": "John Smith deal"},
            "stage": {"id": 11, "name": "Lead in"},
        },
    )
    ActionOutcome.objects.create(
        run=run,
        kind=ActionKind.NEXT_STAGE,
        position=1,
        outcome="skipped",
        reason="already at the last stage",
    )
    page = client_logged_in.get(url("log", integration))
    html = page.content.decode()
    assert "Campaign email sent" in html and "Spring push" in html and "john@acme.example" in html
    assert "deal #55 “John Smith deal”" in html and "stage Lead in" in html
    assert "Skipped" in html and "already at the last stage" in html
    assert (
        client_logged_in.get(url("log", integration) + "?status=done&email=nobody").status_code
        == 200
    )


def test_another_users_integration_is_out_of_reach(client, other_user, integration):
    client.force_login(other_user)
    action = services.add_action(integration, Trigger.EMAIL_SENT, ActionKind.NEXT_STAGE)
    assert client.get(url("index", integration)).status_code == 404
    assert client.get(url("log", integration)).status_code == 404
    assert client.post(url("remove", integration, action.pk)).status_code == 404
    assert (
        client.post(
            url("add", integration), {"trigger": "email_sent", "kind": "add_activity"}
        ).status_code
        == 404
    )
    assert ScenarioAction.objects.filter(pk=action.pk).exists()


def test_pages_need_a_login(client, integration):
    response = client.get(url("index", integration))
    assert response.status_code == 302
    assert "login" in response["Location"]


def test_the_admin_shows_scenarios_and_a_read_only_log(admin_client, integration):
    services.add_action(integration, Trigger.EMAIL_SENT, ActionKind.NEXT_STAGE)
    run = AutomationRun.objects.create(integration=integration, event_key="k", trigger="email_sent")
    ActionOutcome.objects.create(run=run, kind="next_stage", outcome="skipped", reason="no deal")
    assert admin_client.get(reverse("admin:automations_scenario_changelist")).status_code == 200
    scenario = integration.scenarios.get()
    assert (
        admin_client.get(
            reverse("admin:automations_scenario_change", args=[scenario.pk])
        ).status_code
        == 200
    )
    assert (
        admin_client.get(reverse("admin:automations_automationrun_changelist")).status_code == 200
    )
    detail = admin_client.get(reverse("admin:automations_automationrun_change", args=[run.pk]))
    assert detail.status_code == 200 and "no deal" in detail.content.decode()
    assert admin_client.get(reverse("admin:automations_automationrun_add")).status_code == 403
