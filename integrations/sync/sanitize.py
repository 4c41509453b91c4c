"""Values a database or a remote cannot take, cleaned or refused one record at a time (pure).

A transfer meets whatever people typed into Snov.io or Pipedrive. PostgreSQL refuses a NUL
character in text and in JSON ("unsupported Unicode escape sequence"), the remotes refuse
over-long values and malformed emails, and a single such record must not stop the others.

- `clean_prospect(prospect)` / `clean_person(person)`: control characters removed (newlines
  and tabs kept), names and titles capped at `NAME_LIMIT`, other text at `TEXT_LIMIT`, each
  change noted; a record whose (first) email is invalid or longer than 254 characters is
  refused with the reason; an invalid extra email is dropped with a note.
- `json_safe(obj)`: any value made storable in a JSON column and sendable as JSON (used for
  events and for webhook and catch-up payloads).
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

EMAIL_LIMIT = 254  # RFC 5321 path limit; SyncEvent.email has the same length
LOCAL_PART_LIMIT = 64
NAME_LIMIT = 255  # Pipedrive's and Snov.io's name and title fields
TEXT_LIMIT = 10_000
SHOWN = 60  # characters of an offending value quoted in a reason

NAME_KEYS = frozenset(
    {
        "name",
        "firstName",
        "lastName",
        "first_name",
        "last_name",
        "position",
        "job_title",
        "companyName",
        "company_name",
        "title",
        "country",
        "locality",
    }
)

# C0 and C1 controls but \t and \n, and the lone surrogates UTF-8 (hence PostgreSQL) rejects.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
# What a JSON column in PostgreSQL cannot hold at all.
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")
_LOCAL = re.compile(r"^[^\s@\"(),:;<>\[\]\\]+$")
_LABEL = re.compile(r"^[^\W_](?:[\w-]{0,61}[^\W_])?$")


@dataclass(frozen=True)
class Cleaned:
    """A record fit to store and send, what was changed in it, or why it cannot go at all."""

    record: dict
    notes: list[str] = field(default_factory=list)
    refused: str = ""


def strip_control(text: str) -> str:
    """`text` without control characters (newlines and tabs are kept)."""
    return _CONTROL.sub("", text)


def shown(value: Any) -> str:
    """A value quoted safely in a reason: control characters visible, long values cut."""
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(value))
    return text if len(text) <= SHOWN else text[: SHOWN - 1] + "…"


def email_problem(email: str) -> str:
    """Why `email` cannot be used ("" when it can): the basic RFC 5321 shape and lengths."""
    if _CONTROL.search(email):
        return "contains control characters"
    if len(email) > EMAIL_LIMIT:
        return f"is longer than {EMAIL_LIMIT} characters ({len(email)})"
    local, at, domain = email.rpartition("@")
    if not at or not local or not domain:
        return "is not an email address (no “name@domain”)"
    if len(local) > LOCAL_PART_LIMIT or not _LOCAL.match(local):
        return "has an invalid part before the @"
    if local.startswith(".") or local.endswith(".") or ".." in local:
        return "has an invalid part before the @"
    labels = domain.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        return "has an invalid domain"
    return ""


def _clean_text(text: str, where: str, limit: int, notes: list[str]) -> str:
    cleaned = strip_control(text)
    if cleaned != text:
        removed = len(text) - len(cleaned)
        notes.append(f"removed {removed} control character(s) from {where}")
    if len(cleaned) > limit:
        notes.append(f"{where} cut to {limit} characters (it had {len(cleaned)})")
        cleaned = cleaned[:limit]
    return cleaned


def _clean_value(value: Any, where: str, key: str, notes: list[str]) -> Any:
    if isinstance(value, str):
        limit = NAME_LIMIT if key in NAME_KEYS else TEXT_LIMIT
        return _clean_text(value, where, limit, notes)
    if isinstance(value, Mapping):
        out = {}
        for name, item in value.items():
            clean_name = strip_control(str(name))
            out[clean_name] = _clean_value(item, f"{where}.{clean_name}", clean_name, notes)
        return out
    if isinstance(value, list):
        return [_clean_value(item, where, key, notes) for item in value]
    return value


def _clean_fields(record: Mapping, skip: frozenset[str]) -> tuple[dict, list[str]]:
    notes: list[str] = []
    out: dict = {}
    for key, value in record.items():
        name = strip_control(str(key))
        out[name] = value if key in skip else _clean_value(value, name, name, notes)
    return out, notes


def _keep_valid_emails(entries: list, value_key: str, notes: list[str]) -> tuple[list, str, str]:
    """Entries whose email is valid; the first entry's email and its problem, if any."""
    kept, first, first_problem = [], "", ""
    for position, entry in enumerate(entries):
        email = entry.get(value_key) if isinstance(entry, Mapping) else entry
        email = str(email or "").strip()
        problem = email_problem(email) if email else ""
        if position == 0:
            first, first_problem = email, problem
        if problem and position > 0:
            notes.append(f"left out the email “{shown(email)}”, which {problem}")
        elif not problem:
            kept.append(entry)
    return kept, first, first_problem


def _refusal(email: str, problem: str) -> str:
    return f"Not sent: the email “{shown(email)}” {problem}."


def clean_prospect(prospect: Mapping) -> Cleaned:
    """A Snov.io prospect cleaned for the database and Pipedrive, or refused with the reason."""
    record, notes = _clean_fields(prospect, skip=frozenset({"email", "emails", "id"}))
    record["id"] = prospect.get("id")
    single = str(prospect.get("email") or "").strip()
    if single and (problem := email_problem(single)):
        return Cleaned(record, notes, _refusal(single, problem))
    if "emails" in prospect:
        kept, first, problem = _keep_valid_emails(
            list(prospect.get("emails") or []), "email", notes
        )
        if problem and not single:
            return Cleaned(record, notes, _refusal(first, problem))
        if problem:
            notes.append(f"left out the email “{shown(first)}”, which {problem}")
        record["emails"] = [_clean_value(e, "emails", "email", []) for e in kept]
    return Cleaned(record, notes)


def clean_person(person: Mapping) -> Cleaned:
    """A Pipedrive person cleaned for the database and Snov.io, or refused with the reason."""
    record, notes = _clean_fields(person, skip=frozenset({"emails", "id"}))
    record["id"] = person.get("id")
    entries = list(person.get("emails") or [])
    entries.sort(key=lambda e: not (isinstance(e, Mapping) and e.get("primary")))
    kept, first, problem = _keep_valid_emails(entries, "value", notes)
    if problem:
        return Cleaned(record, notes, _refusal(first, problem))
    if "emails" in person:
        record["emails"] = [_clean_value(e, "emails", "value", []) for e in kept]
    return Cleaned(record, notes)


def json_safe(obj: Any) -> Any:
    """`obj` as plain JSON values PostgreSQL can store: no NUL or lone surrogate anywhere."""
    if obj is None or isinstance(obj, bool | int):
        return obj
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else None
    if isinstance(obj, str):
        return _UNSTORABLE.sub("", obj)
    if isinstance(obj, bytes):
        return json_safe(obj.decode("utf-8", "replace"))
    if isinstance(obj, Mapping):
        return {json_safe(str(k)): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [json_safe(item) for item in obj]
    if isinstance(obj, dt.datetime | dt.date | dt.time):
        return obj.isoformat()
    if isinstance(obj, decimal.Decimal | uuid.UUID):
        return str(obj)
    return json_safe(str(obj))
