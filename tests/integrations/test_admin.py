"""The admin for support staff: actions through the services, search and filters, no secrets."""

from __future__ import annotations

import pytest
from django.urls import reverse

from integrations.models import Connection, Integration, PendingChange, SyncEvent, SyncRun
from tests.factories import connected_integration, fast_limits  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_limits")]

CHANGELIST = "admin:integrations_integration_changelist"


def act(admin_client, action: str, *integrations: Integration):
    return admin_client.post(
        reverse(CHANGELIST),
        {"action": action, "_selected_action": [str(i.pk) for i in integrations]},
        follow=True,
    )


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_support_pauses_and_resumes_an_integration(admin_client, admin_user, user, sandbox):
    integration = connected_integration(user, sandbox)

    act(admin_client, "pause_selected", integration)
    integration.refresh_from_db()
    assert integration.status == Integration.Status.PAUSED
    change = integration.status_changes.first()
    assert change.changed_by == admin_user and change.reason == "Paused by support staff"

    act(admin_client, "resume_selected", integration)
    integration.refresh_from_db()
    assert integration.status == Integration.Status.ACTIVE


def test_support_refreshes_an_integration(admin_client, user, sandbox):
    integration = connected_integration(user, sandbox)
    response = act(admin_client, "refresh_selected", integration)
    assert any("Nothing changed since the last refresh." in m for m in messages_of(response))

    sandbox.inject("pipedrive", "500", count=100)
    failing = act(admin_client, "refresh_selected", integration)
    assert any("Pipedrive" in m for m in messages_of(failing))


def test_support_starts_a_transfer(admin_client, admin_user, user, sandbox):
    integration = connected_integration(user, sandbox)
    one_way = connected_integration(user, sandbox, direction=Integration.Direction.TO_SNOVIO)
    paused = connected_integration(user, sandbox, status=Integration.Status.PAUSED)

    response = act(admin_client, "transfer_to_pipedrive", integration, one_way, paused)

    run = SyncRun.objects.get()
    assert (run.integration, run.direction, run.dry_run) == (integration, "to_pipedrive", False)
    assert run.started_by == admin_user
    said = " ".join(messages_of(response))
    assert f"transfer #{run.pk} is queued" in said
    assert "does not send data that way" in said  # the To Snov.io only one
    assert "only while the integration is Active" in said  # the paused one

    act(admin_client, "transfer_to_snovio", integration)
    assert SyncRun.objects.count() == 1  # one transfer at a time: the running one stays


def test_every_list_has_search_and_filters_that_work(admin_client, user, sandbox):
    integration = connected_integration(user, sandbox)
    SyncRun.objects.create(integration=integration, direction="to_pipedrive", source_app="snovio")
    SyncEvent.objects.create(
        integration=integration, direction="to_pipedrive", email="anna@x.example", outcome="failed"
    )
    PendingChange.objects.create(
        integration=integration, source="pipedrive", kind="person", dedupe_key="k", payload={}
    )
    for model, params in [
        ("integration", {"q": integration.name, "status__exact": "active"}),
        ("syncrun", {"q": integration.name, "status__exact": "queued", "dry_run__exact": "0"}),
        ("syncevent", {"q": "anna@x.example", "outcome__exact": "failed"}),
        ("pendingchange", {"q": integration.name, "processed_at__isempty": "1"}),
        ("recordlink", {"q": "anna"}),
        ("emailactivity", {"q": "x"}),
        ("connection", {"q": "Sandbox", "provider__exact": "pipedrive"}),
    ]:
        url = reverse(f"admin:integrations_{model}_changelist")
        response = admin_client.get(url, params)
        assert response.status_code == 200, model  # a filter the admin does not know redirects
    events = admin_client.get(
        reverse("admin:integrations_syncevent_changelist"), {"q": "anna@x.example"}
    )
    assert list(events.context["cl"].queryset) == list(SyncEvent.objects.all())
    none = admin_client.get(reverse("admin:integrations_syncevent_changelist"), {"q": "bob@"})
    assert list(none.context["cl"].queryset) == []


def test_the_admin_uses_readable_plurals(admin_client):
    index = admin_client.get(reverse("admin:index")).content.decode()
    assert "Email activities" in index and "Email activitys" not in index


def test_the_admin_never_shows_a_secret(admin_client, user, sandbox):
    integration = connected_integration(user, sandbox)
    pipedrive: Connection = integration.pipedrive
    secrets = [
        pipedrive.access_token,
        pipedrive.refresh_token,
        integration.snovio.client_secret,
        integration.webhook_secret,
        integration.pipedrive_webhook_user,
        integration.pipedrive_webhook_password,
    ]
    assert all(secrets)
    pages = [
        reverse("admin:integrations_integration_change", args=[integration.pk]),
        reverse("admin:integrations_integration_changelist"),
        reverse("admin:integrations_connection_change", args=[pipedrive.pk]),
        reverse("admin:integrations_connection_change", args=[integration.snovio.pk]),
        reverse("admin:integrations_connection_changelist"),
    ]
    for url in pages:
        body = admin_client.get(url).content.decode()
        assert not [s for s in secrets if s in body], url
