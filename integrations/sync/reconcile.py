"""One contact's two sides brought together: the three-way merge performed.

`reconcile(ctx, link, prospect, person)` reads nothing itself: it takes both sides as read
fresh by the drain, decides with the pure `threeway.plan`, records the decision (conflicts
included) in the history, writes what each side must receive, and only then records the new
base on the link. A contact that exists on one side only is created on the other
(`records.py`).
"""

from __future__ import annotations

from django.utils import timezone

from integrations.models import PendingChange, RecordLink, SyncEvent
from integrations.sync import conflicts as conflict_rules
from integrations.sync import mapping, threeway
from integrations.sync.baseline import remote_time
from integrations.sync.context import TO_PIPEDRIVE, TO_SNOVIO, SyncContext, link_key
from integrations.sync.records import drop_same_name, person_to_snovio, prospect_to_pipedrive

Outcome = SyncEvent.Outcome


def reconcile(
    ctx: SyncContext,
    link: RecordLink | None,
    prospect: dict | None,
    person: dict | None,
    *,
    change: PendingChange | None = None,
) -> str:
    """Bring one contact's two sides together; returns what happened, in words."""
    if person is None and prospect is not None:
        return _create(ctx, prospect_to_pipedrive, prospect, TO_PIPEDRIVE)
    if prospect is None and person is not None:
        return _create(ctx, person_to_snovio, person, TO_SNOVIO)
    assert person is not None and prospect is not None
    spec = ctx.spec
    ctx.person_org_name(person)
    base = (link.base if link else None) or {}
    # Fields no Snov.io answer carries (phones, custom fields) are as SyncBridge last saw them.
    prospect = mapping.prospect_with_base(prospect, base.get(threeway.SNOVIO))
    snovio_now = mapping.snovio_values(prospect, spec)
    pipedrive_now = mapping.pipedrive_values(person, spec)
    seen_at = change.received_at if change else timezone.now()
    snovio_as_p = mapping.prospect_to_person(prospect, spec).values
    pipedrive_as_s = mapping.person_to_prospect(person, spec).values
    s_base = _side_base(base, threeway.SNOVIO, snovio_now, _prospect_is_new(ctx, prospect))
    p_base = _side_base(base, threeway.PIPEDRIVE, pipedrive_now, _person_is_new(ctx, person))
    # A side SyncBridge was creating when its worker died starts from the values it sent.
    if s_base is None and base.get(threeway.CREATING_SNOVIO) is not None:
        s_base = base[threeway.CREATING_SNOVIO]
    if p_base is None and base.get(threeway.CREATING_PIPEDRIVE) is not None:
        p_base = base[threeway.CREATING_PIPEDRIVE]
    snovio = threeway.SideState(
        values=snovio_now,
        as_other=snovio_as_p,
        base=s_base,
        changed_at=seen_at,  # Snov.io publishes no change time: when SyncBridge first saw it
    )
    pipedrive = threeway.SideState(
        values=pipedrive_now,
        as_other=pipedrive_as_s,
        base=p_base,
        changed_at=remote_time(person.get("update_time")) or seen_at,
    )
    plan = threeway.plan(
        spec.pairs,
        snovio,
        pipedrive,
        in_sync=base.get("in_sync") or (),
        rule=ctx.integration.realtime_rule,
        to_pipedrive=ctx.integration.sends_to_pipedrive,
        to_snovio=ctx.integration.sends_to_snovio,
        labels=spec.labels,
    )
    payload, problems = _pipedrive_payload(ctx, person, plan.to_pipedrive)
    email = mapping.prospect_email(prospect) or mapping.person_email(person)
    # The decision (conflicts included) is recorded before the writes, so a worker that dies
    # between a write and its record still leaves the conflict and its winner in the history.
    outcome, events = _log(ctx, plan, prospect, person, email, problems)
    try:
        person_after = _write_pipedrive(ctx, person, payload)
        snovio_after = _write_snovio(ctx, person, prospect, snovio_now, plan.to_snovio)
    except Exception as exc:
        for event in events:
            event.outcome = Outcome.FAILED
            event.reason = f"Not written ({exc}): {event.reason}"[:2000]
            event.save(update_fields=["outcome", "reason"])
        raise
    ctx.save_link(
        link.email if link else link_key(email, prospect.get("id")),
        person_id=person.get("id"),
        prospect_id=prospect.get("id"),
        snovio_values=snovio_after,
        person=person_after,
    )
    return outcome


def _side_base(base: dict, side: str, now: dict, new: bool) -> dict | None:
    """The side's base; a contact never seen is new (every value it holds is a change) when
    it was created after the baseline, and unchanged otherwise (it existed, unrecorded)."""
    recorded = base.get(side)
    if recorded is not None:
        return recorded
    return None if new else dict(now)


def _prospect_is_new(ctx: SyncContext, prospect: dict) -> bool:
    """A prospect without a base that sits in a sending list was added after the baseline
    (the baseline recorded every prospect of those lists); one elsewhere is old, unrecorded."""
    lists = {str(x.get("id") if isinstance(x, dict) else x) for x in prospect.get("lists") or []}
    if ctx.integration.all_lists:
        return bool(lists)
    chosen = {s.list_id for s in ctx.integration.list_selections.all()}
    return bool(lists & chosen)


def _person_is_new(ctx: SyncContext, person: dict) -> bool:
    added = remote_time(person.get("add_time"))
    since = ctx.integration.baseline_started_at or ctx.integration.launched_at
    # Pipedrive's times have whole seconds: a person of the baseline's own second is new.
    return bool(added and since and added >= since.replace(microsecond=0))


def _create(ctx: SyncContext, move, record: dict, direction: str) -> str:
    result = move(ctx, record, None, sending_wins=True)
    result.log(ctx, direction)
    return f"{result.outcome}: {result.describe(ctx.spec.labels)}"


def _pipedrive_payload(ctx: SyncContext, person: dict, changes: dict) -> tuple[dict, list[str]]:
    if not changes:
        return {}, []
    payload, problems = mapping.person_payload(changes, ctx.spec, person, ctx.orgs.id_for)
    return drop_same_name(payload, person), problems


def _write_pipedrive(ctx: SyncContext, person: dict, payload: dict) -> dict:
    if not payload:
        return person
    updated = ctx.pipedrive.update_person(person["id"], payload)
    ctx.person_org_name(updated)
    return updated


def _write_snovio(
    ctx: SyncContext, person: dict, prospect: dict, current: dict, changes: dict
) -> dict:
    if not changes:
        return current
    emails = set(mapping.prospect_emails(prospect))
    email = next((e for e in mapping.person_emails(person) if e in emails), "")
    email = email or mapping.prospect_email(prospect)
    ctx.snovio.add_prospect_to_list(
        ctx.spec.target_list_id, mapping.prospect_payload(changes, email, full=False), update=True
    )
    return {**current, **changes}


def _log(
    ctx: SyncContext, plan: threeway.Plan, prospect: dict, person: dict, email: str, problems
) -> tuple[str, list[SyncEvent]]:
    conflicts = {key: c.as_dict() for key, c in plan.conflicts.items()}
    # Held back by a pair's conflict rule: said even when other pairs were written.
    kept_by_rule = sorted(plan.held_back[k] for k in plan.held_by_rule if k not in plan.conflicts)
    labels = ctx.spec.labels
    texts, events = [], []
    for direction, changes, target in (
        (TO_PIPEDRIVE, plan.to_pipedrive, person),
        (TO_SNOVIO, plan.to_snovio, prospect),
    ):
        if not changes:
            continue
        names = ", ".join(labels.get(k) or k for k in changes)
        reason = f"Updated {names}"
        if conflicts:
            reason += "; " + "; ".join(_conflict_text(c) for c in conflicts.values())
        if kept_by_rule:
            reason += "; not carried: " + "; ".join(kept_by_rule)
        if problems and direction == TO_PIPEDRIVE:
            reason += "; " + "; ".join(problems)
        event = ctx.event(
            direction,
            Outcome.UPDATED,
            email=email,
            record_id=str(target.get("id") or ""),
            reason=reason,
            changes={
                "fields": {k: {"new": v, "label": labels.get(k) or k} for k, v in changes.items()},
                **({"realtime_conflicts": conflicts} if conflicts else {}),
            },
        )
        texts.append(reason)
        events.append(event)
    if not texts and plan.held_back:
        reason = "Not carried: " + "; ".join(sorted(set(plan.held_back.values())))
        event = ctx.event(
            TO_PIPEDRIVE if ctx.integration.sends_to_pipedrive else TO_SNOVIO,
            Outcome.UNCHANGED,
            email=email,
            record_id=str(person.get("id") or ""),
            reason=reason,
        )
        return f"unchanged: {reason}", [event]
    if not texts:
        return "unchanged: both sides already hold the latest values", []
    return f"updated: {' / '.join(texts)}", events


def _conflict_text(conflict: dict) -> str:
    winner = threeway.APP_NAMES.get(conflict["winner"])
    kept = f"{winner}'s value kept" if winner else "each app keeps its own value"
    decided = conflict["rule_label"]
    if conflict["rule"] == conflict_rules.SOURCE_APP:
        decided += ": most recent change" if conflict["decider"] == threeway.LATEST else ""
    return (
        f"{conflict['label']} changed on both sides (Snov.io {conflict['snovio']!r}, "
        f"Pipedrive {conflict['pipedrive']!r}): {kept} ({decided})"
    )
