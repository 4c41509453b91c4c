"""Snov.io's campaign history read back as campaign events, for what the webhooks missed.

Snov.io keeps per campaign the emails sent, opened, clicked and the replies (`/v1/emails-sent`,
`/v1/get-emails-opened`, `/v1/get-emails-clicked`, `/v1/get-emails-replies`) and the prospects
who finished it (`/v1/prospect-finished`). Each row becomes a payload of the same shape as a
webhook delivery, so the one parser (`integrations.snovio.webhook_payload`) reads both and
both reach the same dedupe keys: an event the webhook delivered is not run again, and one it
missed runs once. Bounces have no history endpoint; they arrive by webhook only.

Only events at or after the launch are read (earlier ones are not this integration's), and a
campaign's read starts `OVERLAP` before the newest event time its previous read saw (remote
clock), so rows written late are still found. A catch-up reads as many campaigns as its share
of Snov.io's requests allows (`CALLS_PER_CAMPAIGN` each), those read longest ago first, so the
cost per cycle does not grow with the number of campaigns.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from integrations.snovio.webhook_payload import parse_time

OVERLAP = timedelta(hours=1)

# History kind -> (client method, event_object, event_action, the row's time field).
KINDS = {
    "sent": ("get_emails_sent", "campaign_email", "sent", "sentDate"),
    "opened": ("get_emails_opened", "campaign_email", "opened", "visitedAt"),
    "clicked": ("get_emails_clicked", "campaign_email", "clicked", "visitedAt"),
    "replies": ("get_emails_replies", "campaign_reply", "received", "visitedAt"),
    "finished": ("get_prospects_finished", "prospect", "campaign_finished", "date"),
}
SOURCE = "campaign_history"
CALLS_PER_CAMPAIGN = len(KINDS)  # Snov.io requests to read one campaign's history


@dataclass
class HistoryEvent:
    at: datetime
    payload: dict


def row_time(row: dict, field: str) -> datetime | None:
    value = row.get(field) or row.get("date") or row.get("sentDate") or row.get("visitedAt")
    if isinstance(value, dict):  # Snov.io's serialised PHP DateTime
        value = value.get("date")
    return parse_time(value)


def row_payload(kind: str, row: dict, campaign: dict, at: datetime) -> dict:
    """One history row as a webhook-shaped payload (pure)."""
    _, event_object, event_action, _ = KINDS[kind]
    email = row.get("prospectEmail") or row.get("userEmail") or row.get("email") or ""
    first = row.get("prospectFirstName") or ""
    last = row.get("prospectLastName") or ""
    name = row.get("prospectName") or row.get("userName") or f"{first} {last}".strip()
    return {
        "event_object": event_object,
        "event_action": event_action,
        "source": SOURCE,
        "data": {
            "event_time": at.strftime("%Y-%m-%d %H:%M:%S"),
            "campaign_id": campaign.get("id") or row.get("campaignId") or "",
            "campaign_name": campaign.get("campaign") or row.get("campaign") or "",
            "prospect_id": row.get("prospectId") or "",
            "recipient_email": str(email).strip(),
            "recipient_name": name,
            "recipient_first_name": first,
            "recipient_last_name": last,
            "email_subject": row.get("emailSubject") or "",
            "email_body": row.get("emailBody") or "",
            "history_id": row.get("id") or row.get("hash") or "",
        },
    }


def readable(campaign: dict) -> bool:
    """A campaign with a history to read (a draft has sent nothing)."""
    return bool(campaign.get("id")) and str(campaign.get("status") or "").lower() != "draft"


def due_campaigns(campaigns: list[dict], read_at: dict[str, str], calls: int) -> list[dict]:
    """The campaigns a catch-up with `calls` Snov.io requests for the history reads (pure):
    never read first, then those read longest ago, as many as `CALLS_PER_CAMPAIGN` each fit.
    `read_at` maps a campaign id to when it was last read (ISO, UTC)."""
    ready = sorted(
        (c for c in campaigns if readable(c)), key=lambda c: read_at.get(str(c["id"]), "")
    )
    return ready[: max(0, calls) // CALLS_PER_CAMPAIGN]


def read_campaign(client: Any, campaign: dict, since: datetime | None) -> Iterator[HistoryEvent]:
    """One campaign's history events at or after `since` (one request per kind)."""
    for kind, (method, _, _, time_field) in KINDS.items():
        read = getattr(client, method, None)
        if read is None:
            continue
        for row in read(campaign["id"]):
            at = row_time(row, time_field)
            if at is None or (since is not None and at < since):
                continue
            yield HistoryEvent(at=at, payload=row_payload(kind, row, campaign, at))


def read_events(client: Any, since: datetime | None) -> Iterator[HistoryEvent]:
    """Every history event at or after `since`, campaign by campaign (oldest rows first)."""
    for campaign in client.get_user_campaigns():
        if readable(campaign):
            yield from read_campaign(client, campaign, since)


def window_start(launched_at: datetime | None, read_until: datetime | None) -> datetime | None:
    """Where a catch-up starts reading: the launch, or `OVERLAP` before the last event seen."""
    starts = [t for t in (launched_at, read_until and read_until - OVERLAP) if t is not None]
    return max(starts) if starts else None
