"""Matching records across the two sides by email. Pure: no HTTP, no database.

Email is the identity: trimmed and case-folded, then compared exactly (never a partial
search match). A record is indexed under *every* email it has, not only the primary one.
A record without an email is never indexed, so two contacts without an email are never
taken for the same contact.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def normalise_email(value: Any) -> str:
    """The email as SyncBridge compares it: trimmed and case-folded ('' when missing)."""
    if value is None:
        return ""
    return str(value).strip().casefold()


class EmailIndex(Generic[T]):
    """Records of one side keyed by each of their normalised emails.

    When several records share an email (duplicates already present on a side), `find`
    returns the first one added and `ambiguous` tells the caller there were more.
    """

    def __init__(self, emails_of: Callable[[T], Iterable[str]]):
        self.emails_of = emails_of
        self._by_email: dict[str, list[T]] = {}
        # The emails each indexed record is filed under (by identity: records are dicts), so
        # that replacing one touches its own buckets only, never the whole index.
        self._filed_under: dict[int, list[str]] = {}

    @classmethod
    def build(cls, records: Iterable[T], emails_of: Callable[[T], Iterable[str]]) -> EmailIndex[T]:
        index = cls(emails_of)
        for record in records:
            index.add(record)
        return index

    def add(self, record: T) -> None:
        filed = self._filed_under.setdefault(id(record), [])
        for email in {normalise_email(e) for e in self.emails_of(record)}:
            if email and email not in filed:
                self._by_email.setdefault(email, []).append(record)
                filed.append(email)
        if not filed:
            del self._filed_under[id(record)]

    def replace(self, old: T, new: T) -> None:
        """Swap a record for its newer version (after an update) under all its emails."""
        for email in self._filed_under.pop(id(old), []):
            bucket = self._by_email[email]
            for i, record in enumerate(bucket):
                if record is old:
                    bucket[i] = new
            self._filed_under.setdefault(id(new), [])
            if email not in self._filed_under[id(new)]:
                self._filed_under[id(new)].append(email)
        self.add(new)

    def candidates(self, emails: Iterable[str]) -> list[T]:
        """Every record sharing one of `emails`, in the order of `emails`, without repeats."""
        found: list[T] = []
        for email in emails:
            for record in self._by_email.get(normalise_email(email), []) if email else []:
                if not any(r is record for r in found):
                    found.append(record)
        return found

    def find(self, emails: Iterable[str]) -> T | None:
        """The record matching the first of `emails` that has a match, else None."""
        candidates = self.candidates(emails)
        return candidates[0] if candidates else None

    def __contains__(self, email: str) -> bool:
        return bool(self._by_email.get(normalise_email(email)))

    def __len__(self) -> int:
        return len(self._by_email)


def duplicate_emails(records: Iterable[T], emails_of: Callable[[T], Iterable[str]]) -> set[str]:
    """Normalised emails held by more than one record."""
    seen: dict[str, int] = {}
    for record in records:
        for email in {normalise_email(e) for e in emails_of(record)}:
            if email:
                seen[email] = seen.get(email, 0) + 1
    return {email for email, count in seen.items() if count > 1}


@dataclass(frozen=True)
class Match:
    """A record found in a `PackedIndex`: its slot and its record, unpacked (a record known
    by id only, one the run created, has no slot and no record)."""

    slot: int | None
    record: dict | None
    record_id: Any
    email: str


class PackedIndex:
    """The receiving side of a transfer, kept small enough for 100,000 records.

    Each listed record is held as compressed JSON (against a dictionary made from the first
    record, so the field names every record repeats cost almost nothing) and unpacked only when
    a sending record matches it. A record the run itself created is held by its id alone: the
    caller reads it again in the rare case a later record shares its email. Emails are
    normalised and the first record added under an email is the one found, as in `EmailIndex`.
    """

    def __init__(self, emails_of: Callable[[dict], Iterable[str]]):
        self.emails_of = emails_of
        self._packed: list[bytes] = []
        self._slot_of: dict[str, int] = {}
        self._id_of: dict[str, Any] = {}  # created in the run: email -> the record's id only
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

    def add(self, record: dict) -> int:
        """Keep a listed record (packed) and index it under each of its emails; its slot."""
        slot = len(self._packed)
        self._packed.append(self._pack(record))
        for email in {normalise_email(e) for e in self.emails_of(record)}:
            if email and email not in self._id_of:
                self._slot_of.setdefault(email, slot)
        return slot

    def add_id(self, emails: Iterable[str], record_id: Any) -> None:
        """Index a record the run created by its id only."""
        for email in {normalise_email(e) for e in emails}:
            if email and email not in self._slot_of:
                self._id_of.setdefault(email, record_id)

    def find(self, emails: Iterable[str]) -> Match | None:
        """The record matching the first of `emails` that has a match, else None."""
        for email in emails:
            email = normalise_email(email)
            if not email:
                continue
            if email in self._slot_of:
                slot = self._slot_of[email]
                record = self._unpack(self._packed[slot])
                return Match(slot, record, record.get("id"), email)
            if email in self._id_of:
                return Match(None, None, self._id_of[email], email)
        return None

    def get(self, slot: int) -> dict:
        return self._unpack(self._packed[slot])

    def replace(self, match: Match, record: dict) -> None:
        """Keep a matched record's newer version (after an update); its new emails find it too.
        A record known by id only stays so."""
        if match.slot is None:
            self.add_id(self.emails_of(record), match.record_id)
            return
        self._packed[match.slot] = self._pack(record)
        for email in {normalise_email(e) for e in self.emails_of(record)}:
            if email and email not in self._id_of:
                self._slot_of.setdefault(email, match.slot)

    def __contains__(self, email: str) -> bool:
        email = normalise_email(email)
        return email in self._slot_of or email in self._id_of

    def __len__(self) -> int:
        return len(self._slot_of) + len(self._id_of)
