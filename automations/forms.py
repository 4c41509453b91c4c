"""Forms for the scenario pages. They validate; the rules themselves live in services."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from automations import services
from automations.models import ActionKind, ScenarioAction, Trigger
from integrations.catalog import Catalog
from integrations.models import Integration


def _int_or_none(value: Any) -> int | None:
    return int(value) if value not in (None, "") else None


class ActionForm(forms.Form):
    """Add or edit one action of a trigger's list. Every invalid choice is reported on its field."""

    trigger = forms.TypedChoiceField(choices=Trigger.choices, widget=forms.HiddenInput)
    kind = forms.ChoiceField(label="Action", choices=ActionKind.choices)
    pipeline_id = forms.TypedChoiceField(
        label="Pipeline", coerce=int, empty_value=None, required=False
    )
    stage_id = forms.TypedChoiceField(label="Stage", coerce=int, empty_value=None, required=False)
    subject = forms.CharField(label="Activity subject", max_length=255, required=False)

    def __init__(
        self,
        *args: Any,
        integration: Integration,
        action: ScenarioAction | None = None,
        trigger: str | None = None,
        catalog: Catalog | None = None,
        **kwargs: Any,
    ):
        self.integration = integration
        self.action = action
        if action is not None:
            kwargs.setdefault(
                "initial",
                {
                    "trigger": action.scenario.trigger,
                    "kind": action.kind,
                    "pipeline_id": action.pipeline_id,
                    "stage_id": action.stage_id,
                    "subject": action.subject,
                },
            )
        super().__init__(*args, **kwargs)
        self.catalog = catalog or Catalog.for_integration(integration)
        trigger = action.scenario.trigger if action else trigger
        if trigger in Trigger.values:
            self.fields["trigger"].initial = trigger
            scenario = services.scenario_for(integration, trigger)
            free = services.available_kinds(scenario, current=action)
            self.fields["kind"].choices = [(k, ActionKind(k).label) for k in free]
            if action is None and free:
                self.fields["kind"].initial = free[0]
        if action is not None:
            self.fields["trigger"].disabled = True
        self.fields["pipeline_id"].choices = [("", "Choose a pipeline")] + [
            (pk, name) for pk, name in services.pipeline_choices(self.catalog)
        ]
        self.fields["stage_id"].choices = [("", "Choose a stage")] + [
            (group, [(pk, name) for pk, name in stages])
            for group, stages in services.stage_choices(self.catalog)
        ]
        # Keep a saved pipeline/stage selectable while it is missing, so the red mark can show.
        for name in ("pipeline_id", "stage_id"):
            current = getattr(action, name, None) if action else None
            values = {str(v) for v, _ in _flat(self.fields[name].choices)}
            if current and str(current) not in values:
                self.fields[name].choices.append((current, f"#{current} (no longer in Pipedrive)"))
        self.fields["kind"].widget.attrs["data-action-kind"] = "1"
        self.fields["subject"].widget.attrs["placeholder"] = "e.g. Call back about the campaign"

    def pipeline_options(self) -> list[dict]:
        """Pipelines for the template: `{id, name, selected}`."""
        chosen = str(self["pipeline_id"].value() or "")
        return [
            {"id": pk, "name": name, "selected": str(pk) == chosen}
            for pk, name in _flat(self.fields["pipeline_id"].choices)
            if pk != ""
        ]

    def stage_options(self) -> list[dict]:
        """Stages grouped by pipeline for the template: `{pipeline, stages: [{id, name, ...}]}`."""
        chosen = str(self["stage_id"].value() or "")
        groups = [
            {
                "pipeline": pipeline,
                "stages": [
                    {"id": s["id"], "name": s["name"], "selected": str(s["id"]) == chosen}
                    for s in stages
                ],
            }
            for pipeline, stages in services.stage_groups(self.catalog)
        ]
        known = {str(s["id"]) for g in groups for s in g["stages"]}
        if chosen and chosen not in known:
            missing = {
                "id": chosen,
                "name": f"#{chosen} (no longer in Pipedrive)",
                "selected": True,
            }
            groups.append({"pipeline": {"id": "", "name": "Missing"}, "stages": [missing]})
        return groups

    @property
    def trigger_value(self) -> str:
        return self.action.scenario.trigger if self.action else (self["trigger"].value() or "")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            values = services.clean_action(
                self.integration,
                cleaned.get("trigger") or self.trigger_value,
                cleaned.get("kind", ""),
                _int_or_none(cleaned.get("pipeline_id")),
                _int_or_none(cleaned.get("stage_id")),
                cleaned.get("subject", ""),
                current=self.action,
                catalog=self.catalog,
            )
        except ValidationError as exc:
            self._add_errors(exc)
            return cleaned
        cleaned.update(values)
        return cleaned

    def _add_errors(self, exc: ValidationError) -> None:
        if hasattr(exc, "error_dict"):
            for name, errors in exc.error_dict.items():
                self.add_error(name if name in self.fields else None, errors)
        else:
            self.add_error(None, exc)

    def save(self) -> ScenarioAction:
        data = self.cleaned_data
        if self.action is None:
            return services.add_action(
                self.integration,
                data["trigger"],
                data["kind"],
                pipeline_id=data["pipeline_id"],
                stage_id=data["stage_id"],
                subject=data["subject"],
            )
        return services.update_action(
            self.action,
            kind=data["kind"],
            pipeline_id=data["pipeline_id"],
            stage_id=data["stage_id"],
            subject=data["subject"],
        )


def _flat(choices: list) -> list[tuple[Any, str]]:
    out = []
    for value, label in choices:
        if isinstance(label, list | tuple):
            out.extend(label)
        else:
            out.append((value, label))
    return out


class ReorderForm(forms.Form):
    """The new order of a trigger's actions: their ids, comma-separated or repeated."""

    order = forms.CharField()

    def __init__(self, *args: Any, scenario: Any, **kwargs: Any):
        self.scenario = scenario
        super().__init__(*args, **kwargs)

    def clean_order(self) -> list[int]:
        raw = self.data.getlist("order") if hasattr(self.data, "getlist") else [self.data["order"]]
        try:
            ids = [int(part) for value in raw for part in str(value).split(",") if part.strip()]
        except ValueError as exc:
            raise ValidationError("List the actions by their numbers.") from exc
        known = set(self.scenario.actions.values_list("pk", flat=True)) if self.scenario else set()
        if sorted(ids) != sorted(known) or len(set(ids)) != len(ids):
            raise ValidationError("List every action of this trigger exactly once.")
        return ids


class MoveForm(forms.Form):
    direction = forms.ChoiceField(choices=[("up", "Up"), ("down", "Down")])

    @property
    def offset(self) -> int:
        return -1 if self.cleaned_data["direction"] == "up" else 1
