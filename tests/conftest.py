"""Shared fixtures: the sandbox simulators in-process, users, connected integrations."""

from __future__ import annotations

import pytest
import responses
from django.test import Client

from integrations.sandbox.core import Sandbox
from integrations.sandbox.testing import serve_in_process

SANDBOX_URL = "http://sandbox.test"


def _sandbox_settings(settings, url: str) -> None:
    settings.PIPEDRIVE_OAUTH_URL = f"{url}/pipedrive"
    settings.PIPEDRIVE_API_URL = f"{url}/pipedrive"
    settings.SNOVIO_API_URL = f"{url}/snovio"
    settings.HTTP_BACKOFF = 0.01
    # The client-side limiters have their own tests; elsewhere they would only add waiting.
    settings.PIPEDRIVE_BURST_LIMIT = 1_000_000
    settings.SNOVIO_RATE_LIMIT = 1_000_000
    settings.HTTP_MAX_WAIT = 5


def _deliver_to_django(url: str, headers: dict, body: bytes) -> int:
    """Webhooks from the in-process sandbox reach the app through Django's test client."""
    from urllib.parse import urlsplit

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
