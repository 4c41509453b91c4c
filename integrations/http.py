"""The one HTTP layer under both API clients.

Timeouts on every call, bounded retries with backoff on 5xx, connection errors and timeouts,
429 answered by waiting for `Retry-After` / `x-ratelimit-reset` (and every worker of the
account with us, through the shared limiter), the shared rate limiters before every attempt,
the remote's `x-ratelimit-remaining` honoured, a spent daily budget raised at once (waiting
for tomorrow is the scheduler's job, not a loop's), and errors that say whether retrying
could ever help. A 403 is `Forbidden` (a plan limit, a missing scope, a blocked request),
never a credential failure: only a 401 is that.

A request that creates something (a POST, unless the caller says resending it is harmless) is
never resent blindly after an *ambiguous* failure: a read timeout or a 5xx may come after the
server processed it, and a second POST would make a second person, deal or activity. It raises
`RemoteError(ambiguous=True)` instead, and the caller looks for the record before creating it
again (`create_once`). A 429 and a connection that was never made are safe to retry: the
server cannot have seen the request.
"""

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import requests
from django.conf import settings
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from integrations import usage
from integrations.ratelimit import RateLimiter, WaitTooLong

log = logging.getLogger(__name__)

# Requests sent per remote by the work inside `counting_requests` (the catch-up's budget).
_counting: ContextVar[Counter | None] = ContextVar("http_counting", default=None)


@contextmanager
def counting_requests() -> Iterator[Counter]:
    """Count every request sent inside the block, by remote (429s and retries included: the
    remote counts them against its limit too)."""
    counter: Counter = Counter()
    token = _counting.set(counter)
    try:
        yield counter
    finally:
        _counting.reset(token)


class RemoteError(Exception):
    """A remote call that did not succeed. `permanent` means a retry cannot help.

    `ambiguous` means the remote may have processed the request although no answer says so
    (a create that timed out or got a 5xx): retryable, but only after checking for the record.
    """

    def __init__(
        self,
        message: str,
        *,
        remote: str = "",
        status: int | None = None,
        permanent: bool = False,
        body: Any = None,
        ambiguous: bool = False,
    ):
        super().__init__(message)
        self.remote = remote
        self.status = status
        self.permanent = permanent
        self.body = body
        self.ambiguous = ambiguous


class AuthError(RemoteError):
    """Credentials refused (revoked, expired beyond refresh, wrong secret)."""

    def __init__(self, message: str, **kwargs):
        kwargs.setdefault("permanent", True)
        super().__init__(message, **kwargs)


class Forbidden(RemoteError):
    """A 403: the remote knows who we are and refuses this one request (a plan limit such as
    Pipedrive's open-deals cap, a missing OAuth scope, a blocked request). `reason` is the
    remote's code or message. Permanent for this request; the connection is fine."""

    def __init__(self, message: str, *, reason: str = "", **kwargs):
        kwargs.setdefault("permanent", True)
        super().__init__(message, **kwargs)
        self.reason = reason


class RateLimited(RemoteError):
    """Still rate limited after waiting as long as we are allowed to, or a spent daily budget
    (`limit == DAILY_BUDGET`, `retry_after` the seconds until the remote's day ends)."""

    def __init__(self, message: str, *, retry_after: float | None = None, limit: str = "", **kw):
        super().__init__(message, **kw)
        self.retry_after = retry_after
        self.limit = limit


DAILY_BUDGET = "daily budget"
BURST_LIMIT = "burst limit"
# Pipedrive's daily token budget left; not in the reference pages, said by Pipedrive staff to be
# missing at times (docs/specs/rate-limits.md), so optional. The older documented header
# counts POST/PUT requests left today for API-token connections.
DAILY_LEFT_HEADERS = ("x-daily-ratelimit-token-remaining", "x-daily-requests-left")
RETRY_STATUSES = {500, 502, 503, 504}
# Methods whose repetition changes nothing more than the first request did.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"})
NOT_RESENT = "not resent, as the remote may have processed it"


@dataclass
class HttpClient:
    remote: str
    limiter: RateLimiter | None = None
    session: requests.Session = field(default_factory=requests.Session)
    timeout: float = field(default_factory=lambda: settings.HTTP_TIMEOUT)
    max_retries: int = field(default_factory=lambda: settings.HTTP_MAX_RETRIES)
    backoff: float = field(default_factory=lambda: settings.HTTP_BACKOFF)
    max_wait: float = field(default_factory=lambda: settings.HTTP_MAX_WAIT)
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.time  # for the end of the remote's day
    calls: int = 0
    # Called with every answer (the Pipedrive client counts its daily budget there).
    on_response: Callable[[str, str, requests.Response], None] | None = None

    def request(
        self,
        method: str,
        url: str,
        *,
        idempotent: bool | None = None,
        limiters: Sequence[RateLimiter] = (),
        **kwargs,
    ) -> requests.Response:
        """Send one request with retries; return the response (2xx, 401, 4xx) or raise.

        `idempotent` says whether sending the request twice is harmless (default: by method,
        so a POST is not); a non-idempotent request is resent only when it surely never
        reached the server. `limiters` are waited for as well as the client's own (a stricter
        limit of some endpoints, such as Pipedrive's search).
        """
        resend_ok = method.upper() in IDEMPOTENT_METHODS if idempotent is None else idempotent
        paced = [*limiters, self.limiter] if self.limiter else list(limiters)
        attempt = 0
        while True:
            attempt += 1
            try:
                for limiter in paced:
                    waited = limiter.acquire(max_wait=self.max_wait)
                    usage.record_wait(getattr(limiter, "key", self.remote), waited)
            except WaitTooLong as exc:
                raise RateLimited(
                    f"{self.remote}: rate limit reached ({BURST_LIMIT}); retry in "
                    f"{exc.seconds:.0f} s",
                    remote=self.remote,
                    retry_after=exc.seconds,
                    limit=BURST_LIMIT,
                ) from None
            try:
                self.calls += 1
                usage.record_call(getattr(self.limiter, "key", self.remote))
                if (counter := _counting.get()) is not None:
                    counter[self.remote] += 1
                response = self.session.request(method, url, timeout=self.timeout, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as exc:
                self._transport_failed(exc, method, url, attempt, resend_ok)
                continue
            except requests.RequestException as exc:
                # Other requests errors can quote a header value (a token): keep only the class.
                raise RemoteError(
                    f"{self.remote}: {method} {_path(url)} could not be sent "
                    f"({exc.__class__.__name__})",
                    remote=self.remote,
                    permanent=True,
                ) from None
            if self.on_response:
                self.on_response(method, url, response)
            _observe(response, paced)
            if response.status_code == 429:
                self._wait_for_limit(response, attempt, paced)
                continue
            if response.status_code in RETRY_STATUSES:
                self._server_failed(response, method, url, attempt, resend_ok)
                continue
            return response

    def pause(self, attempt: int) -> None:
        """The backoff before retry number `attempt` (also used by `create_once`)."""
        self.sleep(min(self.backoff * 2 ** (attempt - 1), 30))

    def _transport_failed(
        self, exc: Exception, method: str, url: str, attempt: int, resend_ok: bool
    ) -> None:
        """Raise, or pause before the next attempt, after a timeout or connection error."""
        what = f"{self.remote}: {method} {_path(url)}"
        if not resend_ok and not _never_sent(exc):
            raise RemoteError(
                f"{what} got no answer ({exc.__class__.__name__}); {NOT_RESENT}",
                remote=self.remote,
                ambiguous=True,
            ) from exc
        if attempt > self.max_retries:
            raise RemoteError(
                f"{what} failed after {attempt} attempts: {exc.__class__.__name__}",
                remote=self.remote,
            ) from exc
        self.pause(attempt)

    def _wait_for_limit(
        self, response: requests.Response, attempt: int, paced: Sequence[RateLimiter]
    ) -> None:
        """A 429 was refused before any processing: wait as told, then resend (any method).

        A spent daily budget is raised at once: nothing frees it before the remote's day ends.
        """
        which = _which_limit(response)
        if which == DAILY_BUDGET:
            wait = seconds_to_utc_midnight(self.clock())
            raise RateLimited(
                f"{self.remote}: daily budget spent; it resets at 00:00 UTC "
                f"(in {wait / 3600:.1f} h)",
                remote=self.remote,
                status=429,
                retry_after=wait,
                limit=DAILY_BUDGET,
            )
        wait = _retry_after(response)
        if attempt > self.max_retries or wait > self.max_wait:
            raise RateLimited(
                f"{self.remote}: rate limit hit ({which}); retry in {wait:.0f} s",
                remote=self.remote,
                status=429,
                retry_after=wait,
                limit=which,
            )
        log.info("%s rate limited, waiting %.1f s", self.remote, wait)
        if paced:
            for limiter in paced:
                limiter.block(wait)  # every worker of this account waits, not only us
            return  # the limiter's next acquire() does (and counts) the waiting
        usage.record_wait(getattr(self.limiter, "key", self.remote), wait)
        self.sleep(wait)

    def _server_failed(
        self, response: requests.Response, method: str, url: str, attempt: int, resend_ok: bool
    ) -> None:
        """Raise, or pause before the next attempt, after a 5xx answer."""
        what = f"{self.remote}: {method} {_path(url)} answered {response.status_code}"
        if not resend_ok:
            # A gateway error or a crash may come after the create was committed.
            raise RemoteError(
                f"{what}; {NOT_RESENT}",
                remote=self.remote,
                status=response.status_code,
                body=_body(response),
                ambiguous=True,
            )
        if attempt > self.max_retries:
            raise RemoteError(
                f"{what} after {attempt} attempts",
                remote=self.remote,
                status=response.status_code,
                body=_body(response),
            )
        self.pause(attempt)


T = TypeVar("T")


def create_once(
    create: Callable[[], T],
    find: Callable[[], T | None] | None,
    *,
    http: HttpClient,
    what: str = "record",
) -> T:
    """Create a record without ever making two: after an ambiguous failure, look for the record
    the failed attempt may have made, and create again only when it is not there.

    Tries as often as `HttpClient` retries a GET; the last error says how many attempts were
    made. Errors that are not ambiguous are raised at once (the remote said no, or never saw
    it), and so is an ambiguous one when there is no `find` to check with.
    """
    attempts = http.max_retries + 1
    for attempt in range(1, attempts + 1):
        try:
            return create()
        except RemoteError as exc:
            if not exc.ambiguous or find is None:
                raise
            failure = exc
        http.pause(attempt)  # gives a late create time to show in the remote's listings
        found = find()
        if found is not None:
            log.info("%s %s was created although its answer was lost", http.remote, what)
            return found
    raise RemoteError(
        f"{failure} ({what} still missing after {attempts} attempts, each checked for)",
        remote=failure.remote,
        status=failure.status,
        body=failure.body,
    )


def raise_for_status(response: requests.Response, remote: str) -> None:
    """Turn a 4xx answer into an error that says it is permanent."""
    if response.status_code < 400:
        return
    body = _body(response)
    detail = ""
    if isinstance(body, dict):
        detail = str(body.get("error") or body.get("message") or body.get("errors") or "")
    message = f"{remote}: {response.request.method} {_path(response.url)} answered "
    message += f"{response.status_code}{': ' + detail if detail else ''}"
    if response.status_code == 401:
        raise AuthError(message, remote=remote, status=401, body=body)
    if response.status_code == 403:
        reason = str(body.get("code") or detail) if isinstance(body, dict) else detail
        raise Forbidden(message, remote=remote, status=403, body=body, reason=reason)
    raise RemoteError(
        message, remote=remote, status=response.status_code, permanent=True, body=body
    )


def _retry_after(response: requests.Response) -> float:
    for header in ("Retry-After", "x-ratelimit-reset"):
        value = response.headers.get(header)
        if value:
            try:
                return max(float(value), 0.0)
            except ValueError:
                continue
    return 1.0


def _which_limit(response: requests.Response) -> str:
    if daily_left(response) == 0:
        return DAILY_BUDGET
    return BURST_LIMIT


def daily_left(response: requests.Response) -> int | None:
    """The daily budget left by the remote's own count, when its answer says."""
    for header in DAILY_LEFT_HEADERS:
        value = _number(response.headers.get(header))
        if value is not None:
            return int(value)
    return None


def _observe(response: requests.Response, paced: Sequence[RateLimiter]) -> None:
    """None left in the remote's window (other apps and the user's own clicks count there
    too): every limiter of the request waits for the window's reset."""
    if response.status_code == 429 or not paced:
        return
    remaining = _number(response.headers.get("x-ratelimit-remaining"))
    reset = _number(response.headers.get("x-ratelimit-reset"))
    if remaining is not None and remaining <= 0 and reset:
        # The limit the answer speaks of is the tightest one we paced for.
        min(paced, key=lambda limiter: limiter.limit / limiter.period).observe(0, reset)


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None


def seconds_to_utc_midnight(now: float) -> float:
    """Pipedrive's day is the UTC day: its budgets reset at 00:00 UTC."""
    moment = datetime.fromtimestamp(now, UTC)
    midnight = (moment + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight - moment).total_seconds()


def _body(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text[:500]


def _never_sent(exc: Exception) -> bool:
    """Whether the request surely never reached the server: no connection was made."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.Timeout):
        return False  # a read timeout: sent, and the answer did not come
    reason = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)  # requests wraps urllib3's MaxRetryError
    return isinstance(reason, NewConnectionError | ConnectTimeoutError)


def _path(url: str) -> str:
    return url.split("?", 1)[0]
