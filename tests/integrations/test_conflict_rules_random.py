"""Seeded random scenarios (DESIGN.md §5): random rules per pair, random values and edits on
both sides, and the invariant of each rule checked on the decision the merge or the
three-way plan makes. A failing seed is printed; `RULES_SEED=<seed>` replays it alone.

Invariants, per pair:
- fill_empty: no filled value is replaced or emptied, on either side;
- keep_pipedrive / keep_snovio: no filled value on that side is replaced or emptied;
- source_app in a transfer: afterwards the receiving side holds the source app's value
  wherever the source app's value is filled (and the sending side is the source app);
- every rule: an empty receiving field the sending side has filled is filled (transfer);
- real time, latest and source_app pairs: a pair changed on one side only ends with that
  side's value on both sides (the change is carried) unless it is an erase of an unsynced
  value; a pair changed on both sides records a conflict naming its rule.
"""

from __future__ import annotations

import os
import random

import pytest

from integrations.sync import conflicts
from integrations.sync.conflicts import (
    FILL_EMPTY,
    KEEP_PIPEDRIVE,
    KEEP_SNOVIO,
    LATEST,
    PIPEDRIVE,
    SNOVIO,
    SOURCE_APP,
    merge,
)
from integrations.sync.mapping import Pair
from integrations.sync.threeway import SideState, pair_key, plan
from tests.integrations.test_threeway import EARLY, LATE

SCENARIOS = int(os.environ.get("RULES_SCENARIOS", "500"))
# Snov.io keys and Pipedrive keys of the random pairs (identity pairs are not drawn).
PAIRS = [Pair(f"s{n}", f"p{n}", "text", f"Field {n}") for n in range(6)]
VALUES = ["", "a", "b", "c"]


def seeds() -> list[int]:
    if os.environ.get("RULES_SEED"):
        return [int(os.environ["RULES_SEED"])]
    return list(range(SCENARIOS))


def kept_sides(rule: str) -> set[str]:
    """The sides whose filled values `rule` never replaces (written out, not asked of the
    code under test)."""
    return {
        FILL_EMPTY: {SNOVIO, PIPEDRIVE},
        KEEP_PIPEDRIVE: {PIPEDRIVE},
        KEEP_SNOVIO: {SNOVIO},
    }.get(rule, set())


def transfer_violations(rng: random.Random) -> list[str]:
    receiving_side = rng.choice((SNOVIO, PIPEDRIVE))
    sending_side = PIPEDRIVE if receiving_side == SNOVIO else SNOVIO
    sending_is_source = rng.random() < 0.5
    rules = {p.pipedrive: rng.choice(conflicts.RULES) for p in PAIRS}
    receiving = {p.pipedrive: rng.choice(VALUES) for p in PAIRS}
    sending = {p.pipedrive: rng.choice(VALUES) for p in PAIRS}
    result = merge(
        receiving,
        sending,
        sending_wins=sending_is_source,
        rules=rules,
        receiving_side=receiving_side,
    )
    after = {**receiving, **result.changes}
    problems = []
    for key, rule in rules.items():
        old, new, now = receiving[key], sending[key], after[key]
        where = f"{key} ({rule}, {sending_side}->{receiving_side}, source={sending_is_source})"
        if old and now != old and (rule == FILL_EMPTY or receiving_side in kept_sides(rule)):
            problems.append(f"{where}: filled {old!r} replaced by {now!r}")
        if not old and new and now != new:
            problems.append(f"{where}: empty field not filled with {new!r}")
        if rule in (SOURCE_APP, LATEST) and sending_is_source and new and now != new:
            problems.append(f"{where}: the source app's {new!r} did not win over {old!r}")
        if rule in (SOURCE_APP, LATEST) and not sending_is_source and old and now != old:
            problems.append(f"{where}: the source app's {old!r} was replaced by {now!r}")
        if rule in (KEEP_PIPEDRIVE, KEEP_SNOVIO) and sending_side in kept_sides(rule) and new:
            if now != new:
                problems.append(f"{where}: the kept side's {new!r} did not reach {receiving_side}")
        if old and new and old != new and result.conflicts[key]["rule"] != rule:
            problems.append(f"{where}: the conflict does not name its rule")
    return problems


def realtime_violations(rng: random.Random) -> list[str]:
    pairs = [
        Pair(p.snovio, p.pipedrive, p.data_type, p.label, rng.choice(conflicts.RULES))
        for p in PAIRS
    ]
    card = rng.choice((LATEST, SNOVIO, PIPEDRIVE))
    base_s = {p.snovio: rng.choice(VALUES) for p in pairs}
    base_p = {
        p.pipedrive: base_s[p.snovio] if rng.random() < 0.7 else rng.choice(VALUES) for p in pairs
    }
    in_sync = [pair_key(p) for p in pairs if base_s[p.snovio] == base_p[p.pipedrive]]
    now_s = {k: rng.choice(VALUES) if rng.random() < 0.4 else v for k, v in base_s.items()}
    now_p = {k: rng.choice(VALUES) if rng.random() < 0.4 else v for k, v in base_p.items()}
    s_at, p_at = rng.sample([EARLY, LATE], 2)
    snovio = SideState(now_s, {p.pipedrive: now_s[p.snovio] for p in pairs}, base_s, s_at)
    pipedrive = SideState(now_p, {p.snovio: now_p[p.pipedrive] for p in pairs}, base_p, p_at)
    result = plan(pairs, snovio, pipedrive, in_sync=in_sync, rule=card)
    problems = []
    for p in pairs:
        key = pair_key(p)
        s, ps = now_s[p.snovio], now_p[p.pipedrive]
        s_after = result.to_snovio.get(p.snovio, s)
        p_after = result.to_pipedrive.get(p.pipedrive, ps)
        base = f"{base_s[p.snovio]!r}/{base_p[p.pipedrive]!r}"
        where = f"{key} ({p.rule}, card {card}, base {base}, now {s!r}/{ps!r})"
        kept = kept_sides(p.rule)
        if SNOVIO in kept and s and s_after != s:
            problems.append(f"{where}: filled Snov.io {s!r} became {s_after!r}")
        if PIPEDRIVE in kept and ps and p_after != ps:
            problems.append(f"{where}: filled Pipedrive {ps!r} became {p_after!r}")
        s_changed, p_changed = s != base_s[p.snovio], ps != base_p[p.pipedrive]
        if s_changed and p_changed and s != ps:
            if result.conflicts.get(key) is None or result.conflicts[key].rule != p.rule:
                problems.append(
                    f"{where}: a change on both sides without a conflict naming the rule"
                )
        if p.rule in (SOURCE_APP, LATEST) and s_changed != p_changed:
            value = s if s_changed else ps
            erase_unsynced = not value and key not in in_sync
            snovio_cannot_empty = not value and p_changed
            if not (erase_unsynced or snovio_cannot_empty) and (s_after, p_after) != (value, value):
                problems.append(f"{where}: the one-sided change {value!r} was not carried")
    return problems


@pytest.mark.parametrize("check", [transfer_violations, realtime_violations])
def test_each_pairs_rule_holds_in_random_scenarios(check):
    failures = {}
    for seed in seeds():
        found = check(random.Random(seed))
        if found:
            failures[seed] = found
    assert not failures, (
        f"{check.__name__}: {len(failures)} failing seeds, first {min(failures)} "
        f"(replay: RULES_SEED={min(failures)}):\n" + "\n".join(failures[min(failures)])
    )
