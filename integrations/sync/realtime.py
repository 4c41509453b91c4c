"""Real-time sync: held changes applied in order, each as a three-way merge of one contact.

Changes arrive as PendingChange rows (Pipedrive webhooks, the scheduled catch-up, Snov.io
campaign events). A change only says *which* contact to look at: `drain()` takes the
integration's waiting changes in batches, reads the contacts of a batch fresh from both sides
(persons by id, 100 per call), and merges each against the link's base (`reconcile.py`). So a
duplicate, late or reordered delivery converges on the contacts' current state, and an older
snapshot can never overwrite a newer edit.

Changes wait while the integration is not Active (Paused, Syncing, Connection failed), and
are applied in order when it is; the first drain after launch records the baseline first.
One worker at a time per integration (`locks.integration_lock`); changes to one contact that
wait together are one change (PendingChange.record_key). The base is recorded after the
writes succeed, never before: a change whose write failed is tried again (`attempts`), and
after `MAX_ATTEMPTS` it is reported as failed while the contact stays "to be synced" for the
next catch-up.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from django.utils import timezone

from integrations import lifecycle
from integrations.http import AuthError, RateLimited, RemoteError
from integrations.models import Integration, PendingChange, RecordLink, SyncEvent
from integrations.sync import (
    baseline,
    deletes,
    email_history,
    mapping,
    sanitize,
    second_key,
    threeway,
)
from integrations.sync.context import TO_PIPEDRIVE, TO_SNOVIO, SyncContext, link_key
from integrations.sync.locks import integration_lock
from integrations.sync.queue import waiting
from integrations.sync.reconcile import reconcile

log = logging.getLogger(__name__)

Outcome = SyncEvent.Outcome
ErrorKind = PendingChange.ErrorKind
MAX_ATTEMPTS = 3  # a change that keeps failing for a temporary reason is reported after this
BATCH = 100  # changes whose contacts are read together (Pipedrive takes 100 ids per call)

PERSON_KINDS = ("person.create", "person.change", "person.delete")
PROSPECT_KIND = "prospect.change"


# --- reading a batch's contacts ------------------------------------------------------------
@dataclass
class Reads:
    """The contacts of one batch, read fresh: persons by id in calls of 100, prospects by id."""

    ctx: SyncContext
    persons: dict[int, dict | None] = field(default_factory=dict)
    prospects: dict[str, dict | None] = field(default_factory=dict)

    def prefetch(self, changes: list[PendingChange]) -> None:
        """Persons of the batch in calls of 100. Prospects are read one by one when needed:
        Snov.io's list pages carry names and emails only, so paging them saves no call."""
        person_ids: set[int] = set()
        for change in changes:
            link = _link_of(self.ctx, change)
            if change.kind in PERSON_KINDS:
                person_ids.add(_person_id(change))
            if link and link.pipedrive_person_id:
                person_ids.add(link.pipedrive_person_id)
        person_ids.discard(0)
        wanted = person_ids - set(self.persons)
        if wanted:
            found = {int(p["id"]): p for p in self.ctx.pipedrive.get_persons(sorted(wanted))}
            self.ctx.person_org_names(found.values())
            for person_id in wanted:
                self.persons[person_id] = found.get(person_id)

    def person(self, person_id: int) -> dict | None:
        if person_id not in self.persons:
            found = self.ctx.pipedrive.get_persons([person_id])
            self.persons[person_id] = found[0] if found else None
        return self.persons[person_id]

    def prospect(self, prospect_id: str, emails: list[str] = ()) -> dict | None:
        """The prospect's profile read by id, with the emails it is known by (a profile
        answer carries none: docs/specs/snovio-shapes.md)."""
        if prospect_id not in self.prospects:
            profile = self.ctx.snovio.get_prospect_by_id(prospect_id)
            if profile is not None and emails:
                profile.setdefault("emails", [{"email": e} for e in emails])
            self.prospects[prospect_id] = profile
        return self.prospects[prospect_id]

    def forget(self, person_id: int | None, prospect_id: str | None) -> None:
        """After writing a contact, the next change about it reads it again."""
        self.persons.pop(int(person_id or 0), None)
        self.prospects.pop(str(prospect_id or ""), None)


# --- one change ----------------------------------------------------------------------------
def sync_change(change: PendingChange, ctx: SyncContext, reads: Reads | None = None) -> str:
    """Apply one change from either side; returns the outcome stored on the change."""
    reads = reads or Reads(ctx)
    if change.kind in PERSON_KINDS:
        return _person_change(ctx, reads, change)
    if change.kind == PROSPECT_KIND:
        return _prospect_change(ctx, reads, change)
    if change.kind.startswith(("campaign_email", "campaign_reply", "prospect.")):
        return email_history.record_email(ctx, change.payload)
    return f"ignored: unknown change kind {change.kind!r}"


def _person_id(change: PendingChange) -> int:
    meta = change.payload.get("meta") or {}
    data = change.payload.get("data") or {}
    try:
        return int(meta.get("entity_id") or data.get("id") or 0)
    except (TypeError, ValueError):
        return 0


def _prospect_id(change: PendingChange) -> str:
    return str((change.payload.get("prospect") or {}).get("id") or "")


def _link_of(ctx: SyncContext, change: PendingChange) -> RecordLink | None:
    if change.kind in PERSON_KINDS:
        return ctx.link_for(person_id=_person_id(change))
    if change.kind == PROSPECT_KIND:
        prospect = change.payload.get("prospect") or {}
        return ctx.link_for(
            prospect_id=_prospect_id(change), email=mapping.prospect_email(prospect)
        )
    return None


def _person_change(ctx: SyncContext, reads: Reads, change: PendingChange) -> str:
    if not ctx.integration.sends_to_snovio:
        return "ignored: contacts do not flow from Pipedrive to Snov.io in this integration"
    person_id = _person_id(change)
    # A delete is judged by the state read, not the event: a `person.delete` delivery and
    # any other change of a person that no longer exists are the same fact.
    person = reads.person(person_id)
    if person is None:
        gone = ctx.link_for(person_id=person_id)
        if gone is not None:
            return deletes.person_deleted(ctx, gone)
        return f"ignored: person {person_id} no longer exists"
    paired = ctx.link_for(person_id=person_id)
    if not (paired and paired.snovio_prospect_id) and deletes.tombstoned(
        ctx.integration, person_id=person_id
    ):
        return "ignored: its Snov.io prospect was deleted (delete handling); it no longer syncs"
    cleaned = sanitize.clean_person(person)
    if cleaned.refused:
        return _refused(ctx, TO_SNOVIO, person, cleaned.refused)
    person = cleaned.record
    link = ctx.link_for(person_id=person_id) or _link_by_emails(ctx, mapping.person_emails(person))
    if _unchanged(link, threeway.PIPEDRIVE, mapping.pipedrive_values(person, ctx.spec)):
        # Read fresh, so this holds for every delivery coalesced into this change.
        return "echo: Pipedrive holds what SyncBridge last synced; nothing to do"
    prospect = None
    if link and link.snovio_prospect_id:
        prospect = _linked_prospect(ctx, link) or reads.prospect(
            link.snovio_prospect_id, _emails_of(link, mapping.person_emails(person))
        )
        if prospect is None and ctx.integration.sends_to_pipedrive:
            return deletes.prospect_deleted(ctx, link)  # gone from Snov.io since last synced
    if prospect is None:
        prospect = _find_prospect(ctx, person)
    if prospect is None and ctx.second_key and not (link and link.snovio_prospect_id):
        by_key, refused = second_key.link_by_key(ctx, person)
        if refused:
            return _refused(ctx, TO_SNOVIO, person, refused)
        if by_key is not None:
            link = by_key
            prospect = reads.prospect(link.snovio_prospect_id, [link.email])
    if prospect is not None:
        prospect = sanitize.clean_prospect(prospect).record
    return reconcile(ctx, link, prospect, person, change=change)


def _linked_prospect(ctx: SyncContext, link: RecordLink) -> dict | None:
    """A linked prospect as its base records it, so a Pipedrive change costs one Snov.io
    call (the write) instead of a read by id and a write. Only when nothing flows back to
    Pipedrive: then Pipedrive's value wins whatever Snov.io holds, and no conflict can arise
    that the history would have to record. Only the pairs Pipedrive changed are written.
    Two-way, Snov.io is read by id: an edit made there, not yet seen, is a conflict to settle
    by the rule and to record (tests/integrations/convergence.py)."""
    side_base = (link.base or {}).get(threeway.SNOVIO)
    if side_base is None or "@" not in link.email or ctx.integration.sends_to_pipedrive:
        return None
    stand_in = {"id": link.snovio_prospect_id, "emails": [{"email": link.email}]}
    return mapping.prospect_with_base(stand_in, side_base)


def _emails_of(link: RecordLink, fallback: list[str]) -> list[str]:
    return [link.email] if "@" in link.email else fallback


def _unchanged(link: RecordLink | None, side: str, values: dict) -> bool:
    """The side holds exactly its base: nothing changed there (our own write coming back, or
    a change of fields SyncBridge does not map). The other side's changes have their own."""
    side_base = (link.base or {}).get(side) if link else None
    return side_base is not None and not threeway.changed_since(side_base, values)


def _prospect_change(ctx: SyncContext, reads: Reads, change: PendingChange) -> str:
    if not ctx.integration.sends_to_pipedrive:
        return "ignored: contacts do not flow from Snov.io to Pipedrive in this integration"
    prospect_id = _prospect_id(change)
    row = change.payload.get("prospect") or {}
    prospect = reads.prospect(prospect_id, mapping.prospect_emails(row)) if prospect_id else None
    if prospect is None:
        gone = ctx.link_for(prospect_id=prospect_id) if prospect_id else None
        if gone is not None:
            return deletes.prospect_deleted(ctx, gone)
        return f"ignored: prospect {prospect_id or '?'} no longer exists in Snov.io"
    paired = ctx.link_for(prospect_id=prospect_id)
    if not (paired and paired.pipedrive_person_id) and deletes.tombstoned(
        ctx.integration, prospect_id=prospect_id
    ):
        return "ignored: its Pipedrive person was deleted (delete handling); it no longer syncs"
    cleaned = sanitize.clean_prospect(prospect)
    if cleaned.refused:
        return _refused(ctx, TO_PIPEDRIVE, prospect, cleaned.refused)
    prospect = cleaned.record
    link = ctx.link_for(prospect_id=prospect_id) or _link_by_emails(
        ctx, mapping.prospect_emails(prospect)
    )
    if _unchanged(link, threeway.SNOVIO, mapping.snovio_values(prospect, ctx.spec)):
        return "unchanged: the prospect holds what SyncBridge last synced"
    person = None
    if link and link.pipedrive_person_id:
        person = reads.person(link.pipedrive_person_id)
        if person is None and ctx.integration.sends_to_snovio:
            return deletes.person_deleted(ctx, link)  # the delete webhook was missed
    if person is None:
        person = _find_person(ctx, prospect)
    if person is None and ctx.second_key:
        person, refused = second_key.person_by_key(ctx, prospect)
        if refused:
            return _refused(ctx, TO_PIPEDRIVE, prospect, refused)
    if person is not None:
        person = sanitize.clean_person(person).record
    return reconcile(ctx, link, prospect, person, change=change)


def _refused(ctx: SyncContext, direction: str, record: dict, reason: str) -> str:
    """A contact whose values cannot be stored or sent is skipped, with the reason, alone;
    remembered as it is, so the catch-up reports it again only once it changes."""
    record_id = str(record.get("id") or "")
    ctx.event(direction, Outcome.SKIPPED, record_id=record_id, reason=reason)
    if direction == TO_PIPEDRIVE:
        values = mapping.snovio_values(sanitize.json_safe(record), ctx.spec)
        key = link_key(mapping.prospect_email(record), record_id)
        ctx.save_link(key, prospect_id=record_id, snovio_values=values)
    else:
        ctx.save_link(f"pipedrive:{record_id}", person_id=record_id, person=record)
    return f"skipped: {reason}"


def _link_by_emails(ctx: SyncContext, emails: list[str]) -> RecordLink | None:
    for email in emails:
        link = ctx.link_for(email=email)
        if link:
            return link
    return None


def _find_prospect(ctx: SyncContext, person: dict) -> dict | None:
    """The Snov.io prospect having one of the person's emails (exact, normalised)."""
    for email in mapping.person_emails(person):
        for prospect in ctx.snovio.get_prospect_by_email(email):
            if email in mapping.prospect_emails(prospect):
                return prospect
    return None


def _find_person(ctx: SyncContext, prospect: dict) -> dict | None:
    for email in mapping.prospect_emails(prospect):
        persons = ctx.pipedrive.find_persons_by_email(email)
        if persons:
            return min(persons, key=lambda p: p.get("id") or 0)
    return None


# --- the queue -----------------------------------------------------------------------------
def can_apply(integration: Integration) -> bool:
    return integration.status == Integration.Status.ACTIVE


def drain(integration_id: int) -> int:
    """Apply the integration's held changes in order, one worker at a time. Returns how many."""
    done = 0
    while True:
        with integration_lock(integration_id) as acquired:
            if not acquired:
                return done
            applied, stop = _drain_locked(integration_id)
            done += applied
            if stop:
                return done
        # Changes stored while we held the lock were left to us by the workers that backed off.
        if not waiting(integration_id).exists():
            return done


def _load(integration_id: int) -> Integration:
    return Integration.objects.select_related("pipedrive", "snovio").get(pk=integration_id)


def _drain_locked(integration_id: int) -> tuple[int, bool]:
    """Returns (changes applied, whether to stop: not Active, or a change must wait)."""
    applied = 0
    ctx: SyncContext | None = None
    while True:
        integration = _load(integration_id)
        if not can_apply(integration):
            return applied, True
        if integration.baseline_at is None:
            # Under the lock, so the baseline is taken once, before any change is applied.
            try:
                ctx = ctx or SyncContext(integration)
                baseline.take_baseline(integration, ctx)
            except AuthError as exc:
                lifecycle.set_status(integration, Integration.Status.FAILED, None, str(exc))
                return applied, True
            except (RateLimited, RemoteError) as exc:
                log.warning("integration %s: baseline not recorded yet: %s", integration_id, exc)
                return applied, True  # the next drain or catch-up tries again
        batch = list(waiting(integration_id)[:BATCH])
        if not batch:
            return applied, False
        # From now on a new delivery about these contacts is a new change (read again later).
        PendingChange.objects.filter(pk__in=[c.pk for c in batch], started_at__isnull=True).update(
            started_at=timezone.now()
        )
        if ctx is None:
            ctx = SyncContext(integration)
        ctx.integration = integration
        reads = Reads(ctx)
        try:
            reads.prefetch(batch)
        except (RateLimited, RemoteError, AuthError):
            reads = Reads(ctx)  # each change reads (and fails) on its own below
        for change in batch:
            if change is not batch[0] and not can_apply(_load(integration_id)):
                return applied, True
            if not _apply(ctx, reads, change):
                return applied, True
            applied += 1


def _apply(ctx: SyncContext, reads: Reads, change: PendingChange) -> bool:
    """Apply one change and record the outcome; False when the drain must stop here."""
    try:
        outcome = sync_change(change, ctx, reads)
    except AuthError as exc:
        lifecycle.set_status(ctx.integration, Integration.Status.FAILED, None, str(exc))
        _note_failure(change, ErrorKind.AUTH, exc)
        return False
    except RateLimited as exc:
        _note_failure(change, ErrorKind.RATE_LIMIT, exc)
        return False
    except RemoteError as exc:
        kind = ErrorKind.PERMANENT if exc.permanent else ErrorKind.TEMPORARY
        if not exc.permanent and change.attempts + 1 < MAX_ATTEMPTS:
            _note_failure(change, kind, exc)
            return False
        outcome = _give_up(ctx, change, kind, f"{exc} (after {change.attempts + 1} attempt(s))")
    except Exception as exc:  # a bug must not block this integration's queue for ever
        log.exception("integration %s: change %s not applied", ctx.integration.pk, change.pk)
        outcome = _give_up(
            ctx,
            change,
            ErrorKind.BUG,
            f"SyncBridge could not apply this change ({exc.__class__.__name__}: {exc})",
        )
    change.processed_at = timezone.now()
    change.outcome = outcome[:2000]
    change.save(update_fields=["processed_at", "outcome", "attempts", "last_error_kind"])
    reads.forget(*_ids_of(ctx, change))
    return True


def _ids_of(ctx: SyncContext, change: PendingChange) -> tuple[int | None, str | None]:
    link = _link_of(ctx, change)
    if link is None:
        return (_person_id(change) or None, _prospect_id(change) or None)
    return link.pipedrive_person_id, link.snovio_prospect_id


def _note_failure(change: PendingChange, kind: str, exc: Exception) -> None:
    change.attempts += 1
    change.last_error_kind = kind
    change.outcome = f"waiting: {exc} (attempt {change.attempts} of {MAX_ATTEMPTS})"[:2000]
    change.save(update_fields=["attempts", "last_error_kind", "outcome"])


def _give_up(ctx: SyncContext, change: PendingChange, kind: str, reason: str) -> str:
    change.attempts += 1
    change.last_error_kind = kind
    ctx.event(
        TO_SNOVIO if change.kind in PERSON_KINDS else TO_PIPEDRIVE,
        Outcome.FAILED,
        reason=reason,
        record_id=str(_person_id(change) or _prospect_id(change) or ""),
    )
    return f"failed: {reason}"
