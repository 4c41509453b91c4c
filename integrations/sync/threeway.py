"""The three-way merge of one linked contact in real time. Pure: no HTTP, no database.

Each RecordLink keeps the *base*: per mapped pair, the value each side held the last time
SyncBridge looked at the pair (at launch, or after it synced the pair), and whether the two
sides agreed then. Comparing each side with its own base tells who changed what:

- a pair changed on one side only goes to the other side;
- a pair changed on both sides to different values is a *conflict*, settled by the pair's
  conflict rule (`conflicts.py`: the source app named on the real-time card, the most recent
  change, or the side a "never overwrite" rule keeps) and recorded with both values, the
  winner and the rule;
- a rule that keeps filled values (fill empty only, never overwrite on one side) holds back
  any change that would replace or empty a filled value there, and says so;
- a pair changed on neither side is left alone, even when the two sides differ (a difference
  that existed at launch moves only by a manual transfer);
- an empty value never erases a filled one, unless the user emptied a pair that was in sync
  (the base says so);
- the email that identifies an existing contact is never rewritten.

Because the values merged are always read fresh from both sides, a held or late delivery
(an older snapshot) can never overwrite a newer edit: the snapshot only says *which* contact
to look at. The echo of SyncBridge's own write changes nothing: after the write the base
holds the written values, so neither side differs from it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from integrations.sync import conflicts
from integrations.sync.conflicts import LATEST, PIPEDRIVE, SNOVIO
from integrations.sync.mapping import Pair, is_empty

APP_NAMES = {SNOVIO: "Snov.io", PIPEDRIVE: "Pipedrive"}
# Base keys of a create under way: the values SyncBridge sent, until the create is recorded.
CREATING_SNOVIO = "creating_snovio"
CREATING_PIPEDRIVE = "creating_pipedrive"
RULES = (LATEST, SNOVIO, PIPEDRIVE)
# Compared without regard to case: Pipedrive matches organizations by name in any case.
CASELESS_PIPEDRIVE_FIELDS = frozenset({"org_id"})
CASELESS_FIELDS = CASELESS_PIPEDRIVE_FIELDS | {"companyName"}
IDENTITY_PIPEDRIVE_FIELDS = frozenset({"email"})


def pair_key(pair: Pair) -> str:
    return f"{pair.snovio}|{pair.pipedrive}"


@dataclass
class SideState:
    """One side's contact as the merge sees it.

    `values` are in the side's own comparison space, keyed by its own field keys; `as_other`
    are the same values converted into the other side's space (keyed by the other side's
    keys); `base` is what the link last recorded for this side (None: never seen, so every
    value counts as new); `changed_at` is when its latest change was made (or first seen).
    """

    values: dict[str, Any] | None
    as_other: dict[str, Any]
    base: dict[str, Any] | None
    changed_at: datetime | None = None

    @property
    def exists(self) -> bool:
        return self.values is not None


@dataclass
class Conflict:
    label: str
    snovio: Any
    pipedrive: Any
    winner: str  # snovio, pipedrive, or "" (fill empty only: each side keeps its value)
    rule: str  # the pair's conflict rule (`conflicts.py`)
    decider: str = LATEST  # who the rule let win: snovio, pipedrive or latest (later change)

    def as_dict(self) -> dict:
        return {
            "label": self.label,
            "snovio": self.snovio,
            "pipedrive": self.pipedrive,
            "winner": self.winner,
            "rule": self.rule,
            "rule_label": conflicts.rule_label(self.rule),
            "decider": self.decider,
        }


@dataclass
class Plan:
    """What to write on each side (values in the receiving side's space)."""

    to_pipedrive: dict[str, Any] = field(default_factory=dict)
    to_snovio: dict[str, Any] = field(default_factory=dict)
    conflicts: dict[str, Conflict] = field(default_factory=dict)
    # Pair keys whose change was not carried, with the reason (empty values, direction).
    held_back: dict[str, str] = field(default_factory=dict)
    # Pair keys held back by their conflict rule (a filled value it keeps), with that rule.
    held_by_rule: dict[str, str] = field(default_factory=dict)

    @property
    def writes(self) -> bool:
        return bool(self.to_pipedrive or self.to_snovio)


def same(a: Any, b: Any, caseless: bool = False) -> bool:
    if is_empty(a) and is_empty(b):
        return True
    if caseless and isinstance(a, str) and isinstance(b, str):
        return a.strip().casefold() == b.strip().casefold()
    return a == b


def plan(
    pairs: Iterable[Pair],
    snovio: SideState,
    pipedrive: SideState,
    *,
    in_sync: Iterable[str] = (),
    rule: str = LATEST,
    to_pipedrive: bool = True,
    to_snovio: bool = True,
    labels: Mapping[str, str] | None = None,
) -> Plan:
    """Decide, pair by pair, what each side must receive so both hold the latest edit.

    `rule` is the real-time card's choice (who "the source app" is: snovio, pipedrive or
    latest); each pair's own conflict rule is `pair.rule` (blank: the source app wins).
    """
    synced = set(in_sync)
    result = Plan()
    for pair in pairs:
        key = pair_key(pair)
        caseless = pair.pipedrive in CASELESS_PIPEDRIVE_FIELDS
        s_now = (snovio.values or {}).get(pair.snovio)
        p_now = (pipedrive.values or {}).get(pair.pipedrive)
        s_in_p = snovio.as_other.get(pair.pipedrive)
        p_in_s = pipedrive.as_other.get(pair.snovio)
        if not snovio.exists or not pipedrive.exists:
            # One side has no contact yet: it receives every value the other holds.
            _create_values(result, pair, snovio, pipedrive, s_in_p, p_in_s, to_pipedrive, to_snovio)
            continue
        if same(s_in_p, p_now, caseless):
            continue  # both sides agree already
        if pair.pipedrive in IDENTITY_PIPEDRIVE_FIELDS:
            result.held_back[key] = "the email that matches the two contacts is never rewritten"
            continue
        s_changed = _changed(snovio, pair.snovio, s_now, caseless)
        p_changed = _changed(pipedrive, pair.pipedrive, p_now, caseless)
        if not s_changed and not p_changed:
            continue  # a difference older than the base: only a manual transfer moves it
        pair_rule = pair.rule or conflicts.SOURCE_APP
        decider = conflicts.realtime_decider(pair_rule, rule)
        winner = _winner(s_changed, p_changed, snovio, pipedrive, decider, to_pipedrive, to_snovio)
        label = (labels or {}).get(pair.pipedrive) or pair.label or pair.pipedrive
        receiving, receiving_now = (PIPEDRIVE, p_now) if winner == SNOVIO else (SNOVIO, s_now)
        # A Snov.io field no answer carries and SyncBridge never wrote (phones, custom fields)
        # may be filled: a rule that keeps Snov.io's filled values leaves it alone.
        unknown = receiving == SNOVIO and pair.snovio not in (snovio.values or {})
        kept = (unknown or not is_empty(receiving_now)) and not conflicts.may_overwrite(
            pair_rule, receiving
        )
        if s_changed and p_changed:
            shown = winner if not kept else ("" if pair_rule == conflicts.FILL_EMPTY else receiving)
            result.conflicts[key] = Conflict(label, s_now, p_now, shown, pair_rule, decider)
        if winner == SNOVIO and not to_pipedrive or winner == PIPEDRIVE and not to_snovio:
            result.held_back[key] = "contacts do not flow that way in this integration"
            continue
        if kept:
            what = "value, which cannot be read," if unknown else "filled value"
            result.held_back[key] = (
                f"{label}: {APP_NAMES[receiving]}'s {what} is kept"
                f" ({conflicts.rule_label(pair_rule)})"
            )
            result.held_by_rule[key] = pair_rule
            continue
        value = s_in_p if winner == SNOVIO else p_in_s
        if is_empty(value) and key not in synced:
            result.held_back[key] = "an empty value never erases one that was not synced"
            continue
        if is_empty(value) and winner == PIPEDRIVE:
            result.held_back[key] = "Snov.io's API offers no way to empty a field"
            continue
        if winner == SNOVIO:
            result.to_pipedrive[pair.pipedrive] = value
        else:
            result.to_snovio[pair.snovio] = value
    return result


def changed_since(base: Mapping[str, Any], values: Mapping[str, Any]) -> bool:
    """Whether a side's values differ from its base (pairs mapped since are not compared)."""
    return any(
        not same(values.get(key), old, key in CASELESS_FIELDS)
        for key, old in base.items()
        if key in values
    )


def _changed(side: SideState, key: str, now: Any, caseless: bool) -> bool:
    if side.base is None:
        return not is_empty(now)  # a contact new since the base: every value it has is new
    if key not in side.base:
        return False  # a pair mapped after the base was taken: only a transfer moves it
    return not same(now, side.base[key], caseless)


def _winner(
    s_changed: bool,
    p_changed: bool,
    snovio: SideState,
    pipedrive: SideState,
    rule: str,
    to_pipedrive: bool,
    to_snovio: bool,
) -> str:
    if s_changed and not p_changed:
        return SNOVIO
    if p_changed and not s_changed:
        return PIPEDRIVE
    if not to_snovio:
        return SNOVIO  # one-way integrations: the sending side always wins
    if not to_pipedrive:
        return PIPEDRIVE
    if rule in (SNOVIO, PIPEDRIVE):
        return rule
    s_time, p_time = snovio.changed_at, pipedrive.changed_at
    if s_time is not None and (p_time is None or s_time > p_time):
        return SNOVIO
    return PIPEDRIVE


def _create_values(
    result: Plan,
    pair: Pair,
    snovio: SideState,
    pipedrive: SideState,
    s_in_p: Any,
    p_in_s: Any,
    to_pipedrive: bool,
    to_snovio: bool,
) -> None:
    if snovio.exists and to_pipedrive and not is_empty(s_in_p):
        result.to_pipedrive[pair.pipedrive] = s_in_p
    elif pipedrive.exists and to_snovio and not is_empty(p_in_s):
        result.to_snovio[pair.snovio] = p_in_s
