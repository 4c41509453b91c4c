"""Webhooks v2: list, create, change status, delete (at most 50), and switching off a hook
whose deliveries keep failing.

Snov.io deactivates a webhook after repeated failed deliveries (a secondary source counts 7
failures over about 38 hours; see docs/specs/webhooks-and-lifecycle.md). The sandbox delivers
each event once, so it deactivates a hook after `FAILURES_BEFORE_DEACTIVATION` failed
deliveries in a row; reactivating it (PUT status=active) starts the count again.
"""

from __future__ import annotations

from integrations.sandbox.messages import SandboxResponse, json_response
from integrations.sandbox.snovio.common import (
    OTHER_WEBHOOK_EVENTS,
    USER_ID,
    BadRequest,
    _error,
)
from integrations.snovio import constants as C

FAILURES_BEFORE_DEACTIVATION = 7


class WebhooksMixin:
    def _delivered(self, webhook_id, status: int) -> None:
        """Count a delivery's outcome; too many failures in a row deactivate the hook."""
        failures = self.state.setdefault("webhook_failures", {})
        key = str(webhook_id)
        hook = self.state["webhooks"].get(key)
        if hook is None:
            return
        if 200 <= status < 300:
            failures.pop(key, None)
            return
        failures[key] = failures.get(key, 0) + 1
        if failures[key] >= FAILURES_BEFORE_DEACTIVATION:
            hook["status"] = C.WEBHOOK_DEACTIVATED

    def _list_webhooks(self, params: dict) -> SandboxResponse:
        hooks = list(self.state["webhooks"].values())
        meta = {"webhooks_count": len(hooks), "user_id": USER_ID}
        return json_response({"data": [{"data": dict(h)} for h in hooks], "meta": meta})

    def _create_webhook(self, params: dict) -> SandboxResponse:
        obj, action = params.get("event_object"), params.get("event_action")
        url = str(params.get("endpoint_url") or "")
        if not (obj and action and url):
            raise BadRequest("event_object, event_action and endpoint_url are required")
        pairs = set(C.CAMPAIGN_WEBHOOK_EVENTS) | OTHER_WEBHOOK_EVENTS
        if (obj, action) not in pairs:
            raise BadRequest(f"Unsupported webhook event {obj}/{action}")
        if len(self.state["webhooks"]) >= C.WEBHOOK_LIMIT:
            raise BadRequest(f"Webhook limit reached: at most {C.WEBHOOK_LIMIT} per account")
        hook = {
            "id": self._next("webhook"),
            "end_point": url,
            "event_object": obj,
            "event_action": action,
            "created_at": int(self._now()),
            "status": C.WEBHOOK_ACTIVE,
        }
        self.state["webhooks"][str(hook["id"])] = hook
        return json_response({"data": dict(hook), "meta": {"user_id": USER_ID}})

    def _change_webhook(self, webhook_id: str, params: dict) -> SandboxResponse:
        hook = self.state["webhooks"].get(webhook_id)
        if hook is None:
            return _error(404, f"Webhook {webhook_id} not found")
        if params.get("status") not in (C.WEBHOOK_ACTIVE, C.WEBHOOK_DEACTIVATED):
            raise BadRequest("status must be active or deactivated")
        hook["status"] = params["status"]
        self.state.setdefault("webhook_failures", {}).pop(str(webhook_id), None)
        return json_response({"data": dict(hook), "meta": {"user_id": USER_ID}})

    def _delete_webhook(self, webhook_id: str, params: dict) -> SandboxResponse:
        if self.state["webhooks"].pop(webhook_id, None) is None:
            return _error(404, f"Webhook {webhook_id} not found")
        return json_response({"data": {"success": True}})
