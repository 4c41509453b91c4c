"""A stateful fake of Pipedrive, at the same paths and with the same shapes as the real one.

What it covers, as far as SyncBridge uses Pipedrive:
- OAuth 2.0: a consent page with an Allow button, codes, the token endpoint (authorization
  code and refresh grants, HTTP Basic client auth, rotating refresh tokens, `api_domain`),
  access tokens that expire on `sandbox.clock()`, and the legacy `x-api-token` header.
- API v2: persons (cursor pages, `updated_since`, search), organizations (list, get, create,
  search by name), deals, activities, pipelines, stages. API v1: users, person fields,
  webhooks.
- Webhooks v2 deliveries for person create/change/delete, with HTTP Basic credentials.
- The known traps: person search answers partial email matches even with `exact_match`.

State lives in plain dicts (ids as string keys) so the sandbox can dump it to JSON.
An account always has its users, pipelines, stages and person fields; `seed_demo` adds
organizations and persons (each linked to its organization by `org_id`). In strict mode
(`strict_spec`) every API request and answer is checked against Pipedrive's official OpenAPI
specs (see `integrations/sandbox/spec.py`).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import html
import json
import re
import secrets
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.conf import settings

from integrations.pipedrive.constants import (
    ACCESS_TOKEN_LIFETIME,
    ACTIVITY_TYPES,
    DEAL_STATUSES,
    PAGE_LIMIT,
    SCOPES,
    WEBHOOK_ACTIONS,
    WEBHOOK_LIMIT,
    WEBHOOK_OBJECTS,
    WEBHOOK_VERSION,
)
from integrations.sandbox import spec
from integrations.sandbox.core import SandboxRequest, SandboxResponse, json_response

# Each kind of record starts at its own number, so a deal id passed as a person id fails.
FIRST_IDS = {
    "user": 11001,
    "org": 301,
    "person": 1001,
    "deal": 5001,
    "activity": 9001,
    "pipeline": 1,
    "stage": 1,
    "field": 4001,
    "option": 101,
    "webhook": 701,
}
CODE_LIFETIME = 300
DEFAULT_LIMIT = 100
COMPANY = {"id": 7001, "name": "Sandbox Company", "domain": "sandbox-company"}
USERS = (
    ("Sam Seller", "sam.seller@sandbox-company.example", False),
    ("Pat Pipeline", "pat.pipeline@sandbox-company.example", False),
    ("Robin Admin", "robin.admin@sandbox-company.example", True),
)
ADMIN_NAME = "Robin Admin"  # the user who connects SyncBridge (OAuth consent, API token)
PIPELINES = {
    "Sales": ("Lead in", "Contact made", "Demo scheduled", "Proposal made", "Negotiation"),
    "Partnerships": ("Identified", "First call", "Pilot", "Contract sent", "Signed"),
}
SYSTEM_FIELDS = (
    ("name", "Name", "varchar"),
    ("first_name", "First name", "varchar"),
    ("last_name", "Last name", "varchar"),
    ("email", "Email", "varchar"),
    ("phone", "Phone", "phone"),
    ("job_title", "Job title", "varchar"),
    ("org_id", "Organization", "org"),
    ("owner_id", "Owner", "user"),
)
CUSTOM_FIELDS = (
    ("Industry", "text", ()),
    ("Employees", "double", ()),
    ("Lead source", "enum", ("Snov.io campaign", "Website", "Referral", "Event")),
    ("Last event date", "date", ()),
)
PERSON_SCALARS = ("name", "owner_id", "org_id", "visible_to", "notes", "birthday", "job_title")
PERSON_SCALARS += ("add_time", "marketing_status", "postal_address", "label_ids", "im")
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
TIME_RE = re.compile(r"^\d{2}:\d{2}(:\d{2})?$")


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def custom_field_key(name: str) -> str:
    """A stable 40-character hex key, like Pipedrive's per-account field hashes."""
    return hashlib.sha1(f"sandbox-person-field:{name}".encode()).hexdigest()


def _empty_state() -> dict:
    return {
        "seq": dict(FIRST_IDS),
        "company": dict(COMPANY),
        "users": {},
        "orgs": {},
        "persons": {},
        "deals": {},
        "activities": {},
        "pipelines": {},
        "stages": {},
        "person_fields": {},
        "webhooks": {},
        "auth_codes": {},
        "access_tokens": {},
        "refresh_tokens": {},
        "api_token_revoked": False,
    }


# --- routes: (method, path pattern, handler name) ------------------------------------------
_ROUTES = (
    ("GET", r"/api/v2/persons", "list_persons"),
    ("POST", r"/api/v2/persons", "create_person"),
    ("GET", r"/api/v2/persons/search", "search_persons"),
    ("GET", r"/api/v2/persons/(?P<id>\d+)", "get_person"),
    ("PATCH", r"/api/v2/persons/(?P<id>\d+)", "update_person"),
    ("DELETE", r"/api/v2/persons/(?P<id>\d+)", "delete_person"),
    ("GET", r"/api/v2/organizations", "list_orgs"),
    ("POST", r"/api/v2/organizations", "create_org"),
    ("GET", r"/api/v2/organizations/search", "search_orgs"),
    ("GET", r"/api/v2/organizations/(?P<id>\d+)", "get_org"),
    ("GET", r"/api/v2/deals", "list_deals"),
    ("POST", r"/api/v2/deals", "create_deal"),
    ("GET", r"/api/v2/deals/(?P<id>\d+)", "get_deal"),
    ("PATCH", r"/api/v2/deals/(?P<id>\d+)", "update_deal"),
    ("GET", r"/api/v2/activities", "list_activities"),
    ("POST", r"/api/v2/activities", "create_activity"),
    ("GET", r"/api/v2/activities/(?P<id>\d+)", "get_activity"),
    ("PATCH", r"/api/v2/activities/(?P<id>\d+)", "update_activity"),
    ("GET", r"/api/v2/pipelines", "list_pipelines"),
    ("GET", r"/api/v2/pipelines/(?P<id>\d+)", "get_pipeline"),
    ("GET", r"/api/v2/stages", "list_stages"),
    ("GET", r"/api/v2/stages/(?P<id>\d+)", "get_stage"),
    ("GET", r"/api/v1/users", "list_users"),
    ("GET", r"/api/v1/users/me", "get_me"),
    ("GET", r"/api/v1/personFields", "list_person_fields"),
    ("GET", r"/api/v1/webhooks", "list_webhooks"),
    ("POST", r"/api/v1/webhooks", "create_webhook"),
    ("DELETE", r"/api/v1/webhooks/(?P<id>\d+)", "delete_webhook"),
)
ROUTES = tuple((m, re.compile(f"^{p}$"), name) for m, p, name in _ROUTES)


class PipedriveSimulator:
    def __init__(self, sandbox):
        self.sandbox = sandbox
        # Deliveries wait here until the sandbox lock is released (see `flush_webhooks`).
        self.outbox: list[tuple[str, str, dict, dict]] = []
        self.reset()

    # --- the interface the sandbox core and control pages use --------------------------------
    def reset(self) -> None:
        self.state = _empty_state()
        self.outbox.clear()
        self._ensure_account()

    def dump(self) -> dict:
        return json.loads(json.dumps(self.state))

    def load(self, data: dict) -> None:
        self.reset()
        if data:
            self.state.update(copy.deepcopy(data))
            self._ensure_account()

    def revoke_all(self) -> None:
        """Every access and refresh token, and the API token, stop working."""
        self.state["access_tokens"].clear()
        self.state["refresh_tokens"].clear()
        self.state["api_token_revoked"] = True

    def summary(self) -> dict[str, int]:
        return {
            "Pipedrive persons": len(self.state["persons"]),
            "Pipedrive organizations": len(self.state["orgs"]),
            "Pipedrive deals": len(self.state["deals"]),
            "Pipedrive activities": len(self.state["activities"]),
            "Pipedrive webhooks": len(self.state["webhooks"]),
            "Pipedrive users": len(self.state["users"]),
        }

    def handle(self, request: SandboxRequest) -> SandboxResponse:
        if request.path.startswith("/oauth/"):
            return self._handle_oauth(request)
        handler, ids = self._route(request)
        if handler is None:
            return _error(404, f"Unknown endpoint {request.method} {request.path}")
        user = self._authenticate(request)
        if user is None:
            return _error(401, "unauthorized access", errorCode=401)
        if self._strict:
            problem = spec.request_error(request)
            if problem:
                return _error(400, f"Request does not match the Pipedrive API spec: {problem}")
        try:
            response = handler(request, user, **ids)
        except ApiError as exc:
            return _error(exc.status, exc.message)
        if self._strict:
            spec.check_response(request, response)
        return response

    def flush_webhooks(self) -> None:
        """Deliver queued webhooks. Called by the core once it has released its lock, so an
        app that calls the API while handling a delivery cannot deadlock the sandbox."""
        while True:
            try:
                hook_id, url, headers, payload = self.outbox.pop(0)
            except IndexError:  # empty, or another thread took the last one
                return
            status = self.sandbox.send_webhook(url, headers, payload)
            with self.sandbox.lock:
                hook = self.state["webhooks"].get(hook_id)
                if hook:
                    hook["last_delivery_time"] = self._now()
                    hook["last_http_status"] = status

    # --- seed data and test helpers ----------------------------------------------------------
    def seed_demo(self, persons: list[dict]) -> None:
        """Add the demo company's organizations and persons (see `integrations/sandbox/seed.py`)."""
        self._ensure_account()
        for index, record in enumerate(persons):
            self._insert_person(self._demo_person(record, index), self._admin_id())

    def add_person(self, **fields: Any) -> dict:
        """Create a person as a user of the Pipedrive app would (fires `create` webhooks).

        Takes v2 person fields, plus `email=` / `phone=` shortcuts.
        """
        fields.setdefault("name", f"Test Person {self.state['seq']['person']}")
        with self.sandbox.lock:
            person = self._insert_person(_shortcuts(fields), self._admin_id())
            self._emit("create", "person", person, None, "app", self._admin_id())
        self.flush_webhooks()
        return self._person_view(person)

    def add_persons(self, count: int, **fields: Any) -> list[int]:
        """Bulk-create `count` persons quickly, without webhooks (for big-data tests)."""
        ids = []
        with self.sandbox.lock:
            for _ in range(count):
                number = self.state["seq"]["person"]
                data = {"name": f"Bulk Person {number}", "email": f"bulk{number}@bulk.example"}
                person = self._insert_person(_shortcuts(data | fields), self._admin_id())
                ids.append(person["id"])
        return ids

    def change_person(self, person_id: int, **changes: Any) -> dict:
        """Edit a person as a user would in the app (fires `change` webhooks)."""
        with self.sandbox.lock:
            person = self._get("persons", person_id)
            previous = self._change_person(person, _shortcuts(changes))
            if previous:
                self._emit("change", "person", person, previous, "app", self._admin_id())
        self.flush_webhooks()
        return self._person_view(person)

    def remove_person(self, person_id: int) -> None:
        """Delete a person as a user would (fires `delete` webhooks)."""
        with self.sandbox.lock:
            person = self._remove_person(person_id)
            self._emit("delete", "person", None, person, "app", self._admin_id())
        self.flush_webhooks()

    def person(self, person_id: int) -> dict | None:
        record = self.state["persons"].get(str(person_id))
        return self._person_view(record) if record else None

    def persons(self, email: str | None = None) -> list[dict]:
        """All persons, or those having `email` (any case, any position)."""
        records = _sorted(self.state["persons"])
        if email:
            wanted = email.strip().lower()
            records = [p for p in records if wanted in _emails_of(p)]
        return [self._person_view(p) for p in records]

    def organizations(self, name: str | None = None) -> list[dict]:
        """All organizations, or those named `name` (any case)."""
        records = _sorted(self.state["orgs"])
        if name is not None:
            records = [o for o in records if o["name"].casefold() == name.strip().casefold()]
        return [_public(o) for o in records]

    def add_organization(self, name: str, **fields: Any) -> dict:
        """Create an organization as a user of the Pipedrive app would."""
        with self.sandbox.lock:
            org = self._insert_org({"name": name, **fields}, self._admin_id())
        return _public(org)

    def deals(self, person_id: int | None = None) -> list[dict]:
        return [
            _public(d)
            for d in _sorted(self.state["deals"])
            if person_id is None or d.get("person_id") == person_id
        ]

    def activities(self, person_id: int | None = None, deal_id: int | None = None) -> list[dict]:
        return [
            _public(a)
            for a in _sorted(self.state["activities"])
            if (person_id is None or a.get("person_id") == person_id)
            and (deal_id is None or a.get("deal_id") == deal_id)
        ]

    def webhooks(self) -> list[dict]:
        return [_public(w) for w in _sorted(self.state["webhooks"])]

    def user_id(self, name: str) -> int:
        return next(u["id"] for u in self.state["users"].values() if u["name"] == name)

    def field_key(self, name: str) -> str:
        return next(f["key"] for f in self.state["person_fields"].values() if f["name"] == name)

    def option_id(self, field_name: str, label: str) -> int:
        field = self.state["person_fields"][self.field_key(field_name)]
        return next(o["id"] for o in field["options"] or [] if o["label"] == label)

    def stage_id(self, pipeline_name: str, stage_name: str) -> int:
        pipeline = next(p for p in self.state["pipelines"].values() if p["name"] == pipeline_name)
        return next(
            s["id"]
            for s in self.state["stages"].values()
            if s["pipeline_id"] == pipeline["id"] and s["name"] == stage_name
        )

    def issue_token(self, user_name: str = ADMIN_NAME) -> dict:
        """A token response as after the consent dance, for tests that skip the browser."""
        with self.sandbox.lock:
            return self._issue_tokens(self.user_id(user_name))

    def expire_access_tokens(self) -> None:
        """Make every access token expired now (refresh tokens stay valid)."""
        with self.sandbox.lock:
            for record in self.state["access_tokens"].values():
                record["expires_at"] = self.sandbox.clock() - 1

    # --- account structure -------------------------------------------------------------------
    def _ensure_account(self) -> None:
        """Users, pipelines, stages and person fields exist in every account."""
        if not self.state["users"]:
            for name, email, admin in USERS:
                self._insert_user(name, email, admin)
        if not self.state["pipelines"]:
            for order, (name, stages) in enumerate(PIPELINES.items(), start=1):
                self._insert_pipeline(name, order, stages)
        if not self.state["person_fields"]:
            self._insert_person_fields()

    def _insert_user(self, name: str, email: str, admin: bool) -> None:
        uid = self._next_id("user")
        self.state["users"][str(uid)] = {
            "id": uid,
            "name": name,
            "email": email,
            "is_admin": admin,
            "created": "2024-01-15 09:00:00",
        }

    def _insert_pipeline(self, name: str, order: int, stages: Iterable[str]) -> None:
        pid = self._next_id("pipeline")
        now = self._now()
        self.state["pipelines"][str(pid)] = {
            "id": pid,
            "name": name,
            "order_nr": order,
            "is_deleted": False,
            "is_deal_probability_enabled": False,
            "add_time": now,
            "update_time": now,
        }
        for stage_order, stage_name in enumerate(stages, start=1):
            sid = self._next_id("stage")
            self.state["stages"][str(sid)] = {
                "id": sid,
                "order_nr": stage_order,
                "name": stage_name,
                "is_deleted": False,
                "deal_probability": 100,
                "pipeline_id": pid,
                "is_deal_rot_enabled": False,
                "days_to_rotten": None,
                "add_time": now,
                "update_time": now,
            }

    def _insert_person_fields(self) -> None:
        order = 0
        for key, name, field_type in SYSTEM_FIELDS:
            order += 1
            self._insert_field(key, name, field_type, order, custom=False)
        for name, field_type, labels in CUSTOM_FIELDS:
            order += 1
            field = self._insert_field(custom_field_key(name), name, field_type, order, True)
            if labels:
                field["options"] = [{"id": self._next_id("option"), "label": x} for x in labels]

    def _insert_field(self, key: str, name: str, field_type: str, order: int, custom: bool) -> dict:
        field = {
            "id": self._next_id("field"),
            "key": key,
            "name": name,
            "order_nr": order,
            "field_type": field_type,
            "custom": custom,
            "options": None,
        }
        self.state["person_fields"][key] = field
        return field

    def _demo_person(self, record: dict, index: int) -> dict:
        """A seed record (seed.py shape) as v2 person fields."""
        data: dict[str, Any] = {
            "name": f"{record['first_name']} {record['last_name']}".strip(),
            "email": record.get("email") or None,
            "phone": record.get("phone") or None,
            "job_title": record.get("position") or None,
            "owner_id": self._user_named(record.get("owner")),
        }
        if record.get("company"):
            data["org_id"] = self._org_named(record["company"])
        if record.get("country"):
            place = ", ".join(x for x in (record.get("locality"), record["country"]) if x)
            data["postal_address"] = {
                "value": place,
                "country": record["country"],
                "locality": record.get("locality") or "",
            }
        data["custom_fields"] = self._demo_custom_fields(record, index)
        return _shortcuts({k: v for k, v in data.items() if v is not None})

    def _demo_custom_fields(self, record: dict, index: int) -> dict:
        values: dict[str, Any] = {}
        if record.get("industry"):
            values[custom_field_key("Industry")] = record["industry"]
        if record.get("employees") is not None:
            values[custom_field_key("Employees")] = float(record["employees"])
        if index % 2 == 0:
            labels = CUSTOM_FIELDS[2][2]
            values[custom_field_key("Lead source")] = self.option_id(
                "Lead source", labels[index % len(labels)]
            )
        if index % 3 == 0:
            values[custom_field_key("Last event date")] = f"2026-0{1 + index % 9}-1{index % 10}"
        return values

    def _user_named(self, name: str | None) -> int:
        for user in self.state["users"].values():
            if user["name"] == name:
                return user["id"]
        return self._admin_id()

    def _org_named(self, name: str) -> int:
        for org in self.state["orgs"].values():
            if org["name"] == name:
                return org["id"]
        return self._insert_org({"name": name}, self._admin_id())["id"]

    def _admin_id(self) -> int:
        return self.user_id(ADMIN_NAME)

    # --- dispatch and auth -------------------------------------------------------------------
    @property
    def _strict(self) -> bool:
        return bool(self.sandbox.config.get("strict_spec"))

    def _route(self, request: SandboxRequest) -> tuple[Callable | None, dict]:
        for method, pattern, name in ROUTES:
            match = pattern.match(request.path)
            if match and method == request.method:
                ids = {k: int(v) for k, v in match.groupdict().items()}
                return getattr(self, f"_api_{name}"), ids
        return None, {}

    def _authenticate(self, request: SandboxRequest) -> dict | None:
        auth = request.header("authorization")
        if auth.lower().startswith("bearer "):
            record = self.state["access_tokens"].get(auth[7:].strip())
            if not record or record["expires_at"] <= self.sandbox.clock():
                return None
            return self.state["users"].get(str(record["user_id"]))
        token = request.header("x-api-token")
        if token and token == settings.SANDBOX_PIPEDRIVE_API_TOKEN:
            if not self.state["api_token_revoked"]:
                return self.state["users"][str(self._admin_id())]
        return None

    # --- OAuth -------------------------------------------------------------------------------
    def _handle_oauth(self, request: SandboxRequest) -> SandboxResponse:
        if request.path == "/oauth/authorize" and request.method == "GET":
            return self._consent_page(request.query)
        if request.path == "/oauth/authorize" and request.method == "POST":
            return self._consent_decision(request.form())
        if request.path == "/oauth/token" and request.method == "POST":
            return self._token_endpoint(request)
        return _error(404, f"Unknown OAuth endpoint {request.method} {request.path}")

    def _client_problem(self, params: dict) -> str:
        if params.get("client_id") != settings.PIPEDRIVE_CLIENT_ID:
            return "Unknown client_id: this app is not registered."
        redirect_uri = params.get("redirect_uri") or settings.PIPEDRIVE_REDIRECT_URI
        if redirect_uri != settings.PIPEDRIVE_REDIRECT_URI:
            return "redirect_uri does not match the app's registered callback URL."
        return ""

    def _consent_page(self, params: dict) -> SandboxResponse:
        problem = self._client_problem(params)
        if problem:
            return _html(400, "Cannot connect", f"<p id='error'>{html.escape(problem)}</p>")
        hidden = "".join(
            f'<input type="hidden" name="{k}" value="{html.escape(params.get(k, ""))}">'
            for k in ("client_id", "redirect_uri", "state")
        )
        scopes = "".join(f"<li>{html.escape(s)}</li>" for s in SCOPES)
        body = (
            f"<p>Signed in as <strong>{ADMIN_NAME}</strong> "
            f"({html.escape(self.state['company']['name'])}).</p>"
            f"<p><strong>SyncBridge</strong> asks for access to:</p><ul>{scopes}</ul>"
            f'<form method="post" action="{self.sandbox.public_url}/pipedrive/oauth/authorize">'
            f"{hidden}"
            '<button type="submit" name="decision" value="allow" id="allow">Allow</button> '
            '<button type="submit" name="decision" value="deny" id="deny">Deny</button>'
            "</form>"
        )
        return _html(200, "Allow SyncBridge to access your Pipedrive account?", body)

    def _consent_decision(self, form: dict) -> SandboxResponse:
        problem = self._client_problem(form)
        if problem:
            return _html(400, "Cannot connect", f"<p id='error'>{html.escape(problem)}</p>")
        redirect_uri = form.get("redirect_uri") or settings.PIPEDRIVE_REDIRECT_URI
        state = form.get("state", "")
        if form.get("decision") != "allow":
            return _redirect(_with_query(redirect_uri, error="access_denied", state=state))
        code = secrets.token_urlsafe(24)
        self.state["auth_codes"][code] = {
            "user_id": self._admin_id(),
            "redirect_uri": redirect_uri,
            "expires_at": self.sandbox.clock() + CODE_LIFETIME,
        }
        return _redirect(_with_query(redirect_uri, code=code, state=state))

    def _token_endpoint(self, request: SandboxRequest) -> SandboxResponse:
        if not _basic_auth_matches(request.header("authorization")):
            return json_response(
                {"error": "invalid_client", "error_description": "Client authentication failed"},
                401,
            )
        form = request.form()
        grant = form.get("grant_type")
        if grant == "authorization_code":
            user_id = self._redeem_code(form)
        elif grant == "refresh_token":
            user_id = self._redeem_refresh_token(form.get("refresh_token", ""))
        else:
            return json_response({"error": "unsupported_grant_type"}, 400)
        if user_id is None:
            return json_response(
                {"error": "invalid_grant", "error_description": "Invalid or expired grant"}, 400
            )
        return json_response(self._issue_tokens(user_id))

    def _redeem_code(self, form: dict) -> int | None:
        record = self.state["auth_codes"].pop(form.get("code", ""), None)  # single use
        if not record or record["expires_at"] <= self.sandbox.clock():
            return None
        if form.get("redirect_uri", record["redirect_uri"]) != record["redirect_uri"]:
            return None
        return record["user_id"]

    def _redeem_refresh_token(self, token: str) -> int | None:
        record = self.state["refresh_tokens"].pop(token, None)  # rotates: old one is spent
        return record["user_id"] if record else None

    def _issue_tokens(self, user_id: int) -> dict:
        now = self.sandbox.clock()
        tokens = self.state["access_tokens"]
        for stale in [t for t, r in tokens.items() if r["expires_at"] < now - 86400]:
            del tokens[stale]  # keep the state file small
        access, refresh = f"sbx-at-{secrets.token_hex(16)}", f"sbx-rt-{secrets.token_hex(16)}"
        tokens[access] = {"user_id": user_id, "expires_at": now + ACCESS_TOKEN_LIFETIME}
        self.state["refresh_tokens"][refresh] = {"user_id": user_id}
        return {
            "access_token": access,
            "token_type": "Bearer",
            "refresh_token": refresh,
            "scope": ",".join(SCOPES),
            "expires_in": ACCESS_TOKEN_LIFETIME,
            "api_domain": f"{self.sandbox.public_url}/pipedrive",
        }

    # --- persons -----------------------------------------------------------------------------
    def _api_list_persons(self, request: SandboxRequest, user: dict) -> SandboxResponse:
        records = _sorted(self.state["persons"])
        query = request.query
        if query.get("ids"):
            wanted = {int(x) for x in query["ids"].split(",") if x.strip().isdigit()}
            records = [p for p in records if p["id"] in wanted]
        for name in ("owner_id", "org_id"):
            if query.get(name):
                records = [p for p in records if p.get(name) == int(query[name])]
        if query.get("updated_since"):
            since = _parse_time(query["updated_since"])
            records = [p for p in records if _parse_time(p["update_time"]) >= since]
        return self._page(records, request, self._person_view)

    def _api_get_person(self, request: SandboxRequest, user: dict, id: int) -> SandboxResponse:
        return _ok(self._person_view(self._get("persons", id)))

    def _api_create_person(self, request: SandboxRequest, user: dict) -> SandboxResponse:
        person = self._insert_person(_json_body(request), user["id"])
        self._emit("create", "person", person, None, "api", user["id"])
        return _ok(self._person_view(person))

    def _api_update_person(self, request: SandboxRequest, user: dict, id: int) -> SandboxResponse:
        person = self._get("persons", id)
        previous = self._change_person(person, _json_body(request))
        if previous:
            self._emit("change", "person", person, previous, "api", user["id"])
        return _ok(self._person_view(person))

    def _api_delete_person(self, request: SandboxRequest, user: dict, id: int) -> SandboxResponse:
        person = self._remove_person(id)
        self._emit("delete", "person", None, person, "api", user["id"])
        return _ok({"id": id})

    def _insert_person(self, data: dict, user_id: int) -> dict:
        self._check_person(data, creating=True)
        pid = self._next_id("person")
        now = self._now()
        person = {
            "id": pid,
            "owner_id": user_id,
            "add_time": now,
            "update_time": now,
            "emails": [],
            "phones": [],
            "is_deleted": False,
            "visible_to": 3,
            "label_ids": [],
            "custom_fields": {},
        }
        self.state["persons"][str(pid)] = person
        self._apply_person(person, data)
        person["update_time"] = now
        return person

    def _change_person(self, person: dict, data: dict) -> dict:
        """Apply a PATCH; return the previous values of what changed (for webhooks)."""
        self._check_person(data, creating=False)
        previous = self._apply_person(person, data)
        if previous:
            person["update_time"] = self._now()
        return previous

    def _remove_person(self, person_id: int) -> dict:
        person = self._get("persons", person_id)
        del self.state["persons"][str(person_id)]
        return person

    def _apply_person(self, person: dict, data: dict) -> dict:
        previous: dict[str, Any] = {}
        for key, value in data.items():
            if key == "custom_fields":
                changed = _merge_custom_fields(person["custom_fields"], value or {})
                if changed:
                    previous["custom_fields"] = self._typed_custom_fields(changed)
                continue
            if key in ("emails", "phones"):
                value = _contacts(value)
            if person.get(key) != value:
                previous[key] = person.get(key)
                person[key] = value
        if "name" in previous:
            first, _, last = (person["name"] or "").strip().partition(" ")
            person["first_name"], person["last_name"] = first, last.strip() or None
        return previous

    def _check_person(self, data: dict, creating: bool) -> None:
        if creating or "name" in data:
            if not isinstance(data.get("name"), str) or not data["name"].strip():
                raise ApiError(400, "Person name is required")
        if data.get("owner_id") is not None:
            self._get("users", data["owner_id"], status=400)
        if data.get("org_id") is not None:
            self._get("orgs", data["org_id"], status=400)
        for key in ("emails", "phones"):
            for item in data.get(key) or []:
                if not isinstance(item, dict) or not isinstance(item.get("value"), str):
                    raise ApiError(400, f"{key} must be a list of {{value, primary, label}}")
        self._check_custom_fields(data.get("custom_fields") or {})

    def _check_custom_fields(self, values: dict) -> None:
        for key, value in values.items():
            field = self.state["person_fields"].get(key)
            if not field or not field["custom"]:
                raise ApiError(400, f"Unknown custom field key {key!r}")
            if value is not None and not self._custom_value_ok(field, value):
                raise ApiError(
                    400,
                    f"Invalid value {value!r} for {field['field_type']} field {field['name']!r}",
                )

    @staticmethod
    def _custom_value_ok(field: dict, value: Any) -> bool:
        kind = field["field_type"]
        option_ids = {o["id"] for o in field["options"] or []}
        if kind == "double":
            return isinstance(value, int | float) and not isinstance(value, bool)
        if kind == "enum":
            return isinstance(value, int) and value in option_ids
        if kind == "set":
            return isinstance(value, list) and bool(value) and set(value) <= option_ids
        if kind == "date":
            return isinstance(value, str) and bool(DATE_RE.match(value))
        return isinstance(value, str)

    def _person_view(self, person: dict) -> dict:
        """The v2 API shape: every custom field key present, unset ones null."""
        view = _public(person)
        custom = {f["key"]: None for f in self.state["person_fields"].values() if f["custom"]}
        view["custom_fields"] = custom | copy.deepcopy(person["custom_fields"])
        return view

    # --- search: returns partial matches even with exact_match, like the real one ------------
    def _api_search_persons(self, request: SandboxRequest, user: dict) -> SandboxResponse:
        term = request.query.get("term", "").strip().lower()
        exact = request.query.get("exact_match", "").lower() == "true"
        if len(term) < (1 if exact else 2):
            raise ApiError(400, "Search term must be at least 2 characters (1 with exact_match)")
        fields = (request.query.get("fields") or "email,name,phone,notes,custom_fields").split(",")
        scored = []
        for person in _sorted(self.state["persons"]):
            score = _search_score(person, term, fields)
            if score:
                scored.append((score, person))
        scored.sort(key=lambda pair: (-pair[0], pair[1]["id"]))
        items = [{"result_score": s, "item": self._search_item(p)} for s, p in scored]
        page, additional = self._offset_page(items, request)
        return _ok({"items": page}, additional)

    def _search_item(self, person: dict) -> dict:
        item = {
            "id": person["id"],
            "type": "person",
            "name": person.get("name") or "",
            "phones": [p["value"] for p in person["phones"]],
            "emails": [e["value"] for e in person["emails"]],
            "visible_to": person["visible_to"],
            "owner": {"id": person["owner_id"]},
            "custom_fields": [],
            "notes": [],
        }
        org = self.state["orgs"].get(str(person.get("org_id")))
        if org:
            item["organization"] = {"id": org["id"], "name": org["name"]}
        return item

    # --- organizations -----------------------------------------------------------------------
    def _api_list_orgs(self, request: SandboxRequest, user: dict) -> SandboxResponse:
        records = _sorted(self.state["orgs"])
        query = request.query
        if query.get("ids"):
            wanted = {int(x) for x in query["ids"].split(",") if x.strip().isdigit()}
            records = [o for o in records if o["id"] in wanted]
        if query.get("owner_id"):
            records = [o for o in records if o["owner_id"] == int(query["owner_id"])]
        if query.get("updated_since"):
            since = _parse_time(query["updated_since"])
            records = [o for o in records if _parse_time(o["update_time"]) >= since]
        return self._page(records, request, _public)

    def _api_get_org(self, request: SandboxRequest, user: dict, id: int) -> SandboxResponse:
        return _ok(_public(self._get("orgs", id)))

    def _api_create_org(self, request: SandboxRequest, user: dict) -> SandboxResponse:
        return _ok(_public(self._insert_org(_json_body(request), user["id"])))

    def _insert_org(self, data: dict, user_id: int) -> dict:
        """A new organization. Pipedrive allows two with the same name: so does the sandbox."""
        if not isinstance(data.get("name"), str) or not data["name"].strip():
            raise ApiError(400, "Organization name is required")
        if data.get("owner_id") is not None:
            self._get("users", data["owner_id"], status=400)
        now = self._now()
        org = {
            "id": self._next_id("org"),
            "owner_id": user_id,
            "add_time": now,
            "update_time": now,
            "is_deleted": False,
            "visible_to": 3,
            "label_ids": [],
            "custom_fields": {},
        }
        org.update(copy.deepcopy(data))
        org["name"] = data["name"].strip()
        self.state["orgs"][str(org["id"])] = org
        return org

    def _api_search_orgs(self, request: SandboxRequest, user: dict) -> SandboxResponse:
        """Search by name: with `exact_match` the whole name (any case), else a part of it."""
        term = request.query.get("term", "").strip().casefold()
        exact = request.query.get("exact_match", "").lower() == "true"
        if len(term) < (1 if exact else 2):
            raise ApiError(400, "Search term must be at least 2 characters (1 with exact_match)")
        items = []
        for org in _sorted(self.state["orgs"]):
            name = org["name"].casefold()
            if name == term or (not exact and term in name):
                score = 1.0 if name == term else 0.4
                items.append({"result_score": score, "item": self._org_search_item(org)})
        items.sort(key=lambda entry: -entry["result_score"])
        page, additional = self._offset_page(items, request)
        return _ok({"items": page}, additional)

    @staticmethod
    def _org_search_item(org: dict) -> dict:
        return {
            "id": org["id"],
            "type": "organization",
            "name": org["name"],
            "visible_to": org["visible_to"],
            "owner": {"id": org["owner_id"]},
            "custom_fields": [],
            "notes": [],
        }

    # --- deals -------------------------------------------------------------------------------
    def _api_list_deals(self, request: SandboxRequest, user: dict) -> SandboxResponse:
        records = _sorted(self.state["deals"])
        for name in ("person_id", "org_id", "owner_id", "pipeline_id", "stage_id"):
            if request.query.get(name):
                records = [d for d in records if d.get(name) == int(request.query[name])]
        if request.query.get("status"):
            records = [d for d in records if d["status"] == request.query["status"]]
        return self._page(records, request, _public)

    def _api_get_deal(self, request: SandboxRequest, user: dict, id: int) -> SandboxResponse:
        return _ok(_public(self._get("deals", id)))

    def _api_create_deal(self, request: SandboxRequest, user: dict) -> SandboxResponse:
        data = _json_body(request)
        if not isinstance(data.get("title"), str) or not data["title"].strip():
            raise ApiError(400, "Deal title is required")
        now = self._now()
        deal = {
            "id": self._next_id("deal"),
            "owner_id": user["id"],
            "value": 0,
            "currency": "EUR",
            "add_time": now,
            "update_time": now,
            "status": "open",
            "is_deleted": False,
            "is_archived": False,
            "visible_to": 3,
            "label_ids": [],
            "origin": "API",
            "custom_fields": {},
        }
        self._apply_deal(deal, data)
        self.state["deals"][str(deal["id"])] = deal
        return _ok(_public(deal))

    def _api_update_deal(self, request: SandboxRequest, user: dict, id: int) -> SandboxResponse:
        deal = self._get("deals", id)
        candidate = copy.deepcopy(deal)  # a refused update leaves the deal as it was
        self._apply_deal(candidate, _json_body(request))
        candidate["update_time"] = self._now()
        deal.clear()
        deal.update(candidate)
        return _ok(_public(deal))

    def _apply_deal(self, deal: dict, data: dict) -> None:
        self._check_links(data)
        self._place_deal(deal, data)
        if "status" in data:
            self._set_deal_status(deal, data["status"])
        for key, value in data.items():
            if key == "custom_fields":
                _merge_custom_fields(deal["custom_fields"], value or {})
            elif key not in ("status", "stage_id", "pipeline_id"):
                deal[key] = value

    def _place_deal(self, deal: dict, data: dict) -> None:
        """Keep stage and pipeline consistent; a deal without either lands in a first stage."""
        stage_id, pipeline_id = data.get("stage_id"), data.get("pipeline_id")
        if stage_id is not None:
            stage = self._get("stages", stage_id, status=400)
            if pipeline_id is not None and pipeline_id != stage["pipeline_id"]:
                raise ApiError(400, "stage_id does not belong to pipeline_id")
        elif pipeline_id is not None:
            self._get("pipelines", pipeline_id, status=400)
            if deal.get("pipeline_id") == pipeline_id:
                return
            stage = self._first_stage(pipeline_id)
        elif "stage_id" not in deal:
            stage = self._first_stage(_sorted(self.state["pipelines"])[0]["id"])
        else:
            return
        if "stage_id" in deal and deal["stage_id"] != stage["id"]:
            deal["stage_change_time"] = self._now()
        deal["stage_id"], deal["pipeline_id"] = stage["id"], stage["pipeline_id"]

    def _set_deal_status(self, deal: dict, status: str) -> None:
        if status not in DEAL_STATUSES:
            raise ApiError(400, f"Deal status must be one of {', '.join(DEAL_STATUSES)}")
        if status == deal["status"]:
            return
        now = self._now()
        deal["status"] = status
        deal["won_time"] = now if status == "won" else None
        deal["lost_time"] = now if status == "lost" else None
        deal["close_time"] = now if status != "open" else None

    def _first_stage(self, pipeline_id: int) -> dict:
        stages = [s for s in _sorted(self.state["stages"]) if s["pipeline_id"] == pipeline_id]
        if not stages:
            raise ApiError(400, f"Pipeline {pipeline_id} has no stages")
        return min(stages, key=lambda s: s["order_nr"])

    def _check_links(self, data: dict) -> None:
        """Referenced records must exist, as Pipedrive checks."""
        for key, table in (
            ("person_id", "persons"),
            ("org_id", "orgs"),
            ("owner_id", "users"),
            ("deal_id", "deals"),
        ):
            if data.get(key) is not None:
                self._get(table, data[key], status=400)

    # --- activities --------------------------------------------------------------------------
    def _api_list_activities(self, request: SandboxRequest, user: dict) -> SandboxResponse:
        records = _sorted(self.state["activities"])
        for name in ("person_id", "deal_id", "org_id", "owner_id"):
            if request.query.get(name):
                records = [a for a in records if a.get(name) == int(request.query[name])]
        if request.query.get("done"):
            done = request.query["done"].lower() == "true"
            records = [a for a in records if a["done"] is done]
        return self._page(records, request, _public)

    def _api_get_activity(self, request: SandboxRequest, user: dict, id: int) -> SandboxResponse:
        return _ok(_public(self._get("activities", id)))

    def _api_create_activity(self, request: SandboxRequest, user: dict) -> SandboxResponse:
        data = _json_body(request)
        now = self._now()
        activity = {
            "id": self._next_id("activity"),
            "type": "task",
            "owner_id": user["id"],
            "creator_user_id": user["id"],
            "is_deleted": False,
            "add_time": now,
            "update_time": now,
            "busy": False,
            "done": False,
        }
        self._apply_activity(activity, data)
        activity.setdefault("subject", activity["type"].capitalize())
        self.state["activities"][str(activity["id"])] = activity
        return _ok(_public(activity))

    def _api_update_activity(self, request: SandboxRequest, user: dict, id: int) -> SandboxResponse:
        activity = self._get("activities", id)
        candidate = copy.deepcopy(activity)
        self._apply_activity(candidate, _json_body(request))
        candidate["update_time"] = self._now()
        activity.clear()
        activity.update(candidate)
        return _ok(_public(activity))

    def _apply_activity(self, activity: dict, data: dict) -> None:
        self._check_links(data)
        if "type" in data and data["type"] not in ACTIVITY_TYPES:
            raise ApiError(400, f"Unknown activity type {data['type']!r}")
        if data.get("due_date") is not None and not DATE_RE.match(str(data["due_date"])):
            raise ApiError(400, "due_date must be YYYY-MM-DD")
        if data.get("due_time") is not None and not TIME_RE.match(str(data["due_time"])):
            raise ApiError(400, "due_time must be HH:MM")
        if "done" in data and bool(data["done"]) != activity["done"]:
            activity["marked_as_done_time"] = self._now() if data["done"] else None
        activity.update(data)
        if data.get("person_id"):
            activity["participants"] = [{"person_id": data["person_id"], "primary": True}]

    # --- pipelines, stages -------------------------------------------------------------------
    def _api_list_pipelines(self, request: SandboxRequest, user: dict) -> SandboxResponse:
        return self._page(_sorted(self.state["pipelines"]), request, _public)

    def _api_get_pipeline(self, request: SandboxRequest, user: dict, id: int) -> SandboxResponse:
        return _ok(_public(self._get("pipelines", id)))

    def _api_list_stages(self, request: SandboxRequest, user: dict) -> SandboxResponse:
        records = _sorted(self.state["stages"])
        if request.query.get("pipeline_id"):
            wanted = int(request.query["pipeline_id"])
            records = [s for s in records if s["pipeline_id"] == wanted]
        return self._page(records, request, _public)

    def _api_get_stage(self, request: SandboxRequest, user: dict, id: int) -> SandboxResponse:
        return _ok(_public(self._get("stages", id)))

    # --- v1: users, person fields ------------------------------------------------------------
    def _api_list_users(self, request: SandboxRequest, user: dict) -> SandboxResponse:
        users = [self._user_view(u, user) for u in _sorted(self.state["users"])]
        return _ok(users)

    def _api_get_me(self, request: SandboxRequest, user: dict) -> SandboxResponse:
        company = self.state["company"]
        view = self._user_view(user, user) | {
            "company_id": company["id"],
            "company_name": company["name"],
            "company_domain": company["domain"],
            "company_country": "DE",
            "company_industry": "Software",
            "language": {"language_code": "en", "country_code": "US"},
        }
        return _ok(view)

    def _user_view(self, record: dict, viewer: dict) -> dict:
        return {
            "id": record["id"],
            "name": record["name"],
            "email": record["email"],
            "default_currency": "EUR",
            "locale": "en_US",
            "lang": 1,
            "phone": None,
            "activated": True,
            "last_login": "2026-01-05 08:30:00",
            "created": record["created"],
            "modified": record["created"],
            "has_created_company": record["is_admin"],
            "access": [{"app": "sales", "admin": record["is_admin"], "permission_set_id": "1"}],
            "active_flag": True,
            "timezone_name": "Europe/Berlin",
            "timezone_offset": "+01:00",
            "role_id": 1,
            "icon_url": None,
            "is_you": record["id"] == viewer["id"],
            "is_deleted": False,
        }

    def _api_list_person_fields(self, request: SandboxRequest, user: dict) -> SandboxResponse:
        fields = sorted(self.state["person_fields"].values(), key=lambda f: f["order_nr"])
        start = _int_param(request, "start", 0)
        limit = min(_int_param(request, "limit", DEFAULT_LIMIT), PAGE_LIMIT)
        page = [self._field_view(f) for f in fields[start : start + limit]]
        more = start + limit < len(fields)
        pagination = {"start": start, "limit": limit, "more_items_in_collection": more}
        if more:
            pagination["next_start"] = start + limit
        return _ok(page, {"pagination": pagination})

    def _field_view(self, field: dict) -> dict:
        custom = field["custom"]
        return {
            "id": field["id"],
            "key": field["key"],
            "name": field["name"],
            "order_nr": field["order_nr"],
            "field_type": field["field_type"],
            "add_time": "2024-01-15T09:00:00Z",
            "update_time": "2024-01-15T09:00:00Z",
            "active_flag": True,
            "edit_flag": custom,
            "index_visible_flag": True,
            "details_visible_flag": True,
            "add_visible_flag": True,
            "important_flag": False,
            "bulk_edit_allowed": True,
            "searchable_flag": field["field_type"] in ("varchar", "text", "double", "phone"),
            "filtering_allowed": True,
            "sortable_flag": True,
            "mandatory_flag": field["key"] == "name",
            "options": copy.deepcopy(field["options"]),
        }

    # --- v1: webhooks ------------------------------------------------------------------------
    def _api_list_webhooks(self, request: SandboxRequest, user: dict) -> SandboxResponse:
        hooks = [_public(w) for w in _sorted(self.state["webhooks"])]
        return json_response({"success": True, "status": "ok", "data": hooks})

    def _api_create_webhook(self, request: SandboxRequest, user: dict) -> SandboxResponse:
        data = _json_body(request)
        problems = self._webhook_problems(data, user)
        if problems:
            return json_response({"success": False, "status": "error", "errors": problems}, 400)
        hook = self._insert_webhook(data, user)
        return json_response({"success": True, "status": "ok", "data": _public(hook)}, 201)

    def _webhook_problems(self, data: dict, user: dict) -> dict:
        problems = {}
        url = data.get("subscription_url") or ""
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
            problems["subscription_url"] = "A full, valid, publicly accessible URL is required"
        if data.get("event_action") not in WEBHOOK_ACTIONS:
            problems["event_action"] = f"Must be one of {', '.join(WEBHOOK_ACTIONS)}"
        if data.get("event_object") not in WEBHOOK_OBJECTS:
            problems["event_object"] = f"Must be one of {', '.join(WEBHOOK_OBJECTS)}"
        owner = data.get("user_id") or user["id"]
        owned = [w for w in self.state["webhooks"].values() if w["user_id"] == owner]
        if len(owned) >= WEBHOOK_LIMIT:
            problems["limit"] = f"The limit of {WEBHOOK_LIMIT} webhooks per user is reached"
        return problems

    def _insert_webhook(self, data: dict, user: dict) -> dict:
        hid = self._next_id("webhook")
        hook = {
            "id": hid,
            "company_id": self.state["company"]["id"],
            "owner_id": user["id"],
            "user_id": data.get("user_id") or user["id"],
            "event_action": data["event_action"],
            "event_object": data["event_object"],
            "subscription_url": data["subscription_url"],
            "version": data.get("version") or "1.0",
            "is_active": 1,
            "add_time": _iso(self.sandbox.clock()),
            "remove_time": None,
            "type": "general",
            "http_auth_user": data.get("http_auth_user"),
            "http_auth_password": data.get("http_auth_password"),
            "remove_reason": None,
            "last_delivery_time": None,
            "last_http_status": None,
            "admin_id": user["id"],
            "name": data.get("name") or "",
        }
        self.state["webhooks"][str(hid)] = hook
        return hook

    def _api_delete_webhook(self, request: SandboxRequest, user: dict, id: int) -> SandboxResponse:
        if self.state["webhooks"].pop(str(id), None) is None:
            return json_response(
                {"success": False, "status": "error", "errors": {"id": "Webhook not found"}}, 404
            )
        return json_response({"success": True, "status": "ok"})

    # --- webhooks out (v2 payloads) ----------------------------------------------------------
    def _emit(
        self,
        action: str,
        entity: str,
        record: dict | None,
        previous: dict | None,
        source: str,
        user_id: int,
    ) -> None:
        """Queue a Webhooks v2 delivery for every matching v2 subscription.

        v2 sends `data: null` and the last state as `previous` for a delete, and custom
        fields as `{key: {type, value}}`; subscriptions made with version 1.0 get nothing here.
        """
        entity_id = (record or previous or {}).get("id")
        data = self._webhook_person(record) if record else None
        if action == "delete" and previous:
            previous = self._webhook_person(previous)
        for hook in _sorted(self.state["webhooks"]):
            if not _hook_matches(hook, action, entity):
                continue
            meta = self._webhook_meta(hook, action, entity, entity_id, source, user_id)
            payload = {"meta": meta, "data": data, "previous": previous}
            self.outbox.append(
                (str(hook["id"]), hook["subscription_url"], _hook_headers(hook), payload)
            )

    def _webhook_meta(
        self, hook: dict, action: str, entity: str, entity_id: Any, source: str, user_id: int
    ) -> dict:
        clock = self.sandbox.clock()
        return {
            "action": action,
            "entity": entity,
            "entity_id": str(entity_id),
            "timestamp": _iso(clock, millis=True),
            "change_source": source,
            "attempt": 1,
            "id": str(uuid.uuid4()),
            "correlation_id": str(uuid.uuid4()),
            "version": WEBHOOK_VERSION,
            "company_id": str(self.state["company"]["id"]),
            "user_id": str(user_id),
            "webhook_id": str(hook["id"]),
            "webhook_owner_id": str(hook["owner_id"]),
            "is_bulk_edit": False,
            "type": "general",
            "host": f"{self.state['company']['domain']}.pipedrive.com",
            "permitted_user_ids": [str(u) for u in sorted(int(k) for k in self.state["users"])],
        }

    def _webhook_person(self, person: dict) -> dict:
        view = _public(person)
        view["custom_fields"] = self._typed_custom_fields(person["custom_fields"])
        return view

    def _typed_custom_fields(self, values: dict) -> dict:
        typed = {}
        for key, value in values.items():
            field = self.state["person_fields"].get(key) or {"field_type": "varchar"}
            typed[key] = None if value is None else {"type": field["field_type"], "value": value}
        return typed

    # --- small helpers -----------------------------------------------------------------------
    def _next_id(self, kind: str) -> int:
        value = self.state["seq"][kind]
        self.state["seq"][kind] = value + 1
        return value

    def _now(self) -> str:
        return _iso(self.sandbox.clock())

    def _get(self, table: str, record_id: Any, status: int = 404) -> dict:
        record = self.state[table].get(str(record_id))
        if record is None:
            what = table.rstrip("s") if table != "activities" else "activity"
            raise ApiError(status, f"{what.capitalize()} {record_id} not found")
        return record

    def _page(
        self, records: list[dict], request: SandboxRequest, view: Callable
    ) -> SandboxResponse:
        """v2 cursor pagination over records sorted by id."""
        limit = _limit(request)
        after = _decode_cursor(request.query.get("cursor"))
        remaining = [r for r in records if r["id"] > after]
        page = remaining[:limit]
        additional: dict[str, Any] = {}
        if len(remaining) > limit:
            additional["next_cursor"] = _encode_cursor(page[-1]["id"])
        # On the last page the real API sends `next_cursor: null`, which its own spec does
        # not allow (string, not nullable); the sandbox leaves the key out instead.
        return _ok([view(r) for r in page], additional)

    def _offset_page(self, items: list[dict], request: SandboxRequest) -> tuple[list, dict]:
        limit = _limit(request)
        start = _decode_cursor(request.query.get("cursor"))
        page = items[start : start + limit]
        more = start + limit < len(items)
        return page, ({"next_cursor": _encode_cursor(start + limit)} if more else {})


# --- module helpers ------------------------------------------------------------------------
def _ok(data: Any, additional_data: dict | None = None) -> SandboxResponse:
    body: dict[str, Any] = {"success": True, "data": data}
    if additional_data is not None:
        body["additional_data"] = additional_data
    return json_response(body)


def _error(status: int, message: str, **extra: Any) -> SandboxResponse:
    return json_response({"success": False, "error": message, **extra}, status)


def _html(status: int, title: str, body: str) -> SandboxResponse:
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto}"
        "button{padding:.5rem 1.5rem;margin-right:.5rem}</style></head><body>"
        f"<p><em>Pipedrive (sandbox)</em></p><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return SandboxResponse(status, page, content_type="text/html; charset=utf-8")


def _redirect(url: str) -> SandboxResponse:
    return SandboxResponse(302, b"", headers={"Location": url}, content_type="text/html")


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def _basic_auth_matches(header: str) -> bool:
    if not header.lower().startswith("basic "):
        return False
    try:
        decoded = base64.b64decode(header[6:].strip()).decode()
    except ValueError:
        return False
    client_id, _, secret = decoded.partition(":")
    return (client_id, secret) == (
        settings.PIPEDRIVE_CLIENT_ID,
        settings.PIPEDRIVE_CLIENT_SECRET,
    )


def _json_body(request: SandboxRequest) -> dict:
    try:
        data = request.json()
    except ValueError as exc:
        raise ApiError(400, f"Body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ApiError(400, "Body must be a JSON object")
    return data


def _public(record: dict) -> dict:
    """A deep copy without null fields (the spec marks most fields as not nullable)."""
    return {k: copy.deepcopy(v) for k, v in record.items() if v is not None and k != "custom"}


def _sorted(table: dict) -> list[dict]:
    return sorted(table.values(), key=lambda r: r["id"])


def _contacts(items: Any) -> list[dict]:
    """emails/phones as `{value, primary, label}` with exactly one primary."""
    cleaned = [
        {
            "value": item["value"].strip(),
            "primary": bool(item.get("primary")),
            "label": item.get("label") or "work",
        }
        for item in items or []
        if item.get("value", "").strip()
    ]
    if cleaned and not any(c["primary"] for c in cleaned):
        cleaned[0]["primary"] = True
    return cleaned


def _shortcuts(fields: dict) -> dict:
    """Test-helper conveniences: `email=` / `phone=` become v2 `emails` / `phones`."""
    data = dict(fields)
    for short, key in (("email", "emails"), ("phone", "phones")):
        if short in data:
            value = data.pop(short)
            data[key] = [{"value": value, "primary": True, "label": "work"}] if value else []
    return data


def _merge_custom_fields(current: dict, changes: dict) -> dict:
    """Apply custom field changes (null clears); return the old values of what changed."""
    previous = {}
    for key, value in changes.items():
        if current.get(key) == value:
            continue
        previous[key] = current.get(key)
        if value is None:
            current.pop(key, None)
        else:
            current[key] = value
    return previous


def _emails_of(person: dict) -> set[str]:
    return {e["value"].strip().lower() for e in person["emails"]}


def _search_score(person: dict, term: str, fields: list[str]) -> float:
    values: list[str] = []
    if "email" in fields:
        values += [e["value"] for e in person["emails"]]
    if "phone" in fields:
        values += [p["value"] for p in person["phones"]]
    if "name" in fields:
        values.append(person.get("name") or "")
    if "notes" in fields:
        values.append(person.get("notes") or "")
    if "custom_fields" in fields:
        values += [v for v in person["custom_fields"].values() if isinstance(v, str)]
    best = 0.0
    for value in (v.lower() for v in values if v):
        if value == term:
            return 1.0
        if term in value:
            best = max(best, 0.4)  # the partial match real search returns too
    return best


def _hook_matches(hook: dict, action: str, entity: str) -> bool:
    return (
        hook["version"] == WEBHOOK_VERSION
        and hook["event_action"] in (action, "*")
        and hook["event_object"] in (entity, "*")
    )


def _hook_headers(hook: dict) -> dict:
    headers = {"User-Agent": "Pipedrive Webhooks (sandbox)"}
    if hook.get("http_auth_user"):
        pair = f"{hook['http_auth_user']}:{hook.get('http_auth_password') or ''}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    return headers


def _limit(request: SandboxRequest) -> int:
    limit = _int_param(request, "limit", DEFAULT_LIMIT)
    if limit < 1 or limit > PAGE_LIMIT:
        raise ApiError(400, f"limit must be between 1 and {PAGE_LIMIT}")
    return limit


def _int_param(request: SandboxRequest, name: str, default: int) -> int:
    value = request.query.get(name)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ApiError(400, f"{name} must be an integer") from exc


def _encode_cursor(value: int) -> str:
    raw = json.dumps({"field": "id", "id": value}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return int(json.loads(raw)["id"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ApiError(400, "Invalid cursor") from exc


def _iso(timestamp: float, millis: bool = False) -> str:
    moment = datetime.fromtimestamp(timestamp, UTC)
    if millis:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace(" ", "T"))
    except ValueError as exc:
        raise ApiError(400, f"Invalid time {value!r}: use RFC 3339") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
