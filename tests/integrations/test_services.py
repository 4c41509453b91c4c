"""The integration's life cycle: defaults, connect, launch, pause, resume, Connection failed."""

from __future__ import annotations

import pytest
from django.conf import settings

from automations.models import ActionKind, Scenario, ScenarioAction, Trigger
from integrations import connections, fieldspec, lifecycle, services, signals, steps
from integrations.http import AuthError
from integrations.models import Connection, Integration, Provider, StatusChange
from integrations.problems import settings_problems
from integrations.sync import runs
from tests.factories import (
    delete_pipedrive_field,
    integration_with_both_apps,
    launched_integration,
    legacy_connection,
    ready_integration,
)

pytestmark = pytest.mark.django_db

Status = Integration.Status


@pytest.fixture
def received():
    """Every life-cycle signal sent during the test, as (name, kwargs)."""
    seen: list[tuple[str, dict]] = []
    handlers = {}
    for name in ("status_changed", "settings_changed", "disconnecting"):

        def handler(sender, _name=name, **kwargs):
            kwargs.pop("signal", None)
            seen.append((_name, kwargs))

        handlers[name] = handler
        getattr(signals, name).connect(handler, weak=False)
    yield seen
    for name, handler in handlers.items():
        getattr(signals, name).disconnect(handler)


def names(problems) -> str:
    return " | ".join(p.message for p in problems)


# --- defaults and connecting ----------------------------------------------------------------


def test_a_new_integration_is_two_way_all_lists_email_only_and_paused(user):
    integration = steps.create_integration(user)
    assert integration.direction == Integration.Direction.TWO_WAY
    assert integration.all_lists is True
    assert integration.only_with_email is True
    assert integration.include_email_history is False
    assert integration.status == Status.PAUSED
    assert integration.launched_at is None


def test_a_new_integration_has_every_system_pair_locked(user):
    integration = steps.create_integration(user)
    pairs = list(integration.field_mappings.values_list("snovio_field", "pipedrive_field"))
    assert pairs == [(p.snovio_field, p.pipedrive_field) for p in fieldspec.SYSTEM_PAIRS]
    assert all(integration.field_mappings.values_list("is_system", flat=True))


def test_connecting_both_apps_leaves_the_integration_paused_until_launch(user, sandbox):
    integration = integration_with_both_apps(user, sandbox)
    assert integration.status == Status.PAUSED
    assert integration.pipedrive.auth_kind == Connection.AuthKind.OAUTH
    assert integration.pipedrive.account_name == "Sandbox Company (Robin Admin)"
    assert integration.snovio.auth_kind == Connection.AuthKind.CREDENTIALS
    assert not StatusChange.objects.filter(integration=integration).exists()
    # The Pipedrive user who connected owns contacts from Snov.io until someone chooses.
    assert integration.pipedrive_owner_name == "Robin Admin"


def test_snovio_credentials_are_checked_by_a_real_token_request(sandbox):
    with pytest.raises(AuthError):
        connections.check_snovio_credentials(settings.SANDBOX_SNOVIO_CLIENT_ID, "wrong-secret")
    checked = connections.check_snovio_credentials(
        settings.SANDBOX_SNOVIO_CLIENT_ID, settings.SANDBOX_SNOVIO_CLIENT_SECRET
    )
    assert checked.pk is None and checked.access_token
    token_calls = [r for r in sandbox.request_log if r[2] == "/v1/oauth/access_token"]
    assert len(token_calls) == 2


def test_disconnecting_removes_the_tokens_and_pauses_a_running_integration(user, sandbox, received):
    integration = launched_integration(user, sandbox)
    conn = integration.pipedrive
    connections.disconnect(integration, Provider.PIPEDRIVE, user)
    conn.refresh_from_db()
    integration.refresh_from_db()
    assert conn.access_token == "" and conn.refresh_token == ""
    assert conn.status == Connection.Status.REVOKED
    assert integration.pipedrive is None
    assert integration.status == Status.PAUSED
    assert ("disconnecting", {"integration": integration, "provider": "pipedrive"}) in [
        (n, {k: v for k, v in kw.items() if k in ("integration", "provider")})
        for n, kw in received
        if n == "disconnecting"
    ]


# --- status ---------------------------------------------------------------------------------


def test_set_status_records_who_and_why_and_tells_the_listeners(user, received):
    integration = steps.create_integration(user)
    change = lifecycle.set_status(integration, Status.ACTIVE, user, "because")
    assert (change.from_status, change.to_status, change.changed_by, change.reason) == (
        "paused",
        "active",
        user,
        "because",
    )
    integration.refresh_from_db()
    assert integration.status == Status.ACTIVE and integration.status_reason == "because"
    sent = [kw for name, kw in received if name == "status_changed"]
    assert sent == [
        {
            "integration": integration,
            "old_status": "paused",
            "new_status": "active",
            "changed_by": user,
        }
    ]


def test_setting_the_status_it_already_has_records_nothing(user, received):
    integration = steps.create_integration(user)
    assert lifecycle.set_status(integration, Status.PAUSED, user, "again") is None
    assert not StatusChange.objects.exists()
    assert not [n for n, _ in received if n == "status_changed"]


def test_an_unknown_status_is_refused(user):
    integration = steps.create_integration(user)
    with pytest.raises(ValueError):
        lifecycle.set_status(integration, "exploded")


def test_a_failing_listener_never_undoes_a_status_change(user):
    def broken(sender, **kwargs):
        raise RuntimeError("listener bug")

    signals.status_changed.connect(broken, weak=False)
    try:
        integration = steps.create_integration(user)
        lifecycle.set_status(integration, Status.ACTIVE, user)
    finally:
        signals.status_changed.disconnect(broken)
    integration.refresh_from_db()
    assert integration.status == Status.ACTIVE


# --- launch and the required settings -------------------------------------------------------


def test_launch_makes_the_integration_active_and_records_it(user, sandbox):
    integration = ready_integration(user, sandbox)
    assert services.launch(integration, user) == []
    integration.refresh_from_db()
    assert integration.status == Status.ACTIVE and integration.launched_at
    change = integration.status_changes.get()
    assert (change.to_status, change.changed_by, change.reason) == ("active", user, "Launched")


def test_two_way_cannot_launch_without_a_sync_to_list(user, sandbox):
    integration = integration_with_both_apps(user, sandbox)
    problems = services.launch(integration, user)
    assert [p.field for p in problems] == ["target_list"]
    assert "No Snov.io list is chosen" in problems[0].message
    assert "Data exchange" in problems[0].fix
    integration.refresh_from_db()
    assert integration.status == Status.PAUSED and integration.launched_at is None


def test_one_way_to_pipedrive_needs_no_sync_to_list(user, sandbox):
    integration = integration_with_both_apps(user, sandbox)
    steps.save_direction(integration, Integration.Direction.TO_PIPEDRIVE, user)
    assert services.launch(integration, user) == []


def test_one_way_to_snovio_needs_a_list_but_no_owner(user, sandbox):
    integration = integration_with_both_apps(user, sandbox)
    integration.pipedrive_owner_id = None
    integration.save()
    steps.save_direction(integration, Integration.Direction.TO_SNOVIO, user)
    assert [p.field for p in settings_problems(integration)] == ["target_list"]
    steps.save_direction(integration, Integration.Direction.TWO_WAY, user)
    assert {p.field for p in settings_problems(integration)} == {"target_list", "owner"}


def test_chosen_lists_are_required_when_all_lists_is_off(user, sandbox):
    integration = ready_integration(user, sandbox)
    integration.all_lists = False
    integration.save()
    problems = settings_problems(integration)
    assert [p.field for p in problems] == ["lists"]
    assert "All lists" in problems[0].fix


def test_saving_settings_restarts_sync_on_them(user, sandbox, received):
    integration = integration_with_both_apps(user, sandbox)
    received.clear()
    steps.save_direction(integration, Integration.Direction.TO_SNOVIO, user)
    integration.refresh_from_db()
    assert integration.direction == Integration.Direction.TO_SNOVIO
    assert [n for n, _ in received] == ["settings_changed"]


# --- pause, resume, Connection failed -------------------------------------------------------


def test_pause_then_resume_returns_to_active_and_both_changes_are_recorded(user, sandbox):
    integration = launched_integration(user, sandbox)
    assert services.pause(integration, user) is True
    assert services.resume(integration, user) == []
    integration.refresh_from_db()
    assert integration.status == Status.ACTIVE
    history = list(
        integration.status_changes.order_by("at", "pk").values_list("to_status", "reason")
    )
    assert history == [
        ("active", "Launched"),
        ("paused", "Paused by the user"),
        ("active", "Resumed"),
    ]


def test_resuming_with_a_deleted_mapped_field_fails_naming_that_field(user, sandbox):
    integration = launched_integration(user, sandbox)
    services.pause(integration, user)
    delete_pipedrive_field(sandbox, "Industry")
    services.refresh(integration, user)
    problems = services.resume(integration, user)
    integration.refresh_from_db()
    assert integration.status == Status.FAILED
    assert len(problems) == 1
    problem = problems[0]
    assert problem.section == "data" and problem.field.startswith("mapping-")
    assert "Pipedrive field “Industry”" in problem.message and "no longer exists" in problem.message
    assert problem.fix == "Remove the pair or choose another field in Data exchange."
    last = integration.status_changes.first()
    assert (last.from_status, last.to_status) == ("paused", "failed")
    assert "Industry" in last.reason


def test_resume_checks_the_current_catalogue_even_without_refresh(user, sandbox):
    integration = launched_integration(user, sandbox)
    services.pause(integration, user)
    sandbox.snovio.delete_list("Conference leads 2026")
    problems = services.resume(integration, user)
    assert [p.field for p in problems] == ["target_list"]
    assert "“Conference leads 2026” no longer exists" in problems[0].message


def test_fixing_the_problems_lets_the_user_resume(user, sandbox):
    integration = launched_integration(user, sandbox)
    services.pause(integration, user)
    delete_pipedrive_field(sandbox, "Industry")
    assert services.resume(integration, user)
    steps.save_field_mappings(integration, [])  # remove the broken pair
    assert services.resume(integration, user) == []
    integration.refresh_from_db()
    assert integration.status == Status.ACTIVE


def test_a_revoked_pipedrive_token_fails_with_reconnect_advice(user, sandbox):
    integration = launched_integration(user, sandbox)
    services.pause(integration, user)
    sandbox.pipedrive.revoke_all()
    problems = services.resume(integration, user)
    assert [p.field for p in problems] == ["pipedrive"]
    assert (
        problems[0].fix
        == "Click Reconnect and allow access in Pipedrive again; every setting is kept."
    )
    assert "(400)" not in problems[0].message  # plain words, not the token endpoint's answer
    integration.refresh_from_db()
    assert integration.status == Status.FAILED
    assert integration.pipedrive.status == Connection.Status.FAILED


def test_refresh_while_active_with_a_broken_setting_sets_connection_failed(user, sandbox):
    integration = launched_integration(user, sandbox)
    delete_pipedrive_field(sandbox, "Industry")
    result, problems = services.refresh(integration, user)
    assert result.change_for("pipedrive_fields").removed == ["Industry"]
    assert problems
    integration.refresh_from_db()
    assert integration.status == Status.FAILED


def test_a_missing_automation_stage_is_a_problem_on_resume(user, sandbox):
    integration = launched_integration(user, sandbox)
    scenario = Scenario.objects.create(integration=integration, trigger=Trigger.REPLY_RECEIVED)
    ScenarioAction.objects.create(
        scenario=scenario,
        kind=ActionKind.MOVE_TO_STAGE,
        pipeline_id=1,  # the sandbox's "Sales" pipeline
        stage_id=999_999,
    )
    services.pause(integration, user)
    problems = services.resume(integration, user)
    assert [p.section for p in problems] == ["automations"]
    integration.refresh_from_db()
    assert integration.status == Status.FAILED


# --- legacy API-token connections -----------------------------------------------------------


def test_a_legacy_token_integration_stays_paused_until_reconnected_by_oauth(user, sandbox):
    integration = ready_integration(user, sandbox)
    oauth_conn = integration.pipedrive
    legacy = legacy_connection(user)
    Integration.objects.filter(pk=integration.pk).update(
        pipedrive=legacy, status=Status.ACTIVE, launched_at="2026-01-01T00:00:00Z"
    )
    oauth_conn.delete()
    integration.refresh_from_db()

    connections.ensure_legacy_paused(integration)
    assert integration.status == Status.PAUSED
    assert integration.status_changes.get().reason == connections.LEGACY_REASON

    problems = services.resume(integration, user)
    assert [p.field for p in problems] == ["pipedrive"]
    assert "Reconnect" in problems[0].fix
    integration.refresh_from_db()
    assert integration.status == Status.PAUSED

    # Reconnect by OAuth: the same connection, every setting kept.
    connections.connect_pipedrive(integration, sandbox.pipedrive.issue_token(), user)
    integration.refresh_from_db()
    assert integration.pipedrive.pk == legacy.pk
    assert integration.pipedrive.auth_kind == Connection.AuthKind.OAUTH
    assert integration.target_list_name == "Conference leads 2026"
    assert integration.field_mappings.filter(is_system=False).count() == 1
    assert services.resume(integration, user) == []
    integration.refresh_from_db()
    assert integration.status == Status.ACTIVE


# --- transfer -------------------------------------------------------------------------------


def test_a_transfer_starts_only_while_active(user, sandbox):
    integration = ready_integration(user, sandbox)
    with pytest.raises(runs.TransferUnavailable):
        runs.start_transfer(integration, "to_pipedrive", "snovio", True, user)


def test_a_transfer_is_handed_to_the_sync_engine(user, sandbox, monkeypatch):
    integration = launched_integration(user, sandbox)
    calls = []
    run = integration.runs.create(direction="to_snovio", source_app="pipedrive", dry_run=True)
    monkeypatch.setattr(runs, "open_run", lambda *args: calls.append(args[:5]) or (run, False))
    assert runs.start_transfer(integration, "to_snovio", "pipedrive", True, user) == run
    assert calls == [(integration, "to_snovio", "pipedrive", True, user)]
