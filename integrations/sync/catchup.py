"""The scheduled catch-up: what webhooks missed, or cannot tell, becomes held changes.

- Pipedrive: persons updated since the last catch-up (`updated_since`, with an overlap for
  remote clocks and in-flight writes). A person whose mapped values equal its base (the
  echo of SyncBridge's own write, a change of unmapped fields) is no change.
- Snov.io has no webhook for prospect changes: the sending lists are paged and a prospect
  whose mapped values differ from its base, or that has no base (new since launch), is a change.
  The cost per cycle does not grow with the lists: new prospects are looked for first (a list
  whose size grew has its newest pages read, at both ends, as the order of a list's pages is not
  documented), then a rolling re-check reads the next pages from where the last cycle stopped,
  within `RECHECK_SHARE` of Snov.io's request budget, which every Snov.io call of the cycle
  counts against (the setup check, the webhooks and the campaign history come first, see
  `integrations.tasks.catch_up`), and a few linked profiles are re-read by id
  (`profiles`). `freshness` says how often each is re-checked at the current size.
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
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from itertools import islice

from django.db.models import Q
from django.utils import timezone

from integrations.models import Integration, PendingChange, RecordLink
from integrations.snovio.constants import MAX_PER_PAGE, RATE_LIMIT_PER_MINUTE
from integrations.sync import baseline, mapping, profiles, queue, sanitize, threeway
from integrations.sync.context import SyncContext, link_key
from integrations.sync.queue import store_change

OVERLAP = timedelta(minutes=2)  # remote clocks and in-flight writes
MAX_FAILED_CHANGES = 3  # then the contact waits for the Retry button
CYCLE_MINUTES = 5  # the catch-up's schedule (`runs.ensure_schedule`)
# The share of Snov.io's request budget a catch-up cycle may spend, every call of the cycle
# counted (`integrations.tasks.catch_up`): webhooks-driven changes and transfers keep the rest.
RECHECK_SHARE = 0.20
# Of the cycle's calls, at most this share reads campaign history (the rest: the accounts'
# setup, the webhook subscriptions, then the contacts).
HISTORY_SHARE = 1 / 3
LINK_BATCH = 500  # Pipedrive persons whose links are read in one query


def snovio_calls_per_cycle() -> int:
    """Snov.io requests one catch-up cycle may make (60 at 60 requests/min every 5 minutes)."""
    return int(RATE_LIMIT_PER_MINUTE * CYCLE_MINUTES * RECHECK_SHARE)


def history_calls_per_cycle() -> int:
    """Snov.io requests one cycle may spend on the campaign history (20 of 60)."""
    return int(snovio_calls_per_cycle() * HISTORY_SHARE)


@dataclass
class Freshness:
    """How recent the catch-up's view of Snov.io is, at the lists' current size."""

    prospects: int
    pages: int
    pages_per_cycle: int
    last_round_at: dt.datetime | None
    linked: int = 0  # linked prospects whose profiles the re-check reads by id
    profiles_per_cycle: int = 0

    @property
    def cycles(self) -> int:
        return max(1, math.ceil(self.pages / self.pages_per_cycle)) if self.pages else 1

    @property
    def minutes(self) -> int:
        """Every prospect is re-checked within this many minutes at this size."""
        return self.cycles * CYCLE_MINUTES

    @property
    def profile_hours(self) -> float | None:
        """Every linked profile (position, company, location) re-read within this many hours."""
        if not self.linked or not self.profiles_per_cycle:
            return None
        return math.ceil(self.linked / self.profiles_per_cycle) * CYCLE_MINUTES / 60


def freshness(integration: Integration) -> Freshness | None:
    """None before the first catch-up has seen the Snov.io lists."""
    state = integration.catch_up_state or {}
    if "prospects" not in state:
        return None
    last = state.get("round_done_at")
    return Freshness(
        prospects=int(state["prospects"]),
        pages=int(state.get("pages") or 0),
        pages_per_cycle=int(state.get("pages_per_cycle") or 1),
        last_round_at=dt.datetime.fromisoformat(last) if last else None,
        linked=int(state.get("linked") or 0),
        profiles_per_cycle=int(state.get("profiles_per_cycle") or 0),
    )


def catch_up(
    integration: Integration, ctx: SyncContext | None = None, snovio_calls: int | None = None
) -> int:
    """Store the changes webhooks missed, with at most `snovio_calls` Snov.io requests (what
    the cycle has left; None: the whole cycle's); returns how many were new."""
    ctx = ctx or SyncContext(integration)
    started = timezone.now()
    notes: list[str] = []
    if integration.baseline_at is None:
        if not baseline.ensure_baseline(integration, ctx):
            return 0  # another worker is recording the baseline right now
        notes.append("recorded the contacts that existed at launch as the baseline")
    state = dict(integration.catch_up_state or {})
    found = 0
    if integration.sends_to_snovio:
        found += _pipedrive_changes(integration, ctx, started)
    if integration.sends_to_pipedrive:
        calls = snovio_calls_per_cycle() if snovio_calls is None else snovio_calls
        found += _snovio_changes(integration, ctx, state, notes, calls)
    # Further periodic checks (each bounded per cycle) belong here, before the bookkeeping.
    queue.prune_processed(integration.pk, now=started)
    notes.insert(0, f"{found} change(s) found")
    integration.last_catch_up_at = started
    integration.last_catch_up_found = found
    integration.last_catch_up_note = "; ".join(notes)
    integration.catch_up_state = state
    Integration.objects.filter(pk=integration.pk).update(
        pipedrive_synced_until=integration.pipedrive_synced_until,
        baseline_lists=integration.baseline_lists,
        last_catch_up_at=started,
        last_catch_up_found=found,
        last_catch_up_note=integration.last_catch_up_note,
        catch_up_state=state,
    )
    return found


def _batches(items: Iterable[dict], size: int) -> Iterator[list[dict]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def _pipedrive_changes(integration: Integration, ctx: SyncContext, started: dt.datetime) -> int:
    since = (
        integration.pipedrive_synced_until
        or integration.baseline_started_at
        or integration.launched_at
        or started
    )
    before = integration.baseline_started_at or since
    found = 0
    unseen: list[dict] = []
    updated = ctx.pipedrive.iter_persons(updated_since=since - OVERLAP)
    for batch in _batches(updated, LINK_BATCH):
        persons = [sanitize.clean_person(raw).record for raw in batch]  # as it would be stored
        by_person = {
            link.pipedrive_person_id: link
            for link in RecordLink.objects.filter(
                integration=integration, pipedrive_person_id__in=[p["id"] for p in persons]
            )
        }
        for person in persons:
            link = by_person.get(person["id"])
            side_base = (link.base or {}).get(threeway.PIPEDRIVE) if link else None
            if side_base is None and not _new_since(person, before):
                unseen.append(person)  # existed before the baseline, never recorded: record it
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
            payload = {"meta": meta, "data": person}
            found += _store_found(integration, started, "person.change", payload, person["id"])
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
    integration: Integration, ctx: SyncContext, state: dict, notes: list[str], calls: int
) -> int:
    if calls < 2:  # the lists and at least one page
        notes.append("Snov.io not re-checked: the cycle's requests were spent")
        return 0
    lists = ctx.snovio.get_user_lists()
    known = set(integration.baseline_lists or [])
    now = timezone.now()
    check = _ProspectCheck(integration, ctx, now)
    sending = ctx.sending_list_ids_from(lists)
    sizes = {str(x["id"]): int(x.get("contacts") or 0) for x in lists}
    seen_sizes: dict = state.get("sizes") or {}
    budget = calls - 1  # the lists' listing above
    # Rows carry names and emails only: some of the cycle's calls re-read linked profiles.
    profile_share = min(profiles.per_catch_up(), budget // 2)
    budget -= profile_share
    state.update(
        pages_per_cycle=max(1, budget),
        profiles_per_cycle=profile_share,
        linked=profiles.linked_count(integration),
    )
    for list_id in sending:
        if list_id in known:
            continue
        known.add(list_id)
        if not _created_after_launch(integration, lists, list_id):
            count = baseline.record_prospects(ctx, ctx.snovio.iter_prospects(list_id))
            notes.append(f"list {list_id} joined the sending lists: {count} recorded")
        else:
            notes.append(f"list {list_id} is new since launch: its prospects sync")
            check.prospects(ctx.snovio.iter_prospects(list_id))
        seen_sizes[list_id] = sizes.get(list_id, 0)  # read whole: nothing newer to look for
    # New prospects first: a list that grew has its newest pages read.
    for list_id in sending:
        before, size = seen_sizes.get(list_id), sizes.get(list_id, 0)
        if before is not None and size > before:
            for page in _newest_pages(int(before), size)[:budget]:
                check.prospects(ctx.snovio.list_prospects_page(list_id, page, MAX_PER_PAGE)[0])
                budget -= 1
    state["sizes"] = {list_id: sizes.get(list_id, 0) for list_id in sending}
    _recheck(state, sending, sizes, budget, check, now)
    integration.baseline_lists = sorted(known)
    return check.found + profiles.recheck(
        ctx,
        integration,
        profile_share,
        lambda p: _store_found(integration, now, "prospect.change", {"prospect": p}, p["id"]),
    )


def _newest_pages(before: int, size: int) -> list[int]:
    """The pages that hold a list's newest prospects when it grew from `before` to `size`:
    the last pages if new prospects are appended, the first ones if they come first."""
    grew = math.ceil((size - before) / MAX_PER_PAGE)
    last = [*range(before // MAX_PER_PAGE + 1, math.ceil(size / MAX_PER_PAGE) + 1)]
    first = [page for page in range(1, grew + 1) if page not in last]
    return [*last, *first]


def _recheck(
    state: dict,
    sending: list[str],
    sizes: dict[str, int],
    budget: int,
    check: _ProspectCheck,
    now: dt.datetime,
) -> None:
    """Re-read the next `budget` pages of the sending lists, going on where the last cycle
    stopped; a round ends when every page has been read once."""
    pages = {
        list_id: max(1, math.ceil(sizes.get(list_id, 0) / MAX_PER_PAGE)) for list_id in sending
    }
    total_pages = sum(pages.values())
    state.update(prospects=sum(sizes.get(list_id, 0) for list_id in sending), pages=total_pages)
    if not sending:
        return
    cursor = state.get("recheck") or {}
    list_index = sending.index(cursor["list"]) if cursor.get("list") in sending else 0
    page = int(cursor.get("page") or 1) if cursor.get("list") in sending else 1
    for _ in range(min(budget, total_pages)):
        list_id = sending[list_index]
        prospects, more = check.ctx.snovio.list_prospects_page(list_id, page, MAX_PER_PAGE)
        check.prospects(prospects)
        if more and prospects:
            page += 1
            continue
        list_index, page = list_index + 1, 1
        if list_index == len(sending):
            list_index = 0
            state["round_done_at"] = now.isoformat()
    state["recheck"] = {"list": sending[list_index], "page": page}


class _ProspectCheck:
    """Prospects compared with their links' base, one page at a time (never every link)."""

    def __init__(self, integration: Integration, ctx: SyncContext, now: dt.datetime):
        self.integration = integration
        self.ctx = ctx
        self.now = now
        self.found = 0

    def prospects(self, raws: Iterable[dict]) -> None:
        for batch in _batches(raws, MAX_PER_PAGE):
            self._page(batch)

    def _page(self, raws: list[dict]) -> None:
        prospects = [sanitize.clean_prospect(raw).record for raw in raws]  # as it would be stored
        ids = [str(p.get("id") or "") for p in prospects]
        keys = [link_key(mapping.prospect_email(p), p.get("id")) for p in prospects]
        links = RecordLink.objects.filter(
            Q(snovio_prospect_id__in=[i for i in ids if i]) | Q(email__in=keys),
            integration=self.integration,
        )
        by_prospect, by_email = {}, {}
        for link in links:
            by_email[link.email] = link
            if link.snovio_prospect_id:
                by_prospect[link.snovio_prospect_id] = link
        for prospect, prospect_id, key in zip(prospects, ids, keys, strict=True):
            link = by_prospect.get(prospect_id) or by_email.get(key)
            side_base = (link.base or {}).get(threeway.SNOVIO) if link else None
            values = mapping.snovio_values(prospect, self.ctx.spec)
            if side_base is not None and not threeway.changed_since(side_base, values):
                continue
            self.found += _store_found(
                self.integration, self.now, "prospect.change", {"prospect": prospect}, prospect_id
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
