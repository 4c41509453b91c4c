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
    """A stable key for one event, the same whichever way it reached SyncBridge.

    A webhook delivery and the campaign history row of the same event carry only these facts
    in common: the kind of event, the recipient, the campaign and the time (to the second).
    So the key is made of them alone, and the scheduled history catch-up never runs an event
    the webhook already ran, or the other way round. Two events of one kind for one recipient
    in one campaign within the same second count as one.
    """
    basis = [
        event.trigger or f"{event.event_object}/{event.event_action}",
        event.email,
        event.campaign_id or event.campaign_name,
        event.occurred_at,
    ]
    digest = hashlib.sha256(json.dumps(basis).encode()).hexdigest()
    return f"{event.trigger or 'other'}:{digest[:40]}"


def payload_key(payload: Any) -> str:
    """`event_key` of a payload, or a hash of its body when it is not a campaign event."""
    try:
        event = parse_event(payload)
    except ValueError:
        return raw_key(payload)
    return event_key(event)


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
