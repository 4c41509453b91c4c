"""Shared fixtures: no network, the sandbox simulators in-process, users, inline tasks."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

import django_q.conf
import pytest
import responses
from django.test import Client

from integrations.sandbox.core import Sandbox, remote_settings
from integrations.sandbox.testing import serve_in_process

SANDBOX_URL = "http://sandbox.test"


def _sandbox_settings(settings, url: str) -> None:
    for name, value in remote_settings(url).items():
        setattr(settings, name, value)
    settings.HTTP_BACKOFF = 0.01
    # The client-side limiters have their own tests; elsewhere they would only add waiting.
    settings.PIPEDRIVE_BURST_LIMIT = 1_000_000
    settings.PIPEDRIVE_API_TOKEN_BURST_LIMIT = 1_000_000
    settings.PIPEDRIVE_SEARCH_LIMIT = 1_000_000
    settings.SNOVIO_RATE_LIMIT = 1_000_000
    settings.HTTP_MAX_WAIT = 5


def _deliver_to_django(url: str, headers: dict, body: bytes) -> int:
    """Webhooks from the in-process sandbox reach the app through Django's test client."""
    parts = urlsplit(url)
    extra = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()}
    extra.pop("HTTP_CONTENT_TYPE", None)
    response = Client().post(
        parts.path + (f"?{parts.query}" if parts.query else ""),
        data=body,
        content_type=headers.get("Content-Type", "application/json"),
        **extra,
    )
    return response.status_code


def make_sandbox(settings, seed: bool = True, strict: bool = True) -> Sandbox:
    _sandbox_settings(settings, SANDBOX_URL)
    sandbox = Sandbox(public_url=SANDBOX_URL, seed=seed, settings={"strict_spec": strict})
    sandbox.deliver = _deliver_to_django
    return sandbox


@pytest.fixture
def sandbox(settings):
    """The seeded sandbox, answering every request to http://sandbox.test in-process.

    Every Pipedrive request and response is checked against the official OpenAPI spec.
    """
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        with serve_in_process(make_sandbox(settings), rsps) as box:
            yield box


@pytest.fixture
def empty_sandbox(settings):
    """A sandbox with no seed data."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        with serve_in_process(make_sandbox(settings, seed=False), rsps) as box:
            yield box


def _is_local_host(host: object) -> bool:
    if not isinstance(host, str):
        return False
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False  # a name other than localhost would need DNS: already outside the machine
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or bool(mapped and mapped.is_loopback)


def _outside_address(address: object) -> bool:
    if isinstance(address, str | bytes):
        return False  # a unix socket
    host = address[0] if isinstance(address, tuple) and address else address
    return not _is_local_host(host)


def _blocked_message(addresses: list) -> str:
    return (
        f"A test tried to open a network connection to {', '.join(map(repr, addresses))}. "
        "Tests must stay on this machine: use the `sandbox` fixture (in-process) or a server "
        "on 127.0.0.1."
    )


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Fail any test that opens a socket to an address outside the machine (loopback only).

    The attempt raises at once, and the test fails at teardown too: code under test (django-q2
    in sync mode, a retry loop) may swallow the exception, but it cannot hide the attempt.
    """
    blocked: list = []
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_create_connection, real_getaddrinfo = socket.create_connection, socket.getaddrinfo

    def check(address: object) -> None:
        if _outside_address(address):
            blocked.append(address)
            pytest.fail(_blocked_message([address]))

    def connect(sock, address):
        check(address)
        return real_connect(sock, address)

    def connect_ex(sock, address):
        check(address)
        return real_connect_ex(sock, address)

    def create_connection(address, *args, **kwargs):
        check(address)
        return real_create_connection(address, *args, **kwargs)

    def getaddrinfo(host, port, *args, **kwargs):
        # Resolving a name is the first step out (urllib3 resolves before it connects).
        name = host.decode() if isinstance(host, bytes) else host
        if name is not None and not _is_local_host(name):
            check((name, port))
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "create_connection", create_connection)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield
    if blocked:
        pytest.fail(_blocked_message(blocked))


@pytest.fixture
def sync_tasks(monkeypatch):
    """django-q2 runs each enqueued task at once, in this process.

    Q_CLUSTER is read once at import, so the `settings` fixture cannot do this: patch Conf.
    """
    monkeypatch.setattr(django_q.conf.Conf, "SYNC", True)


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Hashing passwords properly costs ~0.6 s per user; tests do not need that strength."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("alice", "alice@example.com", "pw-alice-123")


@pytest.fixture
def other_user(django_user_model):
    return django_user_model.objects.create_user("bob", "bob@example.com", "pw-bob-123")


@pytest.fixture
def client_logged_in(client, user):
    client.force_login(user)
    return client


@pytest.fixture(autouse=True)
def fresh_budget_news():
    """What a process heard of Pipedrive budgets (integrations/budget.py) stays in its test."""
    from integrations import budget

    budget._heard.clear()


@pytest.fixture(autouse=True)
def fresh_rate_limiters():
    """A process keeps one limiter per account (integrations/ratelimit.py); tests start anew,
    as their database (the limiters' store) does."""
    from integrations import ratelimit

    ratelimit._limiters.clear()


@pytest.fixture(autouse=True)
def fresh_usage_counts():
    """Remote-usage counts not yet written (integrations/usage.py) belong to the test that made
    them: left over, the process would write them at exit into a database the run has dropped."""
    from integrations import usage

    yield
    usage.discard()
