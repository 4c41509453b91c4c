"""The manual transfer ("Transfer unsynced data") and its preview: one `transfer(run)` service.

1. List the receiving side once and index it by every email (never a search per record),
   packed (`matching.PackedIndex`: a few hundred bytes per record, unpacked only when a
   sending record matches it); a record the run creates is indexed by its id only.
2. Page through the sending side from the run's checkpoint. Each record is cleaned
   (`sanitize`: a record the database or the remote cannot take is refused with the reason),
   then created, updated (only the fields that differ; the source app wins every conflict) or
   left unchanged, and gets one SyncEvent on the run saying what happened and why.
3. After every page its links and events are written together, in one transaction of a few
   statements (`_write_page`), then the checkpoint (a `Checkpoint`: where to go on) and the
   counts. Before each create only its intent is written (`SyncContext.note_creating`), so a
   created record costs one write of its own. A worker that dies mid-way leaves a resumable
   run: `transfer(run)` again skips the records that already have an event and carries on;
   a record of the page it died in is listed on the receiving side by then and matched by
   email (never created twice), and its intent says SyncBridge made it.

Exactly once: a run is executed only under its lock (`locks.run_lock`) and its lease
(`locks.RunLease`, renewed every few seconds while the worker lives). A second worker given the
same run returns at once (`Slice.BUSY`); one given a run whose lease has expired (its worker
died) takes it over from the checkpoint. `run_slice(run, budget=...)` stops after the page that
uses up its time budget (`Slice.MORE`), so a task never outlives the task queue's timeout.

While a (non-preview) transfer runs the integration is Syncing; real-time changes wait and
are applied when it is Active again. A preview (`dry_run`) writes nothing remote and leaves
the status alone; its events and `preview` rows say what would happen.
"""

from __future__ import annotations

import enum
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any

from django.db import DatabaseError, connection, transaction
from django.db.models import Count, Q
from django.utils import timezone

from integrations.http import AuthError, RateLimited, RemoteError
from integrations.lifecycle import set_status
from integrations.models import Integration, Provider, RecordLink, SyncEvent, SyncRun
from integrations.sync import deletes, locks, mapping, sanitize
from integrations.sync.context import INTENT, TO_PIPEDRIVE, SyncContext
from integrations.sync.matching import PackedIndex
from integrations.sync.records import RecordResult, person_to_snovio, prospect_to_pipedrive
from integrations.sync.second_key import TransferKeys

log = logging.getLogger(__name__)

Outcome = SyncEvent.Outcome
PAGE_SIZE = {SyncRun.Direction.TO_PIPEDRIVE: 100, SyncRun.Direction.TO_SNOVIO: 500}
PREVIEW_LIMIT = 1000
COUNTED = ("created", "updated", "unchanged", "skipped", "failed")

Hook = Callable[[SyncRun], None]


class Slice(enum.Enum):
    """How one call to `run_slice` ended."""

    FINISHED = "finished"  # the run is Done, Failed or Cancelled
    MORE = "more"  # the time budget was used up: call again to go on
    BUSY = "busy"  # another worker executes it: nothing was done


@dataclass
class Checkpoint:
    """Where a run goes on from, saved with the run after every page."""

    page_size: int = 0
    status_before: str = ""  # the integration's status when the transfer started
    lists: list[str] | None = None  # to Pipedrive: the Snov.io lists to send, in order
    list_index: int = 0
    page: int = 1
    cursor: str | None = None  # to Snov.io: the next page of Pipedrive persons
    finished: bool = False
    rate_limited: bool = False  # the run stopped at a remote's rate limit: resumed after it

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Checkpoint:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (data or {}).items() if k in known})

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def transfer(
    run: SyncRun,
    *,
    page_size: int | None = None,
    after_page: Hook | None = None,
    ctx: SyncContext | None = None,
) -> SyncRun:
    """Run (or resume, even a failed one) a transfer to its end. `after_page` is called after
    each checkpoint. Returns at once, without doing anything, when another worker executes it.
    """
    return run_slice(run, page_size=page_size, after_page=after_page, ctx=ctx, resume_failed=True)[
        0
    ]


def run_slice(
    run: SyncRun,
    *,
    budget: float | None = None,
    page_size: int | None = None,
    after_page: Hook | None = None,
    ctx: SyncContext | None = None,
    now: datetime | None = None,
    resume_failed: bool = False,
) -> tuple[SyncRun, Slice]:
    """Execute the run for about `budget` seconds (None: to its end), if no one else does.

    `now` is when the lease is taken (tests pass a later time to stand for time passing);
    a failed run is left alone unless `resume_failed` (a retry after a rate limit).
    """
    with locks.run_lock(run.pk) as mine:
        lease = locks.RunLease(run.pk)
        if not mine or not lease.take(now, resume_failed=resume_failed):
            run.refresh_from_db()
            return run, (Slice.BUSY if run.is_active else Slice.FINISHED)
        try:
            return run, _execute(run, lease, budget, page_size, after_page, ctx)
        except locks.LeaseLost:
            log.warning("transfer %s: lease lost, another worker goes on", run.pk)
            run.refresh_from_db()
            return run, Slice.BUSY
        # Anything else a worker dies of (a BaseException) leaves the lease to expire: the
        # resume check then sees a dead worker's run, as it would after a real crash.


def _execute(run, lease, budget, page_size, after_page, ctx) -> Slice:
    run.refresh_from_db()
    integration = Integration.objects.select_related("pipedrive", "snovio").get(
        pk=run.integration_id
    )
    run.integration = integration
    checkpoint = Checkpoint.from_json(run.checkpoint)
    if not run.dry_run:
        checkpoint.status_before = checkpoint.status_before or integration.status
        if integration.status != Integration.Status.SYNCING:
            set_status(
                integration,
                Integration.Status.SYNCING,
                run.started_by,
                f"Transfer #{run.pk} is running",
            )
    resumed = run.started_at is not None  # a worker went before: it may have died mid-page
    run.started_at = run.started_at or timezone.now()
    run.error = ""
    run.checkpoint = checkpoint.to_json()
    run.save(update_fields=["started_at", "error", "checkpoint"])
    deadline = time.monotonic() + budget if budget else None
    job = None
    try:
        ctx = ctx or SyncContext(integration)
        size = checkpoint.page_size or page_size or PAGE_SIZE[run.direction]
        checkpoint.page_size = size
        job = _Transfer(run, ctx, checkpoint, after_page, lease, deadline, resumed)
        finished = job.execute()
    except locks.LeaseLost:
        raise
    except Exception as exc:  # a worker *killed* mid-way never gets here: that is the resume path
        log.exception("transfer %s failed", run.pk)
        _fail(run, integration, exc, job)
        return Slice.FINISHED
    if not finished:
        lease.release()  # the next slice (another task) takes it again
        return Slice.MORE
    run.status = SyncRun.Status.DONE
    run.finished_at = timezone.now()
    run.lease_owner, run.lease_expires_at = "", None
    run.save(update_fields=["status", "finished_at", "lease_owner", "lease_expires_at"])
    _restore_status(run, integration, f"Transfer #{run.pk} finished: {run.summary()}")
    return Slice.FINISHED


def _fail(run: SyncRun, integration: Integration, exc: Exception, job: _Transfer | None) -> None:
    if job is not None:
        try:  # what the page did before the failure
            job.write_page()
        except DatabaseError:
            log.exception("transfer %s: the page's links and events were not written", run.pk)
        job.save_counts()
    run.status = SyncRun.Status.FAILED
    run.error = sanitize.strip_control(_error_text(exc))
    run.finished_at = timezone.now()
    run.lease_owner, run.lease_expires_at = "", None
    checkpoint = Checkpoint.from_json(run.checkpoint)
    checkpoint.rate_limited = isinstance(exc, RateLimited)  # decides the resume, not the text
    run.checkpoint = checkpoint.to_json()
    run.save(
        update_fields=[
            "status",
            "error",
            "finished_at",
            "lease_owner",
            "lease_expires_at",
            "checkpoint",
        ]
    )
    if run.dry_run:
        return
    if isinstance(exc, AuthError):
        set_status(integration, Integration.Status.FAILED, None, run.error)
    else:
        _restore_status(run, integration, f"Transfer #{run.pk} stopped: {run.error}")


def _restore_status(run: SyncRun, integration: Integration, reason: str) -> None:
    """Back to the status the integration had before (Active when started from the pages)."""
    if run.dry_run:
        return
    if integration.runs.filter(dry_run=False, status__in=SyncRun.ACTIVE).exists():
        return  # a new transfer was started the moment this one ended: it is Syncing now
    before = Checkpoint.from_json(run.checkpoint).status_before or Integration.Status.ACTIVE
    if before == Integration.Status.SYNCING:
        before = Integration.Status.ACTIVE
    integration.refresh_from_db(fields=["status"])
    if integration.status == Integration.Status.SYNCING:
        set_status(integration, before, run.started_by, reason)


def _error_text(exc: Exception) -> str:
    if isinstance(exc, RateLimited):
        wait = f"; work can resume in {exc.retry_after:.0f} s" if exc.retry_after else ""
        return f"{exc.remote or 'remote'} rate limit ({exc.limit or 'limit'}) hit{wait}: {exc}"
    return str(exc) or exc.__class__.__name__


def _mapped_only(person: dict, spec: mapping.MappingSpec, keep: Iterable[str] = ()) -> dict:
    """A listed person without the custom fields the integration does not map: Pipedrive sends
    every custom field of the account with every person, and a transfer keeps the receiving
    side's persons for the whole run. The transfer reads and writes mapped fields only (and
    `keep`: the second match key's field)."""
    custom = person.get("custom_fields")
    if not isinstance(custom, dict):
        return person
    read = {*spec.pipedrive_read_fields, *keep}
    return {**person, "custom_fields": {k: v for k, v in custom.items() if k in read}}


def _stored_forms(values: Iterable[str]) -> dict[str, list[str]]:
    """Each value as an event may have stored it (cleaned of what the database refuses),
    mapped back to the values it stands for."""
    forms: dict[str, list[str]] = {}
    for value in values:
        for form in {sanitize.json_safe(value)[:254], sanitize.strip_control(value)[:254]}:
            forms.setdefault(form, []).append(value)
    return forms


def _repeats(result: RecordResult, intent: Mapping[str, Any]) -> bool:
    """Whether `result` wrote nothing but (part of) what `intent` announced. A field Snov.io
    never returns cannot show that a write was made: such a write is simply made again."""
    if result.outcome not in (Outcome.UNCHANGED, Outcome.UPDATED, Outcome.CREATED):
        return False
    written = result.created_values if result.outcome == Outcome.CREATED else None
    written = written or (result.merge.changes if result.merge else {})
    announced = (intent.get("merge") or {}).get("changes") or intent.get("created_values") or {}
    return all(
        key in announced and _as_json(value) == _as_json(announced[key])
        for key, value in written.items()
    )


def _as_json(value: Any) -> Any:
    return json.loads(json.dumps(sanitize.json_safe(value), default=str))


@contextmanager
def _savepoint_if_in_transaction() -> Iterator[None]:
    """Inside a transaction a failed statement poisons the rest: isolate it in a savepoint,
    rolled back on an error. A worker dying (a BaseException) leaves what it wrote, as a
    worker in autocommit would: an intent written before a remote write stays.

    Outside one (a worker in autocommit) each statement stands alone, and a transaction
    around a record's remote writes would hide its echo fingerprints from the webhooks.
    """
    if not connection.in_atomic_block:
        yield
        return
    savepoint = transaction.savepoint()
    try:
        yield
    except Exception:
        transaction.savepoint_rollback(savepoint)
        raise
    transaction.savepoint_commit(savepoint)


class _Transfer:
    def __init__(
        self,
        run: SyncRun,
        ctx: SyncContext,
        checkpoint: Checkpoint,
        after_page: Hook | None,
        lease: locks.RunLease,
        deadline: float | None,
        resumed: bool = False,
    ):
        self.run = run
        self.ctx = ctx
        self.cp = checkpoint
        self.page_size = checkpoint.page_size
        self.after_page = after_page
        self.lease = lease
        self.deadline = deadline
        self.calls_before = run.api_calls
        self.sending_wins = run.source_app == (
            Provider.SNOVIO if run.direction == TO_PIPEDRIVE else Provider.PIPEDRIVE
        )
        # Of the page at hand only: the records that already have an event on this run (a
        # resumed run skips them) and the first record of each email. Looked up in the run's
        # events one page at a time, so nothing is kept per record across the run.
        self.done: set[str] = set()
        self.emails: dict[str, str] = {}
        # The page's outcomes and when each happened: their events are not written yet.
        self.held: list[tuple[RecordResult, datetime]] = []
        # The first page of a resumed run may be the one a worker died in: the intents its
        # remote writes left (`context.INTENT`), by sending record id.
        self.check_intents = resumed
        self.intents: dict[str, dict] = {}
        # The counts, read once (a resumed run goes on from its events) and then kept current.
        self.counts: dict[str, int] = dict(
            run.events.values_list("outcome").annotate(n=Count("id")).order_by()
        )
        self.conflict_count = run.events.filter(changes__has_key="conflicts").count()
        self.preview: list[dict] = list(run.preview or []) if run.dry_run else []
        # The second match key (second_key.py), when the integration has one.
        second = ctx.second_key
        self.keys = TransferKeys(ctx, second, run.direction == TO_PIPEDRIVE) if second else None
        self.key_field = [second.pipedrive_field] if second else []
        # Records whose partner a delete removed: a transfer must not create it again.
        self.split = deletes.split_partners(ctx.integration, run.direction)

    # --- the two directions -----------------------------------------------------------------
    def execute(self) -> bool:
        """True when every page is done; False when the time budget ran out first."""
        if self.run.direction == TO_PIPEDRIVE:
            finished = self._to_pipedrive()
        else:
            finished = self._to_snovio()
        self.save_counts(final=finished)
        return finished

    def _out_of_time(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def _to_pipedrive(self) -> bool:
        ctx, cp = self.ctx, self.cp
        lists = ctx.snovio.get_user_lists()
        if cp.lists is None:
            wanted = ctx.sending_list_ids_from(lists)
            cp.lists, cp.list_index, cp.page = wanted, 0, 1
            contacts = {str(x["id"]): x.get("contacts") or 0 for x in lists}
            self.run.total = sum(int(contacts.get(str(i), 0)) for i in wanted)
        # Streamed into a packed index, never held as dicts (100,000 persons at about 4 KB
        # each would be 400 MB); persons without an email are reached by a link's person id.
        index = PackedIndex(self.keys.person_keys if self.keys else mapping.person_emails)
        no_email: dict[str, int] = {}
        for raw in ctx.pipedrive.iter_persons():
            person = _mapped_only(sanitize.clean_person(raw).record, ctx.spec, self.key_field)
            ctx.person_org_names((person,))
            slot = index.add(person)
            if not mapping.person_emails(person):
                no_email[str(person.get("id"))] = slot
        while cp.list_index < len(cp.lists):
            list_id = cp.lists[cp.list_index]
            prospects, more = ctx.snovio.list_prospects_page(list_id, cp.page, self.page_size)
            self._start_page(prospects, mapping.prospect_emails)
            for prospect in prospects:
                self._one_prospect(prospect, index, no_email)
            if more and prospects:
                cp.page += 1
            else:
                cp.list_index, cp.page = cp.list_index + 1, 1
            self.checkpoint_page()
            if self._out_of_time() and cp.list_index < len(cp.lists):
                return False
        return True

    def _one_prospect(self, raw: dict, index: PackedIndex, no_email: dict[str, int]) -> None:
        record_id = str(raw.get("id") or "")
        if record_id in self.done:
            return
        cleaned = sanitize.clean_prospect(raw)
        if cleaned.refused:
            self._refuse(record_id, mapping.prospect_email(raw), cleaned.refused)
            return
        prospect = cleaned.record
        emails = mapping.prospect_emails(prospect)
        match = index.find(emails)
        person = match.record if match else None
        duplicate = bool(emails) and self.emails.get(emails[0], record_id) != record_id
        if match is not None and match.record is None:
            if duplicate:  # skipped as a duplicate: only its id is needed
                person = {"id": match.record_id, "emails": [{"value": match.email}]}
            else:  # created earlier in this run: read in full to be merged
                full = sanitize.clean_person(self.ctx.pipedrive.get_person(match.record_id))
                person = _mapped_only(full.record, self.ctx.spec)
        if person is None and not emails and not self.ctx.integration.only_with_email:
            person = self._linked_person(record_id, index, no_email)
        if person is None and self.keys and (emails or not self.ctx.integration.only_with_email):
            by_key = self.keys.match(prospect, record_id, index, self.lease.renew)
            if by_key.refused:
                self._refuse(record_id, emails[0] if emails else "", by_key.refused)
                return
            prospect, match = by_key.record, by_key.match
            person = match.record if match else None
            if match is not None and person is None:  # created in this run: read in full
                full = sanitize.clean_person(self.ctx.pipedrive.get_person(match.record_id))
                person = _mapped_only(full.record, self.ctx.spec, self.key_field)
        result = self._apply(
            prospect_to_pipedrive, prospect, person, record_id, emails[:1], cleaned.notes
        )
        if result and result.record and result.outcome == Outcome.CREATED:
            keys = self.keys.person_keys if self.keys else mapping.person_emails
            index.add_id(keys(result.record), result.record["id"])
        elif result and result.record and match is not None:
            index.replace(match, _mapped_only(result.record, self.ctx.spec, self.key_field))

    def _linked_person(
        self, prospect_id: str, index: PackedIndex, no_email: dict[str, int]
    ) -> dict | None:
        """The person a prospect without an email was linked to, if it still exists."""
        link = self.ctx.link_for(prospect_id=prospect_id)
        if not link or not link.pipedrive_person_id:
            return None
        slot = no_email.get(str(link.pipedrive_person_id))
        if slot is not None:
            return index.get(slot)
        # The person has an email now (or was created in this run): read it by id.
        found = self.ctx.pipedrive.get_persons([link.pipedrive_person_id])
        return (
            _mapped_only(sanitize.clean_person(found[0]).record, self.ctx.spec) if found else None
        )

    def _to_snovio(self) -> bool:
        ctx, cp = self.ctx, self.cp
        # Streamed into a packed index: nothing is kept per prospect as a dict.
        index = PackedIndex(self.keys.prospect_keys if self.keys else mapping.prospect_emails)
        for list_id in ctx.sending_list_ids_from(ctx.snovio.get_user_lists(), every=True):
            for prospect in ctx.snovio.iter_prospects(list_id):
                index.add(sanitize.clean_prospect(prospect).record)
        while not cp.finished:
            persons, cursor = ctx.pipedrive.list_persons_page(cp.cursor, limit=self.page_size)
            ctx.person_org_names(persons)
            self.run.total = max(self.run.total, self.run.done + len(persons))
            self._start_page(persons, mapping.person_emails)
            for person in persons:
                self._one_person(person, index)
            cp.cursor, cp.finished = cursor, not cursor
            self.checkpoint_page()
            if self._out_of_time() and not cp.finished:
                return False
        return True

    def _one_person(self, raw: dict, index: PackedIndex) -> None:
        record_id = str(raw.get("id") or "")
        if record_id in self.done:
            return
        cleaned = sanitize.clean_person(raw)
        if cleaned.refused:
            self._refuse(record_id, mapping.person_email(raw), cleaned.refused)
            return
        person = cleaned.record
        emails = mapping.person_emails(person)
        match = index.find(emails)
        if match is None and self.keys:
            by_key = self.keys.match(person, record_id, index, self.lease.renew)
            if by_key.refused:
                self._refuse(record_id, emails[0] if emails else "", by_key.refused)
                return
            match = by_key.match
        found = match.record if match else None
        if match is not None and found is None:  # created in this run: its list row, by id
            found = {"id": match.record_id, "emails": [{"email": match.email}]}
        result = self._apply(person_to_snovio, person, found, record_id, emails[:1], cleaned.notes)
        if result and result.outcome == Outcome.CREATED and result.target_id and match is None:
            key = self.keys.second.of_person(person) if self.keys else ""
            index.add_id([result.email, key], result.target_id)
        elif result and result.record and match is not None:
            index.replace(match, result.record)

    def _start_page(self, records: list[dict], emails_of: Callable[[dict], list[str]]) -> None:
        """Which of the page's records, and which of its emails, this run already moved."""
        self.done, self.emails = set(), {}
        if not self.run.dry_run:
            self.ctx.hold_links(self.run.pk)
        self.intents = self._intents_left(records) if self.check_intents else {}
        self.check_intents = False
        # Events hold ids and emails as the database could store them: look those up.
        ids = _stored_forms(str(r.get("id") or "") for r in records)
        emails = _stored_forms(e for r in records for e in emails_of(r)[:1] if e)
        if not ids:
            return
        found = self.run.events.filter(Q(record_id__in=list(ids)) | Q(email__in=list(emails)))
        for record_id, email in found.order_by("pk").values_list("record_id", "email"):
            raw_ids = ids.get(record_id, [record_id])
            self.done.update(raw_ids)
            for raw_email in emails.get(email, []):
                self.emails.setdefault(raw_email, raw_ids[0])

    def _intents_left(self, records: list[dict]) -> dict[str, dict]:
        """The intents a worker that died on this page left for its records (one query)."""
        ids = [str(r.get("id") or "") for r in records]
        found = RecordLink.objects.filter(
            integration=self.run.integration_id,
            **{f"base__{INTENT}__run": self.run.pk, f"base__{INTENT}__record__in": ids},
        )
        intents = (link.base[INTENT] for link in found.only("base"))
        return {str(intent["record"]): intent for intent in intents}

    # --- one record -------------------------------------------------------------------------
    def _refuse(self, record_id: str, email: str, reason: str) -> None:
        """A record the database or the remote cannot take: reported, and the run goes on."""
        email = sanitize.strip_control(email)[: sanitize.EMAIL_LIMIT]
        result = RecordResult(Outcome.SKIPPED, email=email, record_id=record_id, reason=reason)
        self._log(result)
        self.done.add(record_id)

    def _apply(self, move, record, found, record_id, emails, notes=()) -> RecordResult | None:
        """Move one record; every outcome (failures included) becomes an event on the run."""
        self.lease.renew()
        email = emails[0] if emails else ""
        if record_id in self.split:
            result = RecordResult(
                Outcome.SKIPPED, email=email, record_id=record_id, reason=self.split[record_id]
            )
        elif email and email in self.emails and self.emails[email] != record_id:
            result = RecordResult(
                Outcome.SKIPPED,
                email=email,
                record_id=record_id,
                reason=f"Another record with this email (#{self.emails[email]}) was already "
                "transferred in this run; duplicates are never merged automatically.",
            )
        else:
            result = self._move(move, record, found, record_id, email)
            intent = self.intents.pop(record_id, None)
            if intent and _repeats(result, intent):
                # The worker that died announced this write: report it as that worker would
                # have, whether its write was made (nothing is left to do) or not (made now).
                result = RecordResult.intended(intent, result)
        result.problems = [*result.problems, *notes]
        self._log(result)
        self.done.add(record_id)
        if email:
            self.emails.setdefault(email, record_id)
        if self.run.dry_run and (
            result.merge
            and result.merge.changed
            or result.conflict
            or result.outcome == Outcome.CREATED
        ):
            self._preview(result)
        return result

    def _move(self, move, record, found, record_id: str, email: str) -> RecordResult:
        try:
            with _savepoint_if_in_transaction():
                return move(
                    self.ctx,
                    record,
                    found,
                    sending_wins=self.sending_wins,
                    dry_run=self.run.dry_run,
                )
        except (AuthError, RateLimited):
            raise  # nothing else will work either: stop the run, resumable later
        except RemoteError as exc:
            reason = f"{exc} (after retries)"
        except DatabaseError as exc:  # one record's values the database refused
            log.warning("transfer %s: record %s not stored: %s", self.run.pk, record_id, exc)
            reason = f"Could not be stored: {sanitize.shown(exc)}"
        return RecordResult(Outcome.FAILED, email=email, record_id=record_id, reason=reason)

    def _log(self, result: RecordResult) -> None:
        """Keep the outcome: its event is written with the page's (`write_page`)."""
        self.held.append((result, timezone.now()))

    def write_page(self) -> None:
        """The page's links and events in one transaction (a few statements), then counted.

        A database refusing one event's details never stops the run: the links are written
        alone and each event on its own, made storable when refused (`_store_event`).
        """
        held, direction = self.held, self.run.direction
        events = [r.event(self.ctx, direction, run=self.run, at=at) for r, at in held]
        try:
            with transaction.atomic():
                self.ctx.write_held_links()
                SyncEvent.objects.bulk_create(events)
            stored = [r for r, _ in held]
        except DatabaseError as exc:
            log.warning("transfer %s: the page's events were refused at once: %s", self.run.pk, exc)
            with transaction.atomic():
                self.ctx.write_held_links()
            stored = [r for r, at in held if self._store_event(r, at)]
        self.ctx.release_links()
        self.held = []
        for result in stored:
            self.counts[result.outcome] = self.counts.get(result.outcome, 0) + 1
            self.conflict_count += bool(result.conflict)

    def _store_event(self, result: RecordResult, at: datetime) -> bool:
        try:
            with transaction.atomic():
                result.event(self.ctx, self.run.direction, run=self.run, at=at).save()
            return True
        except DatabaseError as exc:
            log.warning("transfer %s: event for %s refused: %s", self.run.pk, result.record_id, exc)
        labels = self.ctx.spec.labels
        try:
            with transaction.atomic():
                self.ctx.event(
                    self.run.direction,
                    result.outcome,
                    email=sanitize.strip_control(result.email)[: sanitize.EMAIL_LIMIT],
                    record_id=sanitize.strip_control(result.record_id)[:64],
                    reason=sanitize.json_safe(result.describe(labels)),
                    changes=sanitize.json_safe(result.changes(labels)),
                    run=self.run,
                    at=at,
                )
            return True
        except DatabaseError:
            log.exception("transfer %s: no event could be stored for %s", self.run.pk, result)
        return False

    def _preview(self, result: RecordResult) -> None:
        if len(self.preview) >= PREVIEW_LIMIT:
            return
        row = {"email": result.email, "record_id": result.record_id, "action": result.outcome}
        row.update(result.changes(self.ctx.spec.labels))
        self.preview.append(sanitize.json_safe(row))

    # --- progress ---------------------------------------------------------------------------
    def save_counts(self, final: bool = False) -> None:
        run = self.run
        for name in COUNTED:
            setattr(run, name, self.counts.get(name, 0))
        run.done = sum(self.counts.values())
        run.conflicts = self.conflict_count
        if final or run.total < run.done:
            run.total = run.done
        run.api_calls = self.calls_before + self.ctx.api_calls
        run.checkpoint = self.cp.to_json()
        if run.dry_run:
            run.preview = self.preview
        self.lease.renew(force=True)
        run.save(
            update_fields=[
                *COUNTED,
                "done",
                "conflicts",
                "total",
                "api_calls",
                "checkpoint",
                "preview",
            ]
        )

    def checkpoint_page(self) -> None:
        self.write_page()
        self.save_counts()
        if self.after_page:
            self.after_page(self.run)
