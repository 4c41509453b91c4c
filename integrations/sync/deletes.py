"""Delete handling: a contact deleted in one app, and what SyncBridge does to its partner.

How a delete is noticed (docs/specs/deletes.md):
- Pipedrive: the `person.delete` webhook (v2), or any later change of the pair whose read of
  the linked person by id finds nothing (the catch-up path when the webhook was missed).
- Snov.io publishes no delete webhook: the catch-up's profile re-check (`profiles.recheck`)
  reads each linked prospect by id in turn, and a prospect that is no longer found becomes a
  change; so does any change of the pair whose read of the linked prospect finds nothing.
Either way `realtime` calls `person_deleted` or `prospect_deleted` with the pair's link, inside
the integration's drain (one worker at a time, only while Active: a Paused integration holds
the change and acts on resume, like any other change).

What happens is the integration's `DeletePolicy`, per direction, and only in a direction the
integration sends (to Pipedrive only: Snov.io deletes act on Pipedrive, never the reverse).

The invariant (tests/integrations/test_deletes.py, seeded random histories):
- a deleted record has at most one DeleteAction (unique key "<app>:<id>"), so its partner is
  labelled, listed or deleted at most once however often the delete is noticed (webhook,
  retry, catch-up);
- deletions taken in Pipedrive per integration and UTC day never exceed the cap, except those a
  person approved; the others wait for approval and are never taken without it;
- once a delete is settled (done, waiting or rejected) the pair's link is gone, and the
  DeleteAction keeps later events about the surviving record from syncing it back.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from integrations.http import RemoteError
from integrations.models import (
    DeleteAction,
    DeletePolicy,
    DeleteQuota,
    Integration,
    OnPipedriveDelete,
    OnSnovioDelete,
    Provider,
    RecordLink,
    SyncEvent,
)
from integrations.snovio.constants import DELETED_IN_PIPEDRIVE_LIST
from integrations.sync.context import TO_PIPEDRIVE, TO_SNOVIO, SyncContext

log = logging.getLogger(__name__)

Status = DeleteAction.Status
PERSON_LABEL = "Deleted in Snov.io"  # the Pipedrive person label
DELETED_LIST = DELETED_IN_PIPEDRIVE_LIST  # the Snov.io list standing in for a tag
LABEL_FIELD = "label_ids"  # Pipedrive's person Labels field (type set)
SHOWN = 50  # deletions listed on the settings page


# --- the policy ------------------------------------------------------------------------------
def policy_for(integration: Integration) -> DeletePolicy:
    """The integration's delete handling; the defaults (ignore both ways) when never saved."""
    return DeletePolicy.objects.filter(integration=integration).first() or DeletePolicy(
        integration=integration
    )


def watches_snovio_deletes(integration: Integration) -> bool:
    """Whether a prospect gone from Snov.io must become a change (profile re-check)."""
    return (
        integration.sends_to_pipedrive
        and policy_for(integration).on_snovio_delete != OnSnovioDelete.IGNORE
    )


def utc_today() -> dt.date:
    return timezone.now().astimezone(dt.UTC).date()


# --- noticing a delete -----------------------------------------------------------------------
def person_deleted(ctx: SyncContext, link: RecordLink) -> str:
    """The Pipedrive person of `link` is gone; act on its Snov.io prospect per the policy."""
    integration = ctx.integration
    if not integration.sends_to_snovio:
        return "ignored: contacts do not flow from Pipedrive to Snov.io in this integration"
    reaction = policy_for(integration).on_pipedrive_delete
    if reaction == OnPipedriveDelete.IGNORE:
        return "ignored: a person deleted in Pipedrive leaves Snov.io as it is (delete handling)"
    if not link.snovio_prospect_id:
        _settle_link(link)
        return "ignored: the deleted person had no Snov.io prospect"
    key = f"{Provider.PIPEDRIVE}:{link.pipedrive_person_id}"
    return _handle(ctx, link, Provider.PIPEDRIVE, key, reaction, capped=False)


def prospect_deleted(ctx: SyncContext, link: RecordLink) -> str:
    """The Snov.io prospect of `link` is gone; act on its Pipedrive person per the policy."""
    integration = ctx.integration
    if not integration.sends_to_pipedrive:
        return "ignored: contacts do not flow from Snov.io to Pipedrive in this integration"
    reaction = policy_for(integration).on_snovio_delete
    if reaction == OnSnovioDelete.IGNORE:
        return "ignored: a prospect deleted in Snov.io leaves Pipedrive as it is (delete handling)"
    if not link.pipedrive_person_id:
        _settle_link(link)
        return "ignored: the deleted prospect had no Pipedrive person"
    key = f"{Provider.SNOVIO}:{link.snovio_prospect_id}"
    capped = reaction == OnSnovioDelete.DELETE
    return _handle(ctx, link, Provider.SNOVIO, key, reaction, capped=capped)


def tombstoned(
    integration: Integration, *, person_id: int | None = None, prospect_id: str = ""
) -> bool:
    """Whether the record belongs to a pair split by a delete: its events must not sync it
    back (our own label or list write, or a later edit of the surviving record)."""
    match = Q()
    if person_id:
        match |= Q(pipedrive_person_id=person_id)
    if prospect_id:
        match |= Q(snovio_prospect_id=str(prospect_id))
    if not match:
        return False
    return DeleteAction.objects.filter(match, integration=integration).exists()


def split_partners(integration: Integration, direction: str) -> dict[str, str]:
    """The sending records of a transfer in `direction` whose partner was deleted (and handled
    by the delete policy), by id, each with the reason a transfer leaves it alone: sending
    it would create the deleted contact again."""
    if direction == TO_PIPEDRIVE:
        rows = DeleteAction.objects.filter(
            integration=integration, deleted_in=Provider.PIPEDRIVE
        ).exclude(snovio_prospect_id="")
        return {
            str(prospect_id): f"Its Pipedrive person was deleted on {at:%Y-%m-%d}; a transfer "
            "does not create it again (settings page, Deletes)."
            for prospect_id, at in rows.values_list("snovio_prospect_id", "created_at")
        }
    rows = DeleteAction.objects.filter(
        integration=integration, deleted_in=Provider.SNOVIO, pipedrive_person_id__isnull=False
    )
    return {
        str(person_id): f"Its Snov.io prospect was deleted on {at:%Y-%m-%d}; a transfer "
        "does not create it again (settings page, Deletes)."
        for person_id, at in rows.values_list("pipedrive_person_id", "created_at")
    }


def _handle(
    ctx: SyncContext, link: RecordLink, deleted_in: str, key: str, reaction: str, capped: bool
) -> str:
    action = _record(ctx.integration, link, deleted_in, key, reaction, capped)
    if action.status in (Status.DONE, Status.REJECTED):
        _settle_link(link)
        return f"duplicate: this delete was handled already ({action.get_status_display()})"
    if action.status == Status.WAITING:
        _settle_link(link)
        return f"waiting: {describe(action)} waits for approval (over today's cap)"
    # To do (new, or its worker died) or failed: the actions are idempotent, apply it now.
    return carry_out(ctx, action, link)


def _record(
    integration: Integration,
    link: RecordLink,
    deleted_in: str,
    key: str,
    reaction: str,
    capped: bool,
) -> DeleteAction:
    """The delete's one DeleteAction, created once; a capped action takes today's slot in
    the same transaction, or waits for approval when none is left."""
    try:
        with transaction.atomic():
            action = DeleteAction.objects.create(
                integration=integration,
                deleted_in=deleted_in,
                key=key,
                email=link.email,
                snovio_prospect_id=link.snovio_prospect_id,
                pipedrive_person_id=link.pipedrive_person_id,
                action=reaction,
            )
            if capped and not take_slot(integration, policy_for(integration).daily_cap):
                action.status = Status.WAITING
                action.save(update_fields=["status"])
            return action
    except IntegrityError:
        return DeleteAction.objects.get(integration=integration, key=key)


def take_slot(integration: Integration, cap: int, day: dt.date | None = None) -> bool:
    """Take one of today's `cap` deletions. The day's row is locked (SELECT ... FOR UPDATE)
    until the caller's transaction ends, so two workers cannot both take the last slot."""
    day = day or utc_today()
    DeleteQuota.objects.get_or_create(integration=integration, day=day)
    quota = DeleteQuota.objects.select_for_update().get(integration=integration, day=day)
    if quota.used >= cap:
        return False
    DeleteQuota.objects.filter(pk=quota.pk).update(used=F("used") + 1)
    return True


def taken_today(integration: Integration) -> int:
    quota = DeleteQuota.objects.filter(integration=integration, day=utc_today()).first()
    return quota.used if quota else 0


def _settle_link(link: RecordLink | None) -> None:
    if link is not None and link.pk:
        RecordLink.objects.filter(pk=link.pk).delete()


# --- acting on the other side ----------------------------------------------------------------
def describe(action: DeleteAction) -> str:
    if action.deleted_in == Provider.SNOVIO:
        what = {
            OnSnovioDelete.LABEL: f"labelling person {action.pipedrive_person_id} “{PERSON_LABEL}”",
            OnSnovioDelete.DELETE: f"deleting person {action.pipedrive_person_id} in Pipedrive",
        }
    else:
        what = {OnPipedriveDelete.MARK: f"adding {action.email} to the list “{DELETED_LIST}”"}
    return what.get(action.action, action.action)


def carry_out(ctx: SyncContext, action: DeleteAction, link: RecordLink | None = None) -> str:
    """Apply the action in the other app. A remote error marks it failed and is raised, so the
    drain retries the change (the link stays until the action is done)."""
    direction = TO_PIPEDRIVE if action.deleted_in == Provider.SNOVIO else TO_SNOVIO
    target = action.pipedrive_person_id if direction == TO_PIPEDRIVE else action.snovio_prospect_id
    try:
        if direction == TO_PIPEDRIVE:
            detail = _on_pipedrive(ctx, action)
        else:
            detail = _on_snovio(ctx, action)
    except RemoteError as exc:
        action.status, action.detail = Status.FAILED, f"{describe(action)} failed: {exc}"
        action.save(update_fields=["status", "detail"])
        raise
    action.status, action.detail = Status.DONE, detail
    action.save(update_fields=["status", "detail"])
    _settle_link(link)
    side = "Snov.io" if action.deleted_in == Provider.SNOVIO else "Pipedrive"
    ctx.event(
        direction,
        SyncEvent.Outcome.UPDATED,
        email=action.email if "@" in action.email else "",
        record_id=target,
        reason=f"deleted in {side}: {detail}",
    )
    return f"deleted in {side}: {detail}"


def _on_pipedrive(ctx: SyncContext, action: DeleteAction) -> str:
    person_id = int(action.pipedrive_person_id or 0)
    if action.action == OnSnovioDelete.DELETE:
        try:
            ctx.pipedrive.delete_person(person_id)
        except RemoteError as exc:
            if exc.status == 404:
                return f"person {person_id} was already deleted in Pipedrive"
            raise
        return f"person {person_id} deleted in Pipedrive"
    found = ctx.pipedrive.get_persons([person_id])
    if not found:
        return f"person {person_id} no longer exists in Pipedrive"
    label_id = _person_label_id(ctx)
    labels = list(found[0].get("label_ids") or [])
    if label_id in labels:
        return f"person {person_id} already labelled “{PERSON_LABEL}”"
    ctx.pipedrive.update_person(person_id, {"label_ids": [*labels, label_id]})
    return f"person {person_id} labelled “{PERSON_LABEL}”"


def _person_label_id(ctx: SyncContext) -> int:
    """The id of the person label "Deleted in Snov.io", added as an option of the Labels field
    when missing (labels are options of a person field: "Working with labels")."""
    fields = ctx.pipedrive.list_person_fields()
    field = next((f for f in fields if f.get("key") == LABEL_FIELD), None)
    if field is None:
        raise RemoteError(
            "Pipedrive lists no person Labels field (label_ids)", remote="pipedrive", permanent=True
        )
    for option in field.get("options") or []:
        if option.get("label") == PERSON_LABEL:
            return int(option["id"])
    added = ctx.pipedrive.add_person_field_options(LABEL_FIELD, [PERSON_LABEL])
    return int(added[0]["id"])


def _on_snovio(ctx: SyncContext, action: DeleteAction) -> str:
    if "@" not in action.email:
        return "the prospect has no email: Snov.io lists take prospects by email"
    profile = ctx.snovio.get_prospect_by_id(action.snovio_prospect_id)
    if profile is None:
        return f"prospect {action.snovio_prospect_id} no longer exists in Snov.io"
    list_id = _deleted_list_id(ctx)
    names = {k: profile.get(k) for k in ("name", "firstName", "lastName") if profile.get(k)}
    # updateContact off: the list membership is the mark, the prospect's values stay as they are.
    ctx.snovio.add_prospect_to_list(list_id, {"email": action.email, **names}, update=False)
    return f"{action.email} added to the Snov.io list “{DELETED_LIST}”"


def _deleted_list_id(ctx: SyncContext) -> str:
    for item in ctx.snovio.get_user_lists():
        if item.get("name") == DELETED_LIST and not item.get("isDeleted"):
            return str(item["id"])
    return ctx.snovio.create_list(DELETED_LIST)


# --- the approval list -----------------------------------------------------------------------
def awaiting(integration: Integration) -> list[DeleteAction]:
    """Deletions a person must decide on: over the cap, or failed (Approve tries again)."""
    return list(
        DeleteAction.objects.filter(
            integration=integration, status__in=(Status.WAITING, Status.FAILED)
        ).order_by("created_at", "pk")[:SHOWN]
    )


def recent(integration: Integration) -> list[DeleteAction]:
    return list(
        DeleteAction.objects.filter(integration=integration).exclude(
            status__in=(Status.WAITING, Status.FAILED)
        )[:SHOWN]
    )


def approve(integration: Integration, action_id: int, user=None) -> str:
    """Apply a waiting (or failed) deletion now, whatever today's count: a person decided.
    Refused while the integration is not Active, as nothing is written then."""
    if integration.status != Integration.Status.ACTIVE:
        raise ValueError("The integration is not Active: resume it, then approve.")
    action = _decidable(integration, action_id)
    action.decided_by, action.decided_at = user, timezone.now()
    action.save(update_fields=["decided_by", "decided_at"])
    link = RecordLink.objects.filter(
        integration=integration, pipedrive_person_id=action.pipedrive_person_id
    ).first()
    try:
        return carry_out(SyncContext(integration), action, link)
    except RemoteError as exc:
        raise ValueError(f"{describe(action)} failed: {exc}") from exc


def reject(integration: Integration, action_id: int, user=None) -> str:
    action = _decidable(integration, action_id)
    action.status, action.decided_by, action.decided_at = Status.REJECTED, user, timezone.now()
    action.detail = "rejected: nothing is done in the other app"
    action.save(update_fields=["status", "decided_by", "decided_at", "detail"])
    RecordLink.objects.filter(
        integration=integration, pipedrive_person_id=action.pipedrive_person_id
    ).delete()
    return f"Rejected: {describe(action)} will not happen."


def _decidable(integration: Integration, action_id: int) -> DeleteAction:
    action = DeleteAction.objects.filter(
        integration=integration, pk=action_id, status__in=(Status.WAITING, Status.FAILED)
    ).first()
    if action is None:
        raise ValueError("That deletion is not waiting for a decision.")
    return action
