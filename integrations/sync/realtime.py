"""Real-time sync: apply one received change (`sync_change`) and drain the queue in order.

Changes arrive as PendingChange rows (webhooks from either side, the scheduled catch-up).
`drain()` applies an integration's held changes oldest first, under the integration's lock,
only while it is Active: a Paused, Syncing or failed integration keeps its changes until it is
Active again (`receivers.py` drains on that signal).

Pipedrive changes are applied from a fresh read of the person, not from the webhook's data,
so a duplicate or an out-of-order delivery converges on the person's current state. The
fingerprints on RecordLink recognise the echo of our own writes before any call is made.
"""

from __future__ import annotations

import logging

from django.utils import timezone

from integrations.http import AuthError, RateLimited, RemoteError
from integrations.models import Integration, PendingChange, SyncEvent
from integrations.sync import echo, email_history, mapping
from integrations.sync.context import TO_PIPEDRIVE, TO_SNOVIO, SyncContext
from integrations.sync.locks import integration_lock
from integrations.sync.records import person_to_snovio, prospect_to_pipedrive

log = logging.getLogger(__name__)

Source = PendingChange.Source
MAX_ATTEMPTS = 3  # a change that keeps failing for a temporary reason is given up after this

PERSON_KINDS = ("person.create", "person.change", "person.delete")
PROSPECT_KIND = "prospect.change"


# --- one change ----------------------------------------------------------------------------
def sync_change(change: PendingChange, ctx: SyncContext | None = None) -> str:
    """Apply one change from either side; returns the outcome stored on the change."""
    ctx = ctx or SyncContext(change.integration)
    if change.kind in PERSON_KINDS:
        return _person_change(ctx, change.payload)
    if change.kind == PROSPECT_KIND:
        return _prospect_change(ctx, change.payload.get("prospect") or {})
    if change.kind.startswith(("campaign_email", "campaign_reply", "prospect.")):
        return email_history.record_email(ctx, change.payload)
    return f"ignored: unknown change kind {change.kind!r}"


def _person_change(ctx: SyncContext, payload: dict) -> str:
    integration = ctx.integration
    meta = payload.get("meta") or {}
    data = payload.get("data") or {}
    if not integration.sends_to_snovio:
        return "ignored: contacts do not flow from Pipedrive to Snov.io in this integration"
    person_id = int(meta.get("entity_id") or data.get("id") or 0)
    if meta.get("action") == "delete":
        return "ignored: a person deleted in Pipedrive is never deleted from Snov.io"
    link = ctx.link_for(person_id=person_id)
    if link and data:
        ctx.person_org_name(data)
        if echo.is_echo(link, "pipedrive", mapping.pipedrive_values(data, ctx.spec)):
            return "echo: these are the values SyncBridge last synced; nothing to do"
    try:
        person = ctx.pipedrive.get_person(person_id)
    except RemoteError as exc:
        if exc.status == 404:
            return f"ignored: person {person_id} no longer exists"
        raise
    ctx.person_org_name(person)
    if echo.is_echo(link, "pipedrive", mapping.pipedrive_values(person, ctx.spec)):
        return "unchanged: the person already matches what was last synced"
    prospect = _find_prospect(ctx, person)
    result = person_to_snovio(ctx, person, prospect, sending_wins=True)
    result.log(ctx, TO_SNOVIO)
    return f"{result.outcome}: {result.describe(ctx.spec.labels)}"


def _find_prospect(ctx: SyncContext, person: dict) -> dict | None:
    """The Snov.io prospect having one of the person's emails (exact, normalised)."""
    for email in mapping.person_emails(person):
        for prospect in ctx.snovio.get_prospect_by_email(email):
            if email in mapping.prospect_emails(prospect):
                return prospect
    return None


def _prospect_change(ctx: SyncContext, prospect: dict) -> str:
    integration = ctx.integration
    if not integration.sends_to_pipedrive:
        return "ignored: contacts do not flow from Snov.io to Pipedrive in this integration"
    email = mapping.prospect_email(prospect)
    link = ctx.link_for(prospect_id=str(prospect.get("id") or ""), email=email)
    if echo.is_echo(link, "snovio", mapping.snovio_values(prospect, ctx.spec)):
        return "unchanged: the prospect already matches what was last synced"
    person = _find_person(ctx, prospect, link)
    result = prospect_to_pipedrive(ctx, prospect, person, sending_wins=True)
    result.log(ctx, TO_PIPEDRIVE)
    return f"{result.outcome}: {result.describe(ctx.spec.labels)}"


def _find_person(ctx: SyncContext, prospect: dict, link) -> dict | None:
    if link and link.pipedrive_person_id:
        try:
            return ctx.pipedrive.get_person(link.pipedrive_person_id)
        except RemoteError as exc:
            if exc.status != 404:
                raise
    for email in mapping.prospect_emails(prospect):
        persons = ctx.pipedrive.find_persons_by_email(email)
        if persons:
            return sorted(persons, key=lambda p: p.get("id") or 0)[0]
    return None


# --- the queue -----------------------------------------------------------------------------
def pending(integration_id: int):
    return PendingChange.objects.filter(
        integration_id=integration_id, processed_at__isnull=True
    ).order_by("received_at", "pk")


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
        if not pending(integration_id).exists():
            return done


def _drain_locked(integration_id: int) -> tuple[int, bool]:
    """Returns (changes applied, whether to stop: not Active, or a change must wait)."""
    applied = 0
    ctx: SyncContext | None = None
    while True:
        integration = Integration.objects.select_related("pipedrive", "snovio").get(
            pk=integration_id
        )
        if integration.status != Integration.Status.ACTIVE:
            return applied, True
        change = pending(integration_id).first()
        if change is None:
            return applied, False
        if ctx is None:
            ctx = SyncContext(integration)
        else:
            ctx.integration = integration
        try:
            outcome = sync_change(change, ctx)
        except AuthError as exc:
            from integrations.services import set_status

            set_status(integration, Integration.Status.FAILED, None, str(exc))
            return applied, True
        except (RateLimited, RemoteError) as exc:
            permanent = getattr(exc, "permanent", False) and not isinstance(exc, RateLimited)
            attempts = int(change.payload.get("_attempts", 0)) + 1
            if permanent or attempts >= MAX_ATTEMPTS:
                outcome = f"failed: {exc}"
                ctx.event(
                    _direction(change),
                    SyncEvent.Outcome.FAILED,
                    reason=f"{exc} (after retries)",
                    record_id=_record_id(change),
                )
            else:
                change.payload["_attempts"] = attempts
                change.outcome = f"waiting: {exc} (attempt {attempts} of {MAX_ATTEMPTS})"
                change.save(update_fields=["payload", "outcome"])
                return applied, True
        except Exception as exc:  # a bug must not block this integration's queue for ever
            log.exception("integration %s: change %s not applied", integration_id, change.pk)
            outcome = f"failed: {exc.__class__.__name__}: {exc}"
            ctx.event(
                _direction(change),
                SyncEvent.Outcome.FAILED,
                reason=f"SyncBridge could not apply this change ({exc.__class__.__name__})",
                record_id=_record_id(change),
            )
        change.processed_at = timezone.now()
        change.outcome = outcome[:2000]
        change.save(update_fields=["processed_at", "outcome"])
        applied += 1


def _direction(change: PendingChange) -> str:
    return TO_SNOVIO if change.kind in PERSON_KINDS else TO_PIPEDRIVE


def _record_id(change: PendingChange) -> str:
    meta = change.payload.get("meta") or {}
    prospect = change.payload.get("prospect") or {}
    return str(meta.get("entity_id") or prospect.get("id") or "")
