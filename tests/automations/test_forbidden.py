"""A 403 from Pipedrive (a plan limit, a missing scope, a blocked request) is recorded on the
automation run with the reason; the connection and the integration stay as they were."""

from __future__ import annotations

import pytest

from automations import engine, services
from automations.models import ActionKind, ActionOutcome, Trigger
from integrations.models import Connection, Integration
from tests.automations.test_engine import payload

pytestmark = pytest.mark.django_db


@pytest.fixture
def integration(live):
    return live


def test_the_open_deals_cap_fails_the_action_with_the_reason_not_the_connection(
    integration, pipedrive, sandbox, sync_tasks, run_on_commit
):
    sandbox.pipedrive.limits.configure(open_deals=0)  # the plan's cap is already reached
    services.add_action(
        integration,
        Trigger.EMAIL_SENT,
        ActionKind.CREATE_DEAL,
        pipeline_id=pipedrive.pipeline("Sales"),
    )

    run = run_on_commit(engine.receive_event, integration, payload())

    outcome = run.outcomes.get()
    assert outcome.outcome == ActionOutcome.Outcome.FAILED
    assert "Open deals limit reached" in outcome.reason and "403" in outcome.reason
    integration.refresh_from_db()
    assert integration.status == Integration.Status.ACTIVE
    assert integration.pipedrive.status != Connection.Status.FAILED
    assert not pipedrive.deals


def test_a_blocked_request_fails_only_its_action(
    integration, pipedrive, sandbox, sync_tasks, run_on_commit
):
    sandbox.inject("pipedrive", "403", count=1_000, path="^/api/v2/activities$", method="POST")
    services.add_action(integration, Trigger.EMAIL_SENT, ActionKind.ADD_ACTIVITY, subject="Call")

    run = run_on_commit(engine.receive_event, integration, payload())

    outcome = run.outcomes.get()
    assert outcome.outcome == ActionOutcome.Outcome.FAILED and "403" in outcome.reason
    integration.refresh_from_db()
    assert integration.status == Integration.Status.ACTIVE
