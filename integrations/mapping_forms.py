"""Step 3's field pairs: one row per custom pair, each side's field of the same data type,
and each pair's conflict rule (`integrations/sync/conflicts.py`), system pairs included.

Every choice is checked against the integration's stored catalogue.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from integrations import fieldspec, status_forms
from integrations.catalog import Catalog, Kind
from integrations.models import ConflictRule, FieldMapping, Integration

DEFAULT_RULE_LABEL = "Integration default"
RULE_HELP = (
    "When a pair's two fields hold different values: the source app wins; fill empty fields "
    "only; never overwrite on Pipedrive's (or Snov.io's) side; or the most recent change wins "
    "(in real time; a transfer has no change times and lets the source app win)."
)


def rule_field(default_label: str = DEFAULT_RULE_LABEL) -> forms.ChoiceField:
    """A pair's conflict rule; blank means the integration's default."""
    return forms.ChoiceField(
        label="Conflict rule",
        choices=[("", default_label), *ConflictRule.choices],
        required=False,
        error_messages={"invalid_choice": "Choose one of the listed conflict rules."},
    )


class TypedSelect(forms.Select):
    """A select whose options carry `data-type` (the field's data type) for the page's JS."""

    def __init__(self, *args, types: dict[str, str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.types = types or {}

    def create_option(self, name, value, label, selected, index, subindex=None, attrs=None):
        option = super().create_option(name, value, label, selected, index, subindex, attrs)
        if str(value) in self.types:
            option["attrs"]["data-type"] = self.types[str(value)]
        return option


def field_label(item: dict) -> str:
    return f"{item['name']} ({fieldspec.type_label(item['type'])})"


class MappingRowForm(forms.Form):
    """One custom pair: a Snov.io field and a Pipedrive field of the same data type."""

    snovio_field = forms.ChoiceField(
        label="Snov.io field",
        error_messages={"required": "Choose the Snov.io field, or remove the row."},
    )
    pipedrive_field = forms.ChoiceField(
        label="Pipedrive field",
        error_messages={"required": "Choose the Pipedrive field, or remove the row."},
    )
    conflict_rule = rule_field()

    def __init__(self, *args, catalog: Catalog, stale: dict[str, dict] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.catalog = catalog
        snov = catalog.snovio_pairable_fields()
        pipe = catalog.pipedrive_pairable_fields()
        stale = stale or {}
        snov_choices = [(f["key"], field_label(f)) for f in snov]
        pipe_choices = [(f["key"], field_label(f)) for f in pipe]
        # A saved pair whose field has gone is shown as such, so the page can mark it.
        for side, choices in (("snovio", snov_choices), ("pipedrive", pipe_choices)):
            known = {key for key, _ in choices}
            for key, label in stale.get(side, {}).items():
                if key not in known:
                    choices.append((key, f"{label} — no longer exists"))
        self.fields["snovio_field"].choices = [("", "— Snov.io field —"), *snov_choices]
        self.fields["pipedrive_field"].choices = [("", "— Pipedrive field —"), *pipe_choices]
        self.fields["snovio_field"].widget = TypedSelect(types={f["key"]: f["type"] for f in snov})
        self.fields["snovio_field"].widget.choices = self.fields["snovio_field"].choices
        self.fields["pipedrive_field"].widget = TypedSelect(
            types={f["key"]: f["type"] for f in pipe}
        )
        self.fields["pipedrive_field"].widget.choices = self.fields["pipedrive_field"].choices
        # A saved pair one of whose fields has gone from its account: the page marks it red.
        self.stale = bool(
            (
                self.initial.get("snovio_field")
                and not catalog.has(Kind.SNOVIO_FIELDS, self.initial["snovio_field"])
                and catalog.known(Kind.SNOVIO_FIELDS)
            )
            or (
                self.initial.get("pipedrive_field")
                and not catalog.has(Kind.PIPEDRIVE_FIELDS, self.initial["pipedrive_field"])
                and catalog.known(Kind.PIPEDRIVE_FIELDS)
            )
        )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        snov_key, pipe_key = cleaned.get("snovio_field"), cleaned.get("pipedrive_field")
        snov = self.catalog.get(Kind.SNOVIO_FIELDS, snov_key) if snov_key else None
        pipe = self.catalog.get(Kind.PIPEDRIVE_FIELDS, pipe_key) if pipe_key else None
        if snov_key and snov is None:
            self.add_error(
                "snovio_field", "This Snov.io field no longer exists: choose another or remove it."
            )
        if pipe_key and pipe is None:
            self.add_error(
                "pipedrive_field",
                "This Pipedrive field no longer exists: choose another or remove the pair.",
            )
        if snov and pipe and not fieldspec.can_pair(snov["type"], pipe["type"]):
            self.add_error(
                "pipedrive_field",
                f"“{pipe['name']}” is a {fieldspec.type_label(pipe['type'])} field but "
                f"“{snov['name']}” is {fieldspec.type_label(snov['type'])}: only fields of the "
                "same data type can be paired.",
            )
        if snov and pipe:
            cleaned["pair"] = {
                "snovio_field": snov["key"],
                "snovio_label": snov["name"],
                "pipedrive_field": pipe["key"],
                "pipedrive_label": pipe["name"],
                "data_type": snov["type"],
                "conflict_rule": cleaned.get("conflict_rule") or "",
            }
        return cleaned


class BaseMappingFormSet(forms.BaseFormSet):
    """The custom pairs: no field paired twice; an incomplete row is reported on its row."""

    def __init__(self, *args, catalog: Catalog, stale: dict | None = None, **kwargs):
        self.catalog, self.stale = catalog, stale or {}
        super().__init__(*args, **kwargs)

    def get_form_kwargs(self, index):
        return {"catalog": self.catalog, "stale": self.stale}

    def clean(self) -> None:
        if any(self.errors):
            return
        seen_snov: set[str] = set()
        seen_pipe: set[str] = set()
        for form in self.forms:
            if self.can_delete and self._should_delete_form(form):
                continue
            pair = form.cleaned_data.get("pair")
            if not pair:
                continue
            if pair["snovio_field"] in seen_snov:
                form.add_error(
                    "snovio_field", f"“{pair['snovio_label']}” is already paired: pick another."
                )
            if pair["pipedrive_field"] in seen_pipe:
                form.add_error(
                    "pipedrive_field",
                    f"“{pair['pipedrive_label']}” is already paired: pick another.",
                )
            seen_snov.add(pair["snovio_field"])
            seen_pipe.add(pair["pipedrive_field"])
        if any(self.errors):
            raise ValidationError("A field can be paired only once.", code="duplicate")

    def pairs(self) -> list[dict]:
        result = []
        for form in self.forms:
            if self.can_delete and self._should_delete_form(form):
                continue
            pair = getattr(form, "cleaned_data", {}).get("pair")
            if pair:
                result.append(pair)
        return result


MappingFormSet = forms.formset_factory(
    MappingRowForm,
    formset=BaseMappingFormSet,
    extra=0,
    can_delete=True,
    max_num=200,
    absolute_max=200,
    validate_max=True,
)


def mapping_formset(
    integration: Integration, catalog: Catalog, data: Any = None
) -> BaseMappingFormSet:
    custom = list(integration.field_mappings.filter(is_system=False))
    stale = {
        "snovio": {m.snovio_field: m.snovio_label or m.snovio_field for m in custom},
        "pipedrive": {m.pipedrive_field: m.pipedrive_label or m.pipedrive_field for m in custom},
    }
    initial = [
        {
            "snovio_field": m.snovio_field,
            "pipedrive_field": m.pipedrive_field,
            "conflict_rule": m.conflict_rule,
        }
        for m in custom
    ]
    return MappingFormSet(data, initial=initial, prefix="map", catalog=catalog, stale=stale)


class SystemRulesForm(forms.Form):
    """The conflict rule of each system pair (the pairs themselves are locked)."""

    def __init__(self, *args, integration: Integration, **kwargs):
        super().__init__(*args, **kwargs)
        self.mappings = list(integration.field_mappings.filter(is_system=True))
        default = f"{DEFAULT_RULE_LABEL} ({integration.get_conflict_rule_display()})"
        for mapping in self.mappings:
            self.fields[self.field_name(mapping)] = rule_field(default)
            self.initial.setdefault(self.field_name(mapping), mapping.conflict_rule)

    @staticmethod
    def field_name(mapping: FieldMapping) -> str:
        return f"rule_{mapping.snovio_field}"

    @property
    def rows(self) -> list[tuple[FieldMapping, forms.BoundField]]:
        """Each system pair with its rule's select, for the mapping table."""
        return [(m, self[self.field_name(m)]) for m in self.mappings]

    def rules(self) -> dict[str, str]:
        """Snov.io field of each system pair -> its rule (blank: the integration default)."""
        return {m.snovio_field: self.cleaned_data[self.field_name(m)] for m in self.mappings}


class ConflictRulesForm(status_forms.RealtimeRuleForm):
    """The real-time card: the default conflict rule of every pair, and who "the source app"
    is in real time (the rule the card held before rules were set per pair)."""

    conflict_rule = forms.ChoiceField(
        label="Default conflict rule of a field pair",
        choices=ConflictRule.choices,
        required=False,  # missing: left as it was
        help_text=RULE_HELP + " A pair's own rule (Data exchange, field mappings) comes first.",
        error_messages={"invalid_choice": "Choose one of the listed conflict rules."},
    )

    field_order = ["conflict_rule", "realtime_rule"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        source = self.fields["realtime_rule"]
        source.label = "In real time, under “the source app wins”, a field changed in both apps"
        source.help_text = (
            "Real time carries each change to the other app. If both apps changed the same "
            "field before SyncBridge saw either change, this decides which value stays for the "
            "pairs whose rule is “the source app wins”; the sync history shows both values, "
            "the winner and the rule."
        )
