"""The sync history page at scale: paging, filters, previews kept apart, and the retention prune."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from django_q.models import Schedule

from integrations import tasks
from integrations.models import Integration, SyncEvent, SyncRun
from integrations.sync import history, runs

pytestmark = pytest.mark.django_db


@pytest.fixture
def integration(user):
    return Integration.objects.create(owner=user, status=Integration.Status.ACTIVE)


def event(integration, email="anna@x.example", outcome="updated", run=None, **fields):
    fields.setdefault("direction", "to_pipedrive")
    return SyncEvent.objects.create(
        integration=integration, email=email, outcome=outcome, run=run, **fields
    )


def page(client, integration, **params):
    return client.get(reverse("sync:history", args=[integration.pk]), params)


def test_the_history_shows_fifty_events_a_page_with_links_to_older_ones(
    client_logged_in, integration
):
    now = timezone.now()
    for i in range(120):
        event(integration, email=f"p{i:03d}@x.example", at=now - timedelta(minutes=i))

    first = page(client_logged_in, integration)
    third = page(client_logged_in, integration, page=3)

    assert len(first.context["events"]) == 50
    assert first.context["events"][0].email == "p000@x.example"  # newest first
    assert "Page 1 of 3 (120 events)" in first.content.decode()
    assert "page=2" in first.content.decode()
    assert [e.email for e in third.context["events"]] == [
        f"p{i:03d}@x.example" for i in range(100, 120)
    ]
    assert page(client_logged_in, integration, page="nonsense").status_code == 200


def test_paging_keeps_the_filters(client_logged_in, integration):
    for i in range(60):
        event(integration, email=f"p{i}@x.example", outcome="failed")
    body = page(client_logged_in, integration, outcome="failed").content.decode()
    assert "outcome=failed&amp;page=2" in body


def test_filters_by_outcome_direction_and_date(client_logged_in, integration):
    now = timezone.now()
    event(integration, email="old@x.example", outcome="failed", at=now - timedelta(days=10))
    event(integration, email="new@x.example", outcome="failed")
    event(integration, email="created@x.example", outcome="created")
    event(integration, email="back@x.example", outcome="failed", direction="to_snovio")

    def emails(**params):
        return {e.email for e in page(client_logged_in, integration, **params).context["events"]}

    assert emails(outcome="failed") == {"old@x.example", "new@x.example", "back@x.example"}
    assert emails(outcome="failed", direction="to_snovio") == {"back@x.example"}
    since = (now - timedelta(days=2)).date().isoformat()
    assert emails(outcome="failed", since=since) == {"new@x.example", "back@x.example"}
    until = (now - timedelta(days=5)).date().isoformat()
    assert emails(until=until) == {"old@x.example"}


def test_bad_filter_values_get_a_message_not_an_error(client_logged_in, integration):
    event(integration)
    response = page(
        client_logged_in, integration, since="yesterday", outcome="exploded", until="2020-01-01"
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert "Enter a valid date." in body and "Select a valid choice" in body
    assert [e.email for e in response.context["events"]] == []  # the valid "until" still applies


def test_previews_are_kept_apart_from_real_work(client_logged_in, integration):
    preview = SyncRun.objects.create(
        integration=integration, direction="to_pipedrive", source_app="snovio", dry_run=True
    )
    transfer = SyncRun.objects.create(
        integration=integration, direction="to_pipedrive", source_app="snovio"
    )
    event(integration, email="would@x.example", outcome="updated", run=preview)
    event(integration, email="did@x.example", outcome="updated", run=transfer)
    event(integration, email="live@x.example", outcome="created")

    default = page(client_logged_in, integration)
    previews = page(client_logged_in, integration, source="preview")
    transfers = page(client_logged_in, integration, source="transfer")
    realtime = page(client_logged_in, integration, source="realtime")

    assert {e.email for e in default.context["events"]} == {"did@x.example", "live@x.example"}
    assert default.context["counts"] == {"Updated": 1, "Created": 1}
    assert "would@x.example" not in default.content.decode()
    assert [e.email for e in previews.context["events"]] == ["would@x.example"]
    assert "Would update" in previews.content.decode()
    assert previews.context["counts"] == {"Updated": 1, "Created": 1}  # totals: real work only
    assert [e.email for e in transfers.context["events"]] == ["did@x.example"]
    assert [e.email for e in realtime.context["events"]] == ["live@x.example"]


# --- retention ------------------------------------------------------------------------------


def test_the_prune_drops_old_events_but_keeps_each_records_newest_why(integration):
    now = timezone.now()
    old, older = now - timedelta(days=100), now - timedelta(days=200)
    gone = event(integration, email="anna@x.example", outcome="skipped", at=older)
    kept_why = event(
        integration, email="anna@x.example", outcome="skipped", at=old, reason="No list"
    )
    quiet = event(integration, email="bob@x.example", outcome="failed", at=older)
    recent = event(integration, email="carl@x.example", at=now - timedelta(days=3))
    superseded = event(integration, email="carl@x.example", at=old)
    anonymous = event(integration, email="", outcome="skipped", at=old)
    preview = SyncRun.objects.create(
        integration=integration, direction="to_pipedrive", source_app="snovio", dry_run=True
    )
    old_preview = event(integration, email="dana@x.example", run=preview, at=old)
    newer_preview = event(integration, email="bob@x.example", run=preview, at=now)

    assert history.prune(now=now, days=90) == 4

    left = set(SyncEvent.objects.values_list("pk", flat=True))
    assert left == {kept_why.pk, quiet.pk, recent.pk, newer_preview.pk}
    assert not {gone.pk, superseded.pk, anonymous.pk, old_preview.pk} & left


def test_the_prune_uses_the_retention_setting(settings, integration):
    now = timezone.now()
    settings.SYNC_EVENT_RETENTION_DAYS = 10
    event(integration, at=now - timedelta(days=20))
    event(integration, at=now - timedelta(days=15))
    event(integration, at=now - timedelta(days=5))
    assert tasks.prune_history() == "pruned 2 old sync event(s)"
    settings.SYNC_EVENT_RETENTION_DAYS = 90
    assert history.prune() == 0


@pytest.mark.parametrize("seed", range(5))
def test_after_a_prune_every_record_still_has_its_newest_event(integration, seed):
    rng = random.Random(seed)
    now = timezone.now()
    for _ in range(200):
        event(
            integration,
            email=f"p{rng.randrange(15)}@x.example",
            at=now - timedelta(days=rng.randrange(300), seconds=rng.randrange(86400)),
        )
    newest_before = {
        email: SyncEvent.objects.filter(email=email).first().pk
        for email in set(SyncEvent.objects.values_list("email", flat=True))
    }
    history.prune(now=now, days=90)
    cutoff = now - timedelta(days=90)
    for email, pk in newest_before.items():
        assert SyncEvent.objects.filter(email=email).first().pk == pk, f"seed {seed}"
        old = SyncEvent.objects.filter(email=email, at__lt=cutoff).exclude(pk=pk)
        assert not old.exists(), f"seed {seed}"


def test_the_prune_is_scheduled_daily_with_the_catch_up():
    runs.ensure_schedule()
    runs.ensure_schedule()
    schedule = Schedule.objects.get(func=history.PRUNE_TASK)
    assert schedule.schedule_type == Schedule.DAILY
    assert Schedule.objects.filter(func=history.PRUNE_TASK).count() == 1
