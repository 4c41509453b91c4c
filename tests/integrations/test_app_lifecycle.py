"""The Pipedrive app life cycle: the uninstall callback, and the scopes SyncBridge asks for."""

from __future__ import annotations

import base64
import json
import re
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

try:
    from yaml import CSafeLoader as Loader
except ImportError:  # libyaml not compiled in
    from yaml import SafeLoader as Loader
from django.conf import settings
from django.test import Client
from django.urls import reverse

from integrations import tasks
from integrations.models import Connection, Integration
from integrations.pipedrive.constants import SCOPES, WEBHOOK_SCOPE
from tests.factories import launched_integration

pytestmark = pytest.mark.django_db

CALLBACK = "/connect/pipedrive/callback/"
SPECS = Path("/work/shared/specs/pipedrive")
CLIENT_SOURCE = Path(__file__).resolve().parents[2] / "integrations/pipedrive/client.py"


def delete_to_django(url: str, headers: dict, body: bytes) -> int:
    extra = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()}
    extra.pop("HTTP_CONTENT_TYPE", None)
    return (
        Client()
        .delete(urlsplit(url).path, data=body, content_type="application/json", **extra)
        .status_code
    )


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def live(sandbox, user, sync_tasks):
    sandbox.pipedrive.uninstall_sender = delete_to_django
    return launched_integration(user, sandbox)


def test_uninstalling_the_app_in_pipedrive_disconnects_and_stops_the_integration(
    live, sandbox, client_logged_in
):
    connection = live.pipedrive

    assert sandbox.pipedrive.uninstall_app() == 200

    connection.refresh_from_db()
    assert connection.status == Connection.Status.REVOKED
    assert (connection.access_token, connection.refresh_token) == ("", "")
    assert "uninstalled in Pipedrive" in connection.last_error
    integration = Integration.objects.get(pk=live.pk)
    assert integration.status == Integration.Status.PAUSED
    assert integration.pipedrive is None
    assert "uninstalled in Pipedrive" in integration.status_reason
    page = client_logged_in.get(reverse("integrations:settings", args=[live.pk]))
    assert "The SyncBridge app was uninstalled in Pipedrive" in page.content.decode()


def test_after_the_uninstall_no_work_reaches_pipedrive(live, sandbox):
    sandbox.pipedrive.uninstall_app()
    sandbox.request_log.clear()

    tasks.catch_up(live.pk)
    tasks.catch_up_all()

    assert [r for r in sandbox.request_log if r[0] == "pipedrive"] == []


def test_an_uninstall_notice_without_the_client_credentials_is_refused(live, sandbox):
    body = json.dumps({"company_id": sandbox.pipedrive.state["company"]["id"], "user_id": 1})
    for auth in ("", basic(settings.PIPEDRIVE_CLIENT_ID, "wrong"), "Basic %%%", "Bearer x"):
        answer = Client().delete(
            CALLBACK, data=body, content_type="application/json", HTTP_AUTHORIZATION=auth
        )
        assert answer.status_code == 401
    live.pipedrive.refresh_from_db()
    assert live.pipedrive.status == Connection.Status.OK and live.pipedrive.access_token


@pytest.mark.parametrize("body", [b"", b"not json", b"[]", b'{"user_id": 5}'])
def test_a_malformed_uninstall_notice_is_a_bad_request(live, body):
    answer = Client().delete(
        CALLBACK,
        data=body,
        content_type="application/json",
        HTTP_AUTHORIZATION=basic(settings.PIPEDRIVE_CLIENT_ID, settings.PIPEDRIVE_CLIENT_SECRET),
    )
    assert answer.status_code == 400


def test_an_uninstall_for_another_company_changes_nothing(live):
    answer = Client().delete(
        CALLBACK,
        data=json.dumps({"company_id": 987654, "user_id": 1}),
        content_type="application/json",
        HTTP_AUTHORIZATION=basic(settings.PIPEDRIVE_CLIENT_ID, settings.PIPEDRIVE_CLIENT_SECRET),
    )
    assert answer.json() == {"ok": True, "disconnected": 0}
    assert Integration.objects.get(pk=live.pk).status == Integration.Status.ACTIVE


def test_the_callback_still_needs_a_login_for_the_oauth_redirect(db):
    answer = Client().get(CALLBACK + "?code=x&state=y")
    assert answer.status_code == 302 and "/accounts/login/" in answer["Location"]
    assert Client().post(CALLBACK).status_code == 302


def test_the_callback_answers_405_to_other_methods(client_logged_in):
    assert client_logged_in.post(CALLBACK).status_code == 405


# --- scopes ---------------------------------------------------------------------------------
def client_operations() -> set[tuple[str, str, str]]:
    """Every (api version, method, path template) the Pipedrive client calls, from its source."""
    source = CLIENT_SOURCE.read_text()
    found = set()
    pattern = r'(?:_get\(|_iter_v2\(|_call\("(\w+)",)\s*f?"/api/(v[12])(/[^"?]+)"'
    for method, version, path in re.findall(pattern, source):
        path = re.sub(r"\{[^}]+\}", "{id}", path)
        found.add((version, (method or "GET").lower(), path))
    return found


@cache
def spec(version: str) -> dict:
    return yaml.load((SPECS / f"openapi-{version}.yaml").read_text(), Loader=Loader)


def spec_scopes(version: str, method: str, path: str) -> set[str]:
    operation = spec(version)["paths"][path][method]
    return {s for entry in operation.get("security", []) for s in entry.get("oauth2", [])}


def test_the_scopes_cover_every_endpoint_the_client_calls_and_nothing_more():
    operations = client_operations()
    assert len(operations) >= 20  # the source was read
    needed: set[str] = {"base"}
    for version, method, path in sorted(operations):
        allowed = spec_scopes(version, method, path)
        if path.startswith("/webhooks"):
            allowed.add(WEBHOOK_SCOPE)  # Pipedrive changelog, January 2024
        granted = allowed & set(SCOPES)
        assert granted, f"{method.upper()} /api/{version}{path} needs one of {sorted(allowed)}"
        needed |= granted
    assert "admin" not in SCOPES and "search:read" not in SCOPES
    # Every scope asked for is the only one granting some endpoint (none could be dropped).
    for scope in SCOPES:
        if scope == "base":
            continue
        rest = set(SCOPES) - {scope}
        assert any(
            not (
                (spec_scopes(v, m, p) | ({WEBHOOK_SCOPE} if p.startswith("/webhooks") else set()))
                & rest
            )
            for v, m, p in operations
        ), f"{scope} is not needed"
