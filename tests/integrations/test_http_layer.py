"""HttpClient (retries, 429 waits, error kinds, POSTs never resent blindly) and `create_once`,
with `responses` mocks. The rate limiter itself: tests/integrations/test_ratelimit.py."""

from __future__ import annotations

import pytest
import requests
import responses
from urllib3.exceptions import MaxRetryError, NewConnectionError

from integrations.http import (
    AuthError,
    Forbidden,
    HttpClient,
    RateLimited,
    RemoteError,
    create_once,
    raise_for_status,
)
from tests.integrations.pipedrive_support import FakeClock

URL = "https://api.remote.test/v1/things"


@pytest.fixture
def mocked():
    with responses.RequestsMock() as rsps:
        yield rsps


@pytest.fixture
def clock():
    return FakeClock(start=1_000_000.0)


@pytest.fixture
def http(clock):
    return HttpClient(
        "remote", timeout=1, max_retries=3, backoff=0.5, max_wait=60, sleep=clock.sleep
    )


def answer(rsps, *replies: tuple[int, dict]) -> None:
    for status, headers in replies:
        rsps.add(responses.GET, URL, json={"ok": status < 400}, status=status, headers=headers)


# --- 429 --------------------------------------------------------------------------------------
def test_retry_after_is_honoured_before_retrying(mocked, http, clock):
    answer(mocked, (429, {"Retry-After": "3"}), (200, {}))

    assert http.request("GET", URL).status_code == 200

    assert clock.slept == [3.0] and http.calls == 2


def test_x_ratelimit_reset_is_honoured_when_there_is_no_retry_after(mocked, http, clock):
    answer(mocked, (429, {"x-ratelimit-reset": "1.5", "x-ratelimit-remaining": "0"}), (200, {}))

    http.request("GET", URL)

    assert clock.slept == [1.5]


def test_a_wait_longer_than_max_wait_raises_rate_limited_at_once(mocked, http, clock):
    answer(mocked, (429, {"Retry-After": "120"}))

    with pytest.raises(RateLimited) as limited:
        http.request("GET", URL)

    assert limited.value.retry_after == 120 and limited.value.limit == "burst limit"
    assert not limited.value.permanent and clock.slept == []


def test_an_exhausted_daily_budget_is_named_as_such(mocked, http):
    answer(mocked, (429, {"Retry-After": "3600", "x-daily-requests-left": "0"}))

    with pytest.raises(RateLimited) as limited:
        http.request("GET", URL)

    assert limited.value.limit == "daily budget"


def test_429s_that_never_end_give_up_after_the_retries(mocked, http, clock):
    answer(mocked, *[(429, {"Retry-After": "1"})] * 4)

    with pytest.raises(RateLimited):
        http.request("GET", URL)

    assert http.calls == 4 and clock.slept == [1.0, 1.0, 1.0]


# --- 5xx, timeouts, connection errors --------------------------------------------------------
def test_5xx_is_retried_with_growing_backoff(mocked, http, clock):
    answer(mocked, (500, {}), (502, {}), (200, {}))

    assert http.request("GET", URL).status_code == 200

    assert clock.slept == [0.5, 1.0]


def test_5xx_after_every_retry_is_a_temporary_remote_error(mocked, http):
    answer(mocked, *[(503, {})] * 4)

    with pytest.raises(RemoteError) as failed:
        http.request("GET", URL)

    assert failed.value.status == 503 and not failed.value.permanent
    assert http.calls == 4


@pytest.mark.parametrize("error", [requests.Timeout, requests.ConnectionError])
def test_timeouts_and_connection_errors_are_retried_then_reported(mocked, http, error):
    for _ in range(4):
        mocked.add(responses.GET, URL, body=error("boom"))

    with pytest.raises(RemoteError) as failed:
        http.request("GET", URL)

    assert not failed.value.permanent and http.calls == 4


def test_a_timeout_followed_by_success_returns_the_answer(mocked, http):
    mocked.add(responses.GET, URL, body=requests.Timeout("slow"))
    answer(mocked, (200, {}))

    assert http.request("GET", URL).json() == {"ok": True}


# --- non-idempotent requests (POST) ----------------------------------------------------------
def never_connected() -> requests.ConnectionError:
    """What requests raises when no connection could be made (the request was never sent)."""
    reason = NewConnectionError(None, "Failed to establish a new connection: refused")
    return requests.ConnectionError(MaxRetryError(None, URL, reason=reason))


def test_a_timed_out_post_is_not_resent_but_reported_as_ambiguous(mocked, http, clock):
    mocked.assert_all_requests_are_fired = False
    mocked.add(responses.POST, URL, body=requests.ReadTimeout("no answer"))
    second = mocked.add(responses.POST, URL, json={"id": 2})

    with pytest.raises(RemoteError) as failed:
        http.request("POST", URL, json={"name": "Ann"})

    assert failed.value.ambiguous and not failed.value.permanent
    assert http.calls == 1 and second.call_count == 0 and clock.slept == []
    assert "not resent" in str(failed.value)


def test_a_timed_out_get_is_resent(mocked, http):
    mocked.add(responses.GET, URL, body=requests.ReadTimeout("no answer"))
    answer(mocked, (200, {}))

    assert http.request("GET", URL).status_code == 200
    assert http.calls == 2


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_post_answered_with_a_gateway_or_server_error_is_not_resent(mocked, http, status):
    mocked.add(responses.POST, URL, json={"error": "gateway"}, status=status)

    with pytest.raises(RemoteError) as failed:
        http.request("POST", URL, json={})

    assert failed.value.ambiguous and failed.value.status == status and http.calls == 1


@pytest.mark.parametrize("method", [responses.PATCH, responses.DELETE, responses.PUT])
def test_idempotent_writes_keep_their_retries(mocked, http, method):
    mocked.add(method, URL, status=503)
    mocked.add(method, URL, body=requests.ReadTimeout("no answer"))
    mocked.add(method, URL, json={"ok": True})

    assert http.request(method, URL, json={}).status_code == 200
    assert http.calls == 3


def test_a_post_refused_with_429_is_resent_after_the_wait(mocked, http, clock):
    mocked.add(responses.POST, URL, status=429, headers={"Retry-After": "2"})
    mocked.add(responses.POST, URL, json={"id": 1})

    assert http.request("POST", URL, json={}).json() == {"id": 1}
    assert clock.slept == [2.0] and http.calls == 2


def test_a_post_that_never_reached_the_server_is_resent(mocked, http):
    mocked.add(responses.POST, URL, body=never_connected())
    mocked.add(responses.POST, URL, body=requests.ConnectTimeout("no connection"))
    mocked.add(responses.POST, URL, json={"id": 1})

    assert http.request("POST", URL, json={}).json() == {"id": 1}
    assert http.calls == 3


def test_a_connection_dropped_after_sending_a_post_is_ambiguous(mocked, http):
    mocked.add(responses.POST, URL, body=requests.ConnectionError("Connection aborted."))

    with pytest.raises(RemoteError) as failed:
        http.request("POST", URL, json={})

    assert failed.value.ambiguous and http.calls == 1


def test_a_post_marked_idempotent_is_resent_like_a_get(mocked, http):
    mocked.add(responses.POST, URL, body=requests.ReadTimeout("no answer"))
    mocked.add(responses.POST, URL, json={"rows": []})

    assert http.request("POST", URL, data={"page": 1}, idempotent=True).json() == {"rows": []}
    assert http.calls == 2


# --- create_once -------------------------------------------------------------------------------
class Remote:
    """A remote whose creates may get lost: it keeps what it made, and answers as told."""

    def __init__(self, *failures: RemoteError):
        self.failures = list(failures)
        self.records: list[dict] = []
        self.finds = 0

    def create(self) -> dict:
        failure = self.failures.pop(0) if self.failures else None
        if failure is not None and failure.status != 503:
            self.records.append({"id": len(self.records) + 1})  # processed, answer lost
        if failure is not None:
            raise failure
        self.records.append({"id": len(self.records) + 1})
        return self.records[-1]

    def find(self) -> dict | None:
        self.finds += 1
        return self.records[0] if self.records else None


def lost(status: int = 504) -> RemoteError:
    return RemoteError("lost", remote="remote", status=status, ambiguous=True)


def test_create_once_adopts_the_record_a_lost_answer_made(http, clock):
    remote = Remote(lost(504))

    record = create_once(remote.create, remote.find, http=http)

    assert record == {"id": 1} and remote.records == [{"id": 1}] and remote.finds == 1
    assert clock.slept == [0.5]  # a pause before looking, so a late create can show up


def test_create_once_creates_again_when_the_failed_attempt_made_nothing(http):
    remote = Remote(lost(503), lost(503))

    assert create_once(remote.create, remote.find, http=http) == {"id": 1}
    assert remote.records == [{"id": 1}] and remote.finds == 2


def test_create_once_gives_up_after_the_http_layers_attempts(http):
    remote = Remote(*[lost(503)] * 10)

    with pytest.raises(RemoteError) as failed:
        create_once(remote.create, remote.find, http=http, what="person")

    assert "person still missing after 4 attempts" in str(failed.value)
    assert not failed.value.ambiguous and remote.records == [] and remote.finds == 4


def test_create_once_raises_a_clear_refusal_at_once(http):
    remote = Remote(RemoteError("400 bad", status=400, permanent=True))

    with pytest.raises(RemoteError):
        create_once(remote.create, remote.find, http=http)

    assert remote.finds == 0


def test_create_once_without_a_way_to_check_does_not_create_again(http):
    remote = Remote(lost(504))

    with pytest.raises(RemoteError) as failed:
        create_once(remote.create, None, http=http)

    assert failed.value.ambiguous and len(remote.records) == 1


def test_4xx_is_returned_without_retrying(mocked, http):
    answer(mocked, (422, {}))

    assert http.request("GET", URL).status_code == 422
    assert http.calls == 1


def test_the_limiter_is_asked_before_every_attempt(mocked, http):
    asked = []

    class CountingLimiter:
        def acquire(self, max_wait=None) -> float:
            asked.append(1)
            return 0.0

    http.limiter = CountingLimiter()
    answer(mocked, (500, {}), (200, {}))

    http.request("GET", URL)

    assert len(asked) == 2


# --- raise_for_status -------------------------------------------------------------------------
@pytest.mark.parametrize(("status", "kind"), [(400, RemoteError), (404, RemoteError)])
def test_client_errors_are_permanent(mocked, status, kind):
    mocked.add(responses.GET, URL, json={"error": "Bad field"}, status=status)
    response = requests.get(URL, timeout=1)

    with pytest.raises(kind) as failed:
        raise_for_status(response, "remote")

    assert failed.value.permanent and failed.value.status == status
    assert "Bad field" in str(failed.value) and not isinstance(failed.value, AuthError)


def test_refused_credentials_are_a_permanent_auth_error(mocked):
    mocked.add(responses.GET, URL, json={"error": "unauthorized"}, status=401)

    with pytest.raises(AuthError) as failed:
        raise_for_status(requests.get(URL, timeout=1), "remote")

    assert failed.value.permanent


def test_a_403_is_a_refusal_of_this_request_not_of_the_credentials(mocked):
    body = {
        "success": False,
        "error": "Couldn't add the deal. Open deals limit reached.",
        "code": "feature_capping_deals_limit",
    }
    mocked.add(responses.GET, URL, json=body, status=403)

    with pytest.raises(Forbidden) as failed:
        raise_for_status(requests.get(URL, timeout=1), "remote")

    assert not isinstance(failed.value, AuthError) and failed.value.permanent
    assert failed.value.reason == "feature_capping_deals_limit"
    assert "Open deals limit reached" in str(failed.value)


# --- the remote's counts ------------------------------------------------------------------
class RecordingLimiter:
    limit, period = 80, 2.0

    def __init__(self):
        self.blocked: list[float] = []

    def acquire(self, max_wait=None) -> float:
        return 0.0

    def block(self, seconds: float) -> None:
        self.blocked.append(seconds)

    def observe(self, remaining, reset) -> None:
        if remaining is not None and remaining <= 0 and reset:
            self.block(reset)


def test_a_spent_daily_budget_is_raised_at_once_not_retried(mocked, http, clock):
    answer(mocked, (429, {"x-daily-ratelimit-token-remaining": "0", "x-ratelimit-reset": "2"}))

    with pytest.raises(RateLimited) as limited:
        http.request("GET", URL)

    assert limited.value.limit == "daily budget" and http.calls == 1 and not clock.slept
    assert 0 < limited.value.retry_after <= 24 * 3600  # until 00:00 UTC


def test_a_429_makes_every_worker_of_the_account_wait_through_the_limiter(mocked, http):
    http.limiter = RecordingLimiter()
    answer(mocked, (429, {"Retry-After": "4"}), (200, {}))

    assert http.request("GET", URL).status_code == 200

    assert http.limiter.blocked == [4.0]


def test_no_requests_left_in_the_remote_window_holds_the_next_request(mocked, http):
    http.limiter = RecordingLimiter()
    answer(mocked, (200, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1.5"}))

    http.request("GET", URL)

    assert http.limiter.blocked == [1.5]


def test_requests_left_in_the_remote_window_hold_nothing(mocked, http):
    http.limiter = RecordingLimiter()
    answer(mocked, (200, {"x-ratelimit-remaining": "12", "x-ratelimit-reset": "1.5"}))

    http.request("GET", URL)

    assert http.limiter.blocked == []


@pytest.mark.parametrize("status", [200, 201, 204, 304])
def test_success_passes_raise_for_status(mocked, status):
    mocked.add(responses.GET, URL, status=status)
    response = requests.get(URL, timeout=1, allow_redirects=False)

    assert response.status_code == status
    assert raise_for_status(response, "remote") is None


def test_a_request_error_that_quotes_a_header_never_carries_the_token_into_the_message():
    import requests as real_requests

    from integrations.http import HttpClient, RemoteError

    class Broken(real_requests.Session):
        def request(self, *args, **kwargs):
            raise real_requests.exceptions.InvalidHeader("Invalid header value b'Bearer s3cret\\n'")

    client = HttpClient("pipedrive", session=Broken(), sleep=lambda s: None)
    with pytest.raises(RemoteError) as caught:
        client.request("GET", "http://sandbox.test/pipedrive/api/v2/persons")
    assert caught.value.permanent
    assert "s3cret" not in str(caught.value)
    assert caught.value.__cause__ is None and "InvalidHeader" in str(caught.value)
