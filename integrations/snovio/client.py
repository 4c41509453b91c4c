"""SnovioClient: one small method per Snov.io endpoint SyncBridge uses.

Every call goes through one `HttpClient` with the account's shared limiter (60 requests per
minute), sends `Authorization: Bearer <token>`, renews the token once on a 401 and then gives
up with `AuthError`. Any other 4xx, or a 200 with `"success": false`, is a permanent
`RemoteError`; exhausted retries on 5xx/timeouts are `RemoteError(permanent=False)`.

Prospects come back in one shape (docs/specs/snovio-shapes.md): `{id, name, firstName,
lastName, ...}` holding *only the fields the answer carried*, so a field Snov.io did not send
is unknown, never read as empty:
- a prospect-list row documents `id`, `name`, `firstName`, `lastName` and `emails[]` only;
- get-prospect-by-id and get-prospects-by-email document the profile (`country`,
  `locality`, `currentJob[]` -> `position`, `companyName`, `companySite`, `lists`, ...) but
  no `emails`, `phones` or `customFields`. A by-email answer gets the email it was asked
  for (Snov.io matched on it); a by-id answer gets none.
`has_detail(prospect)` tells a profile (by id or email) from a bare list row.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.conf import settings

from integrations.http import AuthError, HttpClient, RemoteError, raise_for_status
from integrations.ratelimit import snovio_limiter
from integrations.snovio import auth
from integrations.snovio.constants import (
    ADD_PROSPECT_PATH,
    CREATE_LIST_PATH,
    CUSTOM_FIELDS_PATH,
    EMAILS_CLICKED_PATH,
    EMAILS_OPENED_PATH,
    EMAILS_REPLIES_PATH,
    EMAILS_SENT_PATH,
    MAX_PER_PAGE,
    PROSPECT_BY_ID_PATH,
    PROSPECT_FIELDS,
    PROSPECT_LIST_PATH,
    PROSPECTS_BY_EMAIL_PATH,
    PROSPECTS_FINISHED_PATH,
    REMOTE,
    USER_CAMPAIGNS_PATH,
    USER_LISTS_PATH,
    WEBHOOKS_PATH,
)


class SnovioClient:
    def __init__(self, connection, http: HttpClient, base_url: str):
        self.connection = connection
        self.http = http
        self.base_url = base_url.rstrip("/")

    @classmethod
    def for_connection(cls, connection) -> SnovioClient:
        # The limit is per Snov.io account; the API User ID identifies the account.
        account = connection.client_id or connection.account_id or str(connection.pk)
        http = HttpClient(remote=REMOTE, limiter=snovio_limiter(account))
        return cls(connection, http, settings.SNOVIO_API_URL)

    # --- auth ------------------------------------------------------------------------------
    def check_credentials(self) -> None:
        """Request a fresh token; raises AuthError when Snov.io refuses the pair."""
        auth.access_token(self.connection, self.http, self.base_url, force=True)

    # --- lists and prospects ---------------------------------------------------------------
    def get_user_lists(self) -> list[dict]:
        return _rows(self._call("GET", USER_LISTS_PATH))

    def list_prospects_page(
        self, list_id, page: int = 1, per_page: int = MAX_PER_PAGE
    ) -> tuple[list[dict], bool]:
        """One page of a list's prospects and whether another page follows."""
        per_page = max(1, min(per_page, MAX_PER_PAGE))
        body = self._call(
            "POST",
            PROSPECT_LIST_PATH,
            data={"listId": list_id, "page": page, "perPage": per_page},
            idempotent=True,  # a read that Snov.io takes as a POST
        )
        prospects = [_prospect(p) for p in body.get("prospects") or []]
        total = (body.get("list") or {}).get("contacts")
        if isinstance(total, int):
            return prospects, bool(prospects) and page * per_page < total
        return prospects, len(prospects) >= per_page

    def iter_prospects(self, list_id) -> Iterator[dict]:
        page, more = 1, True
        while more:
            prospects, more = self.list_prospects_page(list_id, page)
            yield from prospects
            page += 1

    def add_prospect_to_list(self, list_id, prospect: dict, update: bool = True) -> dict:
        """Add (or, with `update`, update) a prospect; answers `{success, id, added, updated}`."""
        form = _prospect_form(prospect)
        form += [("listId", str(list_id)), ("updateContact", "1" if update else "0")]
        # Snov.io keeps one prospect per email in a list: sending it twice adds nothing more.
        return self._call("POST", ADD_PROSPECT_PATH, data=form, idempotent=True)

    def create_list(self, name: str) -> str:
        """Create a prospect list (`POST /v1/lists`, documented field `name`); its id."""
        body = self._call("POST", CREATE_LIST_PATH, data={"name": name})
        rows = _rows(body) or _rows(body.get("data") if isinstance(body, dict) else None)
        data = (rows[0].get("data") if rows else None) or (rows[0] if rows else {})
        return str(data.get("id") or "")

    def get_prospect_by_email(self, email: str) -> list[dict]:
        """The prospects Snov.io holds under `email` (an exact match), each with that email:
        the answer documents no `emails` field, but the match was made on it."""
        body = self._call("POST", PROSPECTS_BY_EMAIL_PATH, data={"email": email}, idempotent=True)
        found = [_prospect(p) for p in _rows(body.get("data"))]
        for prospect in found:
            prospect.setdefault("emails", [{"email": email}])
        return found

    def complete(self, prospect: dict) -> dict:
        """A list row with its profile read by id (one call); a profile is returned as is."""
        if has_detail(prospect) or not prospect.get("id"):
            return prospect
        return with_detail(prospect, self.get_prospect_by_id(prospect["id"]))

    def get_prospect_by_id(self, prospect_id) -> dict | None:
        body = self._call(
            "POST", PROSPECT_BY_ID_PATH, data={"id": prospect_id}, found=False, idempotent=True
        )
        data = body.get("data") if body.get("success") else None
        return _prospect(data) if isinstance(data, dict) else None

    def get_prospect_custom_fields(self) -> list[dict]:
        return _rows(self._call("GET", CUSTOM_FIELDS_PATH))

    # --- campaigns -------------------------------------------------------------------------
    def get_user_campaigns(self) -> list[dict]:
        return _rows(self._call("GET", USER_CAMPAIGNS_PATH))

    def get_emails_sent(self, campaign_id, offset: int = 0) -> list[dict]:
        return self._history(EMAILS_SENT_PATH, campaign_id, offset)

    def get_emails_opened(self, campaign_id, offset: int = 0) -> list[dict]:
        return self._history(EMAILS_OPENED_PATH, campaign_id, offset)

    def get_emails_clicked(self, campaign_id, offset: int = 0) -> list[dict]:
        return self._history(EMAILS_CLICKED_PATH, campaign_id, offset)

    def get_emails_replies(self, campaign_id, offset: int = 0) -> list[dict]:
        return self._history(EMAILS_REPLIES_PATH, campaign_id, offset)

    def get_prospects_finished(self, campaign_id, offset: int = 0) -> list[dict]:
        return self._history(PROSPECTS_FINISHED_PATH, campaign_id, offset)

    # --- webhooks (v2) ---------------------------------------------------------------------
    def list_webhooks(self) -> list[dict]:
        """Flat webhook models `{id, end_point, event_object, event_action, status, created_at}`."""
        body = self._call("GET", WEBHOOKS_PATH)
        # Each element of the documented list answer is wrapped in its own {"data": {...}}.
        return [w.get("data", w) for w in _rows(body.get("data"))]

    def create_webhook(self, event_object: str, event_action: str, endpoint_url: str) -> dict:
        body = self._call(
            "POST",
            WEBHOOKS_PATH,
            json={
                "event_object": event_object,
                "event_action": event_action,
                "endpoint_url": endpoint_url,
            },
        )
        return body.get("data") or {}

    def change_webhook_status(self, webhook_id, status: str) -> dict:
        """Switch a webhook on ("active") or off ("deactivated")."""
        body = self._call("PUT", f"{WEBHOOKS_PATH}/{webhook_id}", json={"status": status})
        return body.get("data") or {}

    def delete_webhook(self, webhook_id) -> None:
        self._call("DELETE", f"{WEBHOOKS_PATH}/{webhook_id}")

    # --- plumbing --------------------------------------------------------------------------
    def _history(self, path: str, campaign_id, offset: int) -> list[dict]:
        params = {"campaignId": campaign_id}
        if offset:
            params["offset"] = offset
        return _rows(self._call("GET", path, params=params))

    def _call(self, method: str, path: str, found: bool = True, **kwargs) -> Any:
        """Send with the cached token, renew once on a 401, raise on any refusal.

        `found=False` lets a lookup answer `{"success": false}` (nothing found) without raising.
        """
        response = self._send(method, path, self._token(), **kwargs)
        if response.status_code == 401:
            response = self._send(method, path, self._token(force=True), **kwargs)
            if response.status_code == 401:
                raise AuthError(
                    f"Snov.io refused a fresh access token on {method} {path}",
                    remote=REMOTE,
                    status=401,
                )
        raise_for_status(response, REMOTE)
        body = _json(response, path)
        if found and isinstance(body, dict) and body.get("success") is False:
            raise RemoteError(
                f"Snov.io: {method} {path} failed: {_message(body)}",
                remote=REMOTE,
                status=response.status_code,
                permanent=True,
                body=body,
            )
        return body

    def _send(self, method: str, path: str, token: str, **kwargs):
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        return self.http.request(method, self.base_url + path, headers=headers, **kwargs)

    def _token(self, force: bool = False) -> str:
        return auth.access_token(self.connection, self.http, self.base_url, force=force)


def _json(response, path: str) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise RemoteError(
            f"Snov.io: {path} answered something other than JSON", remote=REMOTE
        ) from exc


def _rows(body: Any) -> list[dict]:
    """A list answer; some endpoints wrap it as {"data": [...]}."""
    if isinstance(body, dict):
        body = body.get("data")
    return [row for row in body or [] if isinstance(row, dict)]


def _message(body: dict) -> str:
    for key in ("message", "errors", "error"):
        if body.get(key):
            return str(body[key])
    return "no reason given"


def _prospect_form(prospect: dict) -> list[tuple[str, str]]:
    """Form fields for add-prospect-to-list, in the documented bracket notation."""
    form = [("email", _first_email(prospect))]
    name = prospect.get("fullName") or prospect.get("name")
    if name:
        form.append(("fullName", str(name)))
    form += [
        (f, str(prospect[f])) for f in PROSPECT_FIELDS[1:] if prospect.get(f) not in (None, "")
    ]
    form += [("phones[]", _phone(p)) for p in prospect.get("phones") or [] if _phone(p)]
    for label, value in (prospect.get("customFields") or {}).items():
        if value is not None:
            form.append((f"customFields[{label}]", str(value)))
    for network, link in (prospect.get("socialLinks") or {}).items():
        form.append((f"socialLinks[{network}]", str(link)))
    return form


def _first_email(prospect: dict) -> str:
    if prospect.get("email"):
        return str(prospect["email"])
    for entry in prospect.get("emails") or []:
        email = entry.get("email") if isinstance(entry, dict) else entry
        if email:
            return str(email)
    return ""


def _phone(value: Any) -> str:
    """A phone as Snov.io takes it: a plain string (Pipedrive-style dicts are unwrapped)."""
    if isinstance(value, dict):
        value = value.get("value") or value.get("phone")
    return str(value or "")


# Keys only a profile answer (by id or by email) carries; a list row has none of them.
DETAIL_KEY = "currentJob"


def has_detail(prospect: dict) -> bool:
    """Whether the prospect came from a profile answer (position, company, location known)."""
    return DETAIL_KEY in prospect


def with_detail(row: dict, profile: dict | None) -> dict:
    """A list row completed with its profile (the row's emails kept: profiles have none)."""
    if not profile:
        return row
    return {**row, **{k: v for k, v in profile.items() if k != "emails"}}


def _prospect(raw: dict) -> dict:
    """One prospect shape whichever endpoint it came from; absent fields stay absent."""
    out = dict(raw)
    first, last = raw.get("firstName") or "", raw.get("lastName") or ""
    out["id"] = raw.get("id")
    if any(k in raw for k in ("name", "firstName", "lastName")):
        out["name"] = raw.get("name") or f"{first} {last}".strip()
        out["firstName"], out["lastName"] = first, last
    if "emails" in raw:
        emails = []
        for entry in raw.get("emails") or []:
            entry = entry if isinstance(entry, dict) else {"email": entry}
            emails.append({**entry, "email": entry.get("email")})
        out["emails"] = emails
    jobs = raw.get("currentJob", raw.get("currentJobs"))
    if jobs is not None:
        job = next(iter(jobs or []), None) or {}
        out[DETAIL_KEY] = jobs or []
        out["position"] = raw.get("position") or job.get("position") or ""
        out["companyName"] = raw.get("companyName") or job.get("companyName") or ""
        out["companySite"] = raw.get("companySite") or job.get("site") or ""
        out["country"] = raw.get("country") or ""
        out["locality"] = raw.get("locality") or ""
    if "phones" in raw:
        out["phones"] = [_phone(p) for p in raw.get("phones") or [] if _phone(p)]
    if "customFields" in raw:
        out["customFields"] = _custom_fields(raw.get("customFields"))
    return out


def _custom_fields(value: Any) -> dict:
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, list):  # tolerate [{label|name, value}] as well
        return {
            str(f.get("label") or f.get("name")): f.get("value")
            for f in value
            if isinstance(f, dict)
        }
    return {}
