"""API v2 activities: list, get, create, update."""

from __future__ import annotations

import copy

from integrations.pipedrive.constants import (
    ACTIVITY_TYPES,
)
from integrations.sandbox.messages import SandboxRequest, SandboxResponse
from integrations.sandbox.pipedrive.common import (
    DATE_RE,
    TIME_RE,
    ApiError,
    _json_body,
    _ok,
    _public,
    _sorted,
)


class ActivitiesMixin:
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
