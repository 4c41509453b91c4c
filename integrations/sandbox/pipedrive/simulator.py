"""The simulator: state, dispatch and the helpers tests and the control pages use."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

from django.conf import settings

from integrations.sandbox import spec
from integrations.sandbox.messages import SandboxRequest, SandboxResponse
from integrations.sandbox.pipedrive.account import AccountMixin
from integrations.sandbox.pipedrive.activities import ActivitiesMixin
from integrations.sandbox.pipedrive.common import (
    ADMIN_NAME,
    ROUTES,
    ApiError,
    PipedriveLimits,
    _decode_cursor,
    _emails_of,
    _empty_state,
    _encode_cursor,
    _error,
    _iso,
    _limit,
    _ok,
    _public,
    _shortcuts,
    _sorted,
    custom_field_key,
)
from integrations.sandbox.pipedrive.deals import DealsMixin
from integrations.sandbox.pipedrive.oauth import OAuthMixin
from integrations.sandbox.pipedrive.organizations import OrganizationsMixin
from integrations.sandbox.pipedrive.persons import PersonsMixin
from integrations.sandbox.pipedrive.pipelines import PipelinesMixin
from integrations.sandbox.pipedrive.webhooks import WebhooksMixin


class PipedriveSimulator(
    OAuthMixin,
    PersonsMixin,
    OrganizationsMixin,
    DealsMixin,
    ActivitiesMixin,
    PipelinesMixin,
    AccountMixin,
    WebhooksMixin,
):
    def __init__(self, sandbox):
        self.sandbox = sandbox
        # Deliveries wait here until the sandbox lock is released (see `flush_webhooks`).
        self.outbox: list[tuple[str, str, dict, dict]] = []
        self.reset()

    # --- the interface the sandbox core and control pages use --------------------------------
    def reset(self) -> None:
        self.state = _empty_state()
        self.limits = PipedriveLimits()
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
        api_token = not request.header("authorization").lower().startswith("bearer ")
        token = request.header("authorization") or request.header("x-api-token")
        refused, limit_headers = self.limits.check(request, token, api_token, self.sandbox.clock())
        if refused is not None:
            refused.headers.update(limit_headers)
            return refused
        response = self._answer(request, handler, user, ids)
        response.headers.update(limit_headers)
        return response

    def _answer(self, request: SandboxRequest, handler: Callable, user: dict, ids: dict):
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
                self._delivered(hook_id, status)

    # --- seed data and test helpers ----------------------------------------------------------
    def seed_demo(self, persons: list[dict]) -> None:
        """Add the demo company's organizations and persons (see `integrations/sandbox/seed.py`)."""
        self._ensure_account()
        for index, record in enumerate(persons):
            self._insert_person(self._demo_person(record, index), self._admin_id())

    def add_person_field(self, name: str, field_type: str = "varchar") -> str:
        """Add a custom person field as an admin would in the app (e.g. "LinkedIn"); its key."""
        with self.sandbox.lock:
            self._ensure_account()
            order = len(self.state["person_fields"]) + 1
            field = self._insert_field(custom_field_key(name), name, field_type, order, True)
            self.sandbox.save()
        return field["key"]

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

    # --- dispatch and auth -------------------------------------------------------------------
    @property
    def _strict(self) -> bool:
        return bool(self.sandbox.config.get("strict_spec"))

    def _route(self, request: SandboxRequest) -> tuple[Callable | None, dict]:
        for method, pattern, name in ROUTES:
            match = pattern.match(request.path)
            if match and method == request.method:
                ids = {k: int(v) if v.isdigit() else v for k, v in match.groupdict().items()}
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
