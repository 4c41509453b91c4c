"""Matching records across the two sides by email. Pure: no HTTP, no database.

Email is the identity: trimmed and case-folded, then compared exactly (never a partial
search match). A record is indexed under *every* email it has, not only the primary one.
A record without an email is never indexed, so two contacts without an email are never
taken for the same contact.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
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
