"""The second match key in a transfer (issue 12): which receiving record a sending record
matches by its key, once its emails matched nothing. The rules are `matching`'s; this module
reads what they need (profiles, links) through the transfer's context.

A key value several receiving records hold, or whose record is already linked to another
sending record (two prospects with one LinkedIn URL), is never merged: the sending record is
skipped with the reason. Snov.io's list rows carry no social links, so a prospect's key is read
from its profile: a sending prospect's when it needs it, and, towards Snov.io, every listed
prospect's once per run slice (Snov.io cannot be searched by social link). In real time a
prospect finds its person by a Pipedrive search on custom fields, and a person finds its
prospect only through the links of prospects SyncBridge has seen (`RecordLink.match_key`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from integrations.models import RecordLink
from integrations.sync import mapping, sanitize
from integrations.sync.context import SyncContext
from integrations.sync.matching import Match, PackedIndex, SecondKey
from integrations.sync.records import NO_PROSPECT_EMAIL


def ambiguous(second: SecondKey, value: str, holders: str) -> str:
    return (
        f"Several {holders} have this {second.label} ({value}); ambiguous matches are never "
        "merged automatically."
    )


def already_linked(second: SecondKey, value: str, other: str) -> str:
    return (
        f"The record with this {second.label} ({value}) is already linked to another record "
        f"(#{other}); records sharing a key are never merged automatically."
    )


@dataclass
class KeyMatch:
    """How a sending record fared with the second key."""

    record: dict  # the sending record (a prospect completed with its profile if it was read)
    match: Match | None = None
    refused: str = ""  # why the record must be skipped ("" when it may go on)


class TransferKeys:
    """The second key for one transfer run (slice), towards Pipedrive or towards Snov.io."""

    def __init__(self, ctx: SyncContext, second: SecondKey, to_pipedrive: bool):
        self.ctx, self.second, self.to_pipedrive = ctx, second, to_pipedrive
        self.prospects_read = False  # towards Snov.io: the listed prospects' profiles read

    def person_keys(self, person: dict) -> list[str]:
        return [*mapping.person_emails(person), self.second.of_person(person)]

    def prospect_keys(self, prospect: dict) -> list[str]:
        return [*mapping.prospect_emails(prospect), self.second.of_prospect(prospect)]

    def match(
        self, record: dict, record_id: str, index: PackedIndex, renew: Callable[[], None]
    ) -> KeyMatch:
        """The receiving record `record` matches by its key, if exactly one may be merged."""
        second = self.second
        if self.to_pipedrive:
            if second.prospect_value(record) is None:  # a list row: the profile has the links
                record = sanitize.clean_prospect(self.ctx.snovio.complete(record)).record
            key, value = second.of_prospect(record), second.prospect_value(record)
        else:
            key, value = second.of_person(record), second.person_value(record)
            if key:
                self._read_prospects(index, renew)
        if not key:
            return KeyMatch(record)
        if index.ambiguous(key):
            holders = "Pipedrive persons" if self.to_pipedrive else "Snov.io prospects"
            return KeyMatch(record, refused=ambiguous(second, value, holders))
        match = index.find([key])
        if match is None:
            return KeyMatch(record)
        linked_to = self._linked_to(match.record_id)
        if linked_to and linked_to != record_id:
            return KeyMatch(record, refused=already_linked(second, value, linked_to))
        return KeyMatch(record, match)

    def _linked_to(self, receiving_id) -> str:
        """The sending record the receiving one is linked to ('' when none)."""
        if self.to_pipedrive:
            link = self.ctx.link_for(person_id=receiving_id)
            return link.snovio_prospect_id if link else ""
        link = self.ctx.link_for(prospect_id=str(receiving_id))
        return str(link.pipedrive_person_id or "") if link else ""

    def _read_prospects(self, index: PackedIndex, renew: Callable[[], None]) -> None:
        """Index the listed prospects by the key: one profile read each, once per slice."""
        if self.prospects_read:
            return
        self.prospects_read = True
        for slot, prospect in index.records():
            if self.second.prospect_value(prospect) is None:
                renew()
                full = sanitize.clean_prospect(self.ctx.snovio.complete(prospect)).record
                index.replace(Match(slot, prospect, prospect.get("id"), ""), full)


# --- real time ------------------------------------------------------------------------------
def person_by_key(ctx: SyncContext, prospect: dict) -> tuple[dict | None, str]:
    """The one Pipedrive person holding the prospect's key (a search on custom fields, the
    results compared exactly once normalised), or why it cannot be matched."""
    second = ctx.second_key
    assert second is not None
    key = second.of_prospect(prospect)
    if not key:
        return None, ""
    value = second.prospect_value(prospect) or ""
    term = key.split(":", 1)[1]  # the normalised URL: no scheme or `www.` to miss on
    candidates = ctx.pipedrive.search_persons_by_custom_fields(term)
    found = [p for p in candidates if second.of_person(p) == key]
    if len(found) > 1:
        return None, ambiguous(second, value, "Pipedrive persons")
    if not found:
        return None, ""
    link = ctx.link_for(person_id=found[0]["id"])
    if link and link.snovio_prospect_id and link.snovio_prospect_id != str(prospect.get("id")):
        return None, already_linked(second, value, link.snovio_prospect_id)
    return found[0], ""


def link_by_key(ctx: SyncContext, person: dict) -> tuple[RecordLink | None, str]:
    """The link of the one Snov.io prospect known to hold the person's key, or why it cannot
    be used. Snov.io has no search by social link: only prospects SyncBridge has seen count."""
    second = ctx.second_key
    assert second is not None
    key = second.of_person(person)
    if not key:
        return None, ""
    links = list(
        RecordLink.objects.filter(integration=ctx.integration, match_key=key)
        .exclude(snovio_prospect_id="")
        .order_by("pk")
    )
    value = second.person_value(person)
    if len({link.snovio_prospect_id for link in links}) > 1:
        return None, ambiguous(second, value, "Snov.io prospects")
    if not links:
        return None, ""
    link = links[0]
    if link.pipedrive_person_id and link.pipedrive_person_id != int(person.get("id") or 0):
        return None, already_linked(second, value, str(link.pipedrive_person_id))
    if "@" not in link.email:  # Snov.io updates a prospect only through its email
        return None, NO_PROSPECT_EMAIL.format(label=second.label)
    return link, ""
