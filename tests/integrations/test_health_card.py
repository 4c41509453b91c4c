"""The settings page's Health card: last sync, waiting changes, errors, calls and waits charts."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from integrations import health, usage
from integrations.models import PendingChange, RemoteUsage, SyncEvent, SyncRun
from integrations.sync.runs import create_run
from integrations.sync.transfer import transfer
from tests.factories import connected_integration, fast_limits  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_limits")]


@pytest.fixture
def integration(user, sandbox):
    usage.discard()  # counts another test left in this process
    return connected_integration(user, sandbox)


def _calls(integration) -> int:
    return sum(
        RemoteUsage.objects.filter(account__in=health.usage_accounts(integration)).values_list(
            "calls", flat=True
        )
    )


def test_every_remote_call_of_a_transfer_is_counted_for_its_integration(sandbox, integration):
    usage.flush(even_in_transaction=True)
    before = _calls(integration)
    run = create_run(integration, SyncRun.Direction.TO_PIPEDRIVE, None)

    transfer(run)
    usage.flush(even_in_transaction=True)

    run.refresh_from_db()
    assert run.status == SyncRun.Status.DONE
    assert _calls(integration) - before == run.api_calls > 0
    card = health.for_integration(integration)
    assert card.calls_24h == _calls(integration)
    assert card.last_success_at is not None


def test_a_rate_limit_answer_is_counted_as_a_wait(sandbox, integration):
    sandbox.inject("pipedrive", "429", count=2, path=r"^/api/v2/persons$")
    from integrations.clients import client_for

    client_for(integration.pipedrive).list_persons_page()
    usage.flush(even_in_transaction=True)

    card = health.for_integration(integration)
    assert card.waits_24h == 2
    assert card.charts[1][0].values[-1] == 2  # this hour's bar in the 24 h chart


def test_previews_are_neither_syncs_nor_errors_and_failures_are_counted(integration):
    preview = create_run(integration, SyncRun.Direction.TO_PIPEDRIVE, None, dry_run=True)
    now = timezone.now()
    SyncEvent.objects.create(
        integration=integration, run=preview, direction="to_pipedrive", outcome="updated"
    )
    SyncEvent.objects.create(
        integration=integration, run=preview, direction="to_pipedrive", outcome="failed"
    )
    assert health.for_integration(integration).last_success_at is None

    SyncEvent.objects.create(integration=integration, direction="to_pipedrive", outcome="failed")
    SyncEvent.objects.create(
        integration=integration,
        direction="to_pipedrive",
        outcome="failed",
        at=now - timedelta(days=3),
    )
    SyncEvent.objects.create(integration=integration, direction="to_snovio", outcome="created")

    card = health.for_integration(integration)
    assert card.errors_24h == 1
    errors_24h, errors_30d = card.charts[2]
    assert errors_24h.total == 1 and errors_30d.total == 2
    assert errors_30d.values[-4] == 1  # three days ago
    assert abs((card.last_success_at - now).total_seconds()) < 60


def test_changes_waiting_are_the_unprocessed_ones(integration):
    for key in ("a", "b", "c"):
        PendingChange.objects.create(
            integration=integration, source="pipedrive", kind="person.change", dedupe_key=key
        )
    PendingChange.objects.filter(dedupe_key="c").update(processed_at=timezone.now())

    assert health.for_integration(integration).waiting == 2


def test_usage_older_than_the_windows_is_left_out(integration):
    (account,) = [a for a in health.usage_accounts(integration) if a.startswith("pipedrive")]
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    RemoteUsage.objects.create(account=account, hour=hour - timedelta(hours=30), calls=7)
    RemoteUsage.objects.create(account=account, hour=hour - timedelta(days=40), calls=100)
    RemoteUsage.objects.create(account="pipedrive:someone-else", hour=hour, calls=5)

    card = health.for_integration(integration)

    calls_24h, calls_30d = card.charts[0]
    assert calls_24h.total == 0 and len(calls_24h.values) == 24
    assert calls_30d.total == 7 and len(calls_30d.values) == 30


def test_counts_are_never_written_inside_the_callers_transaction(integration):
    """A worker holding its integration's transaction must not lock the shared counter row."""
    usage.record_call("pipedrive:x")
    usage.flush()  # the test runs inside a transaction: nothing is written yet
    assert not RemoteUsage.objects.filter(account="pipedrive:x").exists()

    usage.record_call("pipedrive:x")
    usage.flush(even_in_transaction=True)

    assert RemoteUsage.objects.get(account="pipedrive:x").calls == 2


def test_the_settings_page_shows_the_health_card_with_svg_charts(user, integration):
    SyncEvent.objects.create(integration=integration, direction="to_pipedrive", outcome="failed")
    client = Client()
    client.force_login(user)

    html = client.get(reverse("integrations:settings", args=[integration.pk])).content.decode()

    assert 'id="health"' in html
    assert re.search(r'id="health-errors"[^>]*>1<', html)
    assert html.count('<svg class="health-chart"') == 6
    assert 'aria-label="Errors, 24 h: 1 in total"' in html
    assert "No alerts." in html


def test_bars_are_scaled_to_the_busiest_period_and_labelled():
    start = timezone.now().replace(minute=0, second=0, microsecond=0)
    starts = [start - timedelta(hours=2 - i) for i in range(3)]
    svg = health.bar_chart(health.Series("Remote calls", "24 h", starts, [0, 5, 10]))

    heights = [float(h) for h in re.findall(r'height="([\d.]+)"><title>', svg)]
    assert heights == [0.0, health.CHART_HEIGHT / 2, health.CHART_HEIGHT]
    titles = re.findall(r"<title>([^<]+)</title>", svg)
    assert titles[-1] == f"{timezone.localtime(starts[-1]):%H}:00: 10"
    assert 'aria-label="Remote calls, 24 h: 15 in total"' in svg


def test_a_name_with_markup_is_escaped_in_the_chart():
    svg = health.bar_chart(health.Series("<script>", "30 days", [timezone.now()], [1]))

    assert "<script>" not in svg and "&lt;script&gt;" in svg
