"""Forms of setup steps 1 to 4 (connect, direction, data exchange, constants). They validate;
`connections` and `steps` save. The field pairs are in `mapping_forms`, the status, real-time
rule and transfer forms in `status_forms`.

Every choice is checked against the integration's stored catalogue, so a tampered or stale
value is reported next to its field instead of reaching the database or a remote.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from integrations import connections, fieldspec, steps
from integrations.catalog import Catalog, Kind
from integrations.http import AuthError, RemoteError
from integrations.mapping_forms import field_label
from integrations.models import Connection, Integration, Provider
from integrations.problems import receiving_sides
from integrations.sync.matching import LINKEDIN

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
            self.checked = connections.check_snovio_credentials(client_id, secret)
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

# The second match key (sync/matching.py): only values both APIs return are offered.
SECOND_KEY_CHOICES = [("", "None: match by email only"), (LINKEDIN, "LinkedIn profile URL")]
UNAVAILABLE_KEYS = [
    (
        "Phone",
        "Snov.io's API never returns a prospect's phones (only SyncBridge's own writes), so "
        "a phone cannot be compared on the Snov.io side.",
    ),
    (
        "Name or company",
        "Not unique: two different people share them, and merging them would lose a contact.",
    ),
]
# Custom field types Pipedrive's person search can look in (GET /api/v2/persons/search).
SEARCHABLE_TEXT_TYPES = {"varchar", "varchar_auto", "text"}


def second_key_fields(catalog: Catalog) -> list[dict]:
    """The Pipedrive custom fields that can hold a LinkedIn profile URL and be searched."""
    return [
        f
        for f in catalog.items(Kind.PIPEDRIVE_FIELDS)
        if f.get("custom") and f.get("field_type") in SEARCHABLE_TEXT_TYPES
    ]


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
    second_key = forms.ChoiceField(
        label="Second match key",
        required=False,
        choices=SECOND_KEY_CHOICES,
        help_text=(
            "For contacts without an email, or whose email matches nothing: matched by this "
            "value instead. Email is always tried first; a blank value never matches."
        ),
    )
    second_key_field = forms.ChoiceField(
        label="Pipedrive field holding the LinkedIn profile URL",
        required=False,
        help_text="A text custom field of Pipedrive persons (Pipedrive has no LinkedIn field).",
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
                "second_key": integration.second_key,
                "second_key_field": integration.second_key_field,
            }
        super().__init__(*args, **kwargs)
        self.integration, self.catalog = integration, catalog
        lists = [(item["id"], item["name"]) for item in catalog.items(Kind.SNOVIO_LISTS)]
        users = [(str(u["id"]), u["name"]) for u in catalog.active_users()]
        self.fields["target_list"].choices = [("", "— choose a list —"), *lists]
        self.fields["owner"].choices = [("", "— choose a user —"), *users]
        self.fields["lists"].choices = lists
        self.fields["second_key_field"].choices = [
            ("", "— choose a field —"),
            *[(f["key"], f["name"]) for f in second_key_fields(catalog)],
        ]
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
        if cleaned.get("second_key") and not cleaned.get("second_key_field"):
            if not second_key_fields(self.catalog):
                self.add_error(
                    "second_key",
                    "Your Pipedrive persons have no text custom field to hold the LinkedIn "
                    "profile URL: add one in Pipedrive, refresh the lists, then choose it.",
                )
            elif "second_key_field" not in self.errors:
                self.add_error(
                    "second_key_field", "Choose the Pipedrive field that holds the LinkedIn URL."
                )
        return cleaned

    def unavailable_keys(self) -> list[tuple[str, str]]:
        """The keys not offered, and why (shown next to the choice)."""
        return UNAVAILABLE_KEYS

    def data_exchange(self) -> steps.DataExchange:
        cleaned, cat = self.cleaned_data, self.catalog
        result = steps.DataExchange(
            only_with_email=cleaned.get("only_with_email", False),
            second_key=cleaned.get("second_key") or "",
            second_key_field=cleaned.get("second_key_field") or "",
        )
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


# --- step 4: constants ----------------------------------------------------------------------


@dataclass(frozen=True)
class ConstantRow:
    """One receiving side's constant: the field, the value box, and for a single-option
    field its options, offered as a choice instead of free text."""

    side: str
    label: str
    field: forms.BoundField
    value: forms.BoundField
    choices: list[str]
    options_by_field: dict[str, list[str]]

    @property
    def options_id(self) -> str:
        return f"constant-options-{self.side}"


class ConstantsForm(forms.Form):
    """For each receiving side: one custom field and the value stamped on every record."""

    def __init__(self, *args, integration: Integration, catalog: Catalog, **kwargs):
        self.integration, self.catalog = integration, catalog
        self.options: dict[str, dict[str, list[str]]] = {}
        self.sides = receiving_sides(integration)
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
                choices=[("", "— no constant —"), *[(f["key"], field_label(f)) for f in items]],
                help_text=f"A custom field of {name}, filled on every record {name} receives.",
            )
            self.fields[f"{side}_value"] = forms.CharField(
                label="Value", required=False, max_length=500
            )
            self.options[side] = {
                f["key"]: [o["label"] for o in f.get("options") or []]
                for f in items
                if f["type"] == fieldspec.ENUM and f.get("options")
            }
            if self.chosen_options(side):
                # The options' select sends the value; the text box stays for other fields.
                self.fields[f"{side}_value"].widget.attrs.update(disabled=True, hidden=True)

    def chosen_options(self, side: str) -> list[str]:
        """The options of the single-option field chosen for `side` (posted or saved)."""
        name = self.add_prefix(f"{side}_field")
        key = self.data.get(name) if self.is_bound else self.initial.get(f"{side}_field")
        return self.options.get(side, {}).get(key or "", [])

    def side_fields(self) -> list[ConstantRow]:
        return [
            ConstantRow(
                side,
                Provider(side).label,
                self[f"{side}_field"],
                self[f"{side}_value"],
                self.chosen_options(side),
                self.options[side],
            )
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
