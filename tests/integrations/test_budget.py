"""Pipedrive's daily token budget, through the simulator: counted per company, shown on the
settings page, left alone below its reserve by transfers and catch-ups, recognised when spent.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.urls import reverse
from django_q.models import Schedule

from integrations import budget, tasks
from integrations.http import RateLimited
from integrations.models import Integration, SyncRun, TokenBudget
from integrations.pipedrive.client import PipedriveClient, budget_key
from integrations.sandbox import seed
from integrations.sync import runs
from integrations.sync.runs import create_run
from tests.factories import connected_integration

pytestmark = pytest.mark.django_db

PROSPECTS = seed.snovio_prospects(seed.demo_people())
DAY = 86400


@pytest.fixture
def integration(user, sandbox):
    return connected_integration(user, sandbox)


def pipedrive(integration) -> PipedriveClient:
    return PipedriveClient.for_connection(integration.pipedrive)


def tomorrow(monkeypatch, sandbox) -> None:
    """Both sides move past 00:00 UTC: Pipedrive's budget and our count start afresh."""
    later = budget.now() + DAY
    monkeypatch.setattr(budget, "now", lambda: later)
    sandbox.clock = lambda: later


def test_each_call_is_counted_at_its_token_cost_in_batches(integration, sandbox):
    client = pipedrive(integration)
    before = TokenBudget.objects.filter(key=budget_key(integration.pipedrive)).first()
    spent_before = before.spent if before else 0

    client.list_persons_page(limit=10)  # 10 tokens
    client.me()  # 2 tokens
    client.budget.flush()

    row = TokenBudget.objects.get(key=budget_key(integration.pipedrive))
    assert row.spent - spent_before == 12


def test_the_remotes_figure_of_what_is_left_is_kept(integration, sandbox):
    sandbox.pipedrive.limits.configure(daily_budget=5000)
    client = pipedrive(integration)

    client.list_persons_page(limit=10)
    client.budget.flush()

    state = budget.standing(budget_key(integration.pipedrive))
    assert (state.left, state.daily_limit) == (5000 - 10, 5000)
    assert not state.low


def test_a_spent_budget_is_recognised_at_once_not_retried(integration, sandbox):
    sandbox.pipedrive.limits.configure(daily_budget=15)
    client = pipedrive(integration)
    client.list_persons_page(limit=10)  # 10 of 15

    with pytest.raises(RateLimited) as limited:
        client.list_persons_page(limit=10)  # 10 more: over

    assert limited.value.limit == "daily budget"
    assert sandbox.pipedrive.limits.refused["daily budget"] == 1  # asked once, not in a loop
    assert budget.standing(budget_key(integration.pipedrive)).exhausted


def test_real_time_work_may_spend_the_reserve_but_bulk_work_may_not(integration, sandbox):
    sandbox.pipedrive.limits.configure(daily_budget=100)
    client = pipedrive(integration)
    for _ in range(9):
        client.list_persons_page(limit=10)  # 90 of 100: the reserve (10%) is reached

    client.me()  # outside bulk work: allowed
    with budget.background(), pytest.raises(RateLimited) as deferred:
        client.me()

    assert "low" in str(deferred.value) and deferred.value.retry_after > 0
    assert sandbox.pipedrive.limits.refused["daily budget"] == 0


def test_budget_a_transfer_stops_at_the_budget_and_resumes_after_the_reset(
    integration, sandbox, monkeypatch, client_logged_in
):
    """BUDGET TEST: a company with a small daily budget (600 tokens: about 100 new persons)."""
    sandbox.pipedrive.limits.configure(daily_budget=600)
    persons_before = len(sandbox.pipedrive.persons())
    run = create_run(integration, SyncRun.Direction.TO_PIPEDRIVE, None)

    tasks.run_transfer(run.pk)

    run.refresh_from_db()
    integration.refresh_from_db()
    assert run.status == SyncRun.Status.FAILED and 0 < run.done < run.total
    assert "daily token budget" in run.error
    assert "daily token budget" in integration.status_reason
    assert integration.status == Integration.Status.ACTIVE  # not failed: just waiting
    assert sandbox.pipedrive.limits.refused["daily budget"] == 0  # stopped before a 429
    assert sandbox.pipedrive.limits.spent_today(sandbox.clock()) <= 600
    resume = Schedule.objects.get(func="integrations.tasks.run_transfer")
    midnight = (budget.now() // DAY + 1) * DAY
    assert resume.next_run == datetime.fromtimestamp(midnight + 1, UTC)
    page = client_logged_in.get(reverse("integrations:settings", args=[integration.pk]))
    assert b"daily token budget is low" in page.content

    # A catch-up before the reset is deferred too, with the reason.
    assert runs.catch_up_integration(integration.pk).startswith("catch-up deferred: Pipedrive")

    tomorrow(monkeypatch, sandbox)
    tasks.run_transfer(run.pk, resume_failed=True)

    run.refresh_from_db()
    assert run.status == SyncRun.Status.DONE and run.done == run.total
    created = len(sandbox.pipedrive.persons()) - persons_before
    assert created == run.created  # every new person once, none twice
    assert sandbox.pipedrive.limits.refused["daily budget"] == 0
