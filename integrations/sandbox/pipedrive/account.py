"""The account's users and person fields (API v1), and the demo records' shape."""

from __future__ import annotations

import copy
from typing import Any

from integrations.pipedrive.constants import (
    PAGE_LIMIT,
)
from integrations.sandbox.messages import SandboxRequest, SandboxResponse
from integrations.sandbox.pipedrive.common import (
    ADMIN_NAME,
    CUSTOM_FIELDS,
    DEFAULT_LIMIT,
    DEFAULT_PERSON_LABELS,
    LABEL_FIELD_KEY,
    PIPELINES,
    SYSTEM_FIELDS,
    USERS,
    ApiError,
    _int_param,
    _ok,
    _shortcuts,
    _sorted,
    custom_field_key,
)


class AccountMixin:
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
        self._person_label_field()

    def _insert_user(self, name: str, email: str, admin: bool) -> None:
        uid = self._next_id("user")
        self.state["users"][str(uid)] = {
            "id": uid,
            "name": name,
            "email": email,
            "is_admin": admin,
            "created": "2024-01-15 09:00:00",
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

    def _person_label_field(self) -> dict:
        """Person labels: the `label_ids` field (type set) with Pipedrive's default labels
        ("Working with labels"; changelog 2024-03-12 "Introducing a new Labels field")."""
        field = self.state["person_fields"].get(LABEL_FIELD_KEY)
        if field is None:
            order = len(self.state["person_fields"]) + 1
            field = self._insert_field(LABEL_FIELD_KEY, "Labels", "set", order, custom=False)
            field["options"] = [
                {"id": self._next_id("option"), "label": label} for label in DEFAULT_PERSON_LABELS
            ]
        return field

    def _api_add_person_field_options(
        self, request: SandboxRequest, user: dict, field_code: str
    ) -> SandboxResponse:
        """v2 addPersonFieldOptions: atomic, answers only the new options."""
        field = self.state["person_fields"].get(field_code)
        if field is None:
            raise ApiError(404, f"Field {field_code!r} not found")
        if field["field_type"] not in ("enum", "set"):
            raise ApiError(400, "Only enum and set fields have options")
        try:
            body = request.json()
        except ValueError as exc:
            raise ApiError(400, f"Body is not valid JSON: {exc}") from exc
        labels = [item.get("label") for item in body] if isinstance(body, list) else []
        if not labels or not all(isinstance(x, str) and 0 < len(x) <= 255 for x in labels):
            raise ApiError(400, "Each option needs a label of 1 to 255 characters")
        added = [{"id": self._next_id("option"), "label": label} for label in labels]
        field["options"] = [*(field["options"] or []), *added]
        return _ok(added, None)

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
