"""API v1 webhooks (list, create, delete) and the v2 deliveries they send out.

As Pipedrive documents ("Guide for Webhooks v2", "Webhooks"): a webhook created without
`version` is a 2.0 webhook; a user's 41st webhook is refused with 422; a webhook whose
deliveries have failed for 3 days is deleted (the sandbox checks at each delivery, with its
own clock).
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings

from integrations.pipedrive.constants import (
    WEBHOOK_ACTIONS,
    WEBHOOK_LIMIT,
    WEBHOOK_OBJECTS,
    WEBHOOK_VERSION,
)
from integrations.sandbox.messages import SandboxRequest, SandboxResponse, json_response
from integrations.sandbox.pipedrive.common import (
    ADMIN_NAME,
    _hook_headers,
    _hook_matches,
    _iso,
    _json_body,
    _public,
    _sorted,
)

FAILING_DAYS_BEFORE_DELETION = 3


def _delete_over_http(url: str, headers: dict, body: bytes) -> int:
    return requests.delete(url, data=body, headers=headers, timeout=10).status_code


class WebhooksMixin:
    def _api_list_webhooks(self, request: SandboxRequest, user: dict) -> SandboxResponse:
        hooks = [_public(w) for w in _sorted(self.state["webhooks"])]
        return json_response({"success": True, "status": "ok", "data": hooks})

    def _api_create_webhook(self, request: SandboxRequest, user: dict) -> SandboxResponse:
        data = _json_body(request)
        problems = self._webhook_problems(data, user)
        if problems:
            status = 422 if "limit" in problems else 400
            return json_response({"success": False, "status": "error", "errors": problems}, status)
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
            "version": data.get("version") or WEBHOOK_VERSION,  # 2.0 unless asked otherwise
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

    def _delivered(self, hook_id: str, status: int) -> None:
        """Record a delivery; a hook failing for `FAILING_DAYS_BEFORE_DELETION` days is deleted."""
        hook = self.state["webhooks"].get(hook_id)
        if hook is None:
            return
        now = float(self.sandbox.clock())
        hook["last_delivery_time"] = _iso(now)
        hook["last_http_status"] = status
        failing = self.state.setdefault("webhook_failing_since", {})
        if 200 <= status < 300:
            failing.pop(hook_id, None)
            return
        since = failing.setdefault(hook_id, now)
        if now - since >= FAILING_DAYS_BEFORE_DELETION * 86400:
            del self.state["webhooks"][hook_id]
            failing.pop(hook_id, None)
            removed = self.state.setdefault("removed_webhooks", [])
            removed.append({"id": int(hook_id), "remove_reason": "failing_3_days", "at": now})

    # --- the app life cycle -----------------------------------------------------------------
    # How the uninstall notice reaches the app: callable(url, headers, body) -> status code.
    uninstall_sender: Callable[[str, dict, bytes], int] | None = None

    def uninstall_app(self, user_name: str = ADMIN_NAME) -> int:
        """A user uninstalls the app: their tokens stop working, and the OAuth server sends a
        `DELETE` with the client credentials to the app's callback URL ("Handling user app
        uninstallation"). Returns the app's answer."""
        with self.sandbox.lock:
            user_id = self.user_id(user_name)
            for table in ("access_tokens", "refresh_tokens"):
                tokens = self.state[table]
                for token in [t for t, r in tokens.items() if r["user_id"] == user_id]:
                    del tokens[token]
            # "When a user uninstalls your app, all the webhooks created by your app for this
            # user will also be removed" (Webhooks for apps).
            hooks = self.state["webhooks"]
            for hook_id in [k for k, h in hooks.items() if h["owner_id"] == user_id]:
                del hooks[hook_id]
            body = {
                "client_id": settings.PIPEDRIVE_CLIENT_ID,
                "company_id": self.state["company"]["id"],
                "user_id": user_id,
                "timestamp": _iso(self.sandbox.clock()),
            }
        pair = f"{settings.PIPEDRIVE_CLIENT_ID}:{settings.PIPEDRIVE_CLIENT_SECRET}"
        headers = {
            "Content-Type": "application/json",
            "Authorization": "Basic " + base64.b64encode(pair.encode()).decode(),
        }
        send = self.uninstall_sender or _delete_over_http
        return send(settings.PIPEDRIVE_REDIRECT_URI, headers, json.dumps(body).encode())

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
