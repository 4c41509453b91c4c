"""What a run needs to know from the remotes: the Pipedrive person (linked, found or created),
stages, the active deal, and the Snov.io prospect's lists. Each is looked up once per run and
kept on the `RunContext`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction

from automations.events import CampaignEvent
from automations.models import AutomationRun
from integrations.clients import pipedrive_client, snovio_client
from integrations.http import RemoteError
from integrations.models import Integration, ListSelection, RecordLink
from integrations.pipedrive.client import PipedriveClient
from integrations.sync.matching import normalise_email


class Skip(Exception):
    """The action cannot be performed and that is not an error (recorded as skipped)."""


@dataclass
class RunContext:
    integration: Integration
    run: AutomationRun
    event: CampaignEvent
    client: PipedriveClient | None = None
    person_id: int | None = None
    person_name: str = ""
    person_created: bool = False
    person_reported: bool = False
    person_error: str = ""
    prospect: dict | None = None
    link: RecordLink | None = None  # the contact's link, when the list check read it
    deal: dict | None = None  # the deal this run created or moved last
    stages: dict[int, list[dict]] = field(default_factory=dict)

    def pipedrive(self) -> PipedriveClient:
        if self.client is None:
            self.client = pipedrive_client(self.integration)
        return self.client


def sorted_stages(stages: Iterable[dict], pipeline_id: int | None = None) -> list[dict]:
    """A pipeline's stages in Pipedrive's order (order_nr, then id)."""
    chosen = [s for s in stages if pipeline_id is None or s.get("pipeline_id") == pipeline_id]
    return sorted(chosen, key=lambda s: (s.get("order_nr") or 0, s.get("id") or 0))


def pick_active_deal(deals: Iterable[dict], prefer_id: int | None = None) -> dict | None:
    """The contact's active deal: open, not deleted; the preferred one, else the newest."""
    active = [
        d
        for d in deals
        if (d.get("status") or "open") == "open"
        and not d.get("is_deleted")
        and not d.get("is_archived")
    ]
    if not active:
        return None
    for deal in active:
        if prefer_id and deal.get("id") == prefer_id:
            return deal
    return max(active, key=lambda d: (str(d.get("add_time") or ""), d.get("id") or 0))


# --- Pipedrive look-ups --------------------------------------------------------------------
def stages_of(ctx: RunContext, pipeline_id: int | None) -> list[dict]:
    if pipeline_id is None:
        return []
    if pipeline_id not in ctx.stages:
        ctx.stages[pipeline_id] = sorted_stages(
            ctx.pipedrive().list_stages(pipeline_id=pipeline_id), pipeline_id
        )
    return ctx.stages[pipeline_id]


def active_deal(ctx: RunContext) -> dict:
    if ctx.deal and (ctx.deal.get("status") or "open") == "open":
        return ctx.deal
    person = person_id_of(ctx)
    deal = pick_active_deal(ctx.pipedrive().list_deals(person_id=person, status="open"))
    if deal is None:
        raise Skip("The contact has no active deal (open, not won, lost or deleted) to move.")
    ctx.deal = deal
    return deal


def person_objects(ctx: RunContext) -> dict:
    if ctx.person_id is None:
        return {}
    ref = {"id": ctx.person_id, "name": ctx.person_name}
    if ctx.person_created and not ctx.person_reported:
        ref["created"] = True  # said once, on the outcome of the action that created it
    return {"person": ref}


def person_id_of(ctx: RunContext) -> int:
    """The Pipedrive person for the event's email: linked, found, or created (and linked)."""
    if ctx.person_id is not None:
        return ctx.person_id
    try:
        return _resolve_person(ctx)
    except RemoteError as exc:
        ctx.person_error = f"Could not find or create the Pipedrive person: {exc}"
        raise RemoteError(ctx.person_error, remote="pipedrive", permanent=exc.permanent) from exc


def _resolve_person(ctx: RunContext) -> int:
    email = ctx.event.email
    # The sync engine keys its links by the normalised email, as this engine does. A link
    # the list check read already names the person when it has one; otherwise read it again.
    link = ctx.link
    if link is None or not link.pipedrive_person_id:
        link = RecordLink.objects.filter(integration=ctx.integration, email=email).first()
    if link and link.pipedrive_person_id:
        ctx.person_id = link.pipedrive_person_id
        ctx.person_name = ctx.event.name
        return ctx.person_id
    client = ctx.pipedrive()
    found = [
        p
        for p in client.find_persons_by_email(email)
        if email
        in {normalise_email(e.get("value")) for e in p.get("emails") or [] if isinstance(e, dict)}
    ]
    if found:
        person = min(found, key=lambda p: p.get("id") or 0)
    else:
        name = ctx.event.name or _prospect_name(ctx) or email
        data: dict[str, Any] = {
            "name": name,
            "emails": [{"value": email, "primary": True, "label": "work"}],
        }
        if ctx.integration.pipedrive_owner_id:
            data["owner_id"] = ctx.integration.pipedrive_owner_id
        person = client.create_person(data)
        ctx.person_created = True
    ctx.person_id = int(person["id"])
    ctx.person_name = person.get("name") or ""
    _link_person(ctx, link)
    return ctx.person_id


def _link_person(ctx: RunContext, link: RecordLink | None) -> None:
    """Remember the person for the sync engine and the next events of this contact."""
    if link is not None:
        RecordLink.objects.filter(pk=link.pk, pipedrive_person_id__isnull=True).update(
            pipedrive_person_id=ctx.person_id
        )
        return
    try:
        with transaction.atomic():
            RecordLink.objects.create(
                integration=ctx.integration,
                email=ctx.event.email,
                snovio_prospect_id=str(ctx.event.prospect_id or ""),
                pipedrive_person_id=ctx.person_id,
            )
    except IntegrityError:  # the sync engine linked it meanwhile
        RecordLink.objects.filter(
            integration=ctx.integration, email=ctx.event.email, pipedrive_person_id__isnull=True
        ).update(pipedrive_person_id=ctx.person_id)


def _prospect(ctx: RunContext) -> dict | None:
    """The Snov.io prospect behind the event (looked up once per run, only when needed)."""
    if ctx.prospect is None:
        matches = snovio_client(ctx.integration).get_prospect_by_email(ctx.event.email)
        ctx.prospect = next(
            (
                p
                for p in matches
                if ctx.event.email
                in {
                    normalise_email(e.get("email"))
                    for e in p.get("emails") or []
                    if isinstance(e, dict)
                }
                | {normalise_email(p.get("email"))}
            ),
            matches[0] if matches else {},
        )
    return ctx.prospect or None


def _prospect_name(ctx: RunContext) -> str:
    try:
        prospect = _prospect(ctx)
    except RemoteError:
        return ""
    if not prospect:
        return ""
    return (
        prospect.get("name")
        or f"{prospect.get('firstName', '')} {prospect.get('lastName', '')}".strip()
    )


def not_in_synced_list(ctx: RunContext) -> str:
    """Why the event's prospect is outside the synced lists ("" when it is inside)."""
    integration = ctx.integration
    if integration.all_lists:
        return ""
    selected = {
        str(i)
        for i in ListSelection.objects.filter(integration=integration).values_list(
            "list_id", flat=True
        )
    }
    ctx.link = RecordLink.objects.filter(integration=integration, email=ctx.event.email).first()
    if ctx.link and ctx.link.snovio_prospect_id:
        return ""  # the sync engine links prospects of the selected lists only
    prospect = _prospect(ctx)
    if not prospect:
        return "The prospect is not in Snov.io any more, so it is in no synced list."
    lists = {
        str(entry.get("id") if isinstance(entry, dict) else entry)
        for entry in prospect.get("lists") or []
    }
    if lists & selected:
        return ""
    return "The prospect is not in a Snov.io list this integration syncs."
