"""The four actions (create a deal, move it to a stage, move it one stage on, add an activity)
and how each records its outcome.

Idempotency. Before an action writes anything that a repeat would duplicate (a new deal, a new
activity, a move to the *next* stage) it records its intent as a provisional outcome; after
Pipedrive confirms, the outcome is finalised with the object ids. A task retried after a crash
skips finalised actions and, for a provisional one, first looks in Pipedrive for the object the
interrupted attempt may have created, adopting it instead of creating a second one."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from django.utils import timezone

from automations.lookups import (
    RunContext,
    Skip,
    active_deal,
    person_id_of,
    person_objects,
    stages_of,
)
from automations.models import ActionKind, ActionOutcome, ScenarioAction
from integrations.http import RemoteError

INTERRUPTED = "Interrupted before Pipedrive confirmed; checked again when the run is retried."
# How far the remote clock may run behind ours when an interrupted create is looked up.
CLOCK_SKEW = timedelta(seconds=120)


class ActionFailed(Exception):
    """The action cannot be performed because its settings no longer fit Pipedrive."""


def perform_action(
    ctx: RunContext, action: ScenarioAction, prior: ActionOutcome | None
) -> ActionOutcome:
    outcome = prior or ActionOutcome(run=ctx.run, kind=action.kind)
    outcome.position = action.position
    handler = HANDLERS[action.kind]
    try:
        if ctx.person_error:
            raise RemoteError(ctx.person_error)
        objects = handler(ctx, action, outcome)
    except Skip as exc:
        _record(outcome, ActionOutcome.Outcome.SKIPPED, str(exc), _keep_objects(outcome))
    except ActionFailed as exc:
        _record(outcome, ActionOutcome.Outcome.FAILED, str(exc), _keep_objects(outcome))
    except RemoteError as exc:
        if is_provisional(outcome):
            # Nothing was confirmed: the next attempt looks for the object first.
            _record(outcome, ActionOutcome.Outcome.FAILED, str(exc), outcome.pipedrive_objects)
        else:
            _record(outcome, ActionOutcome.Outcome.FAILED, str(exc), {})
    else:
        _record(outcome, ActionOutcome.Outcome.DONE, "", objects)
    if (outcome.pipedrive_objects or {}).get("person", {}).get("created"):
        ctx.person_reported = True
    return outcome


def _record(outcome: ActionOutcome, result: str, reason: str, objects: dict) -> None:
    outcome.outcome, outcome.reason, outcome.pipedrive_objects = result, reason, objects
    outcome.at = timezone.now()
    outcome.save()


def _keep_objects(outcome: ActionOutcome) -> dict:
    return {k: v for k, v in (outcome.pipedrive_objects or {}).items() if k != "intent"}


def is_provisional(outcome: ActionOutcome) -> bool:
    return "intent" in (outcome.pipedrive_objects or {})


def _mark_intent(outcome: ActionOutcome, intent: dict, extra: dict | None = None) -> None:
    """Record what is about to be written, before writing it."""
    objects = {**(extra or {}), "intent": {**intent, "since": timezone.now().isoformat()}}
    _record(outcome, ActionOutcome.Outcome.FAILED, INTERRUPTED, objects)


def create_deal(ctx: RunContext, action: ScenarioAction, outcome: ActionOutcome) -> dict:
    if not action.pipeline_id:
        raise ActionFailed("No pipeline chosen for the new deal.")
    person = person_id_of(ctx)
    stages = stages_of(ctx, action.pipeline_id)
    if not stages:
        raise ActionFailed(
            f"Pipeline {action.pipeline_id} no longer exists in Pipedrive (or has no stages)."
        )
    stage = stages[0]
    title = deal_title(ctx.event.name, ctx.person_name, ctx.event.email)
    data: dict[str, Any] = {
        "title": title,
        "person_id": person,
        "pipeline_id": action.pipeline_id,
        "stage_id": stage["id"],
    }
    if ctx.integration.pipedrive_owner_id:
        data["owner_id"] = ctx.integration.pipedrive_owner_id
    deal = None
    if is_provisional(outcome):
        deal = _find_interrupted(
            ctx.pipedrive().list_deals(person_id=person, status="open"),
            outcome.pipedrive_objects["intent"],
            lambda d: d.get("title") == title,
        )
    if deal is None:
        _mark_intent(outcome, {"title": title, "person_id": person}, person_objects(ctx))
        deal = ctx.pipedrive().create_deal(data)
    ctx.deal = deal
    return {
        **person_objects(ctx),
        "deal": _deal_ref(deal, title=title),
        "pipeline": {"id": action.pipeline_id},
        "stage": _stage_ref(stage),
    }


def move_to_stage(ctx: RunContext, action: ScenarioAction, outcome: ActionOutcome) -> dict:
    if not action.pipeline_id or not action.stage_id:
        raise ActionFailed("No pipeline and stage chosen for the move.")
    deal = active_deal(ctx)
    before = {"pipeline_id": deal.get("pipeline_id"), "stage_id": deal.get("stage_id")}
    stages = stages_of(ctx, action.pipeline_id)
    stage = next((s for s in stages if s["id"] == action.stage_id), None)
    if stage is None:
        raise ActionFailed(
            f"Stage {action.stage_id} no longer exists in pipeline {action.pipeline_id}."
        )
    if before == {"pipeline_id": action.pipeline_id, "stage_id": action.stage_id}:
        return {
            **person_objects(ctx),
            "deal": _deal_ref(deal),
            "from": before,
            "stage": _stage_ref(stage),
            "note": "already in that stage",
        }
    moved = ctx.pipedrive().update_deal(
        deal["id"], {"pipeline_id": action.pipeline_id, "stage_id": action.stage_id}
    )
    ctx.deal = {**deal, **(moved or {})}
    return {
        **person_objects(ctx),
        "deal": _deal_ref(ctx.deal),
        "from": before,
        "stage": _stage_ref(stage),
    }


def next_stage(ctx: RunContext, action: ScenarioAction, outcome: ActionOutcome) -> dict:
    intent = (outcome.pipedrive_objects or {}).get("intent") if is_provisional(outcome) else None
    if intent:  # an interrupted attempt chose the target: finish that move, never a second one
        deal = {
            "id": intent["deal_id"],
            "pipeline_id": intent["pipeline_id"],
            "stage_id": intent["from_stage_id"],
        }
        target = {"id": intent["to_stage_id"], "name": intent.get("to_stage_name", "")}
    else:
        deal = active_deal(ctx)
        stages = stages_of(ctx, deal.get("pipeline_id"))
        target = following_stage(stages, deal.get("stage_id"))
        if target is None:
            current = next((s for s in stages if s["id"] == deal.get("stage_id")), {})
            raise Skip(
                f"Deal “{deal.get('title', deal['id'])}” is already at the last stage"
                f"{' (' + current['name'] + ')' if current.get('name') else ''} of its pipeline."
            )
        _mark_intent(
            outcome,
            {
                "deal_id": deal["id"],
                "pipeline_id": deal.get("pipeline_id"),
                "from_stage_id": deal.get("stage_id"),
                "to_stage_id": target["id"],
                "to_stage_name": target.get("name", ""),
            },
            person_objects(ctx),
        )
    moved = ctx.pipedrive().update_deal(deal["id"], {"stage_id": target["id"]})
    ctx.deal = {**deal, **(moved or {})}
    return {
        **person_objects(ctx),
        "deal": _deal_ref(ctx.deal),
        "from": {"pipeline_id": deal.get("pipeline_id"), "stage_id": deal.get("stage_id")},
        "stage": _stage_ref(target),
    }


def add_activity(ctx: RunContext, action: ScenarioAction, outcome: ActionOutcome) -> dict:
    subject = action.subject.strip()
    if not subject:
        raise ActionFailed("No subject given for the activity.")
    person = person_id_of(ctx)
    due = timezone.localdate().isoformat()
    data: dict[str, Any] = {
        "subject": subject,
        "type": "task",
        "done": False,
        "due_date": due,
        "person_id": person,
        "participants": [{"person_id": person, "primary": True}],
    }
    if ctx.integration.pipedrive_owner_id:
        data["owner_id"] = ctx.integration.pipedrive_owner_id
    activity = None
    client = ctx.pipedrive()
    if is_provisional(outcome):
        activity = _find_interrupted(
            client.list_activities(person_id=person),
            outcome.pipedrive_objects["intent"],
            lambda a: a.get("subject") == subject and not a.get("done"),
        )
    if activity is None:
        _mark_intent(outcome, {"subject": subject, "person_id": person}, person_objects(ctx))
        activity = client.create_activity(data)
    return {
        **person_objects(ctx),
        "activity": {
            "id": activity.get("id"),
            "subject": activity.get("subject", subject),
            "due_date": activity.get("due_date", due),
            "type": activity.get("type", "task"),
        },
    }


HANDLERS = {
    ActionKind.CREATE_DEAL: create_deal,
    ActionKind.MOVE_TO_STAGE: move_to_stage,
    ActionKind.NEXT_STAGE: next_stage,
    ActionKind.ADD_ACTIVITY: add_activity,
}


# --- pure helpers --------------------------------------------------------------------------
def deal_title(name: str, person_name: str = "", email: str = "") -> str:
    """“<First Last> deal”: the prospect's name, else the person's, else the email."""
    who = " ".join((name or person_name or email or "Unnamed").split())
    return f"{who} deal"


def following_stage(stages: list[dict], stage_id: int | None) -> dict | None:
    """The stage after `stage_id` in an ordered list; None at the last stage."""
    ids = [s["id"] for s in stages]
    if stage_id not in ids:
        return stages[0] if stages else None
    index = ids.index(stage_id)
    return stages[index + 1] if index + 1 < len(stages) else None


def _find_interrupted(items: Iterable[dict], intent: dict, same: Any) -> dict | None:
    """The object an interrupted attempt created: same content, added after the intent."""
    try:
        since = datetime.fromisoformat(intent["since"]) - CLOCK_SKEW
    except (KeyError, ValueError):
        since = None
    candidates = []
    for item in items:
        if not same(item):
            continue
        added = _parse_time(item.get("add_time"))
        if since is None or added is None or added >= since:
            candidates.append(item)
    return max(candidates, key=lambda i: i.get("id") or 0) if candidates else None


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace(" ", "T", 1).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _deal_ref(deal: dict, title: str = "") -> dict:
    return {
        "id": deal.get("id"),
        "title": deal.get("title") or title,
        "pipeline_id": deal.get("pipeline_id"),
        "stage_id": deal.get("stage_id"),
    }


def _stage_ref(stage: dict) -> dict:
    return {
        "id": stage.get("id"),
        "name": stage.get("name", ""),
        "pipeline_id": stage.get("pipeline_id"),
    }


def outcome_summary(objects: dict) -> str:
    """One line naming the Pipedrive objects an outcome created or moved (for the log)."""
    parts = []
    if deal := objects.get("deal"):
        parts.append(f"deal #{deal.get('id')} “{deal.get('title', '')}”")
    if stage := objects.get("stage"):
        parts.append(f"stage {stage.get('name') or '#' + str(stage.get('id'))}")
    if activity := objects.get("activity"):
        subject, due = activity.get("subject", ""), activity.get("due_date", "")
        parts.append(f"activity #{activity.get('id')} “{subject}” due {due}")
    if person := objects.get("person"):
        verb = "created person" if person.get("created") else "person"
        parts.append(f"{verb} #{person.get('id')}")
    return "; ".join(parts)
