"""Field mapping between a Snov.io prospect and a Pipedrive person. Pure: no HTTP, no database.

Values are compared in one *comparison space* per side: every mapped field is read into a
plain Python value coerced to the pair's data type (text stripped, numbers as int/float,
dates as `YYYY-MM-DD`, emails trimmed and case-folded, option fields by their **label**,
multi-option fields as a sorted list of labels). `conflicts.merge` compares two such dicts;
the writers below turn the fields that changed back into the payload each API expects.

Field keys are those of `integrations.fieldspec`: Snov.io `firstName`, `phones`,
`customFields[<name>]`...; Pipedrive `first_name`, `phone`, `org_id` (organization name),
custom fields by their 40-character hash.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from integrations import fieldspec as fs
from integrations.sync.matching import normalise_email

# Pipedrive derives first_name/last_name from `name` (v2 writes carry only `name`).
PIPEDRIVE_NAME_PARTS = ("first_name", "last_name")
PIPEDRIVE_NAME_FIELDS = ("name", "first_name", "last_name")
# Standard person fields a v2 write carries at the top level.
PIPEDRIVE_TOP_LEVEL = frozenset(
    {"job_title", "notes", "birthday", "visible_to", "marketing_status", "label_ids"}
)
PIPEDRIVE_TEXT_FIELDS = frozenset({"job_title", "notes"})
SNOVIO_STANDARD = frozenset(f.key for f in fs.SNOVIO_STANDARD_FIELDS)


@dataclass(frozen=True)
class Pair:
    """One mapped pair of fields (a FieldMapping row, or a system pair)."""

    snovio: str
    pipedrive: str
    data_type: str = fs.TEXT
    label: str = ""
    # The pair's conflict rule (`conflicts.py`); blank: the source app wins.
    rule: str = ""


@dataclass(frozen=True)
class Constant:
    """A fixed value stamped into a field of every record the side receives."""

    field: str
    value: str
    label: str = ""


@dataclass
class MappingSpec:
    """Everything the pure functions need to know about one integration's mapping."""

    pairs: list[Pair]
    pipedrive_constants: list[Constant] = field(default_factory=list)
    snovio_constants: list[Constant] = field(default_factory=list)
    owner_id: int | None = None
    target_list_id: str = ""
    # Pipedrive person field key -> {option id (str): label}; for enum/set fields.
    pipedrive_options: dict[str, dict[str, str]] = field(default_factory=dict)
    # Pipedrive person field key -> canonical data type (for constants on unmapped fields).
    pipedrive_types: dict[str, str] = field(default_factory=dict)
    # Pipedrive organization id (str) -> name, to read the `org_id` field as a name.
    org_names: dict[str, str] = field(default_factory=dict)
    # Field key (either side) -> the label users know it by, for the record log and preview.
    labels: dict[str, str] = field(default_factory=dict)

    def rules(self, side: str) -> dict[str, str]:
        """Each pair's conflict rule, keyed by `side`'s field key (snovio or pipedrive)."""
        return {getattr(p, side): p.rule for p in self.pairs if p.rule}

    @property
    def pipedrive_fields(self) -> list[str]:
        return [p.pipedrive for p in self.pairs]

    @property
    def snovio_fields(self) -> list[str]:
        return [p.snovio for p in self.pairs]

    @property
    def pipedrive_read_fields(self) -> list[str]:
        """Mapped fields and constant fields: what a merge into a person compares."""
        extra = [c.field for c in self.pipedrive_constants if c.field not in self.pipedrive_fields]
        return self.pipedrive_fields + extra

    @property
    def snovio_read_fields(self) -> list[str]:
        extra = [c.field for c in self.snovio_constants if c.field not in self.snovio_fields]
        return self.snovio_fields + extra

    def pipedrive_type(self, key: str) -> str:
        for pair in self.pairs:
            if pair.pipedrive == key:
                return pair.data_type
        if key in self.pipedrive_types:
            return self.pipedrive_types[key]
        if key in self.pipedrive_options:
            return fs.ENUM
        return fs.TEXT

    def snovio_type(self, key: str) -> str:
        for pair in self.pairs:
            if pair.snovio == key:
                return pair.data_type
        return fs.TEXT


@dataclass
class Mapped:
    """The values one side should hold, in that side's comparison space, and what was left out."""

    values: dict[str, Any]
    problems: list[str] = field(default_factory=list)
    # Values for fields the receiving record gets only when it is created or the field is empty.
    defaults: dict[str, Any] = field(default_factory=dict)


# --- values ----------------------------------------------------------------------------------
def is_empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == ()


def coerce(value: Any, data_type: str) -> Any:
    """A value in the comparison space of `data_type` (None when empty)."""
    if isinstance(value, dict) and "value" in value:  # Pipedrive monetary/address objects
        value = value["value"]
    if is_empty(value):
        return None
    if data_type == fs.EMAIL:
        return normalise_email(str(value)) or None
    if data_type == fs.NUMBER:
        return _number(value)
    if data_type == fs.DATE:
        return _date(value)
    if data_type == fs.SET:
        items = value if isinstance(value, list | tuple) else str(value).split(",")
        labels = sorted({str(i).strip() for i in items if not is_empty(i) and str(i).strip()})
        return labels or None
    if isinstance(value, list | tuple):
        value = ", ".join(str(v) for v in value if not is_empty(v))
    text = str(value).strip()
    return text or None


def _number(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    try:
        number = float(str(value).replace(",", ".").strip())
    except ValueError:
        return str(value).strip() or None
    return int(number) if number.is_integer() else number


def _date(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()[:10]
    text = str(value).strip()
    if re.match(r"^\d{4}-\d{2}-\d{2}", text):
        return text[:10]
    return text or None


# --- reading a Snov.io prospect --------------------------------------------------------------
def prospect_emails(prospect: Mapping) -> list[str]:
    """Every normalised email a prospect has, first one first."""
    found: list[str] = []
    if prospect.get("email"):
        found.append(normalise_email(str(prospect["email"])))
    for entry in prospect.get("emails") or []:
        email = entry.get("email") if isinstance(entry, Mapping) else entry
        email = normalise_email(str(email or ""))
        if email and email not in found:
            found.append(email)
    return [e for e in found if e]


def prospect_email(prospect: Mapping) -> str:
    emails = prospect_emails(prospect)
    return emails[0] if emails else ""


def snovio_raw(prospect: Mapping, key: str) -> Any:
    """The raw value of one Snov.io field of a prospect."""
    if key == "email":
        return prospect_email(prospect)
    if key == "phones":
        phones = prospect.get("phones") or []
        for phone in phones if isinstance(phones, list) else [phones]:
            value = (
                phone.get("phone") or phone.get("value") if isinstance(phone, Mapping) else phone
            )
            if not is_empty(value):
                return value
        return None
    if key == "name":
        name = prospect.get("name") or prospect.get("fullName")
        if not name:
            name = " ".join(
                str(p) for p in (prospect.get("firstName"), prospect.get("lastName")) if p
            )
        return name
    custom = fs.snovio_custom_name(key)
    if custom is not None:
        fields = prospect.get("customFields") or {}
        if isinstance(fields, list):
            fields = {
                str(f.get("label") or f.get("name") or f.get("key")): f.get("value")
                for f in fields
                if isinstance(f, Mapping)
            }
        if custom in fields:
            return fields[custom]
        folded = custom.casefold()
        for name, value in fields.items():
            if str(name).casefold() == folded:
                return value
        return None
    return prospect.get(key)


def snovio_known(prospect: Mapping, key: str) -> bool:
    """Whether the answer the prospect came from carried this field at all: Snov.io's list
    rows and profiles each document only some fields (docs/specs/snovio-shapes.md), and a
    field it did not send is unknown, not empty."""
    if key == "email":
        return "email" in prospect or "emails" in prospect
    if key == "name":
        return any(k in prospect for k in ("name", "fullName", "firstName", "lastName"))
    if fs.snovio_custom_name(key) is not None:
        return "customFields" in prospect
    return key in prospect


def prospect_with_base(prospect: Mapping, side_base: Mapping | None) -> dict:
    """The prospect with each field its answer did not carry taken from the link's Snov.io
    base (the value SyncBridge last saw or wrote there): unknown counts as unchanged."""
    out = dict(prospect)
    custom: dict[str, Any] | None = None
    for key, value in (side_base or {}).items():
        if key == "email" or snovio_known(prospect, key):
            continue
        name = fs.snovio_custom_name(key)
        if name is not None:
            custom = {} if custom is None else custom
            custom[name] = value
        elif key == "phones":
            out["phones"] = [] if is_empty(value) else [value]
        else:
            out[key] = "" if value is None else value
    if custom is not None:
        out["customFields"] = custom
    return out


def snovio_values(prospect: Mapping, spec: MappingSpec, keys: Iterable[str] | None = None) -> dict:
    """The prospect's mapped fields in the Snov.io comparison space (known fields only)."""
    keys = list(keys) if keys is not None else spec.snovio_fields
    return {
        k: coerce(snovio_raw(prospect, k), spec.snovio_type(k))
        for k in keys
        if snovio_known(prospect, k)
    }


# --- reading a Pipedrive person --------------------------------------------------------------
def _items(entries: Any) -> list[Mapping]:
    return [e if isinstance(e, Mapping) else {"value": e} for e in entries or []]


def _primary(entries: Any) -> Any:
    items = [e for e in _items(entries) if not is_empty(e.get("value"))]
    for entry in items:
        if entry.get("primary"):
            return entry.get("value")
    return items[0].get("value") if items else None


def person_emails(person: Mapping) -> list[str]:
    """Every normalised email of a person, the primary one first."""
    items = _items(person.get("emails") or person.get("email"))
    items.sort(key=lambda e: not e.get("primary"))
    found: list[str] = []
    for entry in items:
        email = normalise_email(str(entry.get("value") or ""))
        if email and email not in found:
            found.append(email)
    return found


def person_email(person: Mapping) -> str:
    emails = person_emails(person)
    return emails[0] if emails else ""


def _option_labels(value: Any, options: Mapping[str, str]) -> Any:
    if isinstance(value, list | tuple):
        return [_option_labels(v, options) for v in value]
    if (
        isinstance(value, str)
        and "," in value
        and all(part.strip() in options for part in value.split(","))
    ):
        return [options[part.strip()] for part in value.split(",")]
    if isinstance(value, Mapping):  # {id, label} objects
        value = value.get("id", value.get("value"))
    return options.get(str(value), value)


def pipedrive_raw(person: Mapping, key: str, spec: MappingSpec) -> Any:
    """The raw value of one Pipedrive field of a person (option ids turned into labels)."""
    if key == "email":
        return person_email(person)
    if key == "phone":
        return _primary(person.get("phones") or person.get("phone"))
    if key == "org_id":
        if person.get("org_name"):
            return person["org_name"]
        org = person.get("org_id")
        if isinstance(org, Mapping):
            return org.get("name")
        return spec.org_names.get(str(org)) if org else None
    if key in ("first_name", "last_name") and not person.get(key) and person.get("name"):
        first, _, last = str(person["name"]).strip().partition(" ")
        return first if key == "first_name" else last
    custom = person.get("custom_fields") or {}
    if fs.is_pipedrive_custom_key(key) or (key in custom and key not in person):
        value = custom.get(key)
    else:
        value = person.get(key)
    if isinstance(value, Mapping) and "type" in value and "value" in value:
        value = value["value"]  # Webhooks v2 send custom fields as {type, value}
    options = spec.pipedrive_options.get(key)
    if options and not is_empty(value):
        value = _option_labels(value, options)
    return value


def pipedrive_values(person: Mapping, spec: MappingSpec, keys: Iterable[str] | None = None) -> dict:
    """The person's mapped fields in the Pipedrive comparison space."""
    keys = list(keys) if keys is not None else spec.pipedrive_fields
    return {k: coerce(pipedrive_raw(person, k, spec), spec.pipedrive_type(k)) for k in keys}


# --- one side's values to the other ----------------------------------------------------------
def _check_options(key: str, value: Any, spec: MappingSpec, label: str) -> tuple[Any, str | None]:
    """Keep an option value only if the Pipedrive field has an option with that label."""
    options = spec.pipedrive_options.get(key)
    if not options or is_empty(value):
        return value, None
    by_label = {lbl.casefold(): lbl for lbl in options.values()}
    wanted = value if isinstance(value, list) else [value]
    matched = [by_label.get(str(v).casefold()) for v in wanted]
    missing = [str(v) for v, m in zip(wanted, matched, strict=True) if m is None]
    if missing:
        return None, (
            f"{label or key}: no option {', '.join(repr(m) for m in missing)} in Pipedrive "
            f"(value not written)"
        )
    return (sorted(matched) if isinstance(value, list) else matched[0]), None


def prospect_to_person(prospect: Mapping, spec: MappingSpec) -> Mapped:
    """What the Pipedrive person should hold for this prospect (Pipedrive comparison space)."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    for pair in spec.pairs:
        if not snovio_known(prospect, pair.snovio):
            continue  # Snov.io did not send it: nothing to carry, nothing to compare
        target_type = spec.pipedrive_type(pair.pipedrive)
        value = coerce(snovio_raw(prospect, pair.snovio), target_type)
        if target_type in (fs.ENUM, fs.SET):
            value, problem = _check_options(pair.pipedrive, value, spec, pair.label)
            if problem:
                problems.append(problem)
        if target_type == fs.NUMBER and isinstance(value, str):
            problems.append(f"{pair.label or pair.pipedrive}: {value!r} is not a number")
            value = None
        values[pair.pipedrive] = value
    _fill_name(values, ("name", "first_name", "last_name"))
    defaults: dict[str, Any] = {}
    for constant in spec.pipedrive_constants:
        value = coerce(constant.value, spec.pipedrive_type(constant.field))
        if spec.pipedrive_type(constant.field) in (fs.ENUM, fs.SET):
            value, problem = _check_options(constant.field, value, spec, constant.label)
            if problem:
                problems.append(problem)
        if value is not None:
            defaults[constant.field] = value
    return Mapped(values=values, problems=problems, defaults=defaults)


def person_to_prospect(person: Mapping, spec: MappingSpec) -> Mapped:
    """What the Snov.io prospect should hold for this person (Snov.io comparison space)."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    for pair in spec.pairs:
        value = coerce(
            pipedrive_raw(person, pair.pipedrive, spec), spec.pipedrive_type(pair.pipedrive)
        )
        values[pair.snovio] = coerce(value, spec.snovio_type(pair.snovio))
    _fill_name(values, ("name", "firstName", "lastName"))
    defaults = {
        c.field: coerce(c.value, spec.snovio_type(c.field))
        for c in spec.snovio_constants
        if not is_empty(c.value)
    }
    return Mapped(values=values, problems=problems, defaults=defaults)


def _fill_name(values: dict, keys: tuple[str, str, str]) -> None:
    """Derive the full name from the first and last name when it is missing."""
    full, first, last = keys
    if full in values and not values[full] and (values.get(first) or values.get(last)):
        values[full] = " ".join(v for v in (values.get(first), values.get(last)) if v) or None


# --- writers ---------------------------------------------------------------------------------
def person_payload(
    changes: Mapping[str, Any],
    spec: MappingSpec,
    current: Mapping | None = None,
    org_id_for: Callable[[str], int | None] | None = None,
) -> tuple[dict, list[str]]:
    """The body of a v2 person create (`current` None) or PATCH for the fields in `changes`.

    `changes` is in the Pipedrive comparison space (labels, not option ids). Returns the body
    and the problems of fields that could not be written.
    """
    payload: dict[str, Any] = {}
    problems: list[str] = []
    custom: dict[str, Any] = {}
    merged = {**(pipedrive_values(current, spec, PIPEDRIVE_NAME_FIELDS) if current else {})}
    merged.update({k: v for k, v in changes.items() if k in PIPEDRIVE_NAME_FIELDS})
    for key, value in changes.items():
        if key in PIPEDRIVE_NAME_FIELDS:
            continue
        if key == "email":
            payload["emails"] = _replace_primary(current, "emails", value)
        elif key == "phone":
            payload["phones"] = _replace_primary(current, "phones", value)
        elif key == "org_id":
            org_id = org_id_for(value) if (org_id_for and value) else None
            if org_id is None and value:
                problems.append(f"Organization {value!r} could not be linked (not written)")
            else:
                payload["org_id"] = org_id
        elif key == "owner_id":
            payload["owner_id"] = value
        elif key in PIPEDRIVE_TOP_LEVEL:
            # v2 takes no null for these: an emptied field is written as an empty string.
            payload[key] = "" if value is None and key in PIPEDRIVE_TEXT_FIELDS else value
        else:
            written, problem = _custom_value(key, value, spec)
            if problem:
                problems.append(problem)
            else:
                custom[key] = written
    if any(k in changes for k in PIPEDRIVE_NAME_FIELDS):
        name = merged.get("name")
        if "name" not in changes or not name:
            parts = [merged.get("first_name"), merged.get("last_name")]
            name = " ".join(str(p) for p in parts if p) or name
        if name:
            payload["name"] = name
    if custom:
        payload["custom_fields"] = custom
    return payload, problems


def _replace_primary(current: Mapping | None, key: str, value: Any) -> list[dict]:
    """The person's emails/phones with `value` as the primary one, the others kept."""
    others = []
    for entry in _items((current or {}).get(key)):
        if entry.get("primary") or is_empty(entry.get("value")):
            continue
        if str(entry.get("value")).casefold() == str(value).casefold():
            continue
        others.append(
            {"value": entry.get("value"), "primary": False, "label": entry.get("label") or "work"}
        )
    if is_empty(value):
        return others
    return [{"value": value, "primary": True, "label": "work"}, *others]


def _custom_value(key: str, value: Any, spec: MappingSpec) -> tuple[Any, str | None]:
    """A custom field value as Pipedrive v2 takes it (option ids for enum/set)."""
    if value is None:
        return None, None
    data_type = spec.pipedrive_type(key)
    options = spec.pipedrive_options.get(key)
    if options and data_type in (fs.ENUM, fs.SET):
        ids = {label.casefold(): option_id for option_id, label in options.items()}
        wanted = value if isinstance(value, list) else [value]
        found = [ids.get(str(v).casefold()) for v in wanted]
        if None in found:
            return None, f"{key}: no option {value!r} in Pipedrive (value not written)"
        found = [int(i) if str(i).isdigit() else i for i in found]
        return (found if data_type == fs.SET else found[0]), None
    if data_type == fs.SET and isinstance(value, list):
        return ",".join(value), None
    return value, None


def prospect_payload(values: Mapping[str, Any], email: str, *, full: bool = True) -> dict[str, Any]:
    """The prospect dict `SnovioClient.add_prospect_to_list` takes, from Snov.io-space values.

    With `full` (a new prospect) every known value is sent; otherwise only `values` (the
    fields that change) plus the email that identifies the prospect.
    """
    prospect: dict[str, Any] = {"email": email}
    custom: dict[str, Any] = {}
    for key, value in values.items():
        if key == "email" or value is None:
            continue
        name = fs.snovio_custom_name(key)
        if name is not None:
            custom[name] = _text(value)
        elif key == "phones":
            prospect["phones"] = [_text(value)]
        elif key == "name":
            prospect["fullName"] = _text(value)
        else:
            prospect[key] = _text(value)
    if custom:
        prospect["customFields"] = custom
    return prospect


def _text(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# --- building a spec -------------------------------------------------------------------------
def system_pairs() -> list[Pair]:
    return [
        Pair(p.snovio_field, p.pipedrive_field, p.data_type, p.pipedrive_label)
        for p in fs.SYSTEM_PAIRS
    ]


def pipedrive_field_facts(fields: Iterable[Mapping]) -> tuple[dict, dict]:
    """Options and data types of Pipedrive person fields (`/v1/personFields` items)."""
    options: dict[str, dict[str, str]] = {}
    types: dict[str, str] = {}
    for item in fields:
        key = item.get("key")
        if not key:
            continue
        types[key] = fs.pipedrive_data_type(item.get("field_type"))
        if item.get("options") and types[key] in (fs.ENUM, fs.SET):
            options[key] = {str(o.get("id")): str(o.get("label")) for o in item["options"]}
    return options, types


def new_person_payload(
    values: Mapping[str, Any],
    spec: MappingSpec,
    org_id_for: Callable[[str], int | None] | None = None,
) -> tuple[dict, list[str]]:
    """The body that creates a person: every value (constants included) and the owner."""
    payload, problems = person_payload(values, spec, None, org_id_for)
    if spec.owner_id:
        payload["owner_id"] = spec.owner_id
    return payload, problems
