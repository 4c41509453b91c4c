"""Which fields exist on each side, their data types, the system pairs and the type rule.

Pure data and pure functions: no Django, no HTTP. The settings pages, the catalogue and the
sync engine all read the same facts from here.

Field keys
----------
Snov.io standard fields use the keys of a prospect as the API returns it (`firstName`,
`position`, ...). Two differ on writes to `add-prospect-to-list`: `name` is sent as `fullName`
and `email` as `email` (read from `emails[0].email`). Snov.io custom fields are keyed
`customFields[<name>]` (the form Snov.io's `prospect-custom-fields` answers with and
`add-prospect-to-list` accepts); `snovio_custom_name()` extracts the name.

Pipedrive fields use the `key` of `/v1/personFields`: standard ones by name (`first_name`,
`job_title`, ...), custom ones by their 40-character hash (written under `custom_fields`).

Data types
----------
Every field has one of the canonical types in `DATA_TYPES`. Only custom pairs whose two
fields share a type may be paired (`can_pair`); system pairs are fixed and always allowed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TEXT = "text"
NUMBER = "number"
DATE = "date"
EMAIL = "email"
PHONE = "phone"
ENUM = "enum"
SET = "set"
OTHER = "other"

DATA_TYPES = (TEXT, NUMBER, DATE, EMAIL, PHONE, ENUM, SET, OTHER)
DATA_TYPE_LABELS = {
    TEXT: "Text",
    NUMBER: "Number",
    DATE: "Date",
    EMAIL: "Email",
    PHONE: "Phone",
    ENUM: "Single option",
    SET: "Multiple options",
    OTHER: "Other",
}
# Types a custom pair (or a constant) may use. Email and phone belong to the system pairs.
PAIRABLE_TYPES = frozenset({TEXT, NUMBER, DATE, ENUM, SET})
# Types a constant value can be stamped into.
CONSTANT_TYPES = frozenset({TEXT, NUMBER, DATE, ENUM})


@dataclass(frozen=True)
class FieldSpec:
    key: str
    label: str
    data_type: str


@dataclass(frozen=True)
class SystemPair:
    snovio_field: str
    snovio_label: str
    pipedrive_field: str
    pipedrive_label: str
    data_type: str


# Snov.io prospect fields every account has.
SNOVIO_STANDARD_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("email", "Email", EMAIL),
    FieldSpec("firstName", "First name", TEXT),
    FieldSpec("lastName", "Last name", TEXT),
    FieldSpec("name", "Full name", TEXT),
    FieldSpec("phones", "Phone", PHONE),
    FieldSpec("position", "Position", TEXT),
    FieldSpec("companyName", "Company name", TEXT),
    FieldSpec("companySite", "Company website", TEXT),
    FieldSpec("country", "Country", TEXT),
    FieldSpec("locality", "Location", TEXT),
)

# Pipedrive person fields that are not custom (keys of /v1/personFields).
PIPEDRIVE_STANDARD_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("name", "Name", TEXT),
    FieldSpec("first_name", "First name", TEXT),
    FieldSpec("last_name", "Last name", TEXT),
    FieldSpec("email", "Email", EMAIL),
    FieldSpec("phone", "Phone", PHONE),
    FieldSpec("job_title", "Job title", TEXT),
    FieldSpec("org_id", "Organization", OTHER),
    FieldSpec("owner_id", "Owner", OTHER),
    FieldSpec("label", "Label", ENUM),
    FieldSpec("postal_address", "Postal address", TEXT),
    FieldSpec("birthday", "Birthday", DATE),
    FieldSpec("notes", "Notes", TEXT),
    FieldSpec("visible_to", "Visible to", OTHER),
    FieldSpec("marketing_status", "Marketing status", OTHER),
    FieldSpec("add_time", "Person created", OTHER),
    FieldSpec("update_time", "Update time", OTHER),
)

# The default pairs, locked on every integration (specs/snovio/NOTES.md).
SYSTEM_PAIRS: tuple[SystemPair, ...] = (
    SystemPair("email", "Email", "email", "Email (primary)", EMAIL),
    SystemPair("firstName", "First name", "first_name", "First name", TEXT),
    SystemPair("lastName", "Last name", "last_name", "Last name", TEXT),
    SystemPair("name", "Full name", "name", "Name", TEXT),
    SystemPair("phones", "Phone", "phone", "Phone (primary)", PHONE),
    SystemPair("position", "Position", "job_title", "Job title", TEXT),
    SystemPair("companyName", "Company name", "org_id", "Organization name", TEXT),
)

SYSTEM_SNOVIO_FIELDS = frozenset(p.snovio_field for p in SYSTEM_PAIRS)
SYSTEM_PIPEDRIVE_FIELDS = frozenset(p.pipedrive_field for p in SYSTEM_PAIRS)

# Snov.io standard fields that are free for custom pairs (not in a system pair).
SNOVIO_PAIRABLE_STANDARD = tuple(
    f for f in SNOVIO_STANDARD_FIELDS if f.key not in SYSTEM_SNOVIO_FIELDS
)

_PIPEDRIVE_TYPES = {
    "varchar": TEXT,
    "varchar_auto": TEXT,
    "text": TEXT,
    "address": TEXT,
    "phone": TEXT,  # a custom phone field holds one free-text number
    "double": NUMBER,
    "int": NUMBER,
    "monetary": NUMBER,
    "date": DATE,
    "enum": ENUM,
    "set": SET,
}
_SNOVIO_TYPES = {
    "string": TEXT,
    "text": TEXT,
    "textarea": TEXT,
    "link": TEXT,
    "url": TEXT,
    "phone": TEXT,
    "email": TEXT,
    "number": NUMBER,
    "numeric": NUMBER,
    "int": NUMBER,
    "integer": NUMBER,
    "float": NUMBER,
    "double": NUMBER,
    "date": DATE,
    "datetime": DATE,
    "select": ENUM,
    "enum": ENUM,
    "dropdown": ENUM,
    "multiselect": SET,
    "set": SET,
}
_CUSTOM_KEY = re.compile(r"^[0-9a-f]{40}$")
_SNOVIO_CUSTOM = re.compile(r"""^customFields\[['"]?(?P<name>.*?)['"]?\]$""")


def pipedrive_data_type(field_type: str | None) -> str:
    """The canonical type of a Pipedrive `field_type` (`varchar` -> text, `double` -> number)."""
    return _PIPEDRIVE_TYPES.get((field_type or "").lower(), OTHER)


def snovio_data_type(field_type: str | None) -> str:
    """The canonical type of a Snov.io custom field `type`; Snov.io fields are text by default."""
    return _SNOVIO_TYPES.get((field_type or "").lower(), TEXT)


def is_pipedrive_custom_key(key: str) -> bool:
    """Pipedrive keys custom fields by a 40-character hex hash."""
    return bool(_CUSTOM_KEY.match(key or ""))


def snovio_custom_key(name: str) -> str:
    """The key of a Snov.io custom field called `name`."""
    return f"customFields[{name}]"


def snovio_custom_name(key: str) -> str | None:
    """The custom field name in a Snov.io key (`customFields['Industry']` -> Industry)."""
    match = _SNOVIO_CUSTOM.match(key or "")
    return match.group("name") if match else None


def can_pair(snovio_type: str, pipedrive_type: str) -> bool:
    """The type rule: a custom pair joins two fields of the same, pairable data type."""
    return snovio_type == pipedrive_type and snovio_type in PAIRABLE_TYPES


def type_label(data_type: str) -> str:
    return DATA_TYPE_LABELS.get(data_type, data_type)
