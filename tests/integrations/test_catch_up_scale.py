"""The catch-up at scale: a bounded Snov.io cost per cycle, new prospects first, the freshness
it reports, and the prune of processed changes."""

from __future__ import annotations

import math
import random
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from integrations.models import Integration, PendingChange
from integrations.snovio.constants import PROSPECT_BY_ID_PATH
from integrations.sync import catchup, queue
from tests.factories import connected_integration, fast_limits  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_limits")]

PROSPECTS = 450  # five pages of 100
CALLS_PER_CYCLE = 4  # one listing of the lists and three pages


@pytest.fixture
def big_list(empty_sandbox, monkeypatch, settings):
    monkeypatch.setattr(catchup, "snovio_calls_per_cycle", lambda: CALLS_PER_CYCLE)
    # The list pages' re-check on its own (the profile re-check has its own test below).
    settings.SNOVIO_PROFILE_RECHECKS = 0
    box = empty_sandbox
    box.snovio.create_list("Leads")
    box.snovio.add_prospects("Leads", PROSPECTS)
    return box


@pytest.fixture
def integration(user, big_list):
    integration = connected_integration(user, big_list, catalog=False)
    catchup.catch_up(integration)  # records the baseline: nothing is a change yet
    assert not PendingChange.objects.exists()
    return Integration.objects.get(pk=integration.pk)


def cycle(box, integration: Integration) -> tuple[int, int]:
    """One catch-up: the changes found and the Snov.io API requests it made."""
    before = len(box.request_log)
    found = catchup.catch_up(Integration.objects.get(pk=integration.pk))
    requests = [r for r in box.request_log[before:] if r[0] == "snovio" and "oauth" not in r[2]]
    return found, len(requests)


def waiting_keys() -> set[str]:
    return set(PendingChange.objects.filter(processed_at=None).values_list("record_key", flat=True))


def prospect_at(box, position: int) -> dict:
    members = next(iter(box.snovio.state["lists"].values()))["members"]
    return box.snovio.state["prospects"][members[position]]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_prospect_edited_anywhere_is_found_within_a_round_at_a_bounded_cost_per_cycle(
    big_list, integration, seed
):
    rng = random.Random(seed)
    pages = math.ceil(PROSPECTS / 100)
    rounds = math.ceil(pages / (CALLS_PER_CYCLE - 1))
    for _ in range(rng.randint(0, 3)):  # the rolling re-check starts anywhere
        cycle(big_list, integration)
    edited = prospect_at(big_list, rng.randrange(PROSPECTS))
    # A field list rows carry (names and emails); others are the profile re-check's.
    big_list.snovio.update_prospect(edited["id"], first_name=f"Edited {seed}")

    costs = []
    for _ in range(rounds):
        found, calls = cycle(big_list, integration)
        costs.append(calls)
        if f"snovio:{edited['id']}" in waiting_keys():
            break
    assert f"snovio:{edited['id']}" in waiting_keys(), f"seed={seed}: not found in {rounds} cycles"
    assert max(costs) <= CALLS_PER_CYCLE, f"seed={seed}: Snov.io calls per cycle {costs}"
    assert waiting_keys() == {f"snovio:{edited['id']}"}  # nothing else is a change


def test_a_new_prospect_is_found_by_the_next_cycle_wherever_the_re_check_stands(
    big_list, integration
):
    cycle(big_list, integration)  # the re-check is now in the middle of the list
    new = big_list.snovio.add_prospect("Leads", email="fresh@new.example", first_name="Fresh")
    found, calls = cycle(big_list, integration)
    assert f"snovio:{new['id']}" in waiting_keys()
    assert found >= 1 and calls <= CALLS_PER_CYCLE


def test_the_cost_per_cycle_does_not_grow_with_the_lists(big_list, integration):
    big_list.snovio.add_prospects("Leads", 300)  # 750 prospects: eight pages
    cycle(big_list, integration)  # reads the newest pages first
    costs = [cycle(big_list, integration)[1] for _ in range(3)]
    assert costs == [CALLS_PER_CYCLE] * 3


def test_the_profile_re_check_takes_its_reads_out_of_the_same_cycle_budget(
    big_list, integration, settings
):
    settings.SNOVIO_PROFILE_RECHECKS = 30  # more than the cycle can give it
    mark = len(big_list.request_log)
    costs = [cycle(big_list, integration)[1] for _ in range(3)]
    by_id = [r for r in big_list.request_log[mark:] if r[2] == PROSPECT_BY_ID_PATH]
    assert costs == [CALLS_PER_CYCLE] * 3
    assert by_id  # profiles were re-read, within the budget


def test_the_settings_page_says_how_fresh_the_snovio_side_is(
    client_logged_in, big_list, integration
):
    cycle(big_list, integration)
    fresh = catchup.freshness(Integration.objects.get(pk=integration.pk))
    # Five pages, three per cycle: two cycles of five minutes.
    assert (fresh.prospects, fresh.pages, fresh.minutes) == (PROSPECTS, 5, 10)
    page = client_logged_in.get(reverse("integrations:settings", kwargs={"pk": integration.pk}))
    text = page.content.decode()
    assert 'id="catch-up-freshness"' in text
    assert "Every prospect re-checked within <strong" in text and "10 minutes</strong>" in text
    assert f"{PROSPECTS} prospects in the sending lists" in text


def test_processed_changes_are_pruned_after_a_week_and_waiting_ones_are_kept(integration):
    now = timezone.now()

    def change(key: str, processed_days_ago: float | None) -> PendingChange:
        processed = None if processed_days_ago is None else now - timedelta(processed_days_ago)
        return PendingChange.objects.create(
            integration=integration,
            source=PendingChange.Source.CATCH_UP,
            kind="prospect.change",
            dedupe_key=key,
            record_key=key,
            processed_at=processed,
            outcome="applied" if processed else "",
        )

    old, old_failed = change("old", 8), change("old-failed", 9)
    old_failed.outcome = "failed: refused"
    old_failed.save()
    recent, waiting = change("recent", 1), change("waiting", None)
    assert queue.prune_processed(integration.pk, now=now) == 2
    left = set(PendingChange.objects.values_list("pk", flat=True))
    assert left == {recent.pk, waiting.pk} and old.pk not in left
