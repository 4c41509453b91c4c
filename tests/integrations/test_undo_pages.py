"""The undo pages: preview first, then undo; refused twice with the reason; owners only."""

from __future__ import annotations

import pytest
from django.urls import reverse

from integrations.models import SyncRun, Undo
from integrations.sync.runs import create_run
from integrations.sync.transfer import transfer
from tests.factories import connected_integration, fast_limits  # noqa: F401
from tests.integrations.test_undo import person_by_email, to_pipedrive_scene

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_limits", "sync_tasks")]


@pytest.fixture
def finished_transfer(user, empty_sandbox):
    integration, _, _ = to_pipedrive_scene(user, empty_sandbox)
    run = transfer(create_run(integration, SyncRun.Direction.TO_PIPEDRIVE, "snovio"))
    return integration, run


def test_the_transfer_page_offers_a_preview_and_the_preview_page_offers_the_undo(
    client_logged_in, finished_transfer, empty_sandbox
):
    integration, run = finished_transfer
    page = client_logged_in.get(reverse("integrations:transfer_run", args=[integration.pk, run.pk]))
    assert b"Undo this transfer" in page.content
    url = reverse("integrations:undo_transfer", args=[integration.pk, run.pk])

    preview = client_logged_in.post(url, {"preview": "1"}, follow=True)

    text = preview.content.decode()
    assert "Preview of the undo" in text and 'id="undo-confirm"' in text
    assert "cy@x.example" in text  # a record the undo would remove
    assert person_by_email(empty_sandbox, "cy@x.example") is not None  # nothing written yet
    done = client_logged_in.post(url, follow=True)
    assert "Removed" in done.content.decode()
    assert person_by_email(empty_sandbox, "cy@x.example") is None
    again = client_logged_in.post(url)
    assert again.status_code == 409 and b"already undone" in again.content
    assert Undo.objects.filter(dry_run=False).count() == 1


def test_a_record_change_is_undone_from_the_history(client_logged_in, finished_transfer):
    integration, run = finished_transfer
    history = client_logged_in.get(reverse("sync:history", args=[integration.pk]))
    assert b"Undo this change" in history.content
    event = run.events.get(email="ann@x.example")
    url = reverse("integrations:undo_event", args=[integration.pk, event.pk])

    preview = client_logged_in.post(url, {"preview": "1"}, follow=True)
    assert b"Undo this change" in preview.content
    client_logged_in.post(url)

    assert event.undone_by.outcome == "updated"
    assert client_logged_in.post(url).status_code == 409
    history = client_logged_in.get(reverse("sync:history", args=[integration.pk]))
    assert b"Undone by <a" in history.content


def test_another_users_transfer_cannot_be_undone(client, other_user, finished_transfer):
    integration, run = finished_transfer
    client.force_login(other_user)
    url = reverse("integrations:undo_transfer", args=[integration.pk, run.pk])
    assert client.post(url, {"preview": "1"}).status_code == 404
    assert not Undo.objects.exists()


def test_a_preview_transfer_or_a_running_one_cannot_be_undone(client_logged_in, user, sandbox):
    integration = connected_integration(user, sandbox)
    preview = SyncRun.objects.create(
        integration=integration, direction="to_pipedrive", source_app="snovio", dry_run=True
    )
    url = reverse("integrations:undo_transfer", args=[integration.pk, preview.pk])
    refused = client_logged_in.post(url, {"preview": "1"})
    assert refused.status_code == 409 and b"nothing to undo" in refused.content
    running = SyncRun.objects.create(
        integration=integration, direction="to_pipedrive", source_app="snovio"
    )
    url = reverse("integrations:undo_transfer", args=[integration.pk, running.pk])
    assert b"still running" in client_logged_in.post(url).content


def test_the_admin_lists_undos_with_search_and_filters(admin_client, finished_transfer):
    integration, run = finished_transfer
    Undo.objects.create(integration=integration, run=run, dry_run=True)
    url = reverse("admin:integrations_undo_changelist")
    response = admin_client.get(url, {"q": integration.name, "dry_run__exact": "1"})
    assert response.status_code == 200 and len(response.context["cl"].queryset) == 1


def test_an_undo_that_did_not_finish_is_resumed_by_the_same_button(
    client_logged_in, finished_transfer, empty_sandbox
):
    integration, run = finished_transfer
    stopped = Undo.objects.create(integration=integration, run=run, status="failed")
    preview = Undo.objects.create(integration=integration, run=run, dry_run=True, status="done")
    page = client_logged_in.get(reverse("integrations:undo", args=[integration.pk, preview.pk]))
    assert b"Resume the undo" in page.content

    client_logged_in.post(reverse("integrations:undo_transfer", args=[integration.pk, run.pk]))

    stopped.refresh_from_db()
    assert stopped.status == "done" and stopped.removed == 2
    assert person_by_email(empty_sandbox, "cy@x.example") is None


def test_the_history_lists_the_undos_events_under_their_own_source_with_the_reason(
    client_logged_in, finished_transfer, empty_sandbox
):
    integration, run = finished_transfer
    empty_sandbox.pipedrive.change_person(
        empty_sandbox.pipedrive.persons("bob@x.example")[0]["id"], job_title="Chief"
    )
    client_logged_in.post(reverse("integrations:undo_transfer", args=[integration.pk, run.pk]))
    history = reverse("sync:history", args=[integration.pk])

    undos = client_logged_in.get(history, {"source": "undo"}).content.decode()
    realtime = client_logged_in.get(history, {"source": "realtime"}).content.decode()

    assert "Undo of transfer #" in undos and "changed since the transfer" in undos
    assert "undo #" in undos and "Undo of transfer #" not in realtime
