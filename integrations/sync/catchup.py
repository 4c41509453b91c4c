"""The scheduled catch-up: what webhooks missed, or cannot tell, becomes held changes.

- Pipedrive: persons updated since the last catch-up (`updated_since`, with a small overlap).
- Snov.io has no webhook for prospect changes: the selected lists are paged and every
  prospect whose mapped values differ from what was last synced (RecordLink fingerprint),
  or that was never synced, becomes a change.
Found changes are stored as PendingChanges (source "catch_up") and applied in order by
`realtime.drain`, like webhook deliveries; a change already stored is not stored twice.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from integrations.models import Integration, PendingChange, RecordLink
from integrations.sync import echo, mapping
from integrations.sync.context import SyncContext

OVERLAP = timedelta(minutes=2)  # remote clocks and in-flight writes


def store_change(integration: Integration, source: str, kind: str, key: str, payload: dict) -> bool:
    """Store a change once per dedupe key; True if it is new."""
    try:
        with transaction.atomic():
            PendingChange.objects.create(
                integration=integration,
                source=source,
                kind=kind,
                dedupe_key=key[:200],
                payload=payload,
            )
    except IntegrityError:
        return False
    return True


def catch_up(integration: Integration, ctx: SyncContext | None = None) -> int:
    """Store the changes webhooks missed; returns how many were new."""
    ctx = ctx or SyncContext(integration)
    started = timezone.now()
    links = list(RecordLink.objects.filter(integration=integration))
    by_person = {link.pipedrive_person_id: link for link in links if link.pipedrive_person_id}
    by_prospect = {link.snovio_prospect_id: link for link in links if link.snovio_prospect_id}
    by_email = {link.email: link for link in links}
    found = 0
    if integration.sends_to_snovio:
        since = integration.pipedrive_synced_until or integration.launched_at or started
        waiting = _waiting_person_ids(integration)
        for person in ctx.pipedrive.iter_persons(updated_since=since - OVERLAP):
            if str(person["id"]) in waiting:
                continue  # a held webhook change re-reads this person anyway
            ctx.person_org_name(person)
            link = by_person.get(person["id"])
            if echo.is_echo(link, "pipedrive", mapping.pipedrive_values(person, ctx.spec)):
                continue
            meta = {
                "action": "change",
                "entity": "person",
                "entity_id": str(person["id"]),
                "timestamp": person.get("update_time") or started.isoformat(),
            }
            key = f"catch-up:pipedrive:person:{person['id']}:{meta['timestamp']}"
            found += store_change(
                integration,
                PendingChange.Source.CATCH_UP,
                "person.change",
                key,
                {"meta": meta, "data": person},
            )
        integration.pipedrive_synced_until = started
    if integration.sends_to_pipedrive:
        for list_id in ctx.sending_list_ids_from(ctx.snovio.get_user_lists()):
            for prospect in ctx.snovio.iter_prospects(list_id):
                values = mapping.snovio_values(prospect, ctx.spec)
                email = mapping.prospect_email(prospect)
                link = by_prospect.get(str(prospect.get("id"))) or by_email.get(email)
                if echo.is_echo(link, "snovio", values):
                    continue
                state = echo.snovio_fingerprint(values)
                key = f"catch-up:snovio:prospect:{prospect.get('id')}:{state}"
                found += store_change(
                    integration,
                    PendingChange.Source.CATCH_UP,
                    "prospect.change",
                    key,
                    {"prospect": prospect},
                )
        integration.snovio_synced_until = started
    integration.save(update_fields=["pipedrive_synced_until", "snovio_synced_until", "updated_at"])
    return found


def _waiting_person_ids(integration: Integration) -> set[str]:
    """Persons that already have a change waiting (it will read them fresh when applied)."""
    payloads = PendingChange.objects.filter(
        integration=integration, processed_at__isnull=True, kind__startswith="person."
    ).values_list("payload", flat=True)
    return {str((p.get("meta") or {}).get("entity_id")) for p in payloads}
