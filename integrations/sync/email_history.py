"""Email history: each campaign email to a synced prospect is a done activity on its person.

The first event of a campaign email (usually "sent") creates a done `email` activity on the
Pipedrive person with the email's subject and content; later events of the same email
(opened, clicked, replied, bounced) update the status shown on that same activity. Which
activity belongs to which email is kept on the SyncEvent that created it
(`changes.activity_key` / `changes.activity_id`), so no second activity is ever made.
A status never goes back (an "opened" that arrives after a "replied" changes nothing).
"""

from __future__ import annotations

import hashlib
import html

from integrations.models import SyncEvent
from integrations.snovio.webhook_payload import SnovioWebhookEvent, read_webhook
from integrations.sync.context import TO_PIPEDRIVE, SyncContext
from integrations.sync.matching import normalise_email

Outcome = SyncEvent.Outcome

# (event_object, event_action) -> status label, in the order a status may advance.
STATUSES = {
    ("campaign_email", "sent"): "Sent",
    ("campaign_email", "first_sent"): "Sent",
    ("campaign_email", "opened"): "Opened",
    ("campaign_email", "clicked"): "Clicked",
    ("campaign_reply", "autoreply_received"): "Auto-replied",
    ("campaign_reply", "received"): "Replied",
    ("campaign_reply", "first_received"): "Replied",
    ("campaign_email", "bounced"): "Bounced",
}
RANK = {"Sent": 1, "Opened": 2, "Clicked": 3, "Auto-replied": 4, "Replied": 5, "Bounced": 6}


def status_of(event_object: str, event_action: str) -> str | None:
    return STATUSES.get((event_object, event_action))


def activity_key(event: SnovioWebhookEvent) -> str:
    """One campaign email: the campaign, the recipient and the subject."""
    raw = f"{event.campaign_id}|{normalise_email(event.email)}|{event.subject.strip()}"
    return hashlib.sha1(raw.encode()).hexdigest()


def activity_note(status: str, event: SnovioWebhookEvent) -> str:
    campaign = html.escape(event.campaign_name or event.campaign_id or "Snov.io campaign")
    return (
        f"<p><b>Status:</b> {html.escape(status)} · <b>Campaign:</b> {campaign}</p>"
        f"{event.body or ''}"
    )


def record_email(ctx: SyncContext, payload: dict) -> str:
    """Apply one Snov.io campaign event to the email history; returns what happened."""
    integration = ctx.integration
    if not (integration.include_email_history and integration.sends_to_pipedrive):
        return "ignored: email history is off"
    try:
        event = read_webhook(payload)
    except ValueError as exc:
        return f"ignored: {exc}"
    status = status_of(event.event_object, event.event_action)
    if status is None:
        return f"ignored: {event.event_object}/{event.event_action} is not an email event"
    link = ctx.link_for(email=event.email) if event.email else None
    if link is None or not link.pipedrive_person_id:
        return f"ignored: {event.email or 'the recipient'} is not a synced prospect"
    key = activity_key(event)
    earlier = (
        SyncEvent.objects.filter(
            integration=integration, email=link.email, changes__activity_key=key
        )
        .order_by("-at", "-pk")
        .first()
    )
    subject = event.subject or f"Email from {event.campaign_name or 'a Snov.io campaign'}"
    note = activity_note(status, event)
    changes = {"activity_key": key, "status": status, "campaign": event.campaign_name}
    if earlier is None:
        data = {
            "subject": subject,
            "type": "email",
            "done": True,
            "person_id": link.pipedrive_person_id,
            "note": note,
        }
        if event.occurred_at:
            data["due_date"] = event.occurred_at.date().isoformat()
            data["due_time"] = event.occurred_at.strftime("%H:%M")
        activity = ctx.pipedrive.create_activity(data)
        changes["activity_id"] = activity["id"]
        ctx.event(
            TO_PIPEDRIVE,
            Outcome.CREATED,
            email=link.email,
            record_id=activity["id"],
            reason=f"Email “{subject}” added as a done activity ({status})",
            changes=changes,
        )
        return f"created activity {activity['id']} ({status})"
    activity_id = earlier.changes.get("activity_id")
    before = earlier.changes.get("status") or "Sent"
    if RANK.get(status, 0) <= RANK.get(before, 0):
        return f"unchanged: activity {activity_id} already shows {before}"
    ctx.pipedrive.update_activity(activity_id, {"subject": subject, "note": note, "done": True})
    changes["activity_id"] = activity_id
    ctx.event(
        TO_PIPEDRIVE,
        Outcome.UPDATED,
        email=link.email,
        record_id=activity_id,
        reason=f"Email “{subject}”: status {before} → {status}",
        changes={**changes, "fields": {"status": {"old": before, "new": status}}},
    )
    return f"updated activity {activity_id} ({before} -> {status})"
