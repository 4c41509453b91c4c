"""Forms of the setup steps and the settings page. They validate; `services` saves.

Every choice is checked against the integration's stored catalogue, so a tampered or stale
value is reported next to its field instead of reaching the database or a remote.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from integrations import fieldspec, services
from integrations.catalog import Catalog, Kind
from integrations.http import AuthError, RemoteError
from integrations.models import Connection, Integration, Provider, RealtimeRule, SyncRun

DIRECTION_HELP = {
    Integration.Direction.TWO_WAY: (
        "Prospects from Snov.io become Pipedrive persons and Pipedrive persons are added to a "
        "Snov.io list; a change on either side reaches the other."
    ),
    Integration.Direction.TO_PIPEDRIVE: (
        "Prospects from your Snov.io lists become Pipedrive persons; nothing is written to Snov.io."
    ),
    Integration.Direction.TO_SNOVIO: (
        "Pipedrive persons are added to one Snov.io list; nothing is written to Pipedrive."
    ),
}
DIRECTION_ORDER = (
    Integration.Direction.TWO_WAY,
    Integration.Direction.TO_PIPEDRIVE,
    Integration.Direction.TO_SNOVIO,
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


def _field_label(item: dict) -> str:
    return f"{item['name']} ({fieldspec.type_label(item['type'])})"


# --- step 1: connect ------------------------------------------------------------------------


class SnovioConnectForm(forms.Form):
    client_id = forms.CharField(
        label="API User ID",
        max_length=200,
        help_text="In Snov.io: Settings → API. Copy the API User ID.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    client_secret = forms.CharField(
        label="API Secret",
        max_length=200,
        help_text="Checked with Snov.io before it is saved; stored encrypted.",
        widget=forms.PasswordInput(attrs={"autocomplete": "off"}),
    )

    checked: Connection | None = None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        client_id, secret = cleaned.get("client_id"), cleaned.get("client_secret")
        if not client_id or not secret:
            return cleaned
        try:
            self.checked = services.check_snovio_credentials(client_id, secret)
        except AuthError:
            raise ValidationError(
                "Snov.io refused this API User ID and API Secret. Copy both again from "
                "Snov.io's Settings → API.",
                code="refused",
            ) from None
        except RemoteError as exc:
            raise ValidationError(
                f"Snov.io could not be reached ({exc}). Try again in a minute.",
                code="unreachable",
            ) from None
        return cleaned


# --- step 2: direction ----------------------------------------------------------------------


class DirectionForm(forms.Form):
    direction = forms.ChoiceField(
        label="Which way should data flow?",
        choices=[(d.value, d.label) for d in DIRECTION_ORDER],
        widget=forms.RadioSelect,
        initial=Integration.Direction.TWO_WAY,
    )

    def __init__(self, *args, integration: Integration, **kwargs):
        kwargs.setdefault("initial", {"direction": integration.direction})
        super().__init__(*args, **kwargs)
        self.integration = integration

    @staticmethod
    def descriptions() -> list[tuple[str, str, str]]:
        return [(d.value, d.label, DIRECTION_HELP[d]) for d in DIRECTION_ORDER]


# --- step 3: data exchange ------------------------------------------------------------------


class DataExchangeForm(forms.Form):
    """Lists, owner and the two switches; which fields exist depends on the direction."""

    target_list = forms.ChoiceField(
        label="Sync-to Snov.io list",
        help_text="Contacts from Pipedrive are added to this Snov.io list.",
    )
    owner = forms.ChoiceField(
        label="Pipedrive owner",
        help_text="The Pipedrive user who owns contacts that come from Snov.io.",
    )
    all_lists = forms.BooleanField(
        label="All lists",
        required=False,
        help_text="Send prospects from every Snov.io list, including lists created later.",
    )
    lists = forms.MultipleChoiceField(
        label="Sync-from Snov.io lists",
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Only prospects in these lists are sent to Pipedrive.",
    )
    include_email_history = forms.BooleanField(
        label="Include email communication history",
        required=False,
        help_text="Campaign emails sent to a prospect are added to the Pipedrive person.",
    )
    only_with_email = forms.BooleanField(
        label="Only sync prospects with email addresses",
        required=False,
        help_text="Contacts are matched by email; without one they cannot be matched.",
    )

    def __init__(self, *args, integration: Integration, catalog: Catalog, **kwargs):
        if "initial" not in kwargs:
            kwargs["initial"] = {
                "target_list": integration.target_list_id,
                "owner": integration.pipedrive_owner_id or "",
                "all_lists": integration.all_lists,
                "lists": list(integration.list_selections.values_list("list_id", flat=True)),
                "include_email_history": integration.include_email_history,
                "only_with_email": integration.only_with_email,
            }
        super().__init__(*args, **kwargs)
        self.integration, self.catalog = integration, catalog
        lists = [(item["id"], item["name"]) for item in catalog.items(Kind.SNOVIO_LISTS)]
        users = [(str(u["id"]), u["name"]) for u in catalog.active_users()]
        self.fields["target_list"].choices = [("", "— choose a list —"), *lists]
        self.fields["owner"].choices = [("", "— choose a user —"), *users]
        self.fields["lists"].choices = lists
        if not integration.sends_to_snovio:
            del self.fields["target_list"]
        if not integration.sends_to_pipedrive:
            for name in ("owner", "all_lists", "lists", "include_email_history"):
                del self.fields[name]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if "lists" in self.fields and not cleaned.get("all_lists") and not cleaned.get("lists"):
            if "lists" not in self.errors:
                self.add_error("lists", "Choose at least one list, or turn on “All lists”.")
        return cleaned

    def data_exchange(self) -> services.DataExchange:
        cleaned, cat = self.cleaned_data, self.catalog
        result = services.DataExchange(only_with_email=cleaned.get("only_with_email", False))
        if "target_list" in self.fields:
            item = cat.get(Kind.SNOVIO_LISTS, cleaned["target_list"])
            result.target_list = {"id": item["id"], "name": item["name"]}
        if "owner" in self.fields:
            user = cat.get(Kind.PIPEDRIVE_USERS, cleaned["owner"])
            result.owner = {"id": user["id"], "name": user["name"]}
            result.all_lists = cleaned.get("all_lists", False)
            result.include_email_history = cleaned.get("include_email_history", False)
            result.lists = [
                {"id": list_id, "name": cat.name(Kind.SNOVIO_LISTS, list_id)}
                for list_id in cleaned.get("lists") or []
            ]
        return result


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

    def __init__(self, *args, catalog: Catalog, stale: dict[str, dict] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.catalog = catalog
        snov = catalog.snovio_pairable_fields()
        pipe = catalog.pipedrive_pairable_fields()
        stale = stale or {}
        snov_choices = [(f["key"], _field_label(f)) for f in snov]
        pipe_choices = [(f["key"], _field_label(f)) for f in pipe]
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
        {"snovio_field": m.snovio_field, "pipedrive_field": m.pipedrive_field} for m in custom
    ]
    return MappingFormSet(data, initial=initial, prefix="map", catalog=catalog, stale=stale)


# --- step 4: constants ----------------------------------------------------------------------


class ConstantsForm(forms.Form):
    """For each receiving side: one custom field and the value stamped on every record."""

    def __init__(self, *args, integration: Integration, catalog: Catalog, **kwargs):
        self.integration, self.catalog = integration, catalog
        self.sides = services.receiving_sides(integration)
        mapped = {
            Provider.PIPEDRIVE: set(
                integration.field_mappings.values_list("pipedrive_field", flat=True)
            ),
            Provider.SNOVIO: set(integration.field_mappings.values_list("snovio_field", flat=True)),
        }
        self.mapped = mapped
        if "initial" not in kwargs:
            initial = {}
            for constant in integration.constants.all():
                initial[f"{constant.side}_field"] = constant.field_key
                initial[f"{constant.side}_value"] = constant.value
            kwargs["initial"] = initial
        super().__init__(*args, **kwargs)
        for side in self.sides:
            name = Provider(side).label
            items = catalog.constant_fields(side)
            self.fields[f"{side}_field"] = forms.ChoiceField(
                label=f"{name} field",
                required=False,
                choices=[("", "— no constant —"), *[(f["key"], _field_label(f)) for f in items]],
                help_text=f"A custom field of {name}, filled on every record {name} receives.",
            )
            self.fields[f"{side}_value"] = forms.CharField(
                label="Value", required=False, max_length=500
            )

    def side_fields(self) -> list[tuple[str, str, forms.BoundField, forms.BoundField]]:
        return [
            (side, Provider(side).label, self[f"{side}_field"], self[f"{side}_value"])
            for side in self.sides
        ]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        for side in self.sides:
            key = cleaned.get(f"{side}_field")
            value = (cleaned.get(f"{side}_value") or "").strip()
            if not key and not value:
                continue
            if not key:
                self.add_error(f"{side}_field", "Choose the field that receives this value.")
                continue
            if not value:
                self.add_error(f"{side}_value", "Type the value to stamp into this field.")
                continue
            kind = Kind.SNOVIO_FIELDS if side == Provider.SNOVIO else Kind.PIPEDRIVE_FIELDS
            item = self.catalog.get(kind, key)
            if item is None:
                self.add_error(f"{side}_field", "This field no longer exists: choose another.")
                continue
            if key in self.mapped[side]:
                self.add_error(
                    f"{side}_field",
                    f"“{item['name']}” is already filled by a field pair: pick another field.",
                )
                continue
            error = constant_value_error(item, value)
            if error:
                self.add_error(f"{side}_value", error)
        return cleaned

    def constants(self) -> dict[str, dict | None]:
        result: dict[str, dict | None] = {}
        for side in self.sides:
            key = self.cleaned_data.get(f"{side}_field")
            value = (self.cleaned_data.get(f"{side}_value") or "").strip()
            if not key:
                result[side] = None
                continue
            kind = Kind.SNOVIO_FIELDS if side == Provider.SNOVIO else Kind.PIPEDRIVE_FIELDS
            item = self.catalog.get(kind, key)
            result[side] = {"field_key": key, "field_label": item["name"], "value": value}
        return result


def constant_value_error(item: dict, value: str) -> str:
    """Why `value` cannot go into the field `item`, or "" when it can."""
    data_type = item["type"]
    if data_type == fieldspec.NUMBER:
        try:
            float(value.replace(",", "."))
        except ValueError:
            return f"“{item['name']}” is a number field: type a number."
    elif data_type == fieldspec.DATE:
        try:
            dt.date.fromisoformat(value)
        except ValueError:
            return f"“{item['name']}” is a date field: type a date as YYYY-MM-DD."
    elif data_type == fieldspec.ENUM:
        labels = [o["label"] for o in item.get("options") or []]
        if labels and value not in labels:
            return f"“{item['name']}” takes one of: {', '.join(labels)}."
    return ""


# --- status, transfer -----------------------------------------------------------------------


class StatusForm(forms.Form):
    status = forms.ChoiceField(
        choices=[
            (Integration.Status.ACTIVE, "Active"),
            (Integration.Status.PAUSED, "Paused"),
        ]
    )


class RealtimeRuleForm(forms.Form):
    realtime_rule = forms.ChoiceField(
        label="When a field changed in both apps before it was synced",
        choices=RealtimeRule.choices,
        help_text="Real time carries each change to the other app. If both apps changed the "
        "same field before SyncBridge saw either change, this decides which value stays; the "
        "sync history shows both values and the winner.",
    )


SOURCE_HELP = (
    "When a contact exists in both apps (same email), it is not duplicated: the two records "
    "are merged, and where a field differs the source app's value wins. An empty value never "
    "erases a filled one."
)


SUBMIT_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")


class TransferForm(forms.Form):
    direction = forms.ChoiceField(
        label="Transfer", choices=SyncRun.Direction.choices, widget=forms.RadioSelect
    )
    source_app = forms.ChoiceField(
        label="Source app (wins conflicts)",
        choices=Provider.choices,
        widget=forms.RadioSelect,
        help_text=SOURCE_HELP,
    )
    dry_run = forms.BooleanField(
        label="Preview first: show what would change, write nothing",
        required=False,
    )
    # A fresh token in every rendered form: the same submit sent twice (a double click, a
    # resent POST) starts one run, and the second one shows the first one's page.
    submit_token = forms.CharField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args, integration: Integration, **kwargs):
        directions = []
        if integration.sends_to_pipedrive:
            directions.append(SyncRun.Direction.TO_PIPEDRIVE)
        if integration.sends_to_snovio:
            directions.append(SyncRun.Direction.TO_SNOVIO)
        first = directions[0]
        kwargs.setdefault(
            "initial", {"direction": first.value, "source_app": sender_of(first.value)}
        )
        super().__init__(*args, **kwargs)
        self.integration = integration
        self.fields["direction"].choices = [(d.value, d.label) for d in directions]
        self.fields["submit_token"].initial = secrets.token_urlsafe(24)

    def clean_submit_token(self) -> str:
        """A token we could have made, else none (a garbled one never stops a transfer)."""
        token = self.cleaned_data.get("submit_token") or ""
        return token if SUBMIT_TOKEN.fullmatch(token) else ""


def sender_of(direction: str) -> str:
    """The app records come from in a transfer direction (the default source app)."""
    return Provider.SNOVIO if direction == SyncRun.Direction.TO_PIPEDRIVE else Provider.PIPEDRIVE
