"""What the pages say about transfers: previews are not transfers; Syncing while one runs."""

from __future__ import annotations

import pytest
from django.urls import reverse

from integrations import tasks
from integrations.models import Integration, SyncRun
from integrations.sync import runs
from integrations.sync.transfer import run_slice
from tests.factories import connected_integration, fast_limits  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_limits")]

TO_PIPEDRIVE = SyncRun.Direction.TO_PIPEDRIVE


@pytest.fixture
def integration(user, sandbox):
    return connected_integration(user, sandbox)


def settings_page(client, integration) -> str:
    return client.get(reverse("integrations:settings", args=[integration.pk])).content.decode()


def progress(client, integration, run) -> dict:
    url = reverse("sync:transfer_progress", args=[integration.pk, run.pk])
    return client.get(url + "?format=json").json()


def test_after_a_preview_only_the_settings_page_shows_no_last_transfer(
    client_logged_in, integration
):
    preview = runs.create_run(integration, TO_PIPEDRIVE, dry_run=True)
    tasks.run_transfer(preview.pk)
    preview.refresh_from_db()
    assert preview.status == SyncRun.Status.DONE and preview.created > 0

    page = settings_page(client_logged_in, integration)

    assert "Last transfer" not in page
    assert f"created={preview.created}" not in page


def test_the_settings_page_shows_the_last_real_transfer_even_after_a_later_preview(
    client_logged_in, integration
):
    real = runs.create_run(integration, TO_PIPEDRIVE)
    tasks.run_transfer(real.pk)
    preview = runs.create_run(integration, TO_PIPEDRIVE, dry_run=True)
    tasks.run_transfer(preview.pk)
    real.refresh_from_db()
    preview.refresh_from_db()
    assert (real.created, preview.created) == (103, 0)  # the preview finds nothing new

    page = settings_page(client_logged_in, integration)

    assert f"Last transfer: Done ({real.summary()})" in page


def test_the_transfer_page_says_syncing_while_the_transfer_runs_and_active_after(
    client_logged_in, integration
):
    start = client_logged_in.post(
        reverse("integrations:transfer", args=[integration.pk]),
        {"direction": TO_PIPEDRIVE, "source_app": "snovio", "submit_token": "t" * 32},
    )
    run = SyncRun.objects.get()
    page = client_logged_in.get(start.url).content.decode()

    assert 'data-status="syncing">Syncing</span>' in page
    queued = progress(client_logged_in, integration, run)
    assert (queued["integration_status"], queued["integration_status_label"]) == (
        "syncing",
        "Syncing",
    )

    seen = []
    run_slice(run, after_page=lambda r: seen.append(progress(client_logged_in, integration, r)))
    assert seen and all(p["integration_status_label"] == "Syncing" for p in seen)
    assert all(not p["finished"] for p in seen)

    done = progress(client_logged_in, integration, run)
    assert done["finished"] and done["integration_status_label"] == "Active"
    page = client_logged_in.get(start.url).content.decode()
    assert 'data-status="active">Active</span>' in page
    integration.refresh_from_db()
    assert integration.status == Integration.Status.ACTIVE


def test_the_progress_polling_updates_the_badge(client_logged_in, integration):
    """The page's script copies the status the progress answer gives into the badge."""
    run = runs.create_run(integration, TO_PIPEDRIVE)
    page = client_logged_in.get(
        reverse("integrations:transfer_run", args=[integration.pk, run.pk])
    ).content.decode()
    assert "data.integration_status_label" in page and ".badge[data-status]" in page
