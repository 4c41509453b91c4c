"""Read a Snov.io webhook delivery into the few facts SyncBridge acts on.

Verified: deliveries are an HTTP POST with a JSON body; Snov.io says the data includes the
recipient's email, the time of the event, the campaign name and id, the email subject and the
email body. NOT verified: the exact key names and nesting (the knowledge-base examples could not
be read). The sandbox sends

    {"event_object": "campaign_reply", "event_action": "received", "webhook_id": 7,
     "created_at": 1767225600,
     "data": {"event_time": "2026-01-01 00:00:00", "event_type": "reply",
              "campaign_id": 201, "campaign_name": "Demo outreach",
              "prospect_id": "...", "recipient_email": "...", "recipient_name": "...",
              "sender_email": "...", "email_subject": "...", "email_body": "..."}}

(field names borrowed from Snov.io's documented recipients-activity report), and this reader
also accepts the other spellings a real delivery may plausibly use, so only this module needs
to change once a real payload is seen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from integrations.snovio.constants import trigger_for


@dataclass
class SnovioWebhookEvent:
    event_object: str
    event_action: str
    trigger: str | None  # automations Trigger value, None for events SyncBridge ignores
    email: str  # lower-cased; "" when the payload names no recipient
    campaign_id: str = ""
    campaign_name: str = ""
    prospect_id: str = ""
    subject: str = ""
    body: str = ""
    occurred_at: datetime | None = None
    raw: dict = field(default_factory=dict)


def read_webhook(payload: Any) -> SnovioWebhookEvent:
    """Parse one delivery; raises ValueError when it is not a Snov.io campaign event."""
    if not isinstance(payload, dict):
        raise ValueError("Snov.io webhook body is not a JSON object")
    data = payload.get("data") if isinstance(payload.get("data"), dict) else payload
    event = payload.get("event") if isinstance(payload.get("event"), dict) else {}
    obj = _pick(payload, data, event, keys=("event_object", "object"))
    action = _pick(payload, data, event, keys=("event_action", "action"))
    if not obj or not action:
        raise ValueError("Snov.io webhook body names no event_object/event_action")
    campaign = data.get("campaign") if isinstance(data.get("campaign"), dict) else {}
    person = _person(data)
    return SnovioWebhookEvent(
        event_object=obj,
        event_action=action,
        trigger=trigger_for(obj, action),
        email=_email(data, person),
        campaign_id=str(
            _first(data, {}, "campaign_id", "campaignId") or _first(campaign, {}, "id")
        ),
        campaign_name=str(
            _first(data, {}, "campaign_name", "campaign") or _first(campaign, {}, "name", "title")
        ),
        prospect_id=str(_first(data, {}, "prospect_id", "prospectId") or _first(person, {}, "id")),
        subject=str(_first(data, {}, "email_subject", "emailSubject", "subject")),
        body=str(_first(data, {}, "email_body", "emailBody", "body")),
        occurred_at=parse_time(
            _first(data, payload, "event_time", "created_at", "date", "timestamp")
        ),
        raw=payload,
    )


def _pick(*sources: dict, keys: tuple[str, ...]) -> str:
    for source in sources:
        for key in keys:
            if isinstance(source.get(key), str) and source[key]:
                return source[key]
    return ""


def _person(data: dict) -> dict:
    for key in ("prospect", "recipient", "contact"):
        if isinstance(data.get(key), dict):
            return data[key]
    return {}


def _email(data: dict, person: dict) -> str:
    value = _first(
        data, person, "recipient_email", "prospect_email", "prospectEmail", "userEmail", "email"
    )
    return str(value).strip().lower() if isinstance(value, str) else ""


def _first(primary: dict, secondary: dict, *keys: str) -> Any:
    """The first non-empty scalar under any of `keys`, looked up in both dicts."""
    for source in (primary, secondary):
        for key in keys:
            value = source.get(key)
            if value not in (None, "") and not isinstance(value, dict | list):
                return value
    return ""


def parse_time(value: Any) -> datetime | None:
    """A Snov.io time (epoch seconds or 'YYYY-mm-dd HH:MM:SS[.ffffff]', UTC) to the second."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace(" ", "T", 1).split(".")[0])
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None
