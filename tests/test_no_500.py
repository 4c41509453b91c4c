"""Bad input never answers 5xx: every URL pattern, every kind of caller, every kind of garbage.

The routes are read from `django.urls.get_resolver()`, so a new route is covered as soon as it
exists. Path parameters are filled with the caller's own ids, another user's, ids that do not
exist, absurd ones and garbage strings; each path is then hit with GET and POST (empty, form
garbage, huge strings, non-JSON and oddly shaped JSON bodies) as the owner, as another user and
anonymously. The admin (staff only, Django's own) is left out.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from automations import services as automation_services
from automations.models import ActionKind, AutomationRun, Trigger
from integrations.models import Integration, PendingChange, SyncRun
from tests.factories import connected_integration, fast_limits  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_limits")]

SKIPPED_NAMESPACES = {"admin"}
WEBHOOKS = {"sync:pipedrive_hook", "sync:snovio_hook", "sync:snovio_event_hook"}
PUBLIC = {"login", "logout", "healthz", *WEBHOOKS}
# The health check answers 503 when a dependency is down (no worker runs in this test): that is
# its contract, so only a 503 that names what is failing is accepted from it.
HEALTH = "healthz"
HUGE = "x" * 5000


@dataclass
class Route:
    name: str
    params: dict[str, str] = field(default_factory=dict)  # name -> converter class name

    def __str__(self) -> str:
        return self.name


def _walk(patterns, namespace: str = "", converters: dict | None = None):
    for entry in patterns:
        found = dict(converters or {})
        found.update(
            {k: type(v).__name__ for k, v in getattr(entry.pattern, "converters", {}).items()}
        )
        if isinstance(entry, URLResolver):
            space = entry.namespace or ""
            if space in SKIPPED_NAMESPACES:
                continue
            full = f"{namespace}:{space}" if namespace and space else namespace or space
            yield from _walk(entry.url_patterns, full, found)
        elif isinstance(entry, URLPattern) and entry.name:
            name = f"{namespace}:{entry.name}" if namespace else entry.name
            yield Route(name, found)


ROUTES = list(_walk(get_resolver().url_patterns))


def test_the_walk_finds_every_app_route():
    names = {r.name for r in ROUTES}
    assert {"integrations:detail", "integrations:pipedrive_callback", "sync:history"} <= names
    assert {"sync:transfer_progress", *WEBHOOKS, "automations:edit", "automations:reorder"} <= names


@pytest.fixture
def world(user, other_user, sandbox):
    """The owner's integration and objects, and another user's, all fully set up."""

    def objects(owner):
        integration = connected_integration(owner, sandbox)
        run = integration.runs.create(direction="to_pipedrive", source_app="snovio")
        action = automation_services.add_action(
            integration, Trigger.EMAIL_OPENED, ActionKind.ADD_ACTIVITY, subject="Call"
        )
        AutomationRun.objects.create(
            integration=integration, event_key=f"k{integration.pk}", trigger=Trigger.EMAIL_OPENED
        )
        return {"integration": integration, "run": run, "action": action}

    return {"own": objects(user), "other": objects(other_user)}


def _value(param: str, converter: str, kind: str, world: dict):
    own, other = world["own"], world["other"]
    by_kind = {
        "own": {
            "pk": own["integration"].pk,
            "integration_id": own["integration"].pk,
            "run_pk": own["run"].pk,
            "action_id": own["action"].pk,
            "provider": "pipedrive",
            "trigger": Trigger.EMAIL_OPENED.value,
            "secret": own["integration"].webhook_secret,
        },
        "other": {
            "pk": other["integration"].pk,
            "integration_id": other["integration"].pk,
            "run_pk": other["run"].pk,
            "action_id": other["action"].pk,
            "provider": "snovio",
            "trigger": Trigger.EMAIL_SENT.value,
            "secret": other["integration"].webhook_secret,
        },
    }
    if kind == "mixed":  # own integration, another user's run or action
        kind = "other" if param in ("run_pk", "action_id") else "own"
    if kind in by_kind and param in by_kind[kind]:
        return by_kind[kind][param]
    ints = {"missing": 999_999, "zero": 0, "huge": 10**30}
    strs = {"missing": "nope", "zero": "🚀 ünïcode", "huge": HUGE}
    table = ints if converter == "IntConverter" else strs
    return table.get(kind, table["missing"])


def paths(route: Route, world: dict) -> list[tuple[str, str]]:
    """(label, path) for each way of filling the route's parameters."""
    if not route.params:
        return [("plain", reverse(route.name))]
    found = {}
    for kind in ("own", "other", "mixed", "missing", "zero", "huge"):
        kwargs = {p: _value(p, conv, kind, world) for p, conv in route.params.items()}
        found.setdefault(reverse(route.name, kwargs=kwargs), kind)
    return [(kind, path) for path, kind in found.items()]


GET_QUERIES = [
    {},
    {
        "format": "json",
        "email": HUGE,
        "page": "abc",
        "status": "exploded",
        "trigger": "nope",
        "next": "https://evil.example/",
        "launched": "1",
    },
    {"email": "\x00@", "page": "-1", "status": ["a", "b"], "format": "xml"},
]
FORMS = [
    {},
    {
        "status": "exploded",
        "direction": "sideways",
        "source_app": "excel",
        "trigger": "nope",
        "kind": "bogus",
        "pipeline_id": "abc",
        "stage_id": "-1",
        "order": "a,b",
        "subject": HUGE,
        "next": "//evil.example/",
        "client_id": "\x00",
        "client_secret": HUGE,
        "dry_run": "maybe",
    },
    {
        "trigger": Trigger.EMAIL_OPENED.value,
        "kind": ActionKind.MOVE_TO_STAGE.value,
        "pipeline_id": str(10**30),
        "stage_id": "999999",
        "order": ["1", "1", "999999"],
        "direction": ["up", "down"],
        "map-TOTAL_FORMS": "100000",
        "map-INITIAL_FORMS": "-5",
    },
]
BODIES = [
    b"{not json",
    b"\xff\xfe\x00",
    b"[1, 2, 3]",
    b'"a string"',
    json.dumps({"meta": "action entity", "data": []}).encode(),
    json.dumps({"meta": ["action", "entity"], "data": None}).encode(),
    json.dumps({"meta": {"action": HUGE, "entity": "person", "entity_id": HUGE}}).encode(),
    json.dumps({"meta": {"action": 5, "entity": {"a": 1}}, "data": "x", "previous": 7}).encode(),
    json.dumps({"event_object": {"x": 1}, "event_action": ["a"], "data": ["not", "a", "dict"]}),
    json.dumps(
        {
            "event_object": "email",
            "event_action": "opened",
            "data": {"recipient_email": 12, "campaign_id": {"a": 1}, "event_time": HUGE},
        }
    ),
]


def _clients(user, other_user, world) -> dict[str, Client]:
    clients = {}
    for label, who in (("owner", user), ("other", other_user), ("anonymous", None)):
        client = Client(raise_request_exception=False)
        if who is not None:
            client.force_login(who)
        clients[label] = client
    return clients


def _basic(integration: Integration, good: bool) -> dict:
    password = integration.pipedrive_webhook_password if good else "wrong"
    raw = f"{integration.pipedrive_webhook_user}:{password}".encode()
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(raw).decode()}


@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_no_route_answers_5xx_to_anything(route, user, other_user, world):
    failures = []
    clients = _clients(user, other_user, world)
    auth_headers = [{}]
    if route.name == "sync:pipedrive_hook":
        own = world["own"]["integration"]
        auth_headers = [{}, _basic(own, good=False), _basic(own, good=True)]

    def check(label, response, what):
        if route.name == HEALTH and response.status_code == 503 and response.json()["failing"]:
            return
        if response.status_code >= 500:
            exc = getattr(response, "exc_info", None)
            detail = repr(exc[1])[:300] if exc else response.content[:300]
            failures.append(f"{label} {what} -> {response.status_code}: {detail}")

    for kind, path in paths(route, world):
        for who, client in clients.items():
            label = f"{who} [{kind}] {path[:120]}"
            for query in GET_QUERIES:
                check(label, client.get(path, query), f"GET {list(query)[:3]}")
            for form in FORMS:
                check(label, client.post(path, form), f"POST form {list(form)[:3]}")
            for body in BODIES:
                for headers in auth_headers:
                    response = client.post(path, body, content_type="application/json", **headers)
                    check(label, response, f"POST body {str(body)[:60]} {list(headers)}")
            check(label, client.put(path, b"x"), "PUT")
    assert not failures, "\n".join(failures[:40])


@pytest.mark.parametrize("route", [r for r in ROUTES if r.name not in PUBLIC], ids=str)
def test_every_page_needs_a_login(route, world):
    client = Client(raise_request_exception=False)
    for _, path in paths(route, world):
        for response in (client.get(path), client.post(path, {"status": "paused"})):
            assert response.status_code == 302, (path, response.status_code)
            assert response.url.startswith(reverse("login")), path


SCOPED = [r for r in ROUTES if {"pk", "integration_id"} & set(r.params)]


@pytest.mark.parametrize("route", SCOPED, ids=str)
def test_another_users_objects_are_not_found(route, user, other_user, world):
    """With the other user's integration, or own integration and their run/action: 404."""
    client = Client(raise_request_exception=False)
    client.force_login(user)
    state = {i.pk: (i.status, i.pipedrive_id, i.snovio_id) for i in Integration.objects.all()}
    for kind, path in paths(route, world):
        if kind not in ("other", "mixed", "missing", "huge"):
            continue
        for method in ("get", "post"):
            response = getattr(client, method)(path, {"status": "paused", "order": "1"})
            assert response.status_code in (404, 405), (kind, method, path, response.status_code)
    after = {i.pk: (i.status, i.pipedrive_id, i.snovio_id) for i in Integration.objects.all()}
    assert after == state
    other = world["other"]
    assert other["action"].__class__.objects.filter(pk=other["action"].pk).exists()


@pytest.mark.parametrize("name", sorted(WEBHOOKS))
def test_webhooks_refuse_wrong_credentials_and_process_nothing(name, world, client):
    own = world["own"]["integration"]
    body = json.dumps(
        {
            "meta": {"action": "change", "entity": "person", "entity_id": "1", "timestamp": 1},
            "data": {"id": 1, "emails": [{"value": "a@example.com"}]},
            "event_object": "email",
            "event_action": "opened",
        }
    )
    event = {"event_object": "campaign_email", "event_action": "opened"}
    kwargs = event if name == "sync:snovio_event_hook" else {}
    wrong_secret = reverse(name, kwargs={"secret": "not-the-secret", **kwargs})
    assert client.post(wrong_secret, body, content_type="application/json").status_code == 404
    if name == "sync:pipedrive_hook":
        path = reverse(name, kwargs={"secret": own.webhook_secret})
        for headers in ({}, _basic(own, good=False), {"HTTP_AUTHORIZATION": "Basic !!!"}):
            response = client.post(path, body, content_type="application/json", **headers)
            assert response.status_code == 401
    assert not PendingChange.objects.exists()
    assert not AutomationRun.objects.exclude(event_key__startswith="k").exists()


def test_a_replayed_or_refused_oauth_callback_is_a_message_not_an_error(client, user, world):
    own = world["own"]["integration"]
    client.force_login(user)
    callback = reverse("integrations:pipedrive_callback")
    client.post(reverse("integrations:connect_pipedrive", args=[own.pk]))
    state = next(iter(client.session["pipedrive_oauth_states"]))
    refused = client.get(callback, {"state": state, "error": "access_denied"})
    assert refused.status_code == 302 and refused.url.endswith(f"/integrations/{own.pk}/connect/")
    replayed = client.get(callback, {"state": state, "code": "abc"})
    assert replayed.status_code == 302 and replayed.url == reverse("integrations:list")
    client.post(reverse("integrations:connect_pipedrive", args=[own.pk]))
    state = next(iter(client.session["pipedrive_oauth_states"]))
    garbage_code = client.get(callback, {"state": state, "code": HUGE})
    assert garbage_code.status_code == 302
    messages = [str(m) for m in garbage_code.wsgi_request._messages]
    assert any("could not be connected" in m for m in messages), messages


def test_a_run_of_another_integration_has_no_progress(client, user, world):
    client.force_login(user)
    own, other = world["own"], world["other"]
    path = reverse(
        "sync:transfer_progress", kwargs={"pk": own["integration"].pk, "run_pk": other["run"].pk}
    )
    assert client.get(path, {"format": "json"}).status_code == 404
    assert SyncRun.objects.filter(pk=other["run"].pk).exists()
