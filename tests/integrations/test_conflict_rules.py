"""Each conflict rule, as the pure merge (transfers, previews) and three-way plan (real time)
apply it to one field pair. The same rules run through the simulators in
`test_conflict_rules_sandbox.py`; `test_conflict_rules_random.py` checks their invariants on
seeded random edits."""

from __future__ import annotations

from dataclasses import replace

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
from integrations.sync.threeway import pair_key, plan
from tests.integrations.test_threeway import (
    ALL_IN_SYNC,
    EARLY,
    LATE,
    PAIRS,
    SYNCED_P,
    SYNCED_S,
    TITLE,
    pipedrive,
    snovio,
)

FILLED = {"job_title": "CTO", "email": "a@x.example"}
EMPTY = {"job_title": "", "email": "a@x.example"}
SENT = {"job_title": "CEO", "email": "a@x.example"}


def to_pipedrive(receiving: dict, rule: str, *, sending_is_source: bool = True):
    return merge(
        receiving,
        SENT,
        sending_wins=sending_is_source,
        rules={"job_title": rule},
        receiving_side=PIPEDRIVE,
    )


# --- transfers and previews -------------------------------------------------------------------
@pytest.mark.parametrize("rule", conflicts.RULES)
def test_every_rule_fills_an_empty_receiving_field_in_a_transfer(rule):
    assert to_pipedrive(EMPTY, rule).changes == {"job_title": "CEO"}


@pytest.mark.parametrize(
    ("rule", "sending_is_source", "written"),
    [
        (SOURCE_APP, True, True),
        (SOURCE_APP, False, False),
        (LATEST, True, True),  # no change times in a transfer: the source app decides
        (LATEST, False, False),
        (FILL_EMPTY, True, False),
        (FILL_EMPTY, False, False),
        (KEEP_PIPEDRIVE, True, False),  # Pipedrive receives: its filled value stays
        (KEEP_SNOVIO, False, True),  # Snov.io sends and is kept: its value is written
        (KEEP_SNOVIO, True, True),
    ],
)
def test_a_transfer_conflict_is_settled_by_the_pairs_rule_and_records_it(
    rule, sending_is_source, written
):
    result = to_pipedrive(FILLED, rule, sending_is_source=sending_is_source)

    assert ("job_title" in result.changes) is written
    conflict = result.conflicts["job_title"]
    assert conflict["rule"] == rule
    assert conflict["rule_label"] == conflicts.rule_label(rule)
    assert conflict["winner"] == ("sending" if written else "receiving")


def test_never_overwrite_on_pipedrives_side_writes_pipedrives_value_over_snovios():
    result = merge(
        {"position": "CTO"},
        {"position": "CEO"},
        sending_wins=False,  # even when Snov.io was chosen as the source app
        rules={"position": KEEP_PIPEDRIVE},
        receiving_side=SNOVIO,
    )
    assert result.changes == {"position": "CEO"}


def test_a_pair_without_a_rule_keeps_todays_source_app_rule():
    assert merge(FILLED, SENT, sending_wins=True).changes == {"job_title": "CEO"}
    assert merge(FILLED, SENT, sending_wins=False).changes == {}


# --- real time --------------------------------------------------------------------------------
def ruled(rule: str):
    return [replace(p, rule=rule) for p in PAIRS]


def realtime(rule: str, s_values: dict, p_values: dict, *, card: str = LATEST, s_at=EARLY):
    return plan(
        ruled(rule),
        snovio({**SYNCED_S, **s_values}, SYNCED_S, at=s_at),
        pipedrive({**SYNCED_P, **p_values}, SYNCED_P, at=LATE if s_at == EARLY else EARLY),
        in_sync=ALL_IN_SYNC,
        rule=card,
    )


KEY = pair_key(TITLE)


@pytest.mark.parametrize(
    ("rule", "card", "kept_by"),
    [
        (SOURCE_APP, LATEST, PIPEDRIVE),  # the card names no app: the later change wins
        (SOURCE_APP, SNOVIO, SNOVIO),
        (LATEST, SNOVIO, PIPEDRIVE),  # latest ignores the card
        (KEEP_PIPEDRIVE, SNOVIO, PIPEDRIVE),
        (KEEP_SNOVIO, PIPEDRIVE, SNOVIO),
    ],
)
def test_a_pair_changed_on_both_sides_is_won_as_its_rule_says(rule, card, kept_by):
    # Snov.io changed first, Pipedrive later.
    result = realtime(rule, {"position": "CEO"}, {"job_title": "CFO"}, card=card)

    assert result.conflicts[KEY].winner == kept_by
    assert result.conflicts[KEY].rule == rule
    if kept_by == PIPEDRIVE:
        assert (result.to_snovio, result.to_pipedrive) == ({"position": "CFO"}, {})
    else:
        assert (result.to_snovio, result.to_pipedrive) == ({}, {"job_title": "CEO"})


def test_fill_empty_only_keeps_both_filled_values_of_a_pair_changed_on_both_sides():
    result = realtime(FILL_EMPTY, {"position": "CEO"}, {"job_title": "CFO"})

    assert (result.to_snovio, result.to_pipedrive) == ({}, {})
    assert result.conflicts[KEY].winner == ""
    assert "Fill empty fields only" in result.held_back[KEY]
    assert result.held_by_rule == {KEY: FILL_EMPTY}


@pytest.mark.parametrize(
    ("rule", "carried"),
    [(SOURCE_APP, True), (LATEST, True), (KEEP_SNOVIO, True), (KEEP_PIPEDRIVE, False)],
)
def test_a_snovio_change_replaces_a_filled_pipedrive_value_unless_the_rule_keeps_it(rule, carried):
    result = realtime(rule, {"position": "CEO"}, {})

    assert result.to_pipedrive == ({"job_title": "CEO"} if carried else {})
    if not carried:
        assert "Pipedrive's filled value is kept" in result.held_back[KEY]
        assert "Never overwrite on Pipedrive's side" in result.held_back[KEY]


def test_fill_empty_only_carries_a_change_into_an_empty_field_and_nowhere_else():
    empty_p = {**SYNCED_P, "job_title": ""}
    result = plan(
        ruled(FILL_EMPTY),
        snovio({**SYNCED_S, "position": "CEO"}, SYNCED_S),
        pipedrive(empty_p, empty_p),
        in_sync=ALL_IN_SYNC,
    )
    assert result.to_pipedrive == {"job_title": "CEO"}


@pytest.mark.parametrize("rule", [FILL_EMPTY, KEEP_PIPEDRIVE])
def test_emptying_a_field_in_snovio_never_empties_a_kept_pipedrive_value(rule):
    result = realtime(rule, {"position": ""}, {})

    assert result.to_pipedrive == {}
    assert result.held_by_rule == {KEY: rule}


def test_emptying_a_synced_field_in_snovio_still_empties_it_in_pipedrive_by_default():
    assert realtime(SOURCE_APP, {"position": ""}, {}).to_pipedrive == {"job_title": ""}


@pytest.mark.parametrize("rule", [FILL_EMPTY, KEEP_SNOVIO])
def test_a_snovio_field_no_answer_carries_is_never_written_under_a_rule_keeping_snovio(rule):
    # Snov.io's answers carry no phones: SyncBridge never saw this one, so it may be filled.
    unread = {k: v for k, v in SYNCED_S.items() if k != "phones"}
    result = plan(
        ruled(rule),
        snovio(unread, unread),
        pipedrive({**SYNCED_P, "phone": "+2"}, SYNCED_P),
        in_sync=ALL_IN_SYNC,
    )
    assert result.to_snovio == {}
    assert "cannot be read" in result.held_back[pair_key(PAIRS[1])]
