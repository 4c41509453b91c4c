"""Pipedrive's limits as its docs describe them, in the simulator and in the client: the search
limit apart from the burst limit, the lower burst limit of API-token connections, the rate-limit
headers, and a 403 that is not a credential failure."""

from __future__ import annotations

import pytest

from integrations.http import AuthError, Forbidden
from integrations.models import Integration, SyncRun
from integrations.pipedrive.client import PipedriveClient
from integrations.sandbox.messages import SandboxRequest
from integrations.sync.runs import create_run
from tests.factories import connected_integration
from tests.integrations.pipedrive_support import (
    FakeClock,
    api_token_connection,
    make_owner,
    oauth_connection,
    timed_client,
)

pytestmark = pytest.mark.django_db


def get(path: str, **headers: str) -> SandboxRequest:
    path, _, term = path.partition("?term=")
    query = {"term": term, "fields": "email"} if term else {}
    return SandboxRequest(method="GET", path=path, query=query, headers=headers, body=b"")


@pytest.fixture(autouse=True)
def still_clock(sandbox):
    """Time stands still unless a test moves it: the windows are exact, not a race."""
    sandbox.clock = FakeClock()
    return sandbox.clock


def answers(sandbox, path: str, times: int, **headers: str) -> list[int]:
    return [sandbox.pipedrive.handle(get(path, **headers)).status for _ in range(times)]


@pytest.fixture
def bearer(sandbox):
    return {"authorization": "Bearer " + sandbox.pipedrive.issue_token()["access_token"]}


# --- the simulator ---------------------------------------------------------------------------
def test_search_has_its_own_limit_of_ten_per_two_seconds_besides_the_burst(sandbox, bearer):
    sandbox.pipedrive.limits.configure(burst=80, search=10)
    search = "/api/v2/persons/search?term=someone"

    assert answers(sandbox, search, 11, **bearer) == [200] * 10 + [429]
    assert answers(sandbox, "/api/v2/persons", 5, **bearer) == [200] * 5  # the burst has room


def test_api_token_requests_get_the_lower_burst_limit(sandbox, settings, bearer):
    sandbox.pipedrive.limits.configure(burst=80, api_token_burst=20)
    api_token = {"x-api-token": settings.SANDBOX_PIPEDRIVE_API_TOKEN}

    assert answers(sandbox, "/api/v1/users/me", 21, **api_token) == [200] * 20 + [429]
    assert answers(sandbox, "/api/v1/users/me", 21, **bearer) == [200] * 21


def test_every_answer_carries_the_documented_headers(sandbox, bearer):
    sandbox.pipedrive.limits.configure(burst=80, daily_budget=1000)

    response = sandbox.pipedrive.handle(get("/api/v2/persons", **bearer))

    assert response.headers["x-ratelimit-limit"] == "80"
    assert response.headers["x-ratelimit-remaining"] == "79"
    assert float(response.headers["x-ratelimit-reset"]) <= 2.0
    assert response.headers["x-daily-ratelimit-token-remaining"] == str(1000 - 10)


def test_the_window_rolls_on(sandbox, bearer, still_clock):
    clock = still_clock
    sandbox.pipedrive.limits.configure(burst=3)

    assert answers(sandbox, "/api/v1/users/me", 4, **bearer) == [200, 200, 200, 429]
    clock.advance(2.01)
    assert answers(sandbox, "/api/v1/users/me", 1, **bearer) == [200]


# --- the client ------------------------------------------------------------------------------
def test_api_token_connections_are_paced_by_the_lower_limit(django_user_model, settings, sandbox):
    settings.PIPEDRIVE_API_TOKEN_BURST_LIMIT = 20
    owner = make_owner(django_user_model)
    token_client = PipedriveClient(api_token_connection(owner, "t"))
    oauth_client = PipedriveClient(oauth_connection(owner, sandbox))

    assert token_client.http.limiter.limit == 20
    assert oauth_client.http.limiter.limit == settings.PIPEDRIVE_BURST_LIMIT


def test_searches_wait_for_the_search_limit_and_never_see_a_429(
    django_user_model, sandbox, still_clock
):
    clock = still_clock
    client = timed_client(oauth_connection(make_owner(django_user_model), sandbox), sandbox, clock)
    client.search_limiter.limit = 10
    client.search_limiter.clock, client.search_limiter.sleep = clock, clock.sleep
    sandbox.pipedrive.limits.configure(search=10)

    for number in range(25):
        client.find_persons_by_email(f"nobody{number}@example.com")

    assert sandbox.pipedrive.limits.refused["search"] == 0
    assert sum(clock.slept) >= 4.0  # 25 searches at 10 per 2 s take more than 4 s


def test_a_403_is_forbidden_and_a_refresh_is_not_tried(django_user_model, sandbox):
    client = PipedriveClient(oauth_connection(make_owner(django_user_model), sandbox))
    sandbox.inject("pipedrive", "403", count=1, path="^/api/v2/deals$", method="POST")

    with pytest.raises(Forbidden) as refused:
        client.create_deal({"title": "Deal"})

    assert not isinstance(refused.value, AuthError)
    token_calls = [p for r, _, p in sandbox.request_log if p.startswith("/oauth/")]
    assert token_calls == []


def test_a_401_that_a_refresh_cannot_cure_is_an_auth_error(django_user_model, sandbox):
    client = PipedriveClient(oauth_connection(make_owner(django_user_model), sandbox))
    sandbox.inject("pipedrive", "revoked", count=1)

    with pytest.raises(AuthError):
        client.me()


# --- a transfer ------------------------------------------------------------------------------
def test_a_transfer_records_403s_on_the_records_and_carries_on(user, sandbox, sync_tasks):
    from integrations import tasks

    integration = connected_integration(user, sandbox)
    sandbox.inject("pipedrive", "403", count=3, path="^/api/v2/persons$", method="POST")
    run = create_run(integration, SyncRun.Direction.TO_PIPEDRIVE, None)

    tasks.run_transfer(run.pk)

    run.refresh_from_db()
    integration.refresh_from_db()
    assert run.status == SyncRun.Status.DONE and run.failed == 3
    reasons = list(run.events.filter(outcome="failed").values_list("reason", flat=True))
    assert len(reasons) == 3 and all("403" in reason for reason in reasons)
    assert integration.status == Integration.Status.ACTIVE


# --- the control page ------------------------------------------------------------------------
def test_the_limits_are_set_through_the_sandbox_control_api(sandbox):
    import json

    from integrations.sandbox.control import handle

    body = json.dumps({"burst": 40, "search": 10, "daily_budget": 3000}).encode()
    answer = handle(sandbox, "POST", "/_sandbox/pipedrive-limits", _json, body)

    assert answer.status == 200
    limits = sandbox.pipedrive.limits
    assert (limits.burst, limits.search, limits.daily_budget) == (40, 10, 3000)
    wrong = handle(sandbox, "POST", "/_sandbox/pipedrive-limits", _json, b'{"plan": 3}')
    assert wrong.status == 400 and "unknown Pipedrive limit" in wrong.body["error"]


_json = {"Content-Type": "application/json"}
