"""The manual transfer ("Transfer unsynced data") and its preview: one `transfer(run)` service.

1. List the receiving side once and index it by every email (never a search per record).
2. Page through the sending side from the run's checkpoint. Each record is created, updated
   (only the fields that differ; the source app wins every conflict) or left unchanged, and
   gets one SyncEvent on the run saying what happened and why.
3. After every page the checkpoint (where to go on) and the counts (recounted from the run's
   events) are saved. A worker that dies mid-way leaves a resumable run: `transfer(run)` again
   skips the records that already have an event and carries on from the checkpoint.

While a (non-preview) transfer runs the integration is Syncing; real-time changes wait and
are applied when it is Active again. A preview (`dry_run`) writes nothing remote and leaves
the status alone; its events and `preview` rows say what would happen.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db.models import Count
from django.utils import timezone

from integrations.http import AuthError, RateLimited, RemoteError
from integrations.lifecycle import set_status
from integrations.models import Integration, Provider, SyncEvent, SyncRun
from integrations.sync import mapping
from integrations.sync.context import TO_PIPEDRIVE, SyncContext
from integrations.sync.matching import EmailIndex
from integrations.sync.records import RecordResult, person_to_snovio, prospect_to_pipedrive

log = logging.getLogger(__name__)

Outcome = SyncEvent.Outcome
PAGE_SIZE = {SyncRun.Direction.TO_PIPEDRIVE: 100, SyncRun.Direction.TO_SNOVIO: 500}
PREVIEW_LIMIT = 1000
COUNTED = ("created", "updated", "unchanged", "skipped", "failed")

Hook = Callable[[SyncRun], None]


def transfer(
    run: SyncRun,
    *,
    page_size: int | None = None,
    after_page: Hook | None = None,
    ctx: SyncContext | None = None,
) -> SyncRun:
    """Run (or resume) a transfer to its end. `after_page` is called after each checkpoint."""
    run.refresh_from_db()
    if run.status in (SyncRun.Status.DONE, SyncRun.Status.CANCELLED):
        return run
    integration = Integration.objects.select_related("pipedrive", "snovio").get(
        pk=run.integration_id
    )
    run.integration = integration
    checkpoint = dict(run.checkpoint or {})
    if not run.dry_run:
        checkpoint.setdefault("status_before", integration.status)
        if integration.status != Integration.Status.SYNCING:
            set_status(
                integration,
                Integration.Status.SYNCING,
                run.started_by,
                f"Transfer #{run.pk} is running",
            )
    run.status = SyncRun.Status.RUNNING
    run.started_at = run.started_at or timezone.now()
    run.error = ""
    run.checkpoint = checkpoint
    run.save(update_fields=["status", "started_at", "error", "checkpoint"])
    calls_before = run.api_calls
    job = None
    try:
        ctx = ctx or SyncContext(integration)
        job = _Transfer(run, ctx, page_size or PAGE_SIZE[run.direction], after_page, calls_before)
        job.execute()
    except Exception as exc:  # a worker *killed* mid-way never gets here: that is the resume path
        log.exception("transfer %s failed", run.pk)
        _fail(run, integration, exc, job)
        return run
    run.status = SyncRun.Status.DONE
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "finished_at"])
    _restore_status(run, integration, f"Transfer #{run.pk} finished: {run.summary()}")
    return run


def _fail(run: SyncRun, integration: Integration, exc: Exception, job: _Transfer | None) -> None:
    if job is not None:
        job.save_counts()
    run.status = SyncRun.Status.FAILED
    run.error = _error_text(exc)
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "error", "finished_at"])
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
    before = (run.checkpoint or {}).get("status_before") or Integration.Status.ACTIVE
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


class _Transfer:
    def __init__(self, run: SyncRun, ctx: SyncContext, page_size: int, after_page, calls_before):
        self.run = run
        self.ctx = ctx
        self.page_size = run.checkpoint.setdefault("page_size", page_size)
        self.after_page = after_page
        self.calls_before = calls_before
        self.checkpoint = run.checkpoint
        self.sending_wins = run.source_app == (
            Provider.SNOVIO if run.direction == TO_PIPEDRIVE else Provider.PIPEDRIVE
        )
        # Records that already have an event on this run (a resumed run skips them).
        self.done: set[str] = set()
        self.emails: dict[str, str] = {}
        for record_id, email in run.events.values_list("record_id", "email"):
            self.done.add(record_id)
            if email:
                self.emails.setdefault(email, record_id)
        self.preview: list[dict] = list(run.preview or []) if run.dry_run else []

    # --- the two directions -----------------------------------------------------------------
    def execute(self) -> None:
        if self.run.direction == TO_PIPEDRIVE:
            self._to_pipedrive()
        else:
            self._to_snovio()
        self.save_counts(final=True)

    def _to_pipedrive(self) -> None:
        ctx, cp = self.ctx, self.checkpoint
        lists = ctx.snovio.get_user_lists()
        if "lists" not in cp:
            wanted = ctx.sending_list_ids_from(lists)
            cp.update(lists=wanted, list_index=0, page=1)
            contacts = {str(x["id"]): x.get("contacts") or 0 for x in lists}
            self.run.total = sum(int(contacts.get(str(i), 0)) for i in wanted)
        persons = list(ctx.pipedrive.iter_persons())
        ctx.person_org_names(persons)
        index = EmailIndex.build(persons, mapping.person_emails)
        by_id = {str(p["id"]): p for p in persons}
        while cp["list_index"] < len(cp["lists"]):
            list_id = cp["lists"][cp["list_index"]]
            prospects, more = ctx.snovio.list_prospects_page(list_id, cp["page"], self.page_size)
            for prospect in prospects:
                self._one_prospect(prospect, index, by_id)
            if more and prospects:
                cp["page"] += 1
            else:
                cp["list_index"], cp["page"] = cp["list_index"] + 1, 1
            self.checkpoint_page()

    def _one_prospect(self, prospect: dict, index: EmailIndex, by_id: dict) -> None:
        record_id = str(prospect.get("id") or "")
        if record_id in self.done:
            return
        emails = mapping.prospect_emails(prospect)
        person = index.find(emails)
        if person is None and not emails and not self.ctx.integration.only_with_email:
            link = self.ctx.link_for(prospect_id=record_id)
            person = by_id.get(str(link.pipedrive_person_id)) if link else None
        result = self._apply(prospect_to_pipedrive, prospect, person, record_id, emails[:1])
        if result and result.record and result.outcome == Outcome.CREATED:
            index.add(result.record)
            by_id[str(result.record["id"])] = result.record
        elif result and result.record and person is not None:
            index.replace(person, result.record)

    def _to_snovio(self) -> None:
        ctx, cp = self.ctx, self.checkpoint
        prospects: dict[str, dict] = {}
        for list_id in ctx.sending_list_ids_from(ctx.snovio.get_user_lists(), every=True):
            for prospect in ctx.snovio.iter_prospects(list_id):
                prospects.setdefault(str(prospect.get("id")), prospect)
        index = EmailIndex.build(prospects.values(), mapping.prospect_emails)
        cp.setdefault("cursor", None)
        while not cp.get("finished"):
            persons, cursor = ctx.pipedrive.list_persons_page(cp["cursor"], limit=self.page_size)
            ctx.person_org_names(persons)
            self.run.total = max(self.run.total, self.run.done + len(persons))
            for person in persons:
                record_id = str(person.get("id") or "")
                if record_id in self.done:
                    continue
                emails = mapping.person_emails(person)
                found = index.find(emails)
                result = self._apply(person_to_snovio, person, found, record_id, emails[:1])
                if result and result.outcome == Outcome.CREATED and result.target_id:
                    index.add({"id": result.target_id, "emails": [{"email": result.email}]})
                elif result and result.record and found is not None:
                    index.replace(found, result.record)
            cp["cursor"] = cursor
            cp["finished"] = not cursor
            self.checkpoint_page()

    # --- one record -------------------------------------------------------------------------
    def _apply(self, move, record, found, record_id, emails) -> RecordResult | None:
        """Move one record; every outcome (failures included) becomes an event on the run."""
        email = emails[0] if emails else ""
        if email and email in self.emails and self.emails[email] != record_id:
            result = RecordResult(
                Outcome.SKIPPED,
                email=email,
                record_id=record_id,
                reason=f"Another record with this email (#{self.emails[email]}) was already "
                "transferred in this run; duplicates are never merged automatically.",
            )
        else:
            try:
                result = move(
                    self.ctx,
                    record,
                    found,
                    sending_wins=self.sending_wins,
                    dry_run=self.run.dry_run,
                )
            except (AuthError, RateLimited):
                raise  # nothing else will work either: stop the run, resumable later
            except RemoteError as exc:
                result = RecordResult(
                    Outcome.FAILED,
                    email=email,
                    record_id=record_id,
                    reason=f"{exc} (after retries)",
                )
        result.log(self.ctx, self.run.direction, run=self.run)
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

    def _preview(self, result: RecordResult) -> None:
        if len(self.preview) >= PREVIEW_LIMIT:
            return
        row = {"email": result.email, "record_id": result.record_id, "action": result.outcome}
        row.update(result.changes(self.ctx.spec.labels))
        self.preview.append(row)

    # --- progress ---------------------------------------------------------------------------
    def save_counts(self, final: bool = False) -> None:
        run = self.run
        counts = dict(run.events.values_list("outcome").annotate(n=Count("id")))
        for name in COUNTED:
            setattr(run, name, counts.get(name, 0))
        run.done = sum(counts.values())
        run.conflicts = run.events.filter(changes__has_key="conflicts").count()
        if final or run.total < run.done:
            run.total = run.done
        run.api_calls = self.calls_before + self.ctx.api_calls
        run.checkpoint = self.checkpoint
        run.checkpoint["heartbeat"] = timezone.now().isoformat()
        if run.dry_run:
            run.preview = self.preview
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
        self.save_counts()
        if self.after_page:
            self.after_page(self.run)
