"""API v2 pipelines and stages, and the account's two pipelines."""

from __future__ import annotations

from collections.abc import Iterable

from integrations.sandbox.messages import SandboxRequest, SandboxResponse
from integrations.sandbox.pipedrive.common import (
    _ok,
    _public,
    _sorted,
)


class PipelinesMixin:
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

    # --- schema changes made in the account (the sandbox page's "change the account") -------
    def delete_stage(self, stage_id: int) -> None:
        with self.sandbox.lock:
            self._get("stages", stage_id)
            del self.state["stages"][str(stage_id)]
            self.sandbox.save()

    def rename_stage(self, stage_id: int, name: str) -> None:
        self._rename("stages", stage_id, name)

    def delete_pipeline(self, pipeline_id: int) -> None:
        """A deleted pipeline takes its stages with it."""
        with self.sandbox.lock:
            self._get("pipelines", pipeline_id)
            del self.state["pipelines"][str(pipeline_id)]
            for key in [
                k for k, s in self.state["stages"].items() if s["pipeline_id"] == pipeline_id
            ]:
                del self.state["stages"][key]
            self.sandbox.save()

    def rename_pipeline(self, pipeline_id: int, name: str) -> None:
        self._rename("pipelines", pipeline_id, name)

    def delete_person_field(self, key: str) -> None:
        with self.sandbox.lock:
            field = self.state["person_fields"].get(key)
            if field is None or not field["custom"]:
                raise ValueError(f"No custom person field {key!r} (standard fields stay)")
            del self.state["person_fields"][key]
            self.sandbox.save()

    def rename_person_field(self, key: str, name: str) -> None:
        with self.sandbox.lock:
            field = self.state["person_fields"].get(key)
            if field is None:
                raise ValueError(f"No person field {key!r}")
            field["name"] = name
            self.sandbox.save()

    def _rename(self, collection: str, record_id: int, name: str) -> None:
        if not name.strip():
            raise ValueError("A new name is required")
        with self.sandbox.lock:
            record = self._get(collection, record_id)
            record["name"], record["update_time"] = name.strip(), self._now()
            self.sandbox.save()
