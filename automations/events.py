"""Reading Snov.io campaign events: the facts automations act on, and the key that dedupes them."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from integrations.snovio.webhook_payload import read_webhook
from integrations.sync.matching import normalise_email


# --- reading an event ----------------------------------------------------------------------
@dataclass(frozen=True)
class CampaignEvent:
    """The facts of one Snov.io campaign event that automations act on."""

    trigger: str | None
    email: str
    name: str = ""
    first_name: str = ""
    last_name: str = ""
    event_object: str = ""
    event_action: str = ""
    campaign_id: str = ""
    campaign_name: str = ""
    prospect_id: str = ""
    subject: str = ""
    occurred_at: str = ""
    delivery_id: str = ""
    data: dict = field(default_factory=dict, compare=False, hash=False)


def parse_event(payload: dict) -> CampaignEvent:
    """Read a Snov.io campaign webhook payload (raises ValueError when it is not one)."""
    event = read_webhook(payload)
    data = payload.get("data") if isinstance(payload.get("data"), dict) else payload
    person = next((data[k] for k in ("prospect", "recipient") if isinstance(data.get(k), dict)), {})
    first = _text(data, person, "recipient_first_name", "first_name", "firstName")
    last = _text(data, person, "recipient_last_name", "last_name", "lastName")
    name = _text(data, person, "recipient_name", "prospect_name", "full_name", "fullName", "name")
    if not name:
        name = f"{first} {last}".strip()
    return CampaignEvent(
        trigger=event.trigger,
        email=normalise_email(event.email),
        name=name,
        first_name=first,
        last_name=last,
        event_object=event.event_object,
        event_action=event.event_action,
        campaign_id=event.campaign_id,
        campaign_name=event.campaign_name,
        prospect_id=event.prospect_id,
        subject=event.subject,
        occurred_at=event.occurred_at.isoformat() if event.occurred_at else "",
        delivery_id=_text(data, payload, "event_id", "eventId", "delivery_id", "message_id"),
        data=data,
    )


def event_key(event: CampaignEvent) -> str:
    """A stable key for one event: the same event delivered twice gets the same key.

    The delivery's own id when it carries one; otherwise every fact that tells two real
    events apart (the trigger, the recipient, the campaign, the time, the email's subject).
    """
    if event.delivery_id:
        basis: list[str] = [event.trigger or "", "id", event.delivery_id]
    else:
        basis = [
            event.trigger or f"{event.event_object}/{event.event_action}",
            event.email,
            event.campaign_id or event.campaign_name,
            event.occurred_at,
            event.prospect_id,
            event.subject,
        ]
    digest = hashlib.sha256(json.dumps(basis).encode()).hexdigest()
    return f"{event.trigger or 'other'}:{digest[:40]}"


def _text(primary: dict, secondary: dict, *keys: str) -> str:
    for source in (primary, secondary):
        for key in keys:
            value = source.get(key)
            if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
                return str(value).strip()
    return ""


def raw_key(payload: Any) -> str:
    body = json.dumps(payload, sort_keys=True, default=str)
    return "other:" + hashlib.sha256(body.encode()).hexdigest()[:40]
