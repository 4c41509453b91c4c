"""Snov.io campaign events in, by webhook or from the campaign history, each taken once.

Both ways end in `receive`: the event is stored for the email history (a PendingChange) and
handed to the automations engine (an AutomationRun), each under the same key
(`automations.events.payload_key`: kind, recipient, campaign, time to the second). Whichever
way arrives second finds the key taken and does nothing, so an event runs its automation
and reaches the email history exactly once.

`recover` is what the scheduled catch-up adds: re-check the webhook subscriptions on both
sides (reactivating or recreating what Snov.io switched off or Pipedrive deleted), then read
the campaign history since the last catch-up.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone

from automations import engine
from automations.events import payload_key
from automations.models import AutomationRun
from integrations.catalog import client_for
from integrations.http import RemoteError
from integrations.models import Integration, PendingChange
from integrations.sync import campaign_history, runs, subscriptions
from integrations.sync.queue import store_change

log = logging.getLogger(__name__)


@dataclass
class Received:
    email_history: bool  # stored now for the email history (False: off, or already stored)
    automation_new: bool  # a new AutomationRun (False: the event was received before)


def receive(integration: Integration, payload: dict) -> Received:
    """Take one campaign event, once; raises when automations could not store it."""
    key = payload_key(payload)
    stored = False
    # Both stores in one transaction: one commit (one flush to disk) per event, not two, and an
    # event is taken by both or, when this raises, by neither (the sender delivers it again).
    with transaction.atomic():
        if integration.include_email_history and integration.sends_to_pipedrive:
            kind = f"{payload.get('event_object', 'event')}.{payload.get('event_action', '')}"
            stored = store_change(
                integration, PendingChange.Source.SNOVIO, kind[:50], "snovio:" + key, payload
            )
        _, new = engine.receive_event_once(integration, payload)
    if stored:
        runs.request_drain(integration.pk)  # once committed: see `request_drain`
    return Received(email_history=stored, automation_new=new)


def catch_up_history(integration: Integration, calls: int | None = None) -> str:
    """Receive the campaign history events since each campaign's last read (duplicates do
    nothing), with at most `calls` Snov.io requests (None: every campaign)."""
    if integration.snovio is None or not integration.sends_to_pipedrive:
        return "campaign history: not read (no campaign events flow to Pipedrive)"
    if calls is not None and calls < 1 + campaign_history.CALLS_PER_CAMPAIGN:
        return "campaign history: not read this cycle (no Snov.io requests left for it)"
    client = client_for(integration.snovio)
    campaigns = client.get_user_campaigns()
    reads: dict = dict((integration.catch_up_state or {}).get("history") or {})
    chosen = campaign_history.due_campaigns(
        campaigns,
        {cid: entry.get("read_at", "") for cid, entry in reads.items()},
        len(campaigns) * campaign_history.CALLS_PER_CAMPAIGN if calls is None else calls - 1,
    )
    seen = new = 0
    newest = None
    for campaign in chosen:
        cid = str(campaign["id"])
        events = list(
            campaign_history.read_campaign(client, campaign, _read_from(integration, reads, cid))
        )
        new += _receive_new(integration, events)
        seen += len(events)
        last = max((e.at for e in events), default=None)
        until = max(filter(None, [last, _until(reads.get(cid))]), default=None)
        reads[cid] = {"read_at": timezone.now().isoformat(), "until": until and until.isoformat()}
        newest = max(filter(None, [newest, last]), default=None)
    _save_reads(integration, reads, newest)
    ready = sum(1 for c in campaigns if campaign_history.readable(c))
    return (
        f"campaign history: {len(chosen)} of {ready} campaign(s) read, "
        f"{seen} event(s), {new} missed by webhooks"
    )


def _until(entry: dict | None) -> datetime | None:
    value = (entry or {}).get("until")
    return datetime.fromisoformat(value) if value else None


def _read_from(integration: Integration, reads: dict, campaign_id: str) -> datetime | None:
    """Where a campaign's read starts: `OVERLAP` before its newest event read, the launch for
    a campaign never read (its events are all new to it), or, before campaigns were read one
    by one, the newest event of the last read of them all."""
    launched = integration.launched_at.replace(microsecond=0) if integration.launched_at else None
    if campaign_id in reads:
        read_until = _until(reads[campaign_id])
    else:
        read_until = None if reads else integration.campaign_history_until
    return campaign_history.window_start(launched, read_until)


def _receive_new(integration: Integration, events: list[campaign_history.HistoryEvent]) -> int:
    taken = _already_taken(integration, [payload_key(e.payload) for e in events])
    new = 0
    for event in events:
        if payload_key(event.payload) not in taken:
            received = receive(integration, event.payload)
            new += received.automation_new or received.email_history
    return new


def _save_reads(integration: Integration, reads: dict, newest: datetime | None) -> None:
    """Each campaign's read, in the catch-up's state; the newest event for the settings page."""
    state = Integration.objects.filter(pk=integration.pk).values_list("catch_up_state", flat=True)
    fields: dict = {"catch_up_state": {**(state.first() or {}), "history": reads}}
    if newest is not None:
        fields["campaign_history_until"] = (
            Greatest(F("campaign_history_until"), newest)
            if integration.campaign_history_until
            else newest
        )
    Integration.objects.filter(pk=integration.pk).update(**fields)
    integration.catch_up_state = fields["catch_up_state"]


def _already_taken(integration: Integration, keys: list[str]) -> set[str]:
    """The keys both stores hold already (the overlap of each read is mostly these): looked
    up in bulk, so re-reading them costs two queries per chunk, not two inserts per row."""
    wants_history = integration.include_email_history and integration.sends_to_pipedrive
    taken: set[str] = set()
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        runs_have = set(
            AutomationRun.objects.filter(integration=integration, event_key__in=chunk).values_list(
                "event_key", flat=True
            )
        )
        if wants_history:
            stored = PendingChange.objects.filter(
                integration=integration, dedupe_key__in=["snovio:" + k for k in chunk]
            ).values_list("dedupe_key", flat=True)
            history_has = {k.removeprefix("snovio:") for k in stored}
            runs_have &= history_has
        taken |= runs_have
    return taken


def recover(integration_id: int, history_calls: int | None = None) -> str:
    """The catch-up's part for campaign events: subscriptions first, then the history (at
    most `history_calls` Snov.io requests for it)."""
    integration = Integration.objects.select_related("pipedrive", "snovio").get(pk=integration_id)
    if integration.pipedrive is None or integration.snovio is None:
        return "webhooks and campaign history: not checked (not connected to both apps)"
    notes = [subscriptions.summary(subscriptions.check_subscriptions(integration))]
    try:
        notes.append(catch_up_history(integration, history_calls))
    except RemoteError as exc:
        log.warning("integration %s: campaign history not read: %s", integration.pk, exc)
        notes.append(f"campaign history: not read ({exc})")
    return "; ".join(notes)
