"""Constants and module helpers shared by the simulator's resource mixins."""

from __future__ import annotations

import base64
import copy
import hashlib
import html
import json
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.conf import settings

from integrations.pipedrive.constants import (
    PAGE_LIMIT,
    WEBHOOK_VERSION,
)
from integrations.pipedrive.token_costs import is_search, token_cost
from integrations.sandbox.messages import SandboxRequest, SandboxResponse, json_response

# Each kind of record starts at its own number, so a deal id passed as a person id fails.
FIRST_IDS = {
    "user": 11001,
    "org": 301,
    "person": 1001,
    "deal": 5001,
    "activity": 9001,
    "pipeline": 1,
    "stage": 1,
    "field": 4001,
    "option": 101,
    "webhook": 701,
}
CODE_LIFETIME = 300
REFRESH_TOKEN_IDLE_LIFETIME = 60 * 86400  # a refresh token unused for 60 days expires
DEFAULT_LIMIT = 100
COMPANY = {"id": 7001, "name": "Sandbox Company", "domain": "sandbox-company"}
USERS = (
    ("Sam Seller", "sam.seller@sandbox-company.example", False),
    ("Pat Pipeline", "pat.pipeline@sandbox-company.example", False),
    ("Robin Admin", "robin.admin@sandbox-company.example", True),
)
ADMIN_NAME = "Robin Admin"  # the user who connects SyncBridge (OAuth consent, API token)
PIPELINES = {
    "Sales": ("Lead in", "Contact made", "Demo scheduled", "Proposal made", "Negotiation"),
    "Partnerships": ("Identified", "First call", "Pilot", "Contract sent", "Signed"),
}
SYSTEM_FIELDS = (
    ("name", "Name", "varchar"),
    ("first_name", "First name", "varchar"),
    ("last_name", "Last name", "varchar"),
    ("email", "Email", "varchar"),
    ("phone", "Phone", "phone"),
    ("job_title", "Job title", "varchar"),
    ("org_id", "Organization", "org"),
    ("owner_id", "Owner", "user"),
)
CUSTOM_FIELDS = (
    ("Industry", "text", ()),
    ("Employees", "double", ()),
    ("Lead source", "enum", ("Snov.io campaign", "Website", "Referral", "Event")),
    ("Last event date", "date", ()),
)
LABEL_FIELD_KEY = "label_ids"  # person labels, a set field (v1 personFields, v2 persons)
DEFAULT_PERSON_LABELS = ("Customer", "Hot lead", "Warm lead", "Cold lead")
PERSON_SCALARS = ("name", "owner_id", "org_id", "visible_to", "notes", "birthday", "job_title")
PERSON_SCALARS += ("add_time", "marketing_status", "postal_address", "label_ids", "im")
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
TIME_RE = re.compile(r"^\d{2}:\d{2}(:\d{2})?$")


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def custom_field_key(name: str) -> str:
    """A stable 40-character hex key, like Pipedrive's per-account field hashes."""
    return hashlib.sha1(f"sandbox-person-field:{name}".encode()).hexdigest()


def _empty_state() -> dict:
    return {
        "seq": dict(FIRST_IDS),
        "company": dict(COMPANY),
        "users": {},
        "orgs": {},
        "persons": {},
        "deals": {},
        "activities": {},
        "pipelines": {},
        "stages": {},
        "person_fields": {},
        "webhooks": {},
        "auth_codes": {},
        "access_tokens": {},
        "refresh_tokens": {},
        "api_token_revoked": False,
    }


# --- routes: (method, path pattern, handler name) ------------------------------------------
_ROUTES = (
    ("GET", r"/api/v2/persons", "list_persons"),
    ("POST", r"/api/v2/persons", "create_person"),
    ("GET", r"/api/v2/persons/search", "search_persons"),
    ("GET", r"/api/v2/persons/(?P<id>\d+)", "get_person"),
    ("PATCH", r"/api/v2/persons/(?P<id>\d+)", "update_person"),
    ("DELETE", r"/api/v2/persons/(?P<id>\d+)", "delete_person"),
    ("GET", r"/api/v2/organizations", "list_orgs"),
    ("POST", r"/api/v2/organizations", "create_org"),
    ("GET", r"/api/v2/organizations/search", "search_orgs"),
    ("GET", r"/api/v2/organizations/(?P<id>\d+)", "get_org"),
    ("GET", r"/api/v2/deals", "list_deals"),
    ("POST", r"/api/v2/deals", "create_deal"),
    ("GET", r"/api/v2/deals/(?P<id>\d+)", "get_deal"),
    ("PATCH", r"/api/v2/deals/(?P<id>\d+)", "update_deal"),
    ("GET", r"/api/v2/activities", "list_activities"),
    ("POST", r"/api/v2/activities", "create_activity"),
    ("GET", r"/api/v2/activities/(?P<id>\d+)", "get_activity"),
    ("PATCH", r"/api/v2/activities/(?P<id>\d+)", "update_activity"),
    ("GET", r"/api/v2/pipelines", "list_pipelines"),
    ("GET", r"/api/v2/pipelines/(?P<id>\d+)", "get_pipeline"),
    ("GET", r"/api/v2/stages", "list_stages"),
    ("GET", r"/api/v2/stages/(?P<id>\d+)", "get_stage"),
    ("GET", r"/api/v1/users", "list_users"),
    ("GET", r"/api/v1/users/me", "get_me"),
    ("GET", r"/api/v1/personFields", "list_person_fields"),
    ("POST", r"/api/v2/personFields/(?P<field_code>\w+)/options", "add_person_field_options"),
    ("GET", r"/api/v1/webhooks", "list_webhooks"),
    ("POST", r"/api/v1/webhooks", "create_webhook"),
    ("DELETE", r"/api/v1/webhooks/(?P<id>\d+)", "delete_webhook"),
)
ROUTES = tuple((m, re.compile(f"^{p}$"), name) for m, p, name in _ROUTES)


def _ok(data: Any, additional_data: dict | None = None) -> SandboxResponse:
    body: dict[str, Any] = {"success": True, "data": data}
    if additional_data is not None:
        body["additional_data"] = additional_data
    return json_response(body)


def _error(status: int, message: str, **extra: Any) -> SandboxResponse:
    return json_response({"success": False, "error": message, **extra}, status)


def _html(status: int, title: str, body: str) -> SandboxResponse:
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto}"
        "button{padding:.5rem 1.5rem;margin-right:.5rem}</style></head><body>"
        f"<p><em>Pipedrive (sandbox)</em></p><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return SandboxResponse(status, page, content_type="text/html; charset=utf-8")


def _redirect(url: str) -> SandboxResponse:
    return SandboxResponse(302, b"", headers={"Location": url}, content_type="text/html")


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def _basic_auth_matches(header: str) -> bool:
    if not header.lower().startswith("basic "):
        return False
    try:
        decoded = base64.b64decode(header[6:].strip()).decode()
    except ValueError:
        return False
    client_id, _, secret = decoded.partition(":")
    return (client_id, secret) == (
        settings.PIPEDRIVE_CLIENT_ID,
        settings.PIPEDRIVE_CLIENT_SECRET,
    )


def _json_body(request: SandboxRequest) -> dict:
    try:
        data = request.json()
    except ValueError as exc:
        raise ApiError(400, f"Body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ApiError(400, "Body must be a JSON object")
    return data


def _public(record: dict) -> dict:
    """A deep copy without null fields (the spec marks most fields as not nullable)."""
    return {k: copy.deepcopy(v) for k, v in record.items() if v is not None and k != "custom"}


def _sorted(table: dict) -> list[dict]:
    return sorted(table.values(), key=lambda r: r["id"])


def _contacts(items: Any) -> list[dict]:
    """emails/phones as `{value, primary, label}` with exactly one primary."""
    cleaned = [
        {
            "value": item["value"].strip(),
            "primary": bool(item.get("primary")),
            "label": item.get("label") or "work",
        }
        for item in items or []
        if item.get("value", "").strip()
    ]
    if cleaned and not any(c["primary"] for c in cleaned):
        cleaned[0]["primary"] = True
    return cleaned


def _shortcuts(fields: dict) -> dict:
    """Test-helper conveniences: `email=` / `phone=` become v2 `emails` / `phones`."""
    data = dict(fields)
    for short, key in (("email", "emails"), ("phone", "phones")):
        if short in data:
            value = data.pop(short)
            data[key] = [{"value": value, "primary": True, "label": "work"}] if value else []
    return data


def _merge_custom_fields(current: dict, changes: dict) -> dict:
    """Apply custom field changes (null clears); return the old values of what changed."""
    previous = {}
    for key, value in changes.items():
        if current.get(key) == value:
            continue
        previous[key] = current.get(key)
        if value is None:
            current.pop(key, None)
        else:
            current[key] = value
    return previous


def _emails_of(person: dict) -> set[str]:
    return {e["value"].strip().lower() for e in person["emails"]}


def _search_score(person: dict, term: str, fields: list[str]) -> float:
    values: list[str] = []
    if "email" in fields:
        values += [e["value"] for e in person["emails"]]
    if "phone" in fields:
        values += [p["value"] for p in person["phones"]]
    if "name" in fields:
        values.append(person.get("name") or "")
    if "notes" in fields:
        values.append(person.get("notes") or "")
    if "custom_fields" in fields:
        values += [v for v in person["custom_fields"].values() if isinstance(v, str)]
    best = 0.0
    for value in (v.lower() for v in values if v):
        if value == term:
            return 1.0
        if term in value:
            best = max(best, 0.4)  # the partial match real search returns too
    return best


def _hook_matches(hook: dict, action: str, entity: str) -> bool:
    return (
        hook["version"] == WEBHOOK_VERSION
        and hook["event_action"] in (action, "*")
        and hook["event_object"] in (entity, "*")
    )


def _hook_headers(hook: dict) -> dict:
    headers = {"User-Agent": "Pipedrive Webhooks (sandbox)"}
    if hook.get("http_auth_user"):
        pair = f"{hook['http_auth_user']}:{hook.get('http_auth_password') or ''}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    return headers


def _limit(request: SandboxRequest) -> int:
    limit = _int_param(request, "limit", DEFAULT_LIMIT)
    if limit < 1 or limit > PAGE_LIMIT:
        raise ApiError(400, f"limit must be between 1 and {PAGE_LIMIT}")
    return limit


def _int_param(request: SandboxRequest, name: str, default: int) -> int:
    value = request.query.get(name)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ApiError(400, f"{name} must be an integer") from exc


def _encode_cursor(value: int) -> str:
    raw = json.dumps({"field": "id", "id": value}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return int(json.loads(raw)["id"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ApiError(400, "Invalid cursor") from exc


def _iso(timestamp: float, millis: bool = False) -> str:
    moment = datetime.fromtimestamp(timestamp, UTC)
    if millis:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace(" ", "T"))
    except ValueError as exc:
        raise ApiError(400, f"Invalid time {value!r}: use RFC 3339") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# --- rate limits, as Pipedrive's "Rate limiting" page describes them ------------------------
BURST_PERIOD = 2.0  # every limit below is per rolling 2 s window
DAY = 86400


class PipedriveLimits:
    """Pipedrive's limits, each off (None) until a test, the demo or a benchmark sets it.

    - `burst`: requests per 2 s per OAuth access token; `api_token_burst`: the lower limit of
      API-token requests (both per token, not per company);
    - `search`: the search endpoints' own limit, 10 per 2 s on every plan, besides the burst;
    - `daily_budget`: tokens per company per UTC day, each endpoint costing its `x-token-cost`;
    - `open_deals`: the plan's cap on open deals; a create beyond it is refused with a 403
      and the code `feature_capping_deals_limit` (Pipedrive's changelog, 2022-03-30).

    Over a limit: 429 with `x-ratelimit-*` (and `Retry-After`); a spent budget: 429 with
    `x-daily-ratelimit-token-remaining: 0`, until 00:00 UTC.
    """

    def __init__(self) -> None:
        self.burst: int | None = None
        self.api_token_burst: int | None = None
        self.search: int | None = None
        self.daily_budget: int | None = None
        self.open_deals: int | None = None
        self.hits: dict[str, list[float]] = {}
        self.spent: dict[int, int] = {}  # UTC day number -> tokens spent that day
        self.refused: dict[str, int] = {"burst": 0, "search": 0, "daily budget": 0}

    def configure(self, **limits: int | None) -> None:
        for name, value in limits.items():
            if name not in ("burst", "api_token_burst", "search", "daily_budget", "open_deals"):
                raise ValueError(f"unknown Pipedrive limit {name!r}")
            setattr(self, name, None if value in (None, "") else int(value))
        if "daily_budget" in limits:
            self.spent.clear()

    def open_deals_refusal(self, deals: dict) -> SandboxResponse | None:
        if self.open_deals is None:
            return None
        if sum(1 for d in deals.values() if d["status"] == "open") < self.open_deals:
            return None
        return _error(
            403,
            "Couldn't add the deal. Open deals limit reached.",
            error_info="Please check developers.pipedrive.com for more information.",
            data=None,
            additional_data=None,
            code="feature_capping_deals_limit",
        )

    def spent_today(self, now: float) -> int:
        return self.spent.get(int(now // DAY), 0)

    def check(
        self, request: SandboxRequest, token: str, api_token: bool, now: float
    ) -> tuple[SandboxResponse | None, dict[str, str]]:
        """(a 429 answer or None, the rate-limit headers for the answer)."""
        headers: dict[str, str] = {}
        windows = [("burst:" + token, self.api_token_burst if api_token else self.burst)]
        if is_search(request.path):
            windows.append(("search:" + token, self.search))
        for key, limit in windows:
            if limit is None:
                continue
            hits = [t for t in self.hits.get(key, []) if t > now - BURST_PERIOD]
            self.hits[key] = hits
            reset = (hits[0] + BURST_PERIOD - now) if hits else BURST_PERIOD
            if len(hits) >= limit:
                self.refused[key.split(":", 1)[0]] += 1
                refused = {
                    "x-ratelimit-limit": str(limit),
                    "x-ratelimit-remaining": "0",
                    "x-ratelimit-reset": f"{reset:.2f}",
                    "Retry-After": str(max(1, round(reset))),
                }
                return _error(429, "Request over limit", errorCode=429), refused
            hits.append(now)
            # The tightest window speaks in the headers (the search one for a search).
            headers = {
                "x-ratelimit-limit": str(limit),
                "x-ratelimit-remaining": str(limit - len(hits)),
                "x-ratelimit-reset": f"{reset:.2f}",
            }
        if self.daily_budget is not None:
            day = int(now // DAY)
            cost = token_cost(request.method, request.path)
            spent = self.spent.get(day, 0)
            budget = {"x-daily-ratelimit-token-limit": str(self.daily_budget)}
            if spent + cost > self.daily_budget:
                budget["x-daily-ratelimit-token-remaining"] = "0"
                self.refused["daily budget"] += 1
                message = "Daily token budget exceeded"
                return _error(429, message, errorCode=429), headers | budget
            self.spent[day] = spent + cost
            budget["x-daily-ratelimit-token-remaining"] = str(self.daily_budget - spent - cost)
            headers |= budget
        return None, headers
