"""The one HTTP layer under both API clients.

Timeouts on every call, bounded retries with backoff on 5xx, connection errors and timeouts,
429 answered by waiting for `Retry-After` / `x-ratelimit-reset`, the shared rate limiter
before every attempt, and errors that say whether retrying could ever help.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests
from django.conf import settings

from integrations.ratelimit import RateLimiter

log = logging.getLogger(__name__)


class RemoteError(Exception):
    """A remote call that did not succeed. `permanent` means a retry cannot help."""

    def __init__(
        self,
        message: str,
        *,
        remote: str = "",
        status: int | None = None,
        permanent: bool = False,
        body: Any = None,
    ):
        super().__init__(message)
        self.remote = remote
        self.status = status
        self.permanent = permanent
        self.body = body


class AuthError(RemoteError):
    """Credentials refused (revoked, expired beyond refresh, wrong secret)."""

    def __init__(self, message: str, **kwargs):
        kwargs.setdefault("permanent", True)
        super().__init__(message, **kwargs)


class RateLimited(RemoteError):
    """Still rate limited after waiting as long as we are allowed to."""

    def __init__(self, message: str, *, retry_after: float | None = None, limit: str = "", **kw):
        super().__init__(message, **kw)
        self.retry_after = retry_after
        self.limit = limit


RETRY_STATUSES = {500, 502, 503, 504}


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
    calls: int = 0

    def request(self, method: str, url: str, **kwargs) -> requests.Response:
        """Send one request with retries; return the response (2xx, 401, 4xx) or raise."""
        attempt = 0
        while True:
            attempt += 1
            if self.limiter:
                self.limiter.acquire()
            try:
                self.calls += 1
                response = self.session.request(method, url, timeout=self.timeout, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as exc:
                if attempt > self.max_retries:
                    raise RemoteError(
                        f"{self.remote}: {method} {_path(url)} failed after {attempt} attempts: "
                        f"{exc.__class__.__name__}",
                        remote=self.remote,
                    ) from exc
                self._pause(attempt)
                continue
            if response.status_code == 429:
                wait = _retry_after(response)
                if attempt > self.max_retries or wait > self.max_wait:
                    raise RateLimited(
                        f"{self.remote}: rate limit hit ({_which_limit(response)}); "
                        f"retry in {wait:.0f} s",
                        remote=self.remote,
                        status=429,
                        retry_after=wait,
                        limit=_which_limit(response),
                    )
                log.info("%s rate limited, waiting %.1f s", self.remote, wait)
                self.sleep(wait)
                continue
            if response.status_code in RETRY_STATUSES:
                if attempt > self.max_retries:
                    raise RemoteError(
                        f"{self.remote}: {method} {_path(url)} answered {response.status_code} "
                        f"after {attempt} attempts",
                        remote=self.remote,
                        status=response.status_code,
                        body=_body(response),
                    )
                self._pause(attempt)
                continue
            return response

    def _pause(self, attempt: int) -> None:
        self.sleep(min(self.backoff * 2 ** (attempt - 1), 30))


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
    if response.status_code in (401, 403):
        raise AuthError(message, remote=remote, status=response.status_code, body=body)
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
    if response.headers.get("x-daily-requests-left") == "0":
        return "daily budget"
    return "burst limit"


def _body(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text[:500]


def _path(url: str) -> str:
    return url.split("?", 1)[0]
