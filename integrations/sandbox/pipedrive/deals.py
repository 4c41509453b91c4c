"""API v2 deals: list, get, create, update; stage, pipeline and status kept consistent."""

from __future__ import annotations

import copy

from integrations.pipedrive.constants import (
    DEAL_STATUSES,
)
from integrations.sandbox.messages import SandboxRequest, SandboxResponse
from integrations.sandbox.pipedrive.common import (
    ApiError,
    _json_body,
    _merge_custom_fields,
    _ok,
    _public,
    _sorted,
)


class DealsMixin:
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
        refused = self.limits.open_deals_refusal(self.state["deals"])
        if refused is not None:
            return refused
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
