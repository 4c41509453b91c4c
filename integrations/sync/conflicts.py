"""Conflict rules, and the merge of one record's values into the other side's record. Pure.

A *conflict rule* is set per field pair (blank: the integration's default). What each means
in a manual transfer (and its preview), where the person chose a *source app*, and in real
time, where each side's change is known (`threeway.py`):

- source_app, "The source app wins" (the default). Transfer: the source app's value wins a
  field filled on both sides with different values. Real time: a change on one side goes
  across; a pair changed on both sides is won by the app named on the real-time card (its
  "most recent change" names no app: the later change wins).
- fill_empty, "Fill empty fields only". Transfer: only empty receiving fields are filled.
  Real time: a change is carried only into an empty field. Neither side's filled value is
  ever replaced or emptied.
- keep_pipedrive, "Never overwrite on Pipedrive's side". A filled Pipedrive value is never
  replaced or emptied (empty ones are filled). Transfer to Pipedrive: fill empty only;
  transfer to Snov.io: Pipedrive's value wins. Real time: Pipedrive wins a pair changed on
  both sides; a Snov.io change only fills an empty Pipedrive field.
- keep_snovio, "Never overwrite on Snov.io's side": the same with the sides swapped.
- latest, "The most recent change wins". Real time: the later change wins a pair changed on
  both sides, whatever the card names. Transfer: falls back to the source app wins, because
  Snov.io publishes no change time, so a transfer cannot tell which value is newer, and it
  does what the person asked for (the source app's values).

Whatever the rule: an empty receiving field is filled (a new record gets every value), an
empty sending value never erases a filled one in a transfer, and the identity email is never
rewritten. Every conflict the merge records names the rule that settled it.

`merge` compares dicts in the receiving side's comparison space (`mapping.py`):
- a field that is equal on both sides is left alone;
- a field that is empty on the receiving side is filled from the sending side;
- a field filled on both sides with different values is a *conflict*, settled by its rule;
- `defaults` (constants of the receiving side) are stamped on a new record and only fill
  empty fields of an existing one (a constant never overwrites what a user entered).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from integrations.models import ConflictRule
from integrations.sync.mapping import is_empty

SENDING = "sending"
RECEIVING = "receiving"
SNOVIO = "snovio"
PIPEDRIVE = "pipedrive"
SOURCE_APP = ConflictRule.SOURCE_APP.value
FILL_EMPTY = ConflictRule.FILL_EMPTY.value
KEEP_PIPEDRIVE = ConflictRule.KEEP_PIPEDRIVE.value
KEEP_SNOVIO = ConflictRule.KEEP_SNOVIO.value
LATEST = ConflictRule.LATEST.value
RULES = tuple(ConflictRule.values)
# The side whose filled values a rule never replaces (fill_empty: both).
_KEPT_SIDES = {
    FILL_EMPTY: frozenset({SNOVIO, PIPEDRIVE}),
    KEEP_PIPEDRIVE: frozenset({PIPEDRIVE}),
    KEEP_SNOVIO: frozenset({SNOVIO}),
}


def rule_label(rule: str) -> str:
    """The words users know a rule by (an unknown rule: the source app wins)."""
    return str(ConflictRule(rule).label) if rule in RULES else str(ConflictRule.SOURCE_APP.label)


def may_overwrite(rule: str, side: str) -> bool:
    """Whether `rule` lets a filled value on `side` be replaced (or emptied)."""
    return side not in _KEPT_SIDES.get(rule, frozenset())


def sending_wins_transfer(rule: str, *, sending_is_source: bool, receiving_side: str) -> bool:
    """Whether the sending value replaces a different, filled receiving value in a transfer."""
    if not may_overwrite(rule, receiving_side):
        return False
    if rule in (KEEP_PIPEDRIVE, KEEP_SNOVIO):
        return True  # the kept side is the sending one: its value is the one to hold
    return sending_is_source  # source_app, and latest (no change times in a transfer)


def realtime_decider(rule: str, source_app: str) -> str:
    """Who wins a pair changed on both sides in real time: snovio, pipedrive or latest.
    `source_app` is the real-time card's choice (snovio, pipedrive or latest)."""
    if rule == KEEP_PIPEDRIVE:
        return PIPEDRIVE
    if rule == KEEP_SNOVIO:
        return SNOVIO
    if rule == SOURCE_APP:
        return source_app
    return LATEST  # latest; fill_empty lets the later change fill an empty field


@dataclass
class Merge:
    # Field -> value to write on the receiving side.
    changes: dict[str, Any] = field(default_factory=dict)
    # Field -> {"old": receiving value, "new": value written} for every change.
    diffs: dict[str, dict] = field(default_factory=dict)
    # Field -> {"receiving": ..., "sending": ..., "winner": "sending"|"receiving"}.
    conflicts: dict[str, dict] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def as_dict(self) -> dict:
        """JSON-able summary (what a SyncEvent or a preview row stores)."""
        data: dict[str, Any] = {}
        if self.diffs:
            data["fields"] = self.diffs
        if self.conflicts:
            data["conflicts"] = self.conflicts
        return data


def merge(
    receiving: Mapping[str, Any],
    sending: Mapping[str, Any],
    *,
    sending_wins: bool,
    defaults: Mapping[str, Any] | None = None,
    identity: Iterable[str] = ("email",),
    rules: Mapping[str, str] | None = None,
    receiving_side: str = "",
) -> Merge:
    """What changes on the receiving record when `sending`'s values are merged into it.

    `sending_wins`: whether the sending side is the transfer's source app; `rules`: the
    conflict rule per receiving field key (missing: the source app wins); `receiving_side`:
    snovio or pipedrive (what the "never overwrite" rules look at).
    """
    identity = set(identity)
    result = Merge()
    for key, new in sending.items():
        old = receiving.get(key)
        if is_empty(new) or old == new:
            continue
        if key in identity and not is_empty(old):
            continue
        if is_empty(old):
            _change(result, key, old, new)
            continue
        rule = (rules or {}).get(key) or SOURCE_APP
        wins = sending_wins_transfer(
            rule, sending_is_source=sending_wins, receiving_side=receiving_side
        )
        result.conflicts[key] = {
            "receiving": old,
            "sending": new,
            "winner": SENDING if wins else RECEIVING,
            "rule": rule,
            "rule_label": rule_label(rule),
        }
        if wins:
            _change(result, key, old, new)
            result.diffs[key]["rule_label"] = rule_label(rule)
    for key, value in (defaults or {}).items():
        if key not in result.changes and is_empty(receiving.get(key)) and not is_empty(value):
            _change(result, key, receiving.get(key), value)
    return result


def _change(result: Merge, key: str, old: Any, new: Any) -> None:
    result.changes[key] = new
    result.diffs[key] = {"old": old, "new": new}


def new_record(sending: Mapping[str, Any], defaults: Mapping[str, Any] | None = None) -> dict:
    """The values of a record created on the receiving side: the sending values, stamped with
    the receiving side's constants."""
    values = {k: v for k, v in sending.items() if not is_empty(v)}
    values.update({k: v for k, v in (defaults or {}).items() if not is_empty(v)})
    return values
