"""API v2 persons: list, get, create, update, delete, and the partial-matching search."""

from __future__ import annotations

import copy
from typing import Any

from integrations.sandbox.messages import SandboxRequest, SandboxResponse
from integrations.sandbox.pipedrive.common import (
    DATE_RE,
    ApiError,
    _contacts,
    _json_body,
    _merge_custom_fields,
    _ok,
    _parse_time,
    _public,
    _search_score,
    _sorted,
)


class PersonsMixin:
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
        if data.get("label_ids") is not None:
            labels = {o["id"] for o in self._person_label_field()["options"] or []}
            given = data["label_ids"]
            if not isinstance(given, list) or not set(given) <= labels:
                raise ApiError(400, "label_ids must be ids of person labels")

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

    # --- search: with exact_match only full matches (any case), as the v2 spec documents ----
    def _api_search_persons(self, request: SandboxRequest, user: dict) -> SandboxResponse:
        term = request.query.get("term", "").strip().lower()
        exact = request.query.get("exact_match", "").lower() == "true"
        if len(term) < (1 if exact else 2):
            raise ApiError(400, "Search term must be at least 2 characters (1 with exact_match)")
        fields = (request.query.get("fields") or "email,name,phone,notes,custom_fields").split(",")
        scored = []
        for person in _sorted(self.state["persons"]):
            score = _search_score(person, term, fields)
            if score and (score == 1.0 or not exact):
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
