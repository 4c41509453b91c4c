"""The Pipedrive client against the strict in-process sandbox: OAuth, paging, retries, limits."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.conf import settings
from django.utils import timezone

from integrations.http import AuthError, RateLimited, RemoteError
from integrations.models import Connection
from integrations.pipedrive import oauth
from integrations.pipedrive.client import PipedriveClient
from tests.integrations.pipedrive_support import (
    FakeClock,
    api_paths,
    api_token_connection,
    make_owner,
    oauth_connection,
    timed_client,
    with_limiter,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def user(django_user_model):
    return make_owner(django_user_model)


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def connection(user, sandbox):
    return oauth_connection(user, sandbox)


@pytest.fixture
def client(connection, sandbox, clock):
    return timed_client(connection, sandbox, clock)


def consent(url: str, decision: str = "allow") -> requests.Response:
    """Do what the user does on Pipedrive's consent page: press a button."""
    page = requests.get(url, timeout=5)
    assert page.status_code == 200 and 'value="allow"' in page.text
    fields = {k: v[-1] for k, v in parse_qs(urlsplit(url).query).items()}
    form = {k: fields.get(k, "") for k in ("client_id", "redirect_uri", "state")}
    return requests.post(
        url.split("?")[0], data=form | {"decision": decision}, allow_redirects=False, timeout=5
    )


# --- OAuth ----------------------------------------------------------------------------------
def test_code_exchange_stores_tokens_and_api_domain_on_the_connection(sandbox, user):
    url = oauth.authorization_url("state-123")
    assert url.startswith(f"{settings.PIPEDRIVE_OAUTH_URL}/oauth/authorize?")

    redirect = consent(url)
    assert redirect.status_code == 302
    location = redirect.headers["Location"]
    assert location.startswith(settings.PIPEDRIVE_REDIRECT_URI)
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == ["state-123"]

    token = oauth.exchange_code(query["code"][0])
    assert token["api_domain"] == f"{sandbox.public_url}/pipedrive"
    assert token["expires_in"] == 3600 and token["refresh_token"]

    connection = Connection(owner=user, provider="pipedrive")
    oauth.store_token(connection, token)
    connection.refresh_from_db()
    assert connection.auth_kind == Connection.AuthKind.OAUTH
    assert connection.status == Connection.Status.OK
    assert connection.api_domain == f"{sandbox.public_url}/pipedrive"
    assert connection.access_token == token["access_token"]
    assert timedelta(minutes=59) < connection.expires_at - timezone.now() <= timedelta(hours=1)
    assert PipedriveClient.for_connection(connection).me()["name"] == "Robin Admin"


def test_an_authorization_code_works_only_once(sandbox):
    code = parse_qs(urlsplit(consent(oauth.authorization_url("s")).headers["Location"]).query)
    oauth.exchange_code(code["code"][0])

    with pytest.raises(AuthError) as refused:
        oauth.exchange_code(code["code"][0])
    assert refused.value.permanent


def test_denying_consent_sends_the_user_back_with_user_denied(sandbox):
    redirect = consent(oauth.authorization_url("s-9"), decision="deny")

    query = parse_qs(urlsplit(redirect.headers["Location"]).query)
    assert query == {"error": ["user_denied"], "state": ["s-9"]}  # as Pipedrive documents


def test_consent_page_refuses_an_unknown_client_or_redirect_uri(sandbox, settings):
    good = oauth.authorization_url("s")
    assert (
        requests.get(good.replace("syncbridge-demo-client", "other"), timeout=5).status_code == 400
    )
    settings.PIPEDRIVE_REDIRECT_URI = "http://elsewhere.example/callback/"
    assert requests.get(good, timeout=5).status_code == 400


def test_refresh_gives_a_new_access_token_and_keeps_the_refresh_token(connection, sandbox):
    old_access, old_refresh = connection.access_token, connection.refresh_token

    oauth.refresh(connection)

    connection.refresh_from_db()
    assert connection.access_token != old_access
    assert connection.refresh_token == old_refresh  # Pipedrive does not rotate it
    assert connection.api_domain == f"{sandbox.public_url}/pipedrive"
    assert PipedriveClient.for_connection(connection).me()["id"]


def test_a_refresh_token_unused_for_60_days_fails_the_connection_permanently(
    connection, sandbox, clock
):
    sandbox.clock = clock
    oauth.refresh(connection)  # used today: 60 more days
    clock.advance(59 * 86400)
    oauth.refresh(connection)  # still good, and its 60 days start again
    clock.advance(60 * 86400)

    with pytest.raises(AuthError) as refused:
        oauth.refresh(connection)

    assert refused.value.permanent
    connection.refresh_from_db()
    assert connection.status == Connection.Status.FAILED
    assert "invalid_grant" in connection.last_error or "refused" in connection.last_error


def test_a_worker_with_a_stale_token_uses_the_one_another_worker_refreshed(connection, sandbox):
    stale = Connection.objects.get(pk=connection.pk)
    oauth.refresh(connection)  # the other worker
    sandbox.request_log.clear()

    oauth.refresh(stale)

    assert stale.access_token == connection.access_token
    assert api_paths(sandbox) == []  # no second refresh that would spend the new token


# --- tokens during API calls ----------------------------------------------------------------
def test_token_is_refreshed_before_it_expires_without_a_401(client, connection, sandbox, clock):
    clock.advance(3601)  # the sandbox has expired the access token
    Connection.objects.filter(pk=connection.pk).update(expires_at=timezone.now())
    connection.refresh_from_db()

    assert client.me()["name"] == "Robin Admin"

    assert api_paths(sandbox) == ["/oauth/token", "/api/v1/users/me"]
    assert client.http.calls == 2


def test_a_401_triggers_one_refresh_and_a_retry(client, sandbox, clock):
    clock.advance(3601)  # expired at Pipedrive, though our clock says it is still valid

    assert client.me()["name"] == "Robin Admin"

    assert api_paths(sandbox) == ["/api/v1/users/me", "/oauth/token", "/api/v1/users/me"]


def test_still_refused_after_one_refresh_is_a_permanent_auth_error(client, sandbox):
    sandbox.inject("pipedrive", "401", count=5, path="/api/v1/users/me")

    with pytest.raises(AuthError) as refused:
        client.me()

    assert refused.value.permanent and refused.value.status == 401
    assert api_paths(sandbox).count("/oauth/token") == 1


def test_a_revoked_token_is_a_permanent_auth_error_and_fails_the_connection(
    client, connection, sandbox
):
    sandbox.inject("pipedrive", "revoked", path="/api/v2/persons")

    with pytest.raises(AuthError) as refused:
        client.list_persons_page()

    assert refused.value.permanent
    connection.refresh_from_db()
    assert connection.status == Connection.Status.FAILED
    assert connection.last_error


def test_legacy_api_token_connections_send_x_api_token_to_the_api_url(sandbox, user):
    connection = api_token_connection(user, settings.SANDBOX_PIPEDRIVE_API_TOKEN)
    client = PipedriveClient.for_connection(connection)

    assert client.base_url == settings.PIPEDRIVE_API_URL
    assert client.me()["name"] == "Robin Admin"


def test_a_wrong_legacy_api_token_is_refused_without_any_refresh(sandbox, user):
    client = PipedriveClient.for_connection(api_token_connection(user, "wrong"))

    with pytest.raises(AuthError):
        client.me()
    assert api_paths(sandbox) == ["/api/v1/users/me"]


# --- paging ---------------------------------------------------------------------------------
def test_iter_persons_follows_cursors_past_500_records(empty_sandbox, user):
    empty_sandbox.pipedrive.add_persons(1200)
    client = PipedriveClient.for_connection(oauth_connection(user, empty_sandbox))

    persons = list(client.iter_persons())

    assert len(persons) == 1200
    assert len({p["id"] for p in persons}) == 1200
    assert client.http.calls == 3  # 500 + 500 + 200


def test_list_persons_page_returns_the_next_cursor_until_the_last_page(empty_sandbox, user):
    empty_sandbox.pipedrive.add_persons(3)
    client = PipedriveClient.for_connection(oauth_connection(user, empty_sandbox))

    first, cursor = client.list_persons_page(limit=2)
    last, end = client.list_persons_page(cursor, limit=2)

    assert [len(first), len(last)] == [2, 1]
    assert cursor and end is None


def test_updated_since_returns_only_persons_changed_after_it(empty_sandbox, user):
    clock = FakeClock()
    ids = empty_sandbox.pipedrive.add_persons(5)
    client = timed_client(oauth_connection(user, empty_sandbox), empty_sandbox, clock)
    since = timezone.now() + timedelta(hours=1)
    clock.advance(3600 + 5)  # the sandbox's clock: an hour and a bit later
    empty_sandbox.pipedrive.change_person(ids[2], job_title="CFO")

    changed = list(client.iter_persons(updated_since=since))

    assert [p["id"] for p in changed] == [ids[2]]


# --- retries and rate limits ----------------------------------------------------------------
def test_a_429_is_answered_by_waiting_and_retrying(client, sandbox, clock):
    sandbox.inject("pipedrive", "429", count=2)

    assert client.me()["name"] == "Robin Admin"

    assert client.http.calls == 3  # two were answered 429 and sent again
    assert clock.slept and max(clock.slept) <= 2.0


def test_the_remotes_count_of_its_window_is_honoured_before_any_429(client, sandbox, clock):
    sandbox.set_rate_limit("pipedrive", 2, period=2.0)

    names = [client.me()["name"] for _ in range(5)]

    assert names == ["Robin Admin"] * 5
    assert client.http.calls == 5  # x-ratelimit-remaining: 0 held the next one back
    assert clock.slept and max(clock.slept) <= 2.0


def test_a_wait_longer_than_allowed_raises_rate_limited(client, sandbox, settings):
    settings.HTTP_MAX_WAIT = 5
    client.http.max_wait = 5
    sandbox.set_rate_limit("pipedrive", 1, period=120.0)
    client.me()

    with pytest.raises(RateLimited) as limited:
        client.me()

    assert limited.value.retry_after > 5 and not limited.value.permanent
    assert limited.value.limit == "burst limit"


def test_a_5xx_is_retried_and_then_succeeds(client, sandbox):
    sandbox.inject("pipedrive", "500", count=2)

    assert client.list_users()

    assert client.http.calls == 3


def test_a_5xx_that_persists_is_reported_as_temporary(client, sandbox):
    sandbox.inject("pipedrive", "503", count=50)

    with pytest.raises(RemoteError) as failed:
        client.list_pipelines()

    assert failed.value.status == 503 and not failed.value.permanent
    assert client.http.calls == client.http.max_retries + 1


def test_a_timeout_is_retried(client, sandbox):
    sandbox.inject("pipedrive", "timeout", count=1)

    assert [s["name"] for s in client.list_pipelines()] == ["Sales", "Partnerships"]

    assert client.http.calls == 2


def test_a_4xx_is_reported_as_permanent(client):
    with pytest.raises(RemoteError) as failed:
        client.get_person(999999)

    assert failed.value.status == 404 and failed.value.permanent


def test_the_rate_limiter_keeps_a_burst_under_the_remote_limit(client, sandbox, clock):
    sandbox.set_rate_limit("pipedrive", 10, period=2.0)
    with_limiter(client, 10, 2.0, clock)

    for _ in range(40):
        client.me()

    assert client.http.calls == 40  # not a single 429 had to be retried
    assert sum(clock.slept) >= 6.0  # 40 requests at 10 per 2 s cannot go faster


# --- email matching -------------------------------------------------------------------------
def test_an_exact_email_search_returns_only_exact_matches(client, sandbox, connection):
    box = sandbox.pipedrive
    ann = box.add_person(name="Ann Exact", email="ann@exact.example")
    same = box.add_person(name="Ann Upper", email="ANN@Exact.Example")
    box.add_person(name="Jo Ann", email="joann@exact.example")
    box.add_person(name="Ann Abroad", email="ann@exact.example.au")

    raw = requests.get(
        f"{connection.api_domain}/api/v2/persons/search",
        params={"term": "ann@exact.example", "fields": "email", "exact_match": "true"},
        headers={"Authorization": f"Bearer {connection.access_token}"},
        timeout=5,
    ).json()
    # The v2 spec: "only full exact matches against the given term are returned", any case.
    assert sorted(i["item"]["id"] for i in raw["data"]["items"]) == sorted([ann["id"], same["id"]])

    found = client.find_persons_by_email("  Ann@Exact.example ")

    assert sorted(p["id"] for p in found) == sorted([ann["id"], same["id"]])
    assert all("custom_fields" in p for p in found)  # full v2 person records


def test_searching_an_unknown_email_costs_one_call(client):
    assert client.find_persons_by_email("nobody@nowhere.example") == []
    assert client.find_persons_by_email("   ") == []

    assert client.http.calls == 1
