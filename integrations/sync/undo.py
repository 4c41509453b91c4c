"""Undo a transfer, or one record's change from the history: put back what it wrote.

For each record a transfer created or updated (its SyncEvent holds, per field, the value it
found, `old`, and the value it wrote, `new`), the receiving side's record is read again and:

- a field still holding what the transfer wrote goes back to its old value;
- a field changed since (it no longer holds `new`) is left alone, listed with the reason;
- a field the transfer filled on an empty Snov.io prospect is left alone: Snov.io's API
  offers no way to empty a field (`threeway.py`);
- a record the transfer created is removed, unless a mapped field was changed since; a
  Snov.io prospect is never removed: Snov.io's API has no method to delete a prospect or take
  it out of a list (docs/specs/snovio-shapes.md), so it is listed as left alone.

The decision is pure (`plan_record`); `execute` performs it through the clients.

Exactly once: the database allows one real undo per transfer and per event (`Undo`
constraints), and an event is undone by at most one undo event (`SyncEvent.undoes` is
unique). A worker that dies mid-way leaves a resumable undo: `execute` again skips the events
already undone, and a record whose write landed before the crash is found already restored
(or already gone) on the re-read, so nothing is written twice.

No echo: while a real undo runs the integration is Syncing (the webhooks of its own writes
wait, as during a transfer), and each write is recorded in the link's base before the
integration is Active again, so the held webhooks find nothing changed. A removed person's
link loses its Pipedrive side but keeps its Snov.io one (`forget_person`), so the catch-up
does not take the prospect for a new one and create the person again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django_q.tasks import async_task

from integrations.http import AuthError, RateLimited, RemoteError
from integrations.lifecycle import set_status
from integrations.models import Integration, RecordLink, SyncEvent, SyncRun, Undo
from integrations.sync import locks, mapping, sanitize, threeway
from integrations.sync.context import TO_PIPEDRIVE, SyncContext
from integrations.sync.records import _known_snovio_values, after_write, drop_same_name

log = logging.getLogger(__name__)

Outcome = SyncEvent.Outcome
UNDOABLE = (Outcome.CREATED, Outcome.UPDATED)
TASK = "integrations.tasks.run_undo"
PAGE_SIZE = 100  # events undone between checkpoints (and persons read in one call)
PREVIEW_LIMIT = 1000  # rows a preview keeps (its counts count every record)
SLICE_SECONDS = 240  # one task's share, as for transfers: the next slice goes on
STALLED_AFTER = timedelta(minutes=5)

CHANGED_SINCE = "changed since the transfer (now “{now}”)"
CANNOT_EMPTY = "Snov.io's API offers no way to empty a field"
CANNOT_REMOVE_PROSPECT = (
    "Snov.io's API has no way to delete a prospect or take it out of a list: "
    "delete it in Snov.io if it should go"
)
GONE = "The record no longer exists"


class UndoRefused(Exception):
    """The undo cannot start; the message says why."""


# --- the decision (pure) -------------------------------------------------------------------


@dataclass
class RecordPlan:
    """What undoing one event does to its record.

    `action`: "restore" (write `restore`), "remove" (delete the record), "leave" (nothing
    can be undone: see `reason` and `left_alone`), "done" (already as before: a resumed undo
    or a user put it back), "gone" (a created record already deleted).
    `rows` are the fields written, as a preview row shows them: {key: {old: now, new: after}}.
    """

    action: str
    restore: dict[str, Any] = field(default_factory=dict)
    rows: dict[str, dict] = field(default_factory=dict)
    left_alone: dict[str, dict] = field(default_factory=dict)
    reason: str = ""


def _same(now: Any, written: Any, key: str) -> bool:
    caseless = key in threeway.CASELESS_FIELDS
    return threeway.same(sanitize.json_safe(now), written, caseless)


def plan_record(
    created: bool,
    fields: Mapping[str, dict],
    current: Mapping[str, Any] | None,
    to_snovio: bool,
    labels: Mapping[str, str] | None = None,
) -> RecordPlan:
    """How to undo one event's `fields` ({key: {old, new, label}}) on a record holding
    `current` now (None: the record is gone). `to_snovio`: the record is a Snov.io prospect.
    `labels` name the fields the event does not list."""
    if current is None:
        return RecordPlan("gone" if created else "leave", reason="" if created else GONE)
    if created:  # every mapped field counts: one the transfer left empty may be filled since
        empty = {key: {"new": None, "label": (labels or {}).get(key)} for key in current}
        fields = {**empty, **fields}
    changed = {
        key: {"label": entry.get("label") or key, "reason": CHANGED_SINCE.format(now=now)}
        for key, entry in fields.items()
        if not _same(now := current.get(key), entry.get("new"), key)
        and not (not created and _same(now, entry.get("old"), key))
    }
    if created:
        if changed:
            return RecordPlan(
                "leave", left_alone=changed, reason="Not removed: it was changed since"
            )
        if to_snovio:
            return RecordPlan("leave", reason=CANNOT_REMOVE_PROSPECT)
        return RecordPlan("remove")
    plan = RecordPlan("done", left_alone=changed)
    for key, entry in fields.items():
        now, old = current.get(key), entry.get("old")
        if key in changed or _same(now, old, key):
            continue
        if to_snovio and mapping.is_empty(old):
            plan.left_alone[key] = {"label": entry.get("label") or key, "reason": CANNOT_EMPTY}
            continue
        plan.restore[key] = old
        plan.rows[key] = {"old": now, "new": old, "label": entry.get("label") or key}
    if plan.restore:
        plan.action = "restore"
    elif plan.left_alone:
        plan.action = "leave"
    return plan


# --- starting one --------------------------------------------------------------------------


def undoable_events(run: SyncRun):
    return run.events.filter(outcome__in=UNDOABLE, undo__isnull=True).order_by("pk")


def check_undoable(
    run: SyncRun | None = None, event: SyncEvent | None = None, dry_run: bool = False
) -> None:
    """Raise UndoRefused, with the reason, when this transfer or event cannot be undone."""
    source = run or (event.run if event else None)
    if event is not None:
        if event.undo_id or event.outcome not in UNDOABLE:
            raise UndoRefused("Only a record a transfer created or updated can be undone.")
        if source is None:
            raise UndoRefused("Only changes made by a transfer can be undone (not real-time ones).")
        if SyncEvent.objects.filter(undoes=event).exists():
            raise UndoRefused("This change was already undone.")
    if source is None or source.dry_run:
        raise UndoRefused("A preview wrote nothing: there is nothing to undo.")
    if source.is_active:
        raise UndoRefused("The transfer is still running: undo it once it has finished.")
    if run is not None and Undo.objects.filter(run=run, dry_run=False).exists():
        raise UndoRefused("This transfer was already undone.")
    if event is not None and Undo.objects.filter(event=event, dry_run=False).exists():
        raise UndoRefused("This change was already undone.")
    integration = source.integration
    if integration.runs.filter(dry_run=False, status__in=SyncRun.ACTIVE).exists():
        raise UndoRefused("A transfer is running: undo once it has finished.")
    real = integration.undos.filter(dry_run=False, status__in=Undo.ACTIVE)
    if not dry_run and real.exists():
        raise UndoRefused("Another undo is running: undo this once it has finished.")


def start_undo(
    integration: Integration,
    *,
    run: SyncRun | None = None,
    event: SyncEvent | None = None,
    dry_run: bool = False,
    user: Any = None,
    queue: bool = True,
) -> Undo:
    """Create the undo (or its preview) and queue it (unless not `queue`: the caller runs it).
    A second real undo of the same transfer or event is refused by the database even when
    two requests race past the checks."""
    check_undoable(run, event, dry_run)
    try:
        with transaction.atomic():
            undo = Undo.objects.create(
                integration=integration,
                run=run,
                event=event,
                dry_run=dry_run,
                started_by=user if getattr(user, "is_authenticated", False) else None,
            )
    except IntegrityError as exc:
        raise UndoRefused("This was already undone, or another undo is running.") from exc
    if queue:
        enqueue(undo.pk)
    return undo


def enqueue(undo_id: int) -> None:
    async_task(TASK, undo_id, task_name=f"undo-{undo_id}")


def resumable(undo: Undo) -> bool:
    """Whether the undo did not finish, or finished with records that failed."""
    return undo.status != SyncRun.Status.DONE or bool(undo.failed)


def resume(undo: Undo) -> None:
    """Queue again an undo that stopped, whose worker died, or whose records failed: it goes
    on where it stopped, and retries the records that failed (the rest are not redone)."""
    if not resumable(undo):
        return
    if undo.status in (SyncRun.Status.DONE, SyncRun.Status.FAILED):
        undo.status = SyncRun.Status.FAILED  # `_start` then retries from the newest event
        undo.save(update_fields=["status", "updated_at"])
    enqueue(undo.pk)


def resume_stalled(now=None) -> int:
    """Queue again every undo that has made no progress for a while (its worker died, or its
    task was lost); a live worker saves its progress after every page and holds `undo_lock`,
    so this never runs one twice at once. Called by the scheduled catch-up, so that an
    integration is not left Syncing."""
    before = (now or timezone.now()) - STALLED_AFTER
    stalled = Undo.objects.filter(status__in=Undo.ACTIVE, updated_at__lt=before)
    ids = list(stalled.values_list("pk", flat=True))
    for undo_id in ids:
        enqueue(undo_id)
    return len(ids)


# --- performing it -------------------------------------------------------------------------


def execute_by_id(undo_id: int, ctx: SyncContext | None = None) -> str:
    """One slice of the undo (`SLICE_SECONDS`), then the next one queued."""
    undo = Undo.objects.filter(pk=undo_id).first()
    if undo is None:
        return f"undo {undo_id}: no such undo"
    undo, finished = run_slice(undo, ctx=ctx, budget=SLICE_SECONDS)
    if not finished:
        enqueue(undo.pk)
    return f"undo {undo.pk}: {undo.status} {summary(undo)}"


def summary(undo: Undo) -> str:
    return (
        f"restored={undo.restored} removed={undo.removed} "
        f"left_alone={undo.left_alone} failed={undo.failed}"
    )


def execute(undo: Undo, ctx: SyncContext | None = None) -> Undo:
    """Run (or resume) the undo to its end, unless another worker runs it."""
    return run_slice(undo, ctx=ctx)[0]


def run_slice(
    undo: Undo, ctx: SyncContext | None = None, budget: float | None = None
) -> tuple[Undo, bool]:
    """Run (or resume) the undo for about `budget` seconds (None: to its end), unless another
    worker runs it. Returns the undo and whether this worker is done with it (False: go on
    in another slice)."""
    with locks.undo_lock(undo.pk) as mine:
        undo.refresh_from_db()
        if not mine or undo.status == SyncRun.Status.DONE:
            return undo, True
        integration = Integration.objects.select_related("pipedrive", "snovio").get(
            pk=undo.integration_id
        )
        _start(undo, integration)
        deadline = time.monotonic() + budget if budget else None
        try:
            finished = _Undo(undo, ctx or SyncContext(integration)).run(deadline)
        except Exception as exc:  # a worker *killed* mid-way never gets here: resumed later
            log.exception("undo %s failed", undo.pk)
            undo.status, undo.error = SyncRun.Status.FAILED, sanitize.strip_control(str(exc))
        else:
            if not finished:
                return undo, False
            undo.status = SyncRun.Status.DONE
        undo.finished_at = timezone.now()
        undo.save(update_fields=["status", "error", "finished_at"])
        _end(undo, integration)
    return undo, True


def _start(undo: Undo, integration: Integration) -> None:
    fields = ["status", "error", "updated_at"]
    if undo.status == SyncRun.Status.FAILED:  # resumed: the records that failed are retried
        undo.checkpoint_event_id = None
        fields.append("checkpoint_event_id")
        if undo.dry_run:  # a preview starts again
            undo.preview, undo.restored, undo.removed, undo.left_alone, undo.failed = [], 0, 0, 0, 0
            fields += ["preview", "restored", "removed", "left_alone", "failed"]
    undo.status, undo.error = SyncRun.Status.RUNNING, ""
    if not undo.dry_run and integration.status == Integration.Status.ACTIVE:
        undo.status_before = integration.status
        fields.append("status_before")
        set_status(integration, Integration.Status.SYNCING, undo.started_by, f"{undo} is running")
    undo.save(update_fields=fields)


def _end(undo: Undo, integration: Integration) -> None:
    """Back to Active (the held webhooks are then applied, and find nothing to do)."""
    integration.refresh_from_db(fields=["status"])
    if undo.status_before and integration.status == Integration.Status.SYNCING:
        set_status(integration, undo.status_before, undo.started_by, f"{undo}: {summary(undo)}")


class _Undo:
    """The events are undone newest first (the last change is taken back first, so a person
    a transfer created and then updated is restored, then found as created, and removed),
    a page at a time: the page's persons are read in one call, and the checkpoint (the
    oldest event done) is saved after each page."""

    def __init__(self, undo: Undo, ctx: SyncContext):
        self.undo = undo
        self.ctx = ctx
        self.persons: dict[str, dict | None] = {}  # the page's persons by id (None: gone)
        # A preview writes nothing: what it would have put back, for a later event of the
        # same record (a person created, then updated, in one transfer).
        self.would_restore: dict[str, dict] = {}

    def events(self):
        undo = self.undo
        if undo.event_id:
            events = SyncEvent.objects.filter(pk=undo.event_id)
        else:
            events = undoable_events(undo.run)
        if undo.checkpoint_event_id:
            events = events.filter(pk__lt=undo.checkpoint_event_id)
        return events.order_by("-pk").select_related("run")

    def run(self, deadline: float | None) -> bool:
        """True when every event is done; False when the time budget ran out first."""
        undo = self.undo
        while page := list(self.events()[:PAGE_SIZE]):
            self.read_persons(page)
            for event in page:
                if not undo.dry_run and SyncEvent.objects.filter(undoes=event).exists():
                    continue  # undone before a crash, or by an undo of this one record
                self.one(event)
            undo.checkpoint_event_id = page[-1].pk
            self.save_progress()
            if deadline is not None and time.monotonic() >= deadline:
                return not self.events().exists()
        return True

    def one(self, event: SyncEvent) -> None:
        to_snovio = event.direction != TO_PIPEDRIVE
        target = self.target_id(event, to_snovio)
        fields = (event.changes or {}).get("fields") or {}
        created = event.outcome == Outcome.CREATED
        try:
            current, record = self.read(target, to_snovio, fields, event.email, created)
            if self.undo.dry_run and current is not None:
                current = {**current, **self.would_restore.get(target, {})}
            plan = plan_record(created, fields, current, to_snovio, self.ctx.spec.labels)
            if self.undo.dry_run:
                self.would_restore.setdefault(target, {}).update(plan.restore)
                self.count_preview(_preview_row(event, plan))
                return
            self.apply(plan, target, record, to_snovio, event.email, current)
        except (AuthError, RateLimited):
            raise  # nothing else would work either: the undo stops, resumable later
        except RemoteError as exc:
            if self.undo.dry_run:
                self.count_preview({"email": event.email, "action": Outcome.FAILED})
                return
            self.record(event, Outcome.FAILED, f"{exc} (after retries)", {}, done=False)
            return
        self.record(event, *_outcome(plan))

    def read_persons(self, page: list[SyncEvent]) -> None:
        """The persons of a page of events to Pipedrive, in one call per 100."""
        targets = [self.target_id(e, False) for e in page if e.direction == TO_PIPEDRIVE]
        ids = [int(t) for t in targets if t.isdigit()]
        self.persons = dict.fromkeys((str(i) for i in ids), None)
        if ids:
            for person in self.ctx.pipedrive.get_persons(ids):
                self.persons[str(person.get("id"))] = person

    # --- reading and writing one record ----------------------------------------------------
    def target_id(self, event: SyncEvent, to_snovio: bool) -> str:
        target = str((event.changes or {}).get("target_id") or "")
        if target or not event.record_id:
            return target
        if to_snovio:
            link = self.ctx.link_for(person_id=int(event.record_id))
            return link.snovio_prospect_id if link else ""
        link = self.ctx.link_for(prospect_id=event.record_id)
        return str(link.pipedrive_person_id or "") if link else ""

    def read(self, target: str, to_snovio: bool, fields: Mapping, email: str, created: bool):
        """The record's mapped values now (None when it is gone) and the record itself."""
        if not target:
            return None, None
        keys = list(fields) if not created else self.ctx.spec.pipedrive_fields
        if to_snovio:
            prospect = self.ctx.snovio.get_prospect_by_id(target)
            if prospect is None:
                return None, None
            prospect.setdefault("emails", [{"email": email}])
            values = _known_snovio_values(self.ctx, prospect, mapping.normalise_email(email))
            return values, prospect
        if target in self.persons:
            found = self.persons.pop(target)  # read with its page; a second event reads again
        else:
            found = next(iter(self.ctx.pipedrive.get_persons([int(target)])), None)
        if not found:
            return None, None
        person = sanitize.clean_person(found).record
        self.ctx.person_org_name(person)
        return mapping.pipedrive_values(person, self.ctx.spec, keys), person

    def apply(self, plan: RecordPlan, target, record, to_snovio: bool, email: str, current):
        ctx = self.ctx
        if plan.action == "remove":
            ctx.pipedrive.delete_person(int(target))
            for link in RecordLink.objects.filter(
                integration=ctx.integration, pipedrive_person_id=int(target)
            ):
                forget_person(link)
        elif plan.action == "restore" and to_snovio:
            link = ctx.link_for(prospect_id=target) or ctx.link_for(email=email)
            # Snov.io finds the prospect by the email the transfer matched it on (the link's).
            known_as = link.email if link and "@" in link.email else email
            ctx.snovio.add_prospect_to_list(
                ctx.spec.target_list_id,
                mapping.prospect_payload(plan.restore, known_as, full=False),
                update=True,
            )
            if link:
                ctx.save_link(
                    link.email,
                    prospect_id=target,
                    snovio_values=after_write(current, plan.restore),
                )
        elif plan.action == "restore":
            payload, problems = mapping.person_payload(
                plan.restore, ctx.spec, record, ctx.orgs.id_for
            )
            payload = drop_same_name(payload, record)
            for problem in problems:
                plan.reason = f"{plan.reason}; {problem}" if plan.reason else problem
            if payload:
                record = ctx.pipedrive.update_person(int(target), payload)
            link = ctx.link_for(person_id=int(target))
            if link:
                ctx.save_link(link.email, person_id=int(target), person=record)

    def record(self, event: SyncEvent, outcome: str, reason: str, changes: dict, done=True):
        """The undo's event for `event`; `done` marks `event` undone (once, by the database)."""
        target = (event.changes or {}).get("target_id")
        changes = {**changes, "undoes": event.pk, **({"target_id": target} if target else {})}
        try:
            with transaction.atomic():
                SyncEvent.objects.create(
                    integration_id=event.integration_id,
                    run=None,
                    undo=self.undo,
                    undoes=event if done else None,
                    direction=event.direction,
                    email=event.email,
                    record_id=event.record_id,
                    outcome=outcome,
                    reason=sanitize.json_safe(f"{self.undo}: {reason}")[:2000],
                    changes=sanitize.json_safe(changes),
                    at=timezone.now(),
                )
        except IntegrityError:
            log.info("undo %s: event %s was undone by another worker", self.undo.pk, event.pk)

    def count_preview(self, row: dict) -> None:
        undo = self.undo
        action = row["action"]
        undo.restored += action in (Outcome.UPDATED, Outcome.UNCHANGED)
        undo.removed += action == Outcome.REMOVED
        undo.left_alone += action == Outcome.SKIPPED
        undo.failed += action == Outcome.FAILED
        if len(undo.preview) < PREVIEW_LIMIT and action != Outcome.UNCHANGED:
            undo.preview.append(sanitize.json_safe(row))

    def save_progress(self) -> None:
        """The checkpoint and the counts (a preview's as counted, an undo's from its events)."""
        undo = self.undo
        if not undo.dry_run:
            counts = dict.fromkeys(Outcome.values, 0)
            rows = undo.events.values_list("outcome", "undoes_id", "changes__undoes")
            failed: set[int] = set()
            for outcome, undone, tried in rows:
                if undone is None:
                    failed.add(tried)  # a failure, unless a later attempt undid it
                else:
                    counts[outcome] += 1
            failed -= set(
                SyncEvent.objects.filter(undoes__in=failed).values_list("undoes_id", flat=True)
            )
            undo.restored = counts[Outcome.UPDATED] + counts[Outcome.UNCHANGED]
            undo.removed = counts[Outcome.REMOVED]
            undo.left_alone = counts[Outcome.SKIPPED]
            undo.failed = len(failed)
        undo.save(
            update_fields=[
                "restored",
                "removed",
                "left_alone",
                "failed",
                "preview",
                "checkpoint_event_id",
                "updated_at",
            ]
        )


def forget_person(link: RecordLink) -> None:
    """The link of a person the undo removed. Its Snov.io side stays: without it, the catch-up
    would take the prospect for one new since launch and create the person again. A link with
    no Snov.io side is deleted."""
    base = {k: v for k, v in (link.base or {}).items() if k in (threeway.SNOVIO,)}
    if not link.snovio_prospect_id and not base:
        link.delete()
        return
    link.pipedrive_person_id, link.base = None, base
    link.save(update_fields=["pipedrive_person_id", "base", "updated_at"])


def _outcome(plan: RecordPlan) -> tuple[str, str, dict]:
    """The undo event's outcome, reason and changes for a plan carried out."""
    changes: dict[str, Any] = {}
    if plan.rows:
        changes["fields"] = plan.rows
    if plan.left_alone:
        changes["left_alone"] = plan.left_alone
    kept = "; ".join(f"{e['label']} left alone: {e['reason']}" for e in plan.left_alone.values())
    if plan.action == "remove":
        return Outcome.REMOVED, "removed the record the transfer created", changes
    if plan.action == "gone":
        return Outcome.REMOVED, "the record the transfer created was already deleted", changes
    if plan.action == "restore":
        labels = ", ".join(row["label"] for row in plan.rows.values())
        text = f"restored {labels}" + (f"; {kept}" if kept else "")
        return Outcome.UPDATED, text + (f"; {plan.reason}" if plan.reason else ""), changes
    if plan.action == "done":
        return Outcome.UNCHANGED, "already as before the transfer", changes
    return Outcome.SKIPPED, "; ".join(t for t in (plan.reason, kept) if t), changes


def _preview_row(event: SyncEvent, plan: RecordPlan) -> dict:
    """A preview row shaped like a transfer preview's, with what would be left alone."""
    outcome, reason, changes = _outcome(plan)
    return {
        "email": event.email,
        "record_id": event.record_id,
        "action": outcome,
        "reason": reason,
        **changes,
    }
