"""Fixtures for the automations tests: an integration with a catalogue, a fake Pipedrive."""

from __future__ import annotations

import pytest
from django.utils import timezone

from integrations.models import Connection, Integration, RemoteCatalog
from tests.automations.fakes import PIPELINES, STAGES, FakePipedrive

Kind = RemoteCatalog.Kind


def store_catalog(integration: Integration, pipelines: dict, stages: list[dict]) -> None:
    now = timezone.now()
    RemoteCatalog.objects.update_or_create(
        integration=integration,
        kind=Kind.PIPEDRIVE_PIPELINES,
        defaults={
            "items": [{"id": k, "name": v} for k, v in pipelines.items()],
            "refreshed_at": now,
        },
    )
    RemoteCatalog.objects.update_or_create(
        integration=integration,
        kind=Kind.PIPEDRIVE_STAGES,
        defaults={"items": stages, "refreshed_at": now},
    )


@pytest.fixture
def integration(db, user) -> Integration:
    """An Active two-way integration whose catalogue knows the fake Pipedrive's pipelines."""
    pipedrive = Connection.objects.create(
        owner=user, provider="pipedrive", auth_kind="api_token", access_token="x", account_id="1"
    )
    snovio = Connection.objects.create(
        owner=user, provider="snovio", auth_kind="credentials", client_id="c", client_secret="s"
    )
    integration = Integration.objects.create(
        owner=user,
        pipedrive=pipedrive,
        snovio=snovio,
        status=Integration.Status.ACTIVE,
        pipedrive_owner_id=7,
    )
    store_catalog(integration, PIPELINES, STAGES)
    return integration


@pytest.fixture
def fake_pipedrive(monkeypatch) -> FakePipedrive:
    fake = FakePipedrive()
    monkeypatch.setattr("automations.engine.client_for", lambda integration: fake)
    return fake


@pytest.fixture
def sync_tasks(monkeypatch):
    """django-q2 runs tasks inline (Q_CLUSTER is read once at import, so patch Conf)."""
    import django_q.conf

    monkeypatch.setattr(django_q.conf.Conf, "SYNC", True)


@pytest.fixture
def run_on_commit(django_capture_on_commit_callbacks):
    """Run on-commit callbacks (the engine enqueues after commit) inside the test transaction."""

    def runner(fn, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return fn(*args, **kwargs)

    return runner
