"""The Pipedrive client: one small method per endpoint SyncBridge uses.

API v2 for persons, organizations, deals, activities, pipelines and stages; v1 only where v2
has nothing (users, person fields, webhooks). Every request goes through one `HttpClient` with
the company's shared rate limiter. OAuth connections call `{api_domain}/api/...` and refresh
their token before it runs out and once on a 401; legacy API-token connections send
`x-api-token` to `settings.PIPEDRIVE_API_URL`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from django.conf import settings

from integrations.budget import BudgetMeter
from integrations.http import HttpClient, raise_for_status
from integrations.models import Connection
from integrations.pipedrive import oauth
from integrations.pipedrive.constants import (
    IDS_LIMIT,
    PAGE_LIMIT,
    PERSON_WRITE_FIELDS,
    REFRESH_MARGIN,
    REMOTE,
    SEARCH_LIMIT,
    WEBHOOK_VERSION,
)
from integrations.pipedrive.token_costs import is_search
from integrations.ratelimit import pipedrive_limiter, pipedrive_search_limiter


def budget_key(connection: Connection) -> str:
    """Whose daily token budget a connection spends: its Pipedrive company's."""
    return f"pipedrive:{connection.account_id or connection.pk}"


def normalise_email(email: str | None) -> str:
    return (email or "").strip().lower()


class PipedriveClient:
    def __init__(self, connection: Connection, http: HttpClient | None = None):
        self.connection = connection
        account = connection.account_id or str(connection.pk)
        api_token = connection.auth_kind == Connection.AuthKind.API_TOKEN
        self.http = http or HttpClient(
            REMOTE, limiter=pipedrive_limiter(account, api_token=api_token)
        )
        self.search_limiter = pipedrive_search_limiter(account)
        self.budget = BudgetMeter(budget_key(connection))
        self.http.on_response = self.budget.record

    @classmethod
    def for_connection(cls, connection: Connection) -> PipedriveClient:
        return cls(connection)

    # --- persons (v2) ----------------------------------------------------------------------
    def list_persons_page(
        self,
        cursor: str | None = None,
        limit: int = PAGE_LIMIT,
        updated_since: datetime | None = None,
    ) -> tuple[list[dict], str | None]:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        if updated_since:
            params["updated_since"] = rfc3339(updated_since)
        body = self._get("/api/v2/persons", params)
        return body.get("data") or [], _next_cursor(body)

    def iter_persons(self, updated_since: datetime | None = None) -> Iterator[dict]:
        cursor = None
        while True:
            page, cursor = self.list_persons_page(cursor, updated_since=updated_since)
            yield from page
            if not cursor:
                return

    def get_persons(self, person_ids: list[int]) -> list[dict]:
        """Up to 100 persons per call by id (v2 `ids`); ids that no longer exist are absent."""
        found: list[dict] = []
        ids = sorted({int(i) for i in person_ids})
        for start in range(0, len(ids), IDS_LIMIT):
            chunk = ids[start : start + IDS_LIMIT]
            params = {"ids": ",".join(str(i) for i in chunk), "limit": IDS_LIMIT}
            found.extend(self._get("/api/v2/persons", params).get("data") or [])
        return found

    def get_person(self, person_id: int) -> dict:
        return self._get(f"/api/v2/persons/{int(person_id)}")["data"]

    def create_person(self, data: dict) -> dict:
        _check_person_fields(data)
        return self._call("POST", "/api/v2/persons", json=data)["data"]

    def update_person(self, person_id: int, data: dict) -> dict:
        _check_person_fields(data)
        return self._call("PATCH", f"/api/v2/persons/{int(person_id)}", json=data)["data"]

    def delete_person(self, person_id: int) -> None:
        self._call("DELETE", f"/api/v2/persons/{int(person_id)}")

    def find_persons_by_email(self, email: str) -> list[dict]:
        """Persons having exactly this email (normalised), whatever the search returned.

        Pipedrive's search answers partial matches even with `exact_match=true`
        ("ann@x.com" finds "joann@x.com"), so results are filtered here, then the full
        person records are fetched in one list call.
        """
        target = normalise_email(email)
        if not target:
            return []
        ids = [
            item["id"]
            for item in self._search_person_items(target)
            if any(normalise_email(value) == target for value in item.get("emails") or [])
        ]
        if not ids:
            return []
        params = {"ids": ",".join(str(i) for i in ids), "limit": PAGE_LIMIT}
        persons = self._get("/api/v2/persons", params).get("data") or []
        return [p for p in persons if target in person_emails(p)]

    def search_persons_by_custom_fields(self, term: str) -> list[dict]:
        """Persons whose searchable custom fields (text types) contain `term`, in full.

        A search (20 tokens, 10 per 2 s): only for a contact no listing or link found. Not
        exact (a stored URL may carry a scheme or `www.` the term lacks): the caller compares
        the values it wants exactly.
        """
        term = term.strip()
        if len(term) < 2:
            return []
        ids = [item.get("id") for item in self._search_person_items(term, "custom_fields", False)]
        return self.get_persons([i for i in ids if i]) if ids else []

    def _search_person_items(
        self, term: str, fields: str = "email", exact: bool = True
    ) -> Iterator[dict]:
        params: dict[str, Any] = {"term": term, "fields": fields, "limit": SEARCH_LIMIT}
        if exact:
            params["exact_match"] = "true"
        for entry in self._iter_v2("/api/v2/persons/search", params, key="items"):
            yield entry.get("item") or {}

    # --- organizations (v2) ----------------------------------------------------------------
    def list_organizations_page(
        self, cursor: str | None = None, limit: int = PAGE_LIMIT
    ) -> tuple[list[dict], str | None]:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        body = self._get("/api/v2/organizations", params)
        return body.get("data") or [], _next_cursor(body)

    def iter_organizations(self) -> Iterator[dict]:
        """Every organization, cursor pages of 500 (listed once, then matched locally)."""
        cursor = None
        while True:
            page, cursor = self.list_organizations_page(cursor)
            yield from page
            if not cursor:
                return

    def get_organization(self, org_id: int) -> dict:
        return self._get(f"/api/v2/organizations/{int(org_id)}")["data"]

    def create_organization(self, data: dict) -> dict:
        return self._call("POST", "/api/v2/organizations", json=data)["data"]

    def find_organizations_by_name(self, name: str) -> list[dict]:
        """Organizations named exactly `name` (any case): search, then filtered here.

        Costs a search (20 tokens): for checking after a lost create answer, not for matching
        every record (list once with `iter_organizations` for that).
        """
        target = name.strip().casefold()
        if not target:
            return []
        params = {
            "term": name.strip(),
            "fields": "name",
            "exact_match": "true",
            "limit": SEARCH_LIMIT,
        }
        items = self._iter_v2("/api/v2/organizations/search", params, key="items")
        return [
            entry["item"]
            for entry in items
            if str((entry.get("item") or {}).get("name") or "").strip().casefold() == target
        ]

    # --- deals, activities (v2) ------------------------------------------------------------
    def list_deals(self, person_id: int | None = None, status: str | None = "open") -> list[dict]:
        params: dict[str, Any] = {"limit": PAGE_LIMIT}
        if person_id is not None:
            params["person_id"] = int(person_id)
        if status:
            params["status"] = status
        return list(self._iter_v2("/api/v2/deals", params))

    def create_deal(self, data: dict) -> dict:
        return self._call("POST", "/api/v2/deals", json=data)["data"]

    def update_deal(self, deal_id: int, data: dict) -> dict:
        return self._call("PATCH", f"/api/v2/deals/{int(deal_id)}", json=data)["data"]

    def list_activities(
        self, person_id: int | None = None, deal_id: int | None = None, done: bool | None = None
    ) -> list[dict]:
        params: dict[str, Any] = {"limit": PAGE_LIMIT}
        if person_id is not None:
            params["person_id"] = int(person_id)
        if deal_id is not None:
            params["deal_id"] = int(deal_id)
        if done is not None:
            params["done"] = "true" if done else "false"
        return list(self._iter_v2("/api/v2/activities", params))

    def create_activity(self, data: dict) -> dict:
        return self._call("POST", "/api/v2/activities", json=data)["data"]

    def update_activity(self, activity_id: int, data: dict) -> dict:
        return self._call("PATCH", f"/api/v2/activities/{int(activity_id)}", json=data)["data"]

    # --- pipelines, stages (v2) ------------------------------------------------------------
    def list_pipelines(self) -> list[dict]:
        return list(self._iter_v2("/api/v2/pipelines", {"limit": PAGE_LIMIT}))

    def list_stages(self, pipeline_id: int | None = None) -> list[dict]:
        params: dict[str, Any] = {"limit": PAGE_LIMIT}
        if pipeline_id is not None:
            params["pipeline_id"] = int(pipeline_id)
        return list(self._iter_v2("/api/v2/stages", params))

    # --- users, person fields (v1) ---------------------------------------------------------
    def list_users(self) -> list[dict]:
        return self._get("/api/v1/users").get("data") or []

    def me(self) -> dict:
        return self._get("/api/v1/users/me")["data"]

    def list_person_fields(self) -> list[dict]:
        """Every person field (v1: `key, name, field_type, options, edit_flag`), all pages."""
        fields: list[dict] = []
        start = 0
        while True:
            body = self._get("/api/v1/personFields", {"start": start, "limit": PAGE_LIMIT})
            page = body.get("data") or []
            fields.extend(page)
            more, next_start = _v1_more(body, start + len(page))
            if not more or not page:
                return fields
            start = next_start

    def add_person_field_options(self, field_code: str, labels: list[str]) -> list[dict]:
        """Add options to a person field that has them (v2, atomic); the new `{id, label}`."""
        path = f"/api/v2/personFields/{field_code}/options"
        return self._call("POST", path, json=[{"label": label} for label in labels])["data"]

    # --- webhooks (v1 endpoints, v2 payloads) ----------------------------------------------
    def list_webhooks(self) -> list[dict]:
        return self._get("/api/v1/webhooks").get("data") or []

    def create_webhook(
        self,
        subscription_url: str,
        event_action: str,
        event_object: str,
        http_auth_user: str,
        http_auth_password: str,
        *,
        name: str = "SyncBridge",
    ) -> dict:
        body = {
            "subscription_url": subscription_url,
            "event_action": event_action,
            "event_object": event_object,
            "name": name,  # required by the v1 spec
            "http_auth_user": http_auth_user,
            "http_auth_password": http_auth_password,
            "version": WEBHOOK_VERSION,
        }
        return self._call("POST", "/api/v1/webhooks", json=body)["data"]

    def delete_webhook(self, webhook_id: int) -> None:
        self._call("DELETE", f"/api/v1/webhooks/{int(webhook_id)}")

    # --- transport -------------------------------------------------------------------------
    @property
    def is_oauth(self) -> bool:
        return self.connection.auth_kind == Connection.AuthKind.OAUTH

    @property
    def base_url(self) -> str:
        if self.is_oauth and self.connection.api_domain:
            return self.connection.api_domain.rstrip("/")
        return settings.PIPEDRIVE_API_URL.rstrip("/")

    def _iter_v2(self, path: str, params: dict, key: str | None = None) -> Iterator[dict]:
        """Follow `additional_data.next_cursor` until the last page."""
        params = dict(params)
        while True:
            body = self._get(path, params)
            data = body.get("data") or ([] if key is None else {})
            yield from (data.get(key) or []) if key else data
            cursor = _next_cursor(body)
            if not cursor:
                return
            params["cursor"] = cursor

    def _get(self, path: str, params: dict | None = None) -> dict:
        return self._call("GET", path, params=params)

    def _call(self, method: str, path: str, **kwargs) -> dict:
        if self.is_oauth and self.connection.token_expired(REFRESH_MARGIN):
            self._refresh()
        response = self._send(method, path, **kwargs)
        if response.status_code == 401 and self.is_oauth:
            # The token may have been revoked or expired early: refresh once, then give up.
            self._refresh()
            response = self._send(method, path, **kwargs)
        raise_for_status(response, REMOTE)
        if not response.content:
            return {}
        return response.json()

    def _send(self, method: str, path: str, **kwargs):
        self.budget.guard()  # bulk work stops short of the reserve (integrations/budget.py)
        limiters = [self.search_limiter] if is_search(path) else []
        return self.http.request(
            method, self.base_url + path, headers=self._headers(), limiters=limiters, **kwargs
        )

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.is_oauth:
            headers["Authorization"] = f"Bearer {self.connection.access_token}"
        else:
            headers["x-api-token"] = self.connection.access_token
        return headers

    def _refresh(self) -> None:
        # Token calls go to the OAuth server, outside the API rate limit, but they are
        # requests all the same: they count in `http.calls`.
        token_http = HttpClient(
            REMOTE,
            session=self.http.session,
            timeout=self.http.timeout,
            max_retries=self.http.max_retries,
            backoff=self.http.backoff,
            max_wait=self.http.max_wait,
            sleep=self.http.sleep,
        )
        try:
            oauth.refresh(self.connection, token_http)
        finally:
            self.http.calls += token_http.calls


def _check_person_fields(data: dict) -> None:
    """Refuse fields v2 does not take (e.g. `first_name`, `email`): a programming error that
    Pipedrive would answer with a 400 or, worse, by quietly dropping the value."""
    unknown = sorted(set(data) - PERSON_WRITE_FIELDS)
    if unknown:
        raise ValueError(f"not Pipedrive v2 person fields: {', '.join(unknown)}")


def person_emails(person: dict) -> set[str]:
    """The normalised emails of a v2 person."""
    return {normalise_email(e.get("value")) for e in person.get("emails") or [] if e.get("value")}


def rfc3339(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _next_cursor(body: dict) -> str | None:
    return (body.get("additional_data") or {}).get("next_cursor") or None


def _v1_more(body: dict, fallback_start: int) -> tuple[bool, int]:
    """v1 pagination lives in `additional_data.pagination` (the spec also allows it flat)."""
    extra = body.get("additional_data") or {}
    pagination = extra.get("pagination") or extra
    more = bool(pagination.get("more_items_in_collection"))
    return more, int(pagination.get("next_start") or fallback_start)
