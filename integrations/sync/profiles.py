"""Linked prospects re-read by id, a few per catch-up: the only way to see a Snov.io change
of a field its list rows do not carry.

Snov.io's prospect-list rows document names and emails only; position, company and
location are in the profile answered by get-prospect-by-id, one call each within 60
requests a minute (docs/specs/snovio-shapes.md). So each catch-up re-reads the profiles of
the linked prospects checked longest ago, at most `SNOVIO_PROFILE_RECHECKS` of them (30 by
default, and never more than half of what the cycle has left for the contacts), taken out of
the catch-up's own share of Snov.io's budget, and a profile that differs from its base becomes
a change like any other. Every linked prospect is re-checked once per (linked prospects /
profiles per cycle) catch-ups: at 10,000 linked prospects and 20 a cycle, about every 42 hours
(`catchup.Freshness.profile_hours`).
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from integrations.models import Integration, RecordLink
from integrations.sync import deletes, mapping, sanitize, threeway
from integrations.sync.context import SyncContext


def per_catch_up() -> int:
    return max(0, int(getattr(settings, "SNOVIO_PROFILE_RECHECKS", 30)))


def _linked(integration: Integration) -> QuerySet[RecordLink]:
    return RecordLink.objects.filter(integration=integration, email__contains="@").exclude(
        snovio_prospect_id=""
    )


def linked_count(integration: Integration) -> int:
    """The linked prospects a round of the re-check reads (one COUNT, for the freshness)."""
    return _linked(integration).count()


def due(integration: Integration, limit: int) -> list[RecordLink]:
    """The linked prospects checked longest ago (a link's `updated_at` moves when it is
    synced or re-checked), read from the database a few at a time, never every link."""
    if limit <= 0:
        return []
    candidates = _linked(integration).order_by("updated_at", "pk")
    linked: list[RecordLink] = []
    for link in candidates.iterator(chunk_size=limit * 2):
        if (link.base or {}).get(threeway.SNOVIO) is not None:
            linked.append(link)
            if len(linked) == limit:
                break
    return linked


def recheck(
    ctx: SyncContext, integration: Integration, limit: int, store: Callable[[dict], bool]
) -> int:
    """Re-read up to `limit` due profiles; `store(prospect)` each that changed. Returns how
    many."""
    found = 0
    unchanged: list[int] = []
    # Snov.io has no delete webhook: a linked prospect not found by id was deleted there.
    carry_deletes = deletes.watches_snovio_deletes(integration)
    for link in due(integration, limit):
        profile = ctx.snovio.get_prospect_by_id(link.snovio_prospect_id)
        if profile is None:
            unchanged.append(link.pk)  # checked: back of the re-check queue
            if carry_deletes:
                found += store({"id": link.snovio_prospect_id, "emails": [{"email": link.email}]})
            continue
        profile.setdefault("emails", [{"email": link.email}])
        profile = sanitize.clean_prospect(profile).record
        values = mapping.snovio_values(profile, ctx.spec)
        _complete_base(link, profile, values)
        if threeway.changed_since(link.base[threeway.SNOVIO], values):
            found += store(profile)
        else:
            unchanged.append(link.pk)
    RecordLink.objects.filter(pk__in=unchanged).update(updated_at=timezone.now())
    return found


def _complete_base(link: RecordLink, profile: dict, values: dict) -> None:
    """A base recorded from list rows (the baseline, a transfer) lacks the profile's fields.
    The first profile read records them as they are: SyncBridge cannot tell a value held at
    launch from an edit made before that first read (a profile has one lastUpdateDate for all
    its fields), and rewriting a launch value would be worse than missing that edit. The
    links read first are the oldest: the baseline's, from the first catch-up after launch."""
    side_base = dict(link.base[threeway.SNOVIO])
    missing = [key for key in values if key not in side_base]
    if not missing:
        return
    side_base.update({key: values[key] for key in missing})
    link.base = {**link.base, threeway.SNOVIO: side_base}
    RecordLink.objects.filter(pk=link.pk).update(base=link.base, updated_at=timezone.now())
