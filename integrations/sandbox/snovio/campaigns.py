"""Campaigns, their history rows and the events that fire webhooks."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from integrations.sandbox.messages import SandboxResponse, json_response
from integrations.sandbox.snovio.common import (
    EVENTS,
    SENDER_EMAIL,
    _email_text,
    _int,
    _php_date,
)
from integrations.snovio import constants as C


class CampaignsMixin:
    def _campaigns(self, params: dict) -> SandboxResponse:
        return json_response([dict(c) for c in self.state["campaigns"].values()])

    def _history(self, kind: str, params: dict) -> SandboxResponse:
        self._require(params, "campaignId")
        rows = self.state["history"].get(str(params.get("campaignId") or ""), {}).get(kind, [])
        if params.get("offset") in (None, ""):
            return json_response(rows[-C.HISTORY_PAGE_SIZE :])  # "the last 10,000"
        offset = _int(params.get("offset"), 0, "offset")
        return json_response(rows[offset : offset + C.HISTORY_PAGE_SIZE])

    def _new_campaign(self, title: str, list_id, status: str = "Active") -> dict:
        now = int(self._now())
        campaign = {
            "id": self._next("campaign"),
            "campaign": title,
            "list_id": list_id,
            "status": status,
            "created_at": now,
            "updated_at": now,
            "started_at": now if status != "Draft" else None,
            "hash": hashlib.md5(f"campaign-{title}-{now}".encode()).hexdigest(),
        }
        self.state["campaigns"][str(campaign["id"])] = campaign
        return campaign

    def _campaign_named(self, name_or_id: str) -> dict | None:
        wanted = str(name_or_id).strip()
        found = self.state["campaigns"].get(wanted)
        return found or next(
            (
                c
                for c in self.state["campaigns"].values()
                if c["campaign"].lower() == wanted.lower()
            ),
            None,
        )

    def _campaign_for(self, name_or_id: str, prospect: dict) -> dict:
        found = self._campaign_named(name_or_id)
        if found is None:  # firing into a new campaign starts it, on the prospect's first list
            first_list = prospect["lists"][0] if prospect["lists"] else None
            found = self._new_campaign(name_or_id, first_list)
        return found

    # === campaign events ===================================================================
    def _record_event(self, event: str, prospect: dict, campaign: dict) -> list[tuple[str, str]]:
        """Count the event on the recipient, add a history row; the webhook events it raises."""
        kind, _, counter, status = EVENTS[event]
        recipient = prospect["campaigns"].setdefault(
            str(campaign["id"]), {"id": campaign["id"], "campaign": campaign["campaign"]}
        )
        first = counter is not None and not recipient.get(counter)
        if counter:
            recipient[counter] = recipient.get(counter, 0) + 1
        if status:
            recipient["status"] = status
        history = self.state["history"].setdefault(str(campaign["id"]), {})
        history.setdefault(kind, []).append(self._history_row(kind, prospect, campaign))
        pairs = [C.TRIGGER_WEBHOOKS[event]]
        if first and event == "email_sent":
            pairs.append(("campaign_email", "first_sent"))
        if first and event == "reply_received":
            pairs.append(("campaign_reply", "first_received"))
        return pairs

    def _history_row(self, kind: str, prospect: dict, campaign: dict) -> dict:
        now = self._now()
        row_id = hashlib.md5(f"record-{self._next('record')}".encode()).hexdigest()
        name = self._prospect_out(prospect)["name"]
        email = prospect["emails"][0]["email"]
        if kind in ("sent", "finished", "bounced"):
            row = {"userName": name, "userEmail": email, "campaign": campaign["campaign"]}
            row = {"sentDate": _php_date(now), **row} if kind == "sent" else row
            if kind != "sent":
                row |= {"prospectId": prospect["id"], "date": _php_date(now)}
            return {**row, "hash": row_id, "id": row_id}
        subject, body = _email_text(prospect, campaign)
        return {
            "visitedAt": _php_date(now),
            "campaignId": campaign["id"],
            "campaign": campaign["campaign"],
            "prospectId": prospect["id"],
            "prospectFirstName": prospect["firstName"],
            "prospectLastName": prospect["lastName"],
            "prospectName": name,
            "sourcePage": None,
            "source": "copy",
            "locality": prospect["locality"] or None,
            "industry": prospect["customFields"].get("Industry"),
            "country": prospect["country"] or None,
            "prospectEmail": email,
            "hash": row_id,
            "emailSubject": subject,
            "emailBody": body,
            "skills": "",
            "links": None,
            "customFields": None,
            "id": row_id,
        }

    def _deliveries(self, pairs, event, prospect, campaign) -> list[tuple[dict, dict]]:
        out = []
        for hook in self.state["webhooks"].values():
            pair = (hook["event_object"], hook["event_action"])
            if hook["status"] == C.WEBHOOK_ACTIVE and pair in pairs:
                payload = self._payload(hook, event, prospect, campaign)
                meta = {"webhook_id": hook["id"], "url": hook["end_point"], "event": "/".join(pair)}
                out.append((meta, payload))
        return out

    def _payload(self, hook: dict, event: str, prospect: dict, campaign: dict) -> dict:
        """The delivery body (shape not verified; see integrations/snovio/webhook_payload.py)."""
        now = self._now()
        subject, body = _email_text(prospect, campaign)
        out = self._prospect_out(prospect)
        return {
            "event_object": hook["event_object"],
            "event_action": hook["event_action"],
            "webhook_id": hook["id"],
            "created_at": int(now),
            "data": {
                "event_time": datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d %H:%M:%S"),
                "event_type": EVENTS[event][1],
                "campaign_id": campaign["id"],
                "campaign_name": campaign["campaign"],
                "prospect_id": prospect["id"],
                "recipient_email": out["emails"][0]["email"],
                "recipient_name": out["name"],
                "recipient_first_name": out["firstName"],
                "recipient_last_name": out["lastName"],
                "sender_email": SENDER_EMAIL,
                "email_subject": subject,
                "email_body": body,
            },
        }
