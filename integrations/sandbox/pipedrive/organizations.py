"""API v2 organizations: list, get, create, search by name."""

from __future__ import annotations

import copy

from integrations.sandbox.messages import SandboxRequest, SandboxResponse
from integrations.sandbox.pipedrive.common import (
    ApiError,
    _json_body,
    _ok,
    _parse_time,
    _public,
    _sorted,
)


class OrganizationsMixin:
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
