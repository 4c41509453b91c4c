"""Matching records across the two sides: by email, then by an optional second key. Pure: no
HTTP, no database.

Email is the identity: trimmed and case-folded, then compared exactly (never a partial
search match). A record is indexed under *every* email it has, not only the primary one.
A record without an email is never indexed, so two contacts without an email are never
taken for the same contact.

The second key (issue 12: chosen in the data-exchange step, none by default) lets a contact
without an email, or whose email matches nothing, match the other side by another value both
APIs return: the LinkedIn profile URL (Snov.io: the profile's `social` links; Pipedrive: the
custom field the user picks). Its values are normalised (`normalise_url`) and tagged with the
key's kind (`linkedin:linkedin.com/in/anna`), so the indexes hold emails and key values side
by side without one ever being taken for the other. A blank value is never a key. Phones are
normalised too (`normalise_phone`) but never offered: Snov.io returns no phones
(docs/specs/snovio-shapes.md), so they cannot be compared.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")

LINKEDIN = "linkedin"
PHONE = "phone"


def normalise_email(value: Any) -> str:
    """The email as SyncBridge compares it: trimmed and case-folded ('' when missing)."""
    if value is None:
        return ""
    return str(value).strip().casefold()


# Emails and tagged key values are both compared trimmed and case-folded.
normalise_key = normalise_email


def normalise_url(value: Any) -> str:
    """A profile URL as SyncBridge compares it: no scheme, no `www.` (nor a country prefix of
    linkedin.com), no query, fragment or trailing slash, case-folded ('' when blank)."""
    text = str(value or "").strip().casefold()
    if not text:
        return ""
    parts = urlsplit(text if "//" in text else f"//{text}")
    host = parts.hostname or ""
    host = host.removeprefix("www.")
    if host.endswith(".linkedin.com"):
        host = "linkedin.com"
    path = re.sub(r"/+", "/", parts.path).rstrip("/")
    return f"{host}{path}" if host or path else ""


def normalise_phone(value: Any) -> str:
    """A phone number as digits only ('' when it has none)."""
    return re.sub(r"\D", "", str(value or ""))


@dataclass(frozen=True)
class SecondKey:
    """The integration's second match key: its kind and the Pipedrive field that holds it."""

    kind: str
    pipedrive_field: str
    label: str = "LinkedIn profile URL"

    def tag(self, value: Any) -> str:
        """The value as an index key (`<kind>:<normalised>`), '' when blank."""
        normalised = normalise_phone(value) if self.kind == PHONE else normalise_url(value)
        return f"{self.kind}:{normalised}" if normalised else ""

    def person_value(self, person: dict) -> str:
        """The value as the Pipedrive person holds it ('' when blank)."""
        value = (person.get("custom_fields") or {}).get(self.pipedrive_field)
        if isinstance(value, dict):  # some field types answer {value: ...}
            value = value.get("value")
        return str(value).strip() if isinstance(value, str | int | float) else ""

    def prospect_value(self, prospect: dict) -> str | None:
        """The LinkedIn URL as the Snov.io prospect holds it: '' when it has none, None when
        the answer did not carry social links (a list row: the profile must be read)."""
        if "social" not in prospect and "socialLinks" not in prospect:
            return None
        links = [
            (str(s.get("type") or ""), s.get("link"))
            for s in prospect.get("social") or []
            if isinstance(s, dict)
        ]
        links += list((prospect.get("socialLinks") or {}).items())
        for kind, link in links:
            if link and (LINKEDIN in kind.casefold() or "linkedin.com" in str(link).casefold()):
                return str(link).strip()
        return ""

    def of_person(self, person: dict) -> str:
        return self.tag(self.person_value(person))

    def of_prospect(self, prospect: dict) -> str:
        return self.tag(self.prospect_value(prospect) or "")


def is_tagged(key: str) -> bool:
    """Whether an index key is a second key's value (no email starts with `<kind>:`)."""
    return key.startswith((f"{LINKEDIN}:", f"{PHONE}:"))


class KeyIndex(Generic[T]):
    """Records of one side keyed by each of their normalised keys (emails, tagged key values).

    When several records share a key (duplicates already present on a side), `find`
    returns the first one added and `ambiguous` tells the caller there were more.
    """

    def __init__(self, keys_of: Callable[[T], Iterable[str]]):
        self.keys_of = keys_of
        self._by_key: dict[str, list[T]] = {}
        # The keys each indexed record is filed under (by identity: records are dicts), so
        # that replacing one touches its own buckets only, never the whole index.
        self._filed_under: dict[int, list[str]] = {}

    @classmethod
    def build(cls, records: Iterable[T], keys_of: Callable[[T], Iterable[str]]) -> KeyIndex[T]:
        index = cls(keys_of)
        for record in records:
            index.add(record)
        return index

    def add(self, record: T) -> None:
        filed = self._filed_under.setdefault(id(record), [])
        for key in {normalise_key(k) for k in self.keys_of(record)}:
            if key and key not in filed:
                self._by_key.setdefault(key, []).append(record)
                filed.append(key)
        if not filed:
            del self._filed_under[id(record)]

    def replace(self, old: T, new: T) -> None:
        """Swap a record for its newer version (after an update) under all its keys."""
        for key in self._filed_under.pop(id(old), []):
            bucket = self._by_key[key]
            for i, record in enumerate(bucket):
                if record is old:
                    bucket[i] = new
            self._filed_under.setdefault(id(new), [])
            if key not in self._filed_under[id(new)]:
                self._filed_under[id(new)].append(key)
        self.add(new)

    def candidates(self, keys: Iterable[str]) -> list[T]:
        """Every record sharing one of `keys`, in the order of `keys`, without repeats."""
        found: list[T] = []
        for key in keys:
            for record in self._by_key.get(normalise_key(key), []) if key else []:
                if not any(r is record for r in found):
                    found.append(record)
        return found

    def find(self, keys: Iterable[str]) -> T | None:
        """The record matching the first of `keys` that has a match, else None."""
        candidates = self.candidates(keys)
        return candidates[0] if candidates else None

    def ambiguous(self, key: str) -> bool:
        return len(self._by_key.get(normalise_key(key), [])) > 1

    def __contains__(self, key: str) -> bool:
        return bool(self._by_key.get(normalise_key(key)))

    def __len__(self) -> int:
        return len(self._by_key)


EmailIndex = KeyIndex  # the name from when emails were the only key


def duplicate_keys(records: Iterable[T], keys_of: Callable[[T], Iterable[str]]) -> set[str]:
    """Normalised keys (emails, tagged key values) held by more than one record."""
    seen: dict[str, int] = {}
    for record in records:
        for key in {normalise_key(k) for k in keys_of(record)}:
            if key:
                seen[key] = seen.get(key, 0) + 1
    return {key for key, count in seen.items() if count > 1}


duplicate_emails = duplicate_keys


@dataclass(frozen=True)
class Match:
    """A record found in a `PackedIndex`: its slot and its record, unpacked (a record known
    by id only, one the run created, has no slot and no record), and the key it matched."""

    slot: int | None
    record: dict | None
    record_id: Any
    key: str

    @property
    def email(self) -> str:
        """The email it matched by ('' when it matched by the second key)."""
        return "" if is_tagged(self.key) else self.key

    @property
    def by_second_key(self) -> bool:
        return not self.email


class PackedIndex:
    """The receiving side of a transfer, kept small enough for 100,000 records.

    Each listed record is held as compressed JSON (against a dictionary made from the first
    record, so the field names every record repeats cost almost nothing) and unpacked only when
    a sending record matches it. A record the run itself created is held by its id alone: the
    caller reads it again in the rare case a later record shares its email. Keys are
    normalised and the first record added under a key is the one found, as in `KeyIndex`;
    `ambiguous(key)` tells when more than one listed record holds it.
    """

    def __init__(self, keys_of: Callable[[dict], Iterable[str]]):
        self.keys_of = keys_of
        self._packed: list[bytes] = []
        self._slot_of: dict[str, int] = {}
        self._id_of: dict[str, Any] = {}  # created in the run: key -> the record's id only
        self._ambiguous: set[str] = set()  # keys held by more than one listed record
        self._zdict: bytes | None = None

    def _pack(self, record: dict) -> bytes:
        text = json.dumps(record, separators=(",", ":"), default=str).encode()
        if self._zdict is None:
            self._zdict = text[:2048]  # the field names; more would slow every pack down
        packer = zlib.compressobj(level=6, zdict=self._zdict)
        return packer.compress(text) + packer.flush()

    def _unpack(self, packed: bytes) -> dict:
        assert self._zdict is not None
        unpacker = zlib.decompressobj(zdict=self._zdict)
        return json.loads(unpacker.decompress(packed) + unpacker.flush())

    def _file(self, record: dict, slot: int) -> None:
        for key in {normalise_key(k) for k in self.keys_of(record)}:
            if key and key not in self._id_of:
                if self._slot_of.setdefault(key, slot) != slot:
                    self._ambiguous.add(key)

    def add(self, record: dict) -> int:
        """Keep a listed record (packed) and index it under each of its keys; its slot."""
        slot = len(self._packed)
        self._packed.append(self._pack(record))
        self._file(record, slot)
        return slot

    def add_id(self, keys: Iterable[str], record_id: Any) -> None:
        """Index a record the run created by its id only."""
        for key in {normalise_key(k) for k in keys}:
            if key and key not in self._slot_of:
                self._id_of.setdefault(key, record_id)

    def find(self, keys: Iterable[str]) -> Match | None:
        """The record matching the first of `keys` that has a match, else None."""
        for key in keys:
            key = normalise_key(key)
            if not key:
                continue
            if key in self._slot_of:
                slot = self._slot_of[key]
                record = self._unpack(self._packed[slot])
                return Match(slot, record, record.get("id"), key)
            if key in self._id_of:
                return Match(None, None, self._id_of[key], key)
        return None

    def ambiguous(self, key: str) -> bool:
        return normalise_key(key) in self._ambiguous

    def get(self, slot: int) -> dict:
        return self._unpack(self._packed[slot])

    def records(self) -> Iterator[tuple[int, dict]]:
        """Every listed record with its slot, unpacked one at a time."""
        for slot in range(len(self._packed)):
            yield slot, self.get(slot)

    def replace(self, match: Match, record: dict) -> None:
        """Keep a matched record's newer version (after an update); its new keys find it too.
        A record known by id only stays so."""
        if match.slot is None:
            self.add_id(self.keys_of(record), match.record_id)
            return
        self._packed[match.slot] = self._pack(record)
        self._file(record, match.slot)

    def __contains__(self, key: str) -> bool:
        key = normalise_key(key)
        return key in self._slot_of or key in self._id_of

    def __len__(self) -> int:
        return len(self._slot_of) + len(self._id_of)
