"""The automation engine: Snov.io campaign events in, Pipedrive deals, stages and activities out.

Two entry points, both thin enough to be called from a webhook, a task or a test:

- `receive_event(integration, payload)` stores one delivery as an `AutomationRun` keyed by a
  dedupe `event_key` (a duplicate delivery returns the existing run and runs nothing), then
  enqueues it when the integration is Active, or holds it (status pending) while it is Paused,
  Syncing or Connection failed. `release_held(integration)` enqueues the held runs, oldest
  first, when the integration is Active again (`automations.receivers`).
- `run_automations(run)` performs the trigger's enabled actions in order through
  `PipedriveClient` and records one `ActionOutcome` per action: done (with the Pipedrive
  objects created or moved), skipped with the reason (no active deal, already at the last
  stage, ...) or failed (a remote error after the HTTP layer's retries).

Ordering and double runs. The runs of one contact (integration + email) are performed in the
order they were received, by one worker at a time: a task always starts from the contact's
oldest pending run and carries on through the newer ones, and each run is claimed with a
compare-and-swap lease before it is touched. Contacts run in parallel.

Idempotency. Before an action writes anything that a repeat would duplicate (a new deal, a new
activity, a move to the *next* stage) it records its intent as a provisional outcome; after
Pipedrive confirms, the outcome is finalised with the object ids. A task retried after a crash
skips finalised actions and, for a provisional one, first looks in Pipedrive for the object the
interrupted attempt may have created, adopting it instead of creating a second one.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from automations.models import ActionKind, ActionOutcome, AutomationRun, ScenarioAction, Trigger
from integrations.http import RemoteError
from integrations.models import Integration, ListSelection, RecordLink

log = logging.getLogger(__name__)

TASK = "automations.tasks.run_contact_queue"
# A claimed run whose worker stopped answering may be taken over after this long (the
# django-q2 task timeout is 600 s, so a live worker never holds a run longer).
LEASE_SECONDS = 660
RUNNING_PREFIX = "Running since "
HELD_REASON = "Held while the integration is {status}; runs when it is Active again."
INTERNAL_ERROR = "Interrupted by an internal error"
INTERRUPTED = "Interrupted before Pipedrive confirmed; checked again when the run is retried."
# How far the remote clock may run behind ours when an interrupted create is looked up.
CLOCK_SKEW = timedelta(seconds=120)


# --- reading an event ----------------------------------------------------------------------
@dataclass(frozen=True)
class CampaignEvent:
    """The facts of one Snov.io campaign event that automations act on."""

    trigger: str | None
    email: str
    name: str = ""
    first_name: str = ""
    last_name: str = ""
    event_object: str = ""
    event_action: str = ""
    campaign_id: str = ""
    campaign_name: str = ""
    prospect_id: str = ""
    subject: str = ""
    occurred_at: str = ""
    delivery_id: str = ""
    data: dict = field(default_factory=dict, compare=False, hash=False)


def normalise_email(email: Any) -> str:
    """Emails are compared trimmed and case-folded, never by partial match."""
    return str(email or "").strip().casefold()


def parse_event(payload: dict) -> CampaignEvent:
    """Read a Snov.io campaign webhook payload (raises ValueError when it is not one)."""
    from integrations.snovio.webhook_payload import read_webhook

    event = read_webhook(payload)
    data = payload.get("data") if isinstance(payload.get("data"), dict) else payload
    person = next((data[k] for k in ("prospect", "recipient") if isinstance(data.get(k), dict)), {})
    first = _text(data, person, "recipient_first_name", "first_name", "firstName")
    last = _text(data, person, "recipient_last_name", "last_name", "lastName")
    name = _text(data, person, "recipient_name", "prospect_name", "full_name", "fullName", "name")
    if not name:
        name = f"{first} {last}".strip()
    return CampaignEvent(
        trigger=event.trigger,
        email=normalise_email(event.email),
        name=name,
        first_name=first,
        last_name=last,
        event_object=event.event_object,
        event_action=event.event_action,
        campaign_id=event.campaign_id,
        campaign_name=event.campaign_name,
        prospect_id=event.prospect_id,
        subject=event.subject,
        occurred_at=event.occurred_at.isoformat() if event.occurred_at else "",
        delivery_id=_text(data, payload, "event_id", "eventId", "delivery_id", "message_id"),
        data=data,
    )


def event_key(event: CampaignEvent) -> str:
    """A stable key for one event: the same event delivered twice gets the same key.

    The delivery's own id when it carries one; otherwise every fact that tells two real
    events apart (the trigger, the recipient, the campaign, the time, the email's subject).
    """
    if event.delivery_id:
        basis: list[str] = [event.trigger or "", "id", event.delivery_id]
    else:
        basis = [
            event.trigger or f"{event.event_object}/{event.event_action}",
            event.email,
            event.campaign_id or event.campaign_name,
            event.occurred_at,
            event.prospect_id,
            event.subject,
        ]
    digest = hashlib.sha256(json.dumps(basis).encode()).hexdigest()
    return f"{event.trigger or 'other'}:{digest[:40]}"


def _text(primary: dict, secondary: dict, *keys: str) -> str:
    for source in (primary, secondary):
        for key in keys:
            value = source.get(key)
            if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
                return str(value).strip()
    return ""


# --- receiving -----------------------------------------------------------------------------
def receive_event(integration: Integration, payload: dict) -> AutomationRun:
    """Store one campaign event (once per event key) and run or hold it."""
    try:
        event = parse_event(payload)
    except ValueError as exc:
        event = CampaignEvent(
            trigger=None, email="", data=payload if isinstance(payload, dict) else {}
        )
        reason = f"Not a Snov.io campaign event: {exc}"
    else:
        reason = ""
    if not reason and not event.trigger:
        reason = f"SyncBridge does not automate {event.event_object}/{event.event_action} events."
    elif not reason and not event.email:
        reason = "The event names no recipient email."
    elif not reason and not integration.sends_to_pipedrive:
        reason = "Automations are idle: data does not flow to Pipedrive in this integration."

    status = AutomationRun.Status.PENDING
    if reason:
        status = AutomationRun.Status.IGNORED
    elif integration.status != Integration.Status.ACTIVE:
        reason = HELD_REASON.format(status=integration.get_status_display())
    elif not _has_enabled_actions(integration, event.trigger):
        status, reason = AutomationRun.Status.NO_SCENARIO, _no_scenario_reason(event.trigger)

    key = event_key(event) if event.trigger else _raw_key(payload)
    defaults = {
        "trigger": event.trigger or "",
        "email": event.email,
        "payload": payload if isinstance(payload, dict) else {"body": payload},
        "status": status,
        "reason": reason,
        "finished_at": None if status == AutomationRun.Status.PENDING else timezone.now(),
    }
    # Insert first (a duplicate fails on the unique key): one write, no read-then-write race,
    # and no lock upgrade for SQLite to refuse under concurrent deliveries.
    try:
        with transaction.atomic():
            run = AutomationRun.objects.create(integration=integration, event_key=key, **defaults)
        created = True
    except IntegrityError:  # the same event was delivered before (or at the same moment)
        run, created = AutomationRun.objects.get(integration=integration, event_key=key), False
    if not created:
        log.info("automation event %s for integration %s already received", key, integration.pk)
        return run
    if (
        run.status == AutomationRun.Status.PENDING
        and integration.status == Integration.Status.ACTIVE
    ):
        enqueue(run)
    return run


def _raw_key(payload: Any) -> str:
    body = json.dumps(payload, sort_keys=True, default=str)
    return "other:" + hashlib.sha256(body.encode()).hexdigest()[:40]


def enqueue(run: AutomationRun) -> None:
    """Queue the run's contact (after the current transaction commits)."""
    run_id = run.pk

    def _send() -> None:
        from django_q.tasks import async_task

        # save=False: the AutomationRun and its outcomes are the record of a run, so a
        # successful task leaves no django-q2 Task row (saving one costs the monitor an
        # insert plus a pass over the saved successes to prune them, in a write transaction,
        # for every event). A task that raises is still saved as failed.
        async_task(
            TASK, run_id, task_name=f"automation-run-{run_id}", group="automations", save=False
        )

    transaction.on_commit(_send)


def release_held(integration: Integration) -> int:
    """Queue every held run of an Active integration, oldest contact first. Returns how many."""
    if integration.status != Integration.Status.ACTIVE:
        return 0
    held = AutomationRun.objects.filter(
        integration=integration, status=AutomationRun.Status.PENDING
    ).order_by("received_at", "pk")
    seen: set[str] = set()
    count = 0
    for run in held.only("pk", "email"):
        count += 1
        if run.email in seen:
            continue  # the contact's task performs its later runs in order
        seen.add(run.email)
        enqueue(run)
    return count


# --- running -------------------------------------------------------------------------------
def run_automations(run: AutomationRun | int) -> AutomationRun:
    """Perform a run's actions, after any older held run of the same contact, in order.

    Carries on through the contact's newer pending runs, so a task never leaves one behind.
    A run that another worker holds, or that must wait (integration not Active), is left
    pending. Returns the run as it is now.
    """
    run_id = run.pk if isinstance(run, AutomationRun) else int(run)
    contact = AutomationRun.objects.filter(pk=run_id).values_list("integration_id", "email")
    first = contact.first()
    if first is None:
        raise AutomationRun.DoesNotExist(f"AutomationRun {run_id} does not exist")
    done: dict[int, AutomationRun] = {}
    while True:
        head = _oldest_pending(*first, exclude=done)
        if head is None or not _perform_run(head):
            break
        done[head.pk] = head
    if run_id in done:
        return done[run_id]  # finished here: `_finish` left it as it is in the database
    return AutomationRun.objects.get(pk=run_id)


def _oldest_pending(
    integration_id: int, email: str, exclude: Iterable[int]
) -> AutomationRun | None:
    return (
        AutomationRun.objects.filter(
            integration_id=integration_id, email=email, status=AutomationRun.Status.PENDING
        )
        .exclude(pk__in=list(exclude))
        .order_by("received_at", "pk")
        .first()
    )


def _perform_run(run: AutomationRun) -> bool:
    """Run one pending run to its end. False when it could not be taken (held or busy)."""
    integration = Integration.objects.select_related("pipedrive", "snovio").get(
        pk=run.integration_id
    )
    if not integration.sends_to_pipedrive:
        _finish(
            run,
            AutomationRun.Status.IGNORED,
            "Automations are idle: data does not flow to Pipedrive.",
        )
        return True
    if integration.status != Integration.Status.ACTIVE:
        _hold(run, integration)
        return False
    if not _claim(run):
        return False
    try:
        _execute(run, integration)
    except BaseException as exc:
        # Unexpected (a bug, the database): leave the run pending so it runs again.
        _release(run, f"{INTERNAL_ERROR} ({exc.__class__.__name__}); runs again.")
        raise
    return True


def _claim(run: AutomationRun) -> bool:
    """Take the run with a compare-and-swap on its reason (the lease), as it was just read."""
    if run.status != AutomationRun.Status.PENDING:
        return False
    current = run.reason
    if current.startswith(RUNNING_PREFIX):
        try:
            since = datetime.fromisoformat(current.removeprefix(RUNNING_PREFIX))
        except ValueError:
            since = None
        if since and timezone.now() - since < timedelta(seconds=LEASE_SECONDS):
            return False  # another worker is on it
    lease = RUNNING_PREFIX + timezone.now().isoformat()
    taken = AutomationRun.objects.filter(
        pk=run.pk, status=AutomationRun.Status.PENDING, reason=current
    ).update(reason=lease)
    if taken:
        run.reason = lease
        # A run taken over from a stopped worker, or released after an error, may have
        # outcomes already: only then are they looked up.
        run.retried = current.startswith((RUNNING_PREFIX, INTERNAL_ERROR))
    return bool(taken)


def _release(run: AutomationRun, reason: str) -> None:
    AutomationRun.objects.filter(pk=run.pk, status=AutomationRun.Status.PENDING).update(
        reason=reason
    )


def _hold(run: AutomationRun, integration: Integration) -> None:
    reason = HELD_REASON.format(status=integration.get_status_display())
    AutomationRun.objects.filter(pk=run.pk, status=AutomationRun.Status.PENDING).exclude(
        reason__startswith=RUNNING_PREFIX
    ).update(reason=reason)


def _finish(run: AutomationRun, status: str, reason: str) -> None:
    finished_at = timezone.now()
    AutomationRun.objects.filter(pk=run.pk).update(
        status=status, reason=reason, finished_at=finished_at
    )
    run.status, run.reason, run.finished_at = status, reason, finished_at


def enabled_actions(integration: Integration, trigger: str) -> list[ScenarioAction]:
    """The trigger's enabled actions in order (none when its scenario is switched off)."""
    return list(
        ScenarioAction.objects.filter(
            scenario__integration=integration,
            scenario__trigger=trigger,
            scenario__enabled=True,
            enabled=True,
        ).order_by("position", "pk")
    )


def _has_enabled_actions(integration: Integration, trigger: str | None) -> bool:
    return (
        bool(trigger)
        and ScenarioAction.objects.filter(
            scenario__integration=integration,
            scenario__trigger=trigger,
            scenario__enabled=True,
            enabled=True,
        ).exists()
    )


def _no_scenario_reason(trigger: str | None) -> str:
    label = Trigger(trigger).label if trigger in Trigger.values else trigger
    return f"No enabled action for “{label}”."


def _execute(run: AutomationRun, integration: Integration) -> None:
    actions = enabled_actions(integration, run.trigger)
    if not actions:
        _finish(run, AutomationRun.Status.NO_SCENARIO, _no_scenario_reason(run.trigger))
        return
    event = parse_event(run.payload)
    ctx = RunContext(integration=integration, run=run, event=event)
    try:
        not_synced = _not_in_synced_list(ctx)
    except RemoteError as exc:
        not_synced = None
        ctx.person_error = f"Could not check the prospect's Snov.io lists: {exc}"
    if not_synced:
        _finish(run, AutomationRun.Status.IGNORED, not_synced)
        return
    previous = {o.kind: o for o in run.outcomes.all()} if getattr(run, "retried", True) else {}
    outcomes: list[ActionOutcome] = []
    for action in actions:
        prior = previous.get(action.kind)
        if prior and not _is_provisional(prior):
            outcomes.append(prior)  # finished by an earlier attempt of this run
            continue
        outcomes.append(_perform_action(ctx, action, prior))
    counts = {o: sum(1 for x in outcomes if x.outcome == o) for o in ActionOutcome.Outcome.values}
    status = (
        AutomationRun.Status.DONE
        if counts[ActionOutcome.Outcome.DONE] == len(outcomes)
        else AutomationRun.Status.PARTIAL
    )
    summary = ", ".join(f"{n} {label}" for label, n in counts.items() if n)
    _finish(run, status, summary)


# --- the actions ---------------------------------------------------------------------------
class Skip(Exception):
    """The action cannot be performed and that is not an error (recorded as skipped)."""


class ActionFailed(Exception):
    """The action cannot be performed because its settings no longer fit Pipedrive."""


@dataclass
class RunContext:
    integration: Integration
    run: AutomationRun
    event: CampaignEvent
    client: Any = None
    person_id: int | None = None
    person_name: str = ""
    person_created: bool = False
    person_reported: bool = False
    person_error: str = ""
    prospect: dict | None = None
    link: RecordLink | None = None  # the contact's link, when the list check read it
    deal: dict | None = None  # the deal this run created or moved last
    stages: dict[int, list[dict]] = field(default_factory=dict)

    def pipedrive(self) -> Any:
        if self.client is None:
            self.client = client_for(self.integration)
        return self.client


def client_for(integration: Integration) -> Any:
    """The Pipedrive client of the integration's connection (patched in tests)."""
    from integrations.pipedrive.client import PipedriveClient

    if integration.pipedrive is None:
        raise RemoteError("Pipedrive is not connected", remote="pipedrive", permanent=True)
    return PipedriveClient.for_connection(integration.pipedrive)


def snovio_client_for(integration: Integration) -> Any:
    from integrations.snovio.client import SnovioClient

    if integration.snovio is None:
        raise RemoteError("Snov.io is not connected", remote="snovio", permanent=True)
    return SnovioClient.for_connection(integration.snovio)


def _perform_action(
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
        if _is_provisional(outcome):
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


def _is_provisional(outcome: ActionOutcome) -> bool:
    return "intent" in (outcome.pipedrive_objects or {})


def _mark_intent(outcome: ActionOutcome, intent: dict, extra: dict | None = None) -> None:
    """Record what is about to be written, before writing it."""
    objects = {**(extra or {}), "intent": {**intent, "since": timezone.now().isoformat()}}
    _record(outcome, ActionOutcome.Outcome.FAILED, INTERRUPTED, objects)


def create_deal(ctx: RunContext, action: ScenarioAction, outcome: ActionOutcome) -> dict:
    if not action.pipeline_id:
        raise ActionFailed("No pipeline chosen for the new deal.")
    person = _person(ctx)
    stages = _stages(ctx, action.pipeline_id)
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
    if _is_provisional(outcome):
        deal = _find_interrupted(
            ctx.pipedrive().list_deals(person_id=person, status="open"),
            outcome.pipedrive_objects["intent"],
            lambda d: d.get("title") == title,
        )
    if deal is None:
        _mark_intent(outcome, {"title": title, "person_id": person}, _person_objects(ctx))
        deal = ctx.pipedrive().create_deal(data)
    ctx.deal = deal
    return {
        **_person_objects(ctx),
        "deal": _deal_ref(deal, title=title),
        "pipeline": {"id": action.pipeline_id},
        "stage": _stage_ref(stage),
    }


def move_to_stage(ctx: RunContext, action: ScenarioAction, outcome: ActionOutcome) -> dict:
    if not action.pipeline_id or not action.stage_id:
        raise ActionFailed("No pipeline and stage chosen for the move.")
    deal = _active_deal(ctx)
    before = {"pipeline_id": deal.get("pipeline_id"), "stage_id": deal.get("stage_id")}
    stages = _stages(ctx, action.pipeline_id)
    stage = next((s for s in stages if s["id"] == action.stage_id), None)
    if stage is None:
        raise ActionFailed(
            f"Stage {action.stage_id} no longer exists in pipeline {action.pipeline_id}."
        )
    if before == {"pipeline_id": action.pipeline_id, "stage_id": action.stage_id}:
        return {
            **_person_objects(ctx),
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
        **_person_objects(ctx),
        "deal": _deal_ref(ctx.deal),
        "from": before,
        "stage": _stage_ref(stage),
    }


def next_stage(ctx: RunContext, action: ScenarioAction, outcome: ActionOutcome) -> dict:
    intent = (outcome.pipedrive_objects or {}).get("intent") if _is_provisional(outcome) else None
    if intent:  # an interrupted attempt chose the target: finish that move, never a second one
        deal = {
            "id": intent["deal_id"],
            "pipeline_id": intent["pipeline_id"],
            "stage_id": intent["from_stage_id"],
        }
        target = {"id": intent["to_stage_id"], "name": intent.get("to_stage_name", "")}
    else:
        deal = _active_deal(ctx)
        stages = _stages(ctx, deal.get("pipeline_id"))
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
            _person_objects(ctx),
        )
    moved = ctx.pipedrive().update_deal(deal["id"], {"stage_id": target["id"]})
    ctx.deal = {**deal, **(moved or {})}
    return {
        **_person_objects(ctx),
        "deal": _deal_ref(ctx.deal),
        "from": {"pipeline_id": deal.get("pipeline_id"), "stage_id": deal.get("stage_id")},
        "stage": _stage_ref(target),
    }


def add_activity(ctx: RunContext, action: ScenarioAction, outcome: ActionOutcome) -> dict:
    subject = action.subject.strip()
    if not subject:
        raise ActionFailed("No subject given for the activity.")
    person = _person(ctx)
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
    if _is_provisional(outcome):
        activity = _find_interrupted(
            client.list_activities(person_id=person),
            outcome.pipedrive_objects["intent"],
            lambda a: a.get("subject") == subject and not a.get("done"),
        )
    if activity is None:
        _mark_intent(outcome, {"subject": subject, "person_id": person}, _person_objects(ctx))
        activity = client.create_activity(data)
    return {
        **_person_objects(ctx),
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


def sorted_stages(stages: Iterable[dict], pipeline_id: int | None = None) -> list[dict]:
    """A pipeline's stages in Pipedrive's order (order_nr, then id)."""
    chosen = [s for s in stages if pipeline_id is None or s.get("pipeline_id") == pipeline_id]
    return sorted(chosen, key=lambda s: (s.get("order_nr") or 0, s.get("id") or 0))


def following_stage(stages: list[dict], stage_id: int | None) -> dict | None:
    """The stage after `stage_id` in an ordered list; None at the last stage."""
    ids = [s["id"] for s in stages]
    if stage_id not in ids:
        return stages[0] if stages else None
    index = ids.index(stage_id)
    return stages[index + 1] if index + 1 < len(stages) else None


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


# --- Pipedrive look-ups --------------------------------------------------------------------
def _stages(ctx: RunContext, pipeline_id: int | None) -> list[dict]:
    if pipeline_id is None:
        return []
    if pipeline_id not in ctx.stages:
        ctx.stages[pipeline_id] = sorted_stages(
            ctx.pipedrive().list_stages(pipeline_id=pipeline_id), pipeline_id
        )
    return ctx.stages[pipeline_id]


def _active_deal(ctx: RunContext) -> dict:
    if ctx.deal and (ctx.deal.get("status") or "open") == "open":
        return ctx.deal
    person = _person(ctx)
    deal = pick_active_deal(ctx.pipedrive().list_deals(person_id=person, status="open"))
    if deal is None:
        raise Skip("The contact has no active deal (open, not won, lost or deleted) to move.")
    ctx.deal = deal
    return deal


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


def _person_objects(ctx: RunContext) -> dict:
    if ctx.person_id is None:
        return {}
    ref = {"id": ctx.person_id, "name": ctx.person_name}
    if ctx.person_created and not ctx.person_reported:
        ref["created"] = True  # said once, on the outcome of the action that created it
    return {"person": ref}


def _person(ctx: RunContext) -> int:
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
        matches = snovio_client_for(ctx.integration).get_prospect_by_email(ctx.event.email)
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


def _not_in_synced_list(ctx: RunContext) -> str:
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


def objects_of(outcomes: Iterable[ActionOutcome]) -> dict[str, list[Any]]:
    """Every Pipedrive id a set of outcomes created or moved, by kind (deal, activity, person)."""
    found: dict[str, list[Any]] = {"deal": [], "activity": [], "person": []}
    for outcome in outcomes:
        for kind in found:
            ref = (outcome.pipedrive_objects or {}).get(kind)
            if ref and ref.get("id") not in found[kind]:
                found[kind].append(ref.get("id"))
    return found


__all__ = [
    "CampaignEvent",
    "RunContext",
    "Skip",
    "deal_title",
    "enabled_actions",
    "enqueue",
    "event_key",
    "following_stage",
    "normalise_email",
    "parse_event",
    "pick_active_deal",
    "receive_event",
    "release_held",
    "run_automations",
    "sorted_stages",
]
