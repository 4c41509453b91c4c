"""The baseline: the contacts that exist when real-time sync starts, recorded, never written.

At launch (and when a Snov.io list joins the sending lists later) SyncBridge records, for every
contact that already exists, the mapped values it holds now, as the base of its RecordLink.
Real time and the catch-up then act only on contacts created after that point or changed
since their base; the values they held at launch move only by a manual transfer.

Pipedrive persons changed between Launch and the moment the baseline lists them (their
webhook is already waiting) are recorded with their values of before that change (the
webhook's `previous`), so the change itself still syncs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from django.utils import timezone

from integrations.models import Integration, PendingChange, RecordLink
from integrations.sync import mapping, sanitize, threeway
from integrations.sync.context import SyncContext, link_key
from integrations.sync.locks import integration_lock


def take_baseline(integration: Integration, ctx: SyncContext | None = None) -> int:
    """Record every existing contact of the sending sides; returns how many were recorded."""
    started = timezone.now()
    Integration.objects.filter(pk=integration.pk).update(baseline_started_at=started)
    integration.baseline_started_at = started
    ctx = ctx or SyncContext(integration)
    recorded = 0
    if integration.sends_to_snovio:
        recorded += record_persons(ctx, ctx.pipedrive.iter_persons(), before=_launch(integration))
    lists: list[str] = []
    if integration.sends_to_pipedrive:
        lists = ctx.sending_list_ids_from(ctx.snovio.get_user_lists())
        for list_id in lists:
            recorded += record_prospects(ctx, ctx.snovio.iter_prospects(list_id))
    integration.baseline_lists = lists
    integration.baseline_at = timezone.now()
    Integration.objects.filter(pk=integration.pk).update(
        baseline_lists=lists, baseline_at=integration.baseline_at
    )
    return recorded


def ensure_baseline(integration: Integration, ctx: SyncContext | None = None) -> bool:
    """Take the baseline if it is missing, once (under the integration's lock); True when
    it exists afterwards, False when another worker holds the lock (try again later)."""
    if integration.baseline_at is not None:
        return True
    with integration_lock(integration.pk) as acquired:
        if not acquired:
            return False
        integration.refresh_from_db(fields=["baseline_at", "baseline_lists"])
        if integration.baseline_at is None:
            take_baseline(integration, ctx)
    return True


def _launch(integration: Integration) -> dt.datetime:
    return integration.launched_at or integration.baseline_started_at or timezone.now()


def record_persons(ctx: SyncContext, persons: Iterable[dict], before: dt.datetime) -> int:
    """Record persons that existed `before` (as they were then) and have no base yet."""
    earlier = _values_before_waiting_changes(ctx.integration, before)
    recorded = 0
    batch: list[dict] = []
    for person in persons:
        if _created_after(person, before):
            continue  # new since launch: real time carries it
        person = earlier.get(int(person["id"]), person)
        batch.append(sanitize.clean_person(person).record)  # as it would be stored
        if len(batch) >= 500:
            recorded += _record(ctx, persons=batch)
            batch = []
    return recorded + _record(ctx, persons=batch)


def record_prospects(ctx: SyncContext, prospects: Iterable[dict]) -> int:
    """Record prospects that have no base yet (a list added later keeps the bases it has)."""
    recorded = 0
    batch: list[dict] = []
    for prospect in prospects:
        batch.append(sanitize.clean_prospect(prospect).record)  # as it would be stored
        if len(batch) >= 500:
            recorded += _record(ctx, prospects=batch)
            batch = []
    return recorded + _record(ctx, prospects=batch)


def _record(ctx: SyncContext, persons: list[dict] = (), prospects: list[dict] = ()) -> int:
    """One page of contacts into their links' bases, in a few statements."""
    if not persons and not prospects:
        return 0
    ctx.person_org_names(persons)
    keyed: dict[str, tuple[str, dict]] = {}
    # A person without an email may be linked already, under its prospect's key (matched by
    # the second key): recorded on that link, not on a placeholder of its own.
    no_email = [int(p["id"]) for p in persons if not mapping.person_email(p)]
    linked = (
        dict(
            RecordLink.objects.filter(
                integration=ctx.integration, pipedrive_person_id__in=no_email
            ).values_list("pipedrive_person_id", "email")
        )
        if no_email
        else {}
    )
    for person in persons:
        email = mapping.person_email(person) or linked.get(int(person["id"]))
        keyed[email or f"pipedrive:{person['id']}"] = (threeway.PIPEDRIVE, person)
    for prospect in prospects:
        keyed[link_key(mapping.prospect_email(prospect), prospect.get("id"))] = (
            threeway.SNOVIO,
            prospect,
        )
    existing = {
        link.email: link
        for link in RecordLink.objects.filter(integration=ctx.integration, email__in=list(keyed))
    }
    new, changed = [], []
    for key, (side, record) in keyed.items():
        link = existing.get(key) or RecordLink(integration=ctx.integration, email=key)
        if (link.base or {}).get(side) is not None:
            continue  # already seen (synced, or recorded by an earlier baseline)
        if side == threeway.PIPEDRIVE:
            link.pipedrive_person_id = int(record["id"])
            link.base = ctx.base_of(link.base, _snovio_base(link), record)
        else:
            link.snovio_prospect_id = str(record.get("id") or "")
            link.base = ctx.base_of(link.base, mapping.snovio_values(record, ctx.spec), None)
        (changed if link.pk else new).append(link)
    RecordLink.objects.bulk_create(new, batch_size=500)
    RecordLink.objects.bulk_update(
        changed, ["base", "pipedrive_person_id", "snovio_prospect_id", "updated_at"], 500
    )
    return len(new) + len(changed)


def _snovio_base(link: RecordLink) -> dict | None:
    return (link.base or {}).get(threeway.SNOVIO)


def _created_after(person: dict, moment: dt.datetime) -> bool:
    added = remote_time(person.get("add_time"))
    return added is not None and added > moment


def remote_time(value: object) -> dt.datetime | None:
    """A remote timestamp ("2026-11-30T10:00:00Z" or "2026-11-30 10:00:00") as aware UTC."""
    if not value:
        return None
    text = str(value).strip().replace(" ", "T").replace("Z", "+00:00")
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _values_before_waiting_changes(integration: Integration, since: dt.datetime) -> dict:
    """Persons as they were before their first change waiting since `since` (webhook `previous`)."""
    earlier: dict[int, dict] = {}
    waiting = PendingChange.objects.filter(
        integration=integration,
        processed_at__isnull=True,
        kind="person.change",
        received_at__gte=since,
    ).order_by("-received_at", "-pk")
    for change in waiting:  # newest first, so the oldest `previous` is applied last
        data, previous = change.payload.get("data"), change.payload.get("previous")
        if not isinstance(data, dict) or not isinstance(previous, dict) or "id" not in data:
            continue
        person_id = int(data["id"])
        person = dict(earlier.get(person_id) or data)
        custom = {**(person.get("custom_fields") or {}), **(previous.get("custom_fields") or {})}
        person.update({k: v for k, v in previous.items() if k != "custom_fields"})
        person["custom_fields"] = custom
        earlier[person_id] = person
    return earlier
