"""Scenario rules: what may be added, changed, reordered, switched or removed, and what is broken.

Every page, form and admin action goes through these functions, so the rules live in one place:

- one scenario per Snov.io trigger, switched on or off as a whole;
- an action kind at most once in a trigger's list, at most `MAX_ACTIONS` actions in all;
- actions run in the order added and can be reordered, edited, switched off or removed;
- automations exist only when data flows to Pipedrive (two-way or to Pipedrive): otherwise
  they are kept but idle, and nothing new can be added;
- pipelines and stages come from the refreshed catalogue; one that disappears marks the
  scenario in red (`scenario_problems`, which the settings check also uses on resume).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max

from automations.models import ActionKind, Scenario, ScenarioAction, Trigger
from integrations.catalog import Catalog
from integrations.models import Integration, RemoteCatalog

MAX_ACTIONS = len(Trigger.values) * len(ActionKind.values)  # 24: six triggers x four actions
PIPELINES = RemoteCatalog.Kind.PIPEDRIVE_PIPELINES
STAGES = RemoteCatalog.Kind.PIPEDRIVE_STAGES

# Which settings each action needs.
NEEDS_PIPELINE = {ActionKind.CREATE_DEAL, ActionKind.MOVE_TO_STAGE}
NEEDS_STAGE = {ActionKind.MOVE_TO_STAGE}
NEEDS_SUBJECT = {ActionKind.ADD_ACTIVITY}

IDLE_MESSAGE = (
    "Automations act in Pipedrive, so they run only when data flows to Pipedrive. "
    "Choose Two-way or To Pipedrive only in step 2 to use them."
)


def automations_enabled(integration: Integration) -> bool:
    """Automations run only when data flows to Pipedrive; otherwise they are kept but idle."""
    return integration.sends_to_pipedrive


# --- reading ------------------------------------------------------------------------------
def scenario_for(integration: Integration, trigger: str, create: bool = False) -> Scenario | None:
    if trigger not in Trigger.values:
        raise ValidationError({"trigger": "Choose one of the Snov.io triggers."})
    if create:
        scenario, _ = Scenario.objects.get_or_create(integration=integration, trigger=trigger)
        return scenario
    return Scenario.objects.filter(integration=integration, trigger=trigger).first()


def action_count(integration: Integration) -> int:
    return ScenarioAction.objects.filter(scenario__integration=integration).count()


def used_kinds(scenario: Scenario | None, exclude: ScenarioAction | None = None) -> set[str]:
    if scenario is None or scenario.pk is None:
        return set()
    actions = scenario.actions.all()
    if exclude is not None:
        actions = actions.exclude(pk=exclude.pk)
    return set(actions.values_list("kind", flat=True))


def available_kinds(scenario: Scenario | None, current: ScenarioAction | None = None) -> list[str]:
    """The kinds that may still be chosen in a trigger's list (the current one included)."""
    taken = used_kinds(scenario, exclude=current)
    return [kind for kind in ActionKind.values if kind not in taken]


def next_kind(scenario: Scenario | None) -> str | None:
    """The kind "+ Add another action" offers first: the first one not in the list yet."""
    kinds = available_kinds(scenario)
    return kinds[0] if kinds else None


# --- validation ---------------------------------------------------------------------------
def clean_action(
    integration: Integration,
    trigger: str,
    kind: str,
    pipeline_id: int | None = None,
    stage_id: int | None = None,
    subject: str = "",
    *,
    current: ScenarioAction | None = None,
    catalog: Catalog | None = None,
) -> dict[str, Any]:
    """Check one action against every rule; the cleaned values, or a ValidationError by field."""
    errors: dict[str, list[str]] = {}

    def fail(name: str, message: str) -> None:
        errors.setdefault(name, []).append(message)

    if not automations_enabled(integration):
        raise ValidationError(IDLE_MESSAGE)
    if trigger not in Trigger.values:
        fail("trigger", "Choose one of the Snov.io triggers.")
    if kind not in ActionKind.values:
        fail("kind", "Choose one of the four actions.")
    if errors:
        raise ValidationError(errors)

    scenario = Scenario.objects.filter(integration=integration, trigger=trigger).first()
    if kind in used_kinds(scenario, exclude=current):
        fail("kind", f"“{ActionKind(kind).label}” is already in this trigger's list.")
    if current is None and action_count(integration) >= MAX_ACTIONS:
        fail("kind", f"An integration can have at most {MAX_ACTIONS} actions in all.")

    catalog = catalog or Catalog.for_integration(integration)
    subject = (subject or "").strip()
    cleaned: dict[str, Any] = {"trigger": trigger, "kind": kind}
    cleaned["pipeline_id"] = pipeline_id if kind in NEEDS_PIPELINE else None
    cleaned["stage_id"] = stage_id if kind in NEEDS_STAGE else None
    cleaned["subject"] = subject if kind in NEEDS_SUBJECT else ""

    if kind in NEEDS_PIPELINE:
        if not pipeline_id:
            fail("pipeline_id", "Choose a pipeline.")
        elif not catalog.known(PIPELINES):
            fail("pipeline_id", "Pipelines are not loaded yet: press Refresh, then choose one.")
        elif not catalog.has(PIPELINES, pipeline_id):
            fail("pipeline_id", "That pipeline is not in Pipedrive any more: choose another one.")
    if kind in NEEDS_STAGE:
        stage = catalog.get(STAGES, stage_id) if stage_id else None
        if not stage_id:
            fail("stage_id", "Choose a stage.")
        elif stage is None:
            fail("stage_id", "That stage is not in Pipedrive any more: choose another one.")
        elif pipeline_id and stage.get("pipeline_id") != pipeline_id:
            fail("stage_id", "That stage belongs to another pipeline: choose one of this pipeline.")
    if kind in NEEDS_SUBJECT:
        if not subject:
            fail("subject", "Give the activity a subject.")
        elif len(subject) > ScenarioAction._meta.get_field("subject").max_length:
            fail("subject", "Keep the subject under 255 characters.")
    if errors:
        raise ValidationError(errors)
    return cleaned


# --- changing -----------------------------------------------------------------------------
def add_action(
    integration: Integration,
    trigger: str,
    kind: str,
    *,
    pipeline_id: int | None = None,
    stage_id: int | None = None,
    subject: str = "",
    enabled: bool = True,
) -> ScenarioAction:
    """Append an action to a trigger's list (creating the scenario, switched on, if needed)."""
    cleaned = clean_action(integration, trigger, kind, pipeline_id, stage_id, subject)
    scenario = scenario_for(integration, trigger, create=True)
    last = scenario.actions.aggregate(m=Max("position"))["m"]
    try:
        # One write, no read inside the transaction (SQLite refuses read-then-write upgrades
        # under concurrent writers); the unique (scenario, kind) key settles a double submit.
        with transaction.atomic():
            return ScenarioAction.objects.create(
                scenario=scenario,
                kind=kind,
                enabled=enabled,
                position=0 if last is None else last + 1,
                pipeline_id=cleaned["pipeline_id"],
                stage_id=cleaned["stage_id"],
                subject=cleaned["subject"],
            )
    except IntegrityError as exc:
        label = ActionKind(kind).label
        raise ValidationError({"kind": f"“{label}” is already in this trigger's list."}) from exc


def update_action(
    action: ScenarioAction,
    *,
    kind: str | None = None,
    pipeline_id: int | None = None,
    stage_id: int | None = None,
    subject: str = "",
) -> ScenarioAction:
    """Change an action's settings (and kind, if that kind is free in its trigger's list)."""
    scenario = action.scenario
    kind = kind or action.kind
    cleaned = clean_action(
        scenario.integration,
        scenario.trigger,
        kind,
        pipeline_id,
        stage_id,
        subject,
        current=action,
    )
    action.kind = kind
    action.pipeline_id = cleaned["pipeline_id"]
    action.stage_id = cleaned["stage_id"]
    action.subject = cleaned["subject"]
    action.save(update_fields=["kind", "pipeline_id", "stage_id", "subject"])
    return action


@transaction.atomic
def remove_action(action: ScenarioAction) -> None:
    """Remove an action; the others keep their order."""
    scenario = action.scenario
    action.delete()
    _renumber(scenario, list(scenario.actions.order_by("position", "pk")))


def set_action_enabled(action: ScenarioAction, enabled: bool) -> ScenarioAction:
    action.enabled = enabled
    action.save(update_fields=["enabled"])
    return action


def toggle_action(action: ScenarioAction) -> ScenarioAction:
    return set_action_enabled(action, not action.enabled)


def set_scenario_enabled(integration: Integration, trigger: str, enabled: bool) -> Scenario:
    """Switch a trigger's scenario on or off (its actions are kept either way)."""
    scenario = scenario_for(integration, trigger, create=True)
    if scenario.enabled != enabled:
        scenario.enabled = enabled
        scenario.save(update_fields=["enabled"])
    return scenario


def toggle_scenario(integration: Integration, trigger: str) -> Scenario:
    scenario = scenario_for(integration, trigger, create=True)
    return set_scenario_enabled(integration, trigger, not scenario.enabled)


def reorder_actions(scenario: Scenario, ordered_ids: list[int]) -> list[ScenarioAction]:
    """Put a trigger's actions in the given order (every action of the list, exactly once)."""
    actions = {a.pk: a for a in scenario.actions.all()}
    if sorted(ordered_ids) != sorted(actions) or len(set(ordered_ids)) != len(ordered_ids):
        raise ValidationError({"order": "List every action of this trigger exactly once."})
    ordered = [actions[pk] for pk in ordered_ids]
    with transaction.atomic():
        _renumber(scenario, ordered)
    return ordered


def move_action(action: ScenarioAction, offset: int) -> list[ScenarioAction]:
    """Move an action up (offset -1) or down (+1) its trigger's list."""
    ordered = list(action.scenario.actions.order_by("position", "pk"))
    index = next(i for i, a in enumerate(ordered) if a.pk == action.pk)
    target = max(0, min(len(ordered) - 1, index + offset))
    ordered.insert(target, ordered.pop(index))
    return reorder_actions(action.scenario, [a.pk for a in ordered])


def _renumber(scenario: Scenario, ordered: list[ScenarioAction]) -> None:
    for position, action in enumerate(ordered):
        if action.position != position:
            action.position = position
            action.save(update_fields=["position"])


# --- problems -----------------------------------------------------------------------------
@dataclass(frozen=True)
class ScenarioProblem:
    """One broken setting of a scenario: what is wrong and how to fix it.

    Shaped like `integrations.problems.Problem` (section, field, message, fix) so the
    settings check can take it as it is; `setting` says which of the action's settings broke.
    """

    trigger: str
    action_id: int
    setting: str  # "pipeline_id" or "stage_id"
    message: str
    fix: str
    section: str = "automations"

    @property
    def field(self) -> str:
        return f"action-{self.action_id}"

    @property
    def trigger_label(self) -> str:
        return Trigger(self.trigger).label

    def __str__(self) -> str:
        return self.message


def action_problems(
    integration: Integration, catalog: Catalog | None = None
) -> dict[int, list[ScenarioProblem]]:
    """Every action whose pipeline or stage is gone from the catalogue, by action id.

    Covers switched-off actions too (the page marks them); a catalogue never loaded proves
    nothing missing, so it reports nothing.
    """
    catalog = catalog or Catalog.for_integration(integration)
    problems: dict[int, list[ScenarioProblem]] = {}
    actions = ScenarioAction.objects.filter(scenario__integration=integration).select_related(
        "scenario"
    )
    for action in actions:
        for problem in _problems_of(action, catalog):
            problems.setdefault(action.pk, []).append(problem)
    return problems


def _problems_of(action: ScenarioAction, catalog: Catalog) -> list[ScenarioProblem]:
    trigger = action.scenario.trigger
    label = f"“{Trigger(trigger).label}” → “{ActionKind(action.kind).label}”"
    found = []
    if action.kind in NEEDS_PIPELINE and action.pipeline_id and catalog.known(PIPELINES):
        if not catalog.has(PIPELINES, action.pipeline_id):
            found.append(
                ScenarioProblem(
                    trigger,
                    action.pk,
                    "pipeline_id",
                    f"{label}: its pipeline no longer exists in Pipedrive.",
                    "Edit the action in Automations and choose another pipeline.",
                )
            )
            return found
    if action.kind in NEEDS_STAGE and action.stage_id and catalog.known(STAGES):
        stage = catalog.get(STAGES, action.stage_id)
        if stage is None or (action.pipeline_id and stage.get("pipeline_id") != action.pipeline_id):
            found.append(
                ScenarioProblem(
                    trigger,
                    action.pk,
                    "stage_id",
                    f"{label}: its stage no longer exists in that pipeline.",
                    "Edit the action in Automations and choose another stage.",
                )
            )
    return found


def scenario_problems(integration: Integration) -> list[ScenarioProblem]:
    """Problems that stop automations from working: a pipeline or stage that disappeared.

    Only enabled actions of enabled scenarios count, and only while automations are in use
    (data flows to Pipedrive). The settings check turns these into Connection failed on resume.
    """
    if not automations_enabled(integration):
        return []
    enabled = set(
        ScenarioAction.objects.filter(
            scenario__integration=integration, enabled=True, scenario__enabled=True
        ).values_list("pk", flat=True)
    )
    problems = action_problems(integration)
    return [p for action_id, items in problems.items() if action_id in enabled for p in items]


# --- what the section shows ---------------------------------------------------------------
@dataclass
class ActionRow:
    action: ScenarioAction
    description: str
    problems: list[ScenarioProblem]
    first: bool
    last: bool


@dataclass
class ScenarioBlock:
    trigger: str
    label: str
    scenario: Scenario | None
    rows: list[ActionRow] = field(default_factory=list)
    next_kind: str | None = None
    form: Any = None  # the "+ Add another action" form, set by the page

    @property
    def enabled(self) -> bool:
        """A trigger without a scenario yet is on: its first action creates it switched on."""
        return self.scenario.enabled if self.scenario else True

    @property
    def has_problems(self) -> bool:
        return any(row.problems for row in self.rows)

    @property
    def key(self) -> str:
        return self.trigger


def describe(action: ScenarioAction, catalog: Catalog) -> str:
    """A plain sentence for one action, with the catalogue's names."""
    pipeline = catalog.name(PIPELINES, action.pipeline_id, f"pipeline #{action.pipeline_id}")
    stage = catalog.name(STAGES, action.stage_id, f"stage #{action.stage_id}")
    if action.kind == ActionKind.CREATE_DEAL:
        return f"Create a deal in “{pipeline}” at its first stage"
    if action.kind == ActionKind.MOVE_TO_STAGE:
        return f"Move the active deal to “{pipeline}” → “{stage}”"
    if action.kind == ActionKind.NEXT_STAGE:
        return "Move the active deal to the next stage of its pipeline"
    return f"Add a task “{action.subject}” due the same day"


def scenario_blocks(
    integration: Integration, catalog: Catalog | None = None
) -> list[ScenarioBlock]:
    """One block per trigger, in the triggers' order, with its actions in order."""
    catalog = catalog or Catalog.for_integration(integration)
    problems = action_problems(integration, catalog)
    scenarios = {s.trigger: s for s in Scenario.objects.filter(integration=integration)}
    actions: dict[str, list[ScenarioAction]] = {}
    for action in ScenarioAction.objects.filter(scenario__integration=integration).select_related(
        "scenario"
    ):
        actions.setdefault(action.scenario.trigger, []).append(action)
    blocks = []
    for trigger, label in Trigger.choices:
        ordered = sorted(actions.get(trigger, []), key=lambda a: (a.position, a.pk))
        rows = [
            ActionRow(
                action=a,
                description=describe(a, catalog),
                problems=problems.get(a.pk, []),
                first=i == 0,
                last=i == len(ordered) - 1,
            )
            for i, a in enumerate(ordered)
        ]
        scenario = scenarios.get(trigger)
        taken = {a.kind for a in ordered}
        free = [k for k in ActionKind.values if k not in taken]
        blocks.append(
            ScenarioBlock(trigger, label, scenario, rows, next_kind=free[0] if free else None)
        )
    return blocks


def pipeline_choices(catalog: Catalog) -> list[tuple[int, str]]:
    return [(p["id"], p["name"]) for p in catalog.items(PIPELINES)]


def stage_groups(catalog: Catalog) -> list[tuple[dict, list[dict]]]:
    """Each pipeline with its stages, in Pipedrive's order."""
    groups = []
    for pipeline in catalog.items(PIPELINES):
        stages = sorted(
            (s for s in catalog.items(STAGES) if s.get("pipeline_id") == pipeline["id"]),
            key=lambda s: (s.get("order_nr") or 0, s["id"]),
        )
        groups.append((pipeline, stages))
    return groups


def stage_choices(catalog: Catalog) -> list[tuple[str, list[tuple[int, str]]]]:
    """Stages grouped by pipeline name (for a select with optgroups)."""
    return [
        (pipeline["name"], [(s["id"], s["name"]) for s in stages])
        for pipeline, stages in stage_groups(catalog)
    ]
