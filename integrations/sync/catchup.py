"""The scheduled catch-up: what webhooks missed, or cannot tell, becomes held changes.

- Pipedrive: persons updated since the last catch-up (`updated_since`, with an overlap for
  remote clocks and in-flight writes). A person whose mapped values equal its base (the
  echo of SyncBridge's own write, a change of unmapped fields) is no change.
- Snov.io has no webhook for prospect changes: the sending lists are paged and a prospect
  whose mapped values differ from its base, or that has no base (new since launch), is a change.
- A sending list SyncBridge has not seen before: created after launch, its prospects are new
  and sync; otherwise (a list chosen later) its prospects are added to the baseline, unwritten.

Found changes are stored as PendingChanges (source "catch_up"), one per contact however
often it is found, and applied in order by `realtime.drain`, like webhook deliveries. A contact
whose change failed is found again by the next catch-up (its base did not move), until its
changes failed `MAX_FAILED_CHANGES` times in a row: then it waits for the Retry button.
Contacts that existed at launch and have not changed since are never changes.
"""

from __future__ import annotations

import datetime as dt
from datetime import timedelta

from django.utils import timezone

from integrations.models import Integration, PendingChange, RecordLink
from integrations.sync import baseline, mapping, profiles, sanitize, threeway
from integrations.sync.context import SyncContext, link_key
from integrations.sync.queue import store_change

OVERLAP = timedelta(minutes=2)  # remote clocks and in-flight writes
MAX_FAILED_CHANGES = 3  # then the contact waits for the Retry button


def catch_up(integration: Integration, ctx: SyncContext | None = None) -> int:
    """Store the changes webhooks missed; returns how many were new."""
    ctx = ctx or SyncContext(integration)
    started = timezone.now()
    notes: list[str] = []
    if integration.baseline_at is None:
        if not baseline.ensure_baseline(integration, ctx):
            return 0  # another worker is recording the baseline right now
        notes.append("recorded the contacts that existed at launch as the baseline")
    links = list(RecordLink.objects.filter(integration=integration))
    found = 0
    if integration.sends_to_snovio:
        found += _pipedrive_changes(integration, ctx, links, started)
    if integration.sends_to_pipedrive:
        found += _snovio_changes(integration, ctx, links, notes)
    notes.insert(0, f"{found} change(s) found")
    integration.last_catch_up_at = started
    integration.last_catch_up_found = found
    integration.last_catch_up_note = "; ".join(notes)
    Integration.objects.filter(pk=integration.pk).update(
        pipedrive_synced_until=integration.pipedrive_synced_until,
        baseline_lists=integration.baseline_lists,
        last_catch_up_at=started,
        last_catch_up_found=found,
        last_catch_up_note=integration.last_catch_up_note,
    )
    return found


def _pipedrive_changes(
    integration: Integration, ctx: SyncContext, links: list[RecordLink], started: dt.datetime
) -> int:
    by_person = {link.pipedrive_person_id: link for link in links if link.pipedrive_person_id}
    since = (
        integration.pipedrive_synced_until
        or integration.baseline_started_at
        or integration.launched_at
        or started
    )
    before = integration.baseline_started_at or since
    found = 0
    unseen: list[dict] = []
    for raw in ctx.pipedrive.iter_persons(updated_since=since - OVERLAP):
        person = sanitize.clean_person(raw).record  # compared as it would be stored
        link = by_person.get(person["id"])
        side_base = (link.base or {}).get(threeway.PIPEDRIVE) if link else None
        if side_base is None and not _new_since(person, before):
            unseen.append(person)  # existed before the baseline, never recorded: record it now
            continue
        ctx.person_org_name(person)
        values = mapping.pipedrive_values(person, ctx.spec)
        if side_base is not None and not threeway.changed_since(side_base, values):
            continue
        meta = {
            "action": "change",
            "entity": "person",
            "entity_id": str(person["id"]),
            "timestamp": person.get("update_time") or started.isoformat(),
        }
        found += _store_found(
            integration, started, "person.change", {"meta": meta, "data": person}, person["id"]
        )
    baseline.record_persons(ctx, unseen, before=started)
    integration.pipedrive_synced_until = started
    return found


def _store_found(
    integration: Integration, run: dt.datetime, kind: str, payload: dict, record_id: object
) -> bool:
    """One change per contact found different from its base, unless one already waits, or
    its changes failed `MAX_FAILED_CHANGES` times in a row (then only Retry queues it)."""
    side = "pipedrive" if kind.startswith("person.") else "snovio"
    record_key = f"{side}:{record_id}"
    if gave_up(integration, record_key):
        return False
    return store_change(
        integration,
        PendingChange.Source.CATCH_UP,
        kind,
        f"catch-up:{run.isoformat()}:{record_key}",  # once per catch-up run
        payload,
        record_key=record_key,
    )


def gave_up(integration: Integration, record_key: str) -> bool:
    """Whether the contact's last `MAX_FAILED_CHANGES` changes all failed for good."""
    outcomes = PendingChange.objects.filter(
        integration=integration, record_key=record_key, processed_at__isnull=False
    ).order_by("-processed_at", "-pk")[:MAX_FAILED_CHANGES]
    recent = [o.startswith("failed:") for o in outcomes.values_list("outcome", flat=True)]
    return len(recent) == MAX_FAILED_CHANGES and all(recent)


def _new_since(person: dict, moment: dt.datetime) -> bool:
    added = baseline.remote_time(person.get("add_time"))
    # Pipedrive's times have whole seconds: a person of the baseline's own second is new.
    return added is None or added >= moment.replace(microsecond=0)


def _snovio_changes(
    integration: Integration, ctx: SyncContext, links: list[RecordLink], notes: list[str]
) -> int:
    by_prospect = {link.snovio_prospect_id: link for link in links if link.snovio_prospect_id}
    by_email = {link.email: link for link in links}
    lists = ctx.snovio.get_user_lists()
    known = set(integration.baseline_lists or [])
    now = timezone.now()
    found = 0
    for list_id in ctx.sending_list_ids_from(lists):
        if list_id not in known:
            if not _created_after_launch(integration, lists, list_id):
                count = baseline.record_prospects(ctx, ctx.snovio.iter_prospects(list_id))
                notes.append(f"list {list_id} joined the sending lists: {count} recorded")
                known.add(list_id)
                continue
            notes.append(f"list {list_id} is new since launch: its prospects sync")
            known.add(list_id)
        for raw in ctx.snovio.iter_prospects(list_id):
            prospect = sanitize.clean_prospect(raw).record  # compared as it would be stored
            prospect_id = str(prospect.get("id") or "")
            email = mapping.prospect_email(prospect)
            link = by_prospect.get(prospect_id) or by_email.get(link_key(email, prospect_id))
            side_base = (link.base or {}).get(threeway.SNOVIO) if link else None
            values = mapping.snovio_values(prospect, ctx.spec)
            if side_base is not None and not threeway.changed_since(side_base, values):
                continue
            found += _store_found(
                integration, now, "prospect.change", {"prospect": prospect}, prospect_id
            )
    integration.baseline_lists = sorted(known)
    # Rows carry names and emails only: a few linked profiles are re-read by id each time.
    return found + profiles.recheck(
        ctx,
        links,
        lambda p: _store_found(integration, now, "prospect.change", {"prospect": p}, p["id"]),
    )


def _created_after_launch(integration: Integration, lists: list[dict], list_id: str) -> bool:
    """A list created after launch brings new prospects; an older list joins the baseline."""
    for item in lists:
        if str(item.get("id")) == list_id:
            created = item.get("creationDate")
            if isinstance(created, dict):
                created = created.get("date")
            moment = baseline.remote_time(created)
            launched = integration.baseline_started_at or integration.launched_at
            # Snov.io's dates have whole seconds: a list of the baseline's own second that the
            # baseline did not record is new.
            return bool(moment and launched and moment >= launched.replace(microsecond=0))
    return False
