"""Webhooks v2: list, create, change status, delete (at most 50)."""

from __future__ import annotations

from integrations.sandbox.messages import SandboxResponse, json_response
from integrations.sandbox.snovio.common import (
    OTHER_WEBHOOK_EVENTS,
    USER_ID,
    BadRequest,
    _error,
)
from integrations.snovio import constants as C


class WebhooksMixin:
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
        return json_response({"data": dict(hook), "meta": {"user_id": USER_ID}})

    def _delete_webhook(self, webhook_id: str, params: dict) -> SandboxResponse:
        if self.state["webhooks"].pop(webhook_id, None) is None:
            return _error(404, f"Webhook {webhook_id} not found")
        return json_response({"data": {"success": True}})
