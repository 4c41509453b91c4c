"""The three-way merge of one contact, as a pure function: who changed what since the base."""

from __future__ import annotations

from datetime import UTC, datetime

from integrations.sync.mapping import Pair
from integrations.sync.threeway import (
    LATEST,
    PIPEDRIVE,
    SNOVIO,
    SideState,
    changed_since,
    pair_key,
    plan,
)

TITLE = Pair("position", "job_title", "text", "Job title")
PHONE = Pair("phones", "phone", "phone", "Phone")
EMAIL = Pair("email", "email", "email", "Email")
PAIRS = [TITLE, PHONE, EMAIL]
EARLY, LATE = datetime(2026, 11, 30, 10, 0, tzinfo=UTC), datetime(2026, 11, 30, 11, 0, tzinfo=UTC)


def snovio(values: dict, base: dict | None, at=EARLY) -> SideState:
    as_pipedrive = {p.pipedrive: values.get(p.snovio) for p in PAIRS}
    return SideState(values=values, as_other=as_pipedrive, base=base, changed_at=at)


def pipedrive(values: dict, base: dict | None, at=EARLY) -> SideState:
    as_snovio = {p.snovio: values.get(p.pipedrive) for p in PAIRS}
    return SideState(values=values, as_other=as_snovio, base=base, changed_at=at)


SYNCED_S = {"position": "CTO", "phones": "+1", "email": "a@x.example"}
SYNCED_P = {"job_title": "CTO", "phone": "+1", "email": "a@x.example"}
ALL_IN_SYNC = [pair_key(p) for p in PAIRS]


def test_a_field_changed_in_snovio_only_goes_to_pipedrive():
    result = plan(
        PAIRS,
        snovio({**SYNCED_S, "position": "CEO"}, SYNCED_S),
        pipedrive(SYNCED_P, SYNCED_P),
        in_sync=ALL_IN_SYNC,
    )
    assert (result.to_pipedrive, result.to_snovio, result.conflicts) == (
        {"job_title": "CEO"},
        {},
        {},
    )


def test_a_field_changed_in_both_apps_is_a_conflict_the_later_change_wins():
    result = plan(
        PAIRS,
        snovio({**SYNCED_S, "position": "CEO"}, SYNCED_S, at=EARLY),
        pipedrive({**SYNCED_P, "job_title": "CFO"}, SYNCED_P, at=LATE),
        in_sync=ALL_IN_SYNC,
        rule=LATEST,
    )
    assert result.to_snovio == {"position": "CFO"} and result.to_pipedrive == {}
    conflict = result.conflicts[pair_key(TITLE)]
    assert (conflict.snovio, conflict.pipedrive, conflict.winner) == ("CEO", "CFO", PIPEDRIVE)


def test_a_fixed_source_app_wins_a_conflict_whatever_the_times():
    result = plan(
        PAIRS,
        snovio({**SYNCED_S, "position": "CEO"}, SYNCED_S, at=EARLY),
        pipedrive({**SYNCED_P, "job_title": "CFO"}, SYNCED_P, at=LATE),
        rule=SNOVIO,
    )
    assert result.to_pipedrive == {"job_title": "CEO"}
    assert result.conflicts[pair_key(TITLE)].winner == SNOVIO


def test_a_difference_older_than_the_base_is_left_for_a_transfer():
    result = plan(
        PAIRS,
        snovio({**SYNCED_S, "position": "CEO"}, {**SYNCED_S, "position": "CEO"}),
        pipedrive(SYNCED_P, SYNCED_P),
    )
    assert not result.writes and not result.conflicts


def test_both_apps_changing_a_field_to_the_same_value_is_no_conflict():
    result = plan(
        PAIRS,
        snovio({**SYNCED_S, "position": "CEO"}, SYNCED_S),
        pipedrive({**SYNCED_P, "job_title": "CEO"}, SYNCED_P),
    )
    assert not result.writes and not result.conflicts


def test_an_emptied_field_erases_only_when_it_was_in_sync_and_never_in_snovio():
    emptied = {**SYNCED_S, "phones": None}
    synced = plan(
        PAIRS, snovio(emptied, SYNCED_S), pipedrive(SYNCED_P, SYNCED_P), in_sync=ALL_IN_SYNC
    )
    never_synced = plan(PAIRS, snovio(emptied, SYNCED_S), pipedrive(SYNCED_P, SYNCED_P))
    to_snovio = plan(
        PAIRS,
        snovio(SYNCED_S, SYNCED_S),
        pipedrive({**SYNCED_P, "phone": None}, SYNCED_P),
        in_sync=ALL_IN_SYNC,
    )
    assert synced.to_pipedrive == {"phone": None}
    assert not never_synced.writes and "never erases" in never_synced.held_back[pair_key(PHONE)]
    assert not to_snovio.writes and "no way to empty" in to_snovio.held_back[pair_key(PHONE)]


def test_changes_are_not_carried_against_the_direction():
    result = plan(
        PAIRS,
        snovio(SYNCED_S, SYNCED_S),
        pipedrive({**SYNCED_P, "job_title": "CFO"}, SYNCED_P),
        to_snovio=False,
    )
    assert not result.writes and "do not flow" in result.held_back[pair_key(TITLE)]


def test_the_email_that_matches_two_contacts_is_never_rewritten():
    result = plan(
        PAIRS,
        snovio({**SYNCED_S, "email": "b@x.example"}, SYNCED_S),
        pipedrive(SYNCED_P, SYNCED_P),
    )
    assert not result.writes


def test_a_contact_new_since_the_base_sends_every_value_it_holds():
    result = plan(
        PAIRS, snovio(SYNCED_S, None), pipedrive({"job_title": "CTO"}, {"job_title": "CTO"})
    )
    assert result.to_pipedrive == {"phone": "+1"}  # the title already agrees


def test_a_pair_mapped_after_the_base_moves_only_by_a_transfer():
    result = plan(
        PAIRS,
        snovio({**SYNCED_S, "position": "CEO"}, {"phones": "+1", "email": "a@x.example"}),
        pipedrive(SYNCED_P, SYNCED_P),
    )
    assert not result.writes
    assert changed_since({"phones": "+1"}, {"phones": "+2", "position": "new"})
    assert not changed_since({"companyName": "Acme"}, {"companyName": "ACME"})
