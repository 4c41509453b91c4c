"""Every Snov.io request of a catch-up cycle counts within one budget (issue 10): the setup
check, the webhook subscriptions, the campaign history and the contacts' re-check together
never spend more than the catch-up's share of Snov.io's limit (60 of 300 requests every 5
minutes), however many prospects are linked and however many campaigns there are.

Invariant, checked cycle by cycle in seeded random histories: the Snov.io requests of one
`tasks.catch_up` <= `catchup.snovio_calls_per_cycle()`; every campaign event fired is
received within the rounds the history's share needs; the rolling re-check still advances.
"""

from __future__ import annotations

import math
import random

import pytest
from django.urls import reverse

from automations.models import AutomationRun
from integrations import tasks
from integrations.models import Integration, RecordLink
from integrations.sync import baseline, campaign_history, catchup
from integrations.sync.context import SyncContext
from tests.factories import connected_integration, fast_limits  # noqa: F401
from tests.integrations.test_campaign_events import Clock

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_limits")]

CAMPAIGNS = 8  # 1 + 8 x 5 = 41 requests to read every history at once: more than its share
EVENTS = ("email_sent", "email_opened", "link_clicked")


def snovio_requests(box, since: int) -> list[str]:
    return [r[2] for r in box.request_log[since:] if r[0] == "snovio" and "oauth" not in r[2]]


def cycle(box, integration: Integration) -> list[str]:
    """One scheduled catch-up; the Snov.io API paths it requested."""
    mark = len(box.request_log)
    tasks.catch_up(integration.pk)
    return snovio_requests(box, mark)


def linked_two_way(user, box, prospects: int) -> Integration:
    """A launched two-way integration whose `prospects` Snov.io prospects are all linked (their
    bases recorded as the baseline does, without reading them over HTTP)."""
    leads = box.snovio.create_list("Leads")
    with box.lock:
        box.snovio.add_prospects("Leads", prospects)
    integration = connected_integration(user, box, catalog=False, direction="two_way")
    started = integration.launched_at
    Integration.objects.filter(pk=integration.pk).update(
        baseline_started_at=started, baseline_at=started, baseline_lists=[str(leads["id"])]
    )
    integration.refresh_from_db()
    baseline.record_prospects(SyncContext(integration), box.snovio.prospects())
    box.clock = Clock()  # each campaign event at its own second, after the launch
    assert RecordLink.objects.filter(integration=integration).count() == prospects
    return integration


def start_campaigns(box, count: int) -> list[str]:
    """`count` campaigns, each with one event (a campaign starts with its first event)."""
    email = box.snovio.prospects()[0]["emails"][0]["email"]
    names = [f"Campaign {n}" for n in range(count)]
    for name in names:
        box.snovio.fire_campaign_event("email_sent", email, name)
        box.clock.advance(2)
    return names


@pytest.mark.parametrize("prospects", [10_000, 100_000])
def test_a_cycle_never_spends_more_than_its_share_of_snovio_requests_at_any_size(
    user, empty_sandbox, prospects
):
    box = empty_sandbox
    integration = linked_two_way(user, box, prospects)
    start_campaigns(box, CAMPAIGNS)
    share = catchup.snovio_calls_per_cycle()

    costs = [len(cycle(box, integration)) for _ in range(3)]

    # The first cycle also makes the webhook subscriptions: still within the share.
    assert max(costs) <= share, f"{prospects} linked: Snov.io requests per cycle {costs}"
    fresh = catchup.freshness(Integration.objects.get(pk=integration.pk))
    assert fresh.linked == prospects and fresh.pages == math.ceil(prospects / 100)
    assert fresh.pages_per_cycle + fresh.profiles_per_cycle < share  # what the contacts got
    assert fresh.profile_hours is not None


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_campaign_event_is_read_back_within_the_history_rounds_and_no_cycle_overspends(
    user, empty_sandbox, seed
):
    rng = random.Random(seed)
    box = empty_sandbox
    integration = linked_two_way(user, box, 500)
    names = start_campaigns(box, CAMPAIGNS)
    emails = [p["emails"][0]["email"] for p in box.snovio.prospects()]
    per_cycle = (catchup.history_calls_per_cycle() - 1) // campaign_history.CALLS_PER_CAMPAIGN
    rounds = math.ceil(CAMPAIGNS / per_cycle)
    share = catchup.snovio_calls_per_cycle()

    costs = [len(cycle(box, integration))]  # subscribes: events from now on are webhooks'
    for _ in range(rng.randint(1, 4)):
        box.snovio.state["webhooks"].clear()  # deliveries lost: only the history has them
        for _ in range(rng.randint(1, 6)):
            box.snovio.fire_campaign_event(
                rng.choice(EVENTS), rng.choice(emails), rng.choice(names)
            )
            box.clock.advance(2)
        if rng.random() < 0.5:
            box.snovio.update_prospect(rng.choice(emails), first_name=f"Edited {rng.random()}")
        costs += [len(cycle(box, integration)) for _ in range(rounds)]

    assert max(costs) <= share, f"seed={seed}: Snov.io requests per cycle {costs}"
    fired = sum(len(box.snovio.history(name, kind)) for name in names for kind in _kinds())
    received = AutomationRun.objects.filter(integration=integration).values("event_key")
    assert received.distinct().count() == fired, f"seed={seed}"


def _kinds() -> list[str]:
    return ["sent", "opened", "clicked", "replies", "finished"]


def test_the_settings_page_says_how_long_a_round_of_profile_re_reads_takes(
    user, empty_sandbox, client_logged_in
):
    integration = linked_two_way(user, empty_sandbox, 500)
    cycle(empty_sandbox, integration)
    fresh = catchup.freshness(Integration.objects.get(pk=integration.pk))
    rounds = math.ceil(500 / fresh.profiles_per_cycle)
    assert fresh.profile_hours == rounds * catchup.CYCLE_MINUTES / 60

    page = client_logged_in.get(reverse("integrations:settings", kwargs={"pk": integration.pk}))
    text = page.content.decode()
    assert 'id="profile-recheck-hours"' in text
    assert f"{fresh.profiles_per_cycle} linked prospects a cycle: each of the 500" in text
