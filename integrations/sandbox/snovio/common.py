"""Constants and module helpers shared by the simulator's resource mixins."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from integrations.sandbox.messages import SandboxRequest, SandboxResponse, json_response
from integrations.snovio import constants as C

USER_ID = 1313777
SENDER_EMAIL = "outreach@sandbox-sender.example"
DEFAULT_CAMPAIGN = "Demo outreach"
MAX_PER_PAGE = 5000  # the current docs; the client itself never asks for more than 100
OTHER_WEBHOOK_EVENTS = {
    ("company", "found_domains_by_names"),
    ("prospect", "found_by_li_url"),
    ("email_verification", "verified"),
}
HISTORY_ROUTES = {
    C.EMAILS_SENT_PATH: "sent",
    C.EMAILS_OPENED_PATH: "opened",
    C.EMAILS_CLICKED_PATH: "clicked",
    C.EMAILS_REPLIES_PATH: "replies",
    C.PROSPECTS_FINISHED_PATH: "finished",
}
# Trigger -> (history kind, recipients-activity event_type, counter on the recipient, status).
EVENTS = {
    "email_sent": ("sent", "sent", "sentCount", "Active"),
    "email_opened": ("opened", "open", "openCount", None),
    "link_clicked": ("clicked", "click", "clickCount", None),
    "reply_received": ("replies", "reply", "replyCount", "Replied"),
    "email_bounced": ("bounced", "bounce", "bounceCount", "Bounced"),
    "campaign_finished": ("finished", "campaign_finished", None, "Finished"),
}
WEBHOOK_ITEM = re.compile(r"^/v2/webhooks/(\d+)$")


class BadRequest(Exception):
    """A request Snov.io would refuse; becomes a 400 with this message."""


def _empty_state() -> dict:
    return {
        "next": {"list": 1000001, "prospect": 1, "campaign": 201, "webhook": 1, "record": 1},
        "tokens": {},
        "revoked": False,
        "lists": {},
        "prospects": {},
        "custom_fields": [],
        "campaigns": {},
        "history": {},
        "webhooks": {},
    }


def _params(request: SandboxRequest) -> dict[str, Any]:
    """Query string plus body (JSON or form with Snov.io's bracket notation), merged."""
    merged: dict[str, Any] = dict(request.query)
    if not request.body:
        return merged
    if "json" in request.header("content-type"):
        try:
            body = request.json()
        except ValueError as exc:
            raise BadRequest("Body is not valid JSON") from exc
        merged.update(body if isinstance(body, dict) else {})
    else:
        merged.update(_form(request.body))
    return merged


def _form(body: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, values in parse_qs(body.decode(), keep_blank_values=True).items():
        match = re.fullmatch(r"(\w+)\[([^\]]*)\]", key)
        if match and (match[2] == "" or match[2].isdigit()):
            out.setdefault(match[1], []).extend(values)  # phones[] / phones[0]
        elif match:
            out.setdefault(match[1], {})[match[2].strip("'\"")] = values[-1]
        else:
            out[key] = values if len(values) > 1 else values[0]
    return out


def _seed_fields(record: dict) -> dict:
    """Prospect fields from seed.py's snake_case records (or camelCase test kwargs)."""
    aliases = {
        "first_name": "firstName",
        "last_name": "lastName",
        "full_name": "fullName",
        "company": "companyName",
        "company_name": "companyName",
        "custom_fields": "customFields",
        "social_links": "socialLinks",
    }
    fields = {aliases.get(k, k): v for k, v in record.items()}
    if fields.get("phone"):
        fields["phones"] = [fields.pop("phone")]
    return fields


def _email_entry(email: str, status: str) -> dict:
    return {"email": email, "status": status, "isVerified": status != C.EMAIL_UNVERIFIED}


def _email_text(prospect: dict, campaign: dict) -> tuple[str, str]:
    company = prospect["companyName"] or "your team"
    subject = f"{campaign['campaign']}: a quick idea for {company}"
    body = f"<p>Hi {prospect['firstName'] or 'there'},</p><p>May I show you what we do?</p>"
    return subject, body


def _summary(event: str, prospect: dict, campaign: dict, deliveries: list[dict]) -> str:
    failed = sum(1 for d in deliveries if not 200 <= (d["status"] or 0) < 300)
    text = (
        f"{C.TRIGGER_LABELS[event]} for {prospect['emails'][0]['email']} in campaign "
        f"“{campaign['campaign']}”: {len(deliveries)} webhook delivery(ies)"
    )
    return text + (f", {failed} failed" if failed else "")


def _php_date(timestamp: float) -> dict:
    """Snov.io's v1 date object (a serialised PHP DateTime)."""
    text = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S.000000")
    return {"date": text, "timezone_type": 3, "timezone": "UTC"}


def _int(value: Any, default: int, name: str) -> int:
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"{name} must be a whole number") from exc
    if number < (0 if name == "offset" else 1):
        raise BadRequest(f"{name} is out of range")
    return number


def _truthy(value: Any) -> bool:
    return value is True or str(value).strip().lower() in ("1", "true", "yes", "on")


def _error(status: int, message: str) -> SandboxResponse:
    return json_response({"success": False, "message": message}, status)


def _oauth_error(status: int, code: str, message: str) -> SandboxResponse:
    return json_response({"error": code, "error_description": message, "message": message}, status)


def _not_allowed() -> SandboxResponse:
    return _error(405, "Method not allowed")
