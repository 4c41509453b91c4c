"""Helpers shared by the Pipedrive client, simulator and spec tests."""

from __future__ import annotations

import time

from integrations.models import Connection, Provider
from integrations.pipedrive import oauth
from integrations.pipedrive.client import PipedriveClient
from integrations.ratelimit import RateLimiter


class FakeClock:
    """A clock that only moves when something sleeps (or a test advances it)."""

    def __init__(self, start: float | None = None):
        self.now = start if start is not None else time.time()
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


def oauth_connection(owner, sandbox) -> Connection:
    """A Pipedrive connection holding a fresh sandbox token, as after the consent dance."""
    connection = Connection(owner=owner, provider=Provider.PIPEDRIVE)
    oauth.store_token(connection, sandbox.pipedrive.issue_token())
    return connection


def api_token_connection(owner, token: str) -> Connection:
    return Connection.objects.create(
        owner=owner,
        provider=Provider.PIPEDRIVE,
        auth_kind=Connection.AuthKind.API_TOKEN,
        access_token=token,
    )


def timed_client(connection: Connection, sandbox, clock: FakeClock) -> PipedriveClient:
    """A client whose waits, rate limiter and the sandbox all run on `clock`."""
    sandbox.clock = clock
    client = PipedriveClient.for_connection(connection)
    client.http.sleep = clock.sleep
    client.http.limiter.clock = clock
    client.http.limiter.sleep = clock.sleep
    return client


def with_limiter(client: PipedriveClient, limit: int, period: float, clock: FakeClock) -> None:
    client.http.limiter = RateLimiter(
        f"test:{id(client)}", limit, period, sleep=clock.sleep, clock=clock
    )


def api_paths(sandbox) -> list[str]:
    """The Pipedrive paths the sandbox was asked for, in order."""
    return [path for remote, _, path in sandbox.request_log if remote == "pipedrive"]


def make_owner(django_user_model):
    """A user without a password: hashing one costs more than half a second per test."""
    return django_user_model.objects.create(username="pipedrive-owner")
