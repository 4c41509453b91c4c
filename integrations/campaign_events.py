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

from django.db import transaction
from django.db.models import F
from django.db.models.functions import Greatest

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


def catch_up_history(integration: Integration) -> str:
    """Receive every campaign history event since the last catch-up (duplicates do nothing)."""
    if integration.snovio is None or not integration.sends_to_pipedrive:
        return "campaign history: not read (no campaign events flow to Pipedrive)"
    launched = integration.launched_at.replace(microsecond=0) if integration.launched_at else None
    since = campaign_history.window_start(launched, integration.campaign_history_until)
    events = list(campaign_history.read_events(client_for(integration.snovio), since))
    taken = _already_taken(integration, [payload_key(e.payload) for e in events])
    new = 0
    newest = None
    for event in events:
        if payload_key(event.payload) not in taken:
            received = receive(integration, event.payload)
            new += received.automation_new or received.email_history
        newest = event.at if newest is None or event.at > newest else newest
    seen = len(events)
    if newest is not None:
        Integration.objects.filter(pk=integration.pk).update(
            campaign_history_until=Greatest(F("campaign_history_until"), newest)
            if integration.campaign_history_until
            else newest
        )
    return f"campaign history: {seen} event(s) read, {new} missed by webhooks"


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


def recover(integration_id: int) -> str:
    """The catch-up's part for campaign events: subscriptions first, then the history."""
    integration = Integration.objects.select_related("pipedrive", "snovio").get(pk=integration_id)
    if integration.pipedrive is None or integration.snovio is None:
        return "webhooks and campaign history: not checked (not connected to both apps)"
    notes = [subscriptions.summary(subscriptions.check_subscriptions(integration))]
    try:
        notes.append(catch_up_history(integration))
    except RemoteError as exc:
        log.warning("integration %s: campaign history not read: %s", integration.pk, exc)
        notes.append(f"campaign history: not read ({exc})")
    return "; ".join(notes)
