"""Email history: each campaign email to a synced prospect is a done activity on its person.

The first event of a campaign email (usually "sent") creates a done `email` activity on the
Pipedrive person with the email's subject and content; later events of the same email
(opened, clicked, replied, bounced) update the status shown on that same activity. Which
activity belongs to which email is kept in an `EmailActivity` row, reserved *before* the
activity is created: a worker that dies between the create and recording the id leaves a
reserved row, and the retry finds the activity on the person by what identifies the email (an
email activity with its subject whose note names its campaign) instead of creating a second
one. The note holds only what the salesperson reads: no internal marker. The activity belongs
to the person's owner in Pipedrive, like the contact. A status never goes back (an "opened"
that arrives after a "replied" changes nothing).
"""

from __future__ import annotations

import hashlib
import html

from integrations.http import create_once
from integrations.models import EmailActivity, RecordLink, SyncEvent
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


def campaign_line(event: SnovioWebhookEvent) -> str:
    """The note's campaign, as written: with the subject, it tells one email's activity."""
    campaign = html.escape(event.campaign_name or event.campaign_id or "Snov.io campaign")
    return f"<b>Campaign:</b> {campaign}</p>"


def activity_note(status: str, event: SnovioWebhookEvent) -> str:
    return f"<p><b>Status:</b> {html.escape(status)} · {campaign_line(event)}{event.body or ''}"


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
    email = _Email(ctx, link, event, status)
    # Committed at once (autocommit; the drain holds no transaction), so the reservation
    # survives a worker that dies after the create below.
    row, reserved_now = EmailActivity.objects.get_or_create(
        integration=integration, email_key=email.key, defaults={"status": status}
    )
    if row.activity_id is None:
        found = None if reserved_now else email.find_activity()
        if found is None:
            return email.create(row)
        email.adopt(row, found)
        return f"found activity {found['id']} of an interrupted attempt; {email.advance(row)}"
    return email.advance(row)


class _Email:
    """One campaign email event and the activity that shows it."""

    def __init__(self, ctx: SyncContext, link: RecordLink, event: SnovioWebhookEvent, status: str):
        self.ctx, self.link, self.event, self.status = ctx, link, event, status
        self.key = activity_key(event)
        self.subject = event.subject or f"Email from {event.campaign_name or 'a Snov.io campaign'}"
        self.person_id = link.pipedrive_person_id

    def changes(self, activity_id: int, status: str) -> dict:
        return {
            "activity_key": self.key,
            "activity_id": activity_id,
            "status": status,
            "campaign": self.event.campaign_name,
        }

    def find_activity(self) -> dict | None:
        """The activity an interrupted attempt made (any page of the person's): an email
        activity with this subject whose note names this campaign. The email's key is exactly
        campaign, recipient (the person) and subject, so nothing else matches."""
        campaign = campaign_line(self.event)
        for activity in self.ctx.pipedrive.list_activities(person_id=self.person_id):
            if (
                activity.get("type") == "email"
                and activity.get("subject") == self.subject
                and campaign in (activity.get("note") or "")
            ):
                return activity
        return None

    def contact_owner(self) -> int | None:
        """The person's owner in Pipedrive: the salesperson who works the contact."""
        return self.ctx.pipedrive.get_person(self.person_id).get("owner_id")

    def create(self, row: EmailActivity) -> str:
        """Create the activity under the reserved row; a lost answer is found, not repeated."""
        if row.status != self.status:
            row.status = self.status
            row.save(update_fields=["status", "updated_at"])
        data = {
            "subject": self.subject,
            "type": "email",
            "done": True,
            "person_id": self.person_id,
            "note": activity_note(self.status, self.event),
        }
        if owner := self.contact_owner():
            data["owner_id"] = owner
        if self.event.occurred_at:
            data["due_date"] = self.event.occurred_at.date().isoformat()
            data["due_time"] = self.event.occurred_at.strftime("%H:%M")
        activity = create_once(
            lambda: self.ctx.pipedrive.create_activity(data),
            self.find_activity,
            http=self.ctx.pipedrive.http,
            what="activity",
        )
        self._created(row, activity["id"], "")
        return f"created activity {activity['id']} ({self.status})"

    def adopt(self, row: EmailActivity, activity: dict) -> None:
        """Record the activity an interrupted attempt created (with the status it wrote)."""
        self._created(row, activity["id"], " (found after an interrupted attempt)")

    def _created(self, row: EmailActivity, activity_id: int, note: str) -> None:
        row.activity_id = activity_id
        row.save(update_fields=["activity_id", "updated_at"])
        self.ctx.event(
            TO_PIPEDRIVE,
            Outcome.CREATED,
            email=self.link.email,
            record_id=activity_id,
            reason=f"Email “{self.subject}” added as a done activity ({row.status}){note}",
            changes=self.changes(activity_id, row.status),
        )

    def advance(self, row: EmailActivity) -> str:
        """Show a newer status on the email's activity; an older or equal one changes nothing."""
        before = row.status or "Sent"
        if RANK.get(self.status, 0) <= RANK.get(before, 0):
            return f"unchanged: activity {row.activity_id} already shows {before}"
        note = activity_note(self.status, self.event)
        self.ctx.pipedrive.update_activity(
            row.activity_id, {"subject": self.subject, "note": note, "done": True}
        )
        row.status = self.status
        row.save(update_fields=["status", "updated_at"])
        self.ctx.event(
            TO_PIPEDRIVE,
            Outcome.UPDATED,
            email=self.link.email,
            record_id=row.activity_id,
            reason=f"Email “{self.subject}”: status {before} → {self.status}",
            changes={
                **self.changes(row.activity_id, self.status),
                "fields": {"status": {"old": before, "new": self.status}},
            },
        )
        return f"updated activity {row.activity_id} ({before} -> {self.status})"
