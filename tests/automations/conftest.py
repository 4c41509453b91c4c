"""Fixtures for the automations tests.

`integration` is a stored integration whose catalogue knows two pipelines (for the pages and
the settings checks, which never call Pipedrive). `live` + `pipedrive` run the engine against
the sandbox's spec-checked Pipedrive.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.utils import timezone

from integrations.models import Integration, RemoteCatalog
from integrations.pipedrive.client import PipedriveClient
from tests.factories import connected_integration, stored_integration

Kind = RemoteCatalog.Kind

# A catalogue snapshot for the tests that never reach Pipedrive (pages, settings checks).
PIPELINES = {1: "Sales", 2: "Partners"}
STAGES = [
    {"id": 11, "name": "Lead in", "pipeline_id": 1, "order_nr": 1},
    {"id": 12, "name": "Contacted", "pipeline_id": 1, "order_nr": 2},
    {"id": 13, "name": "Demo", "pipeline_id": 1, "order_nr": 3},
    {"id": 21, "name": "Intro", "pipeline_id": 2, "order_nr": 1},
    {"id": 22, "name": "Signed", "pipeline_id": 2, "order_nr": 2},
]


RECORD_ID = re.compile(r"/\d+")


class Crash(BaseException):
    """A worker dying mid-task (not an Exception: nothing in the engine may swallow it)."""


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
    """An Active two-way integration whose catalogue knows the snapshot's pipelines."""
    integration = stored_integration(user, pipedrive_owner_id=7)
    store_catalog(integration, PIPELINES, STAGES)
    return integration


@pytest.fixture
def live(db, user, sandbox) -> Integration:
    """An Active two-way integration joined to the sandbox's accounts, catalogue loaded."""
    return connected_integration(user, sandbox)


class PipedriveAccount:
    """The sandbox's Pipedrive as an engine test sees it: only what the test itself added.

    The seed's persons stay in the account (the engine must not pick them up by mistake), but
    `persons`, `deals` and `activities` list only records made after the fixture started, and
    `requests()` only the API calls the engine made (not the test's own set-up).
    """

    def __init__(self, sandbox, integration: Integration) -> None:
        self.sandbox = sandbox
        self.simulator = sandbox.pipedrive
        self.integration = integration
        self._existing = {
            "persons": {p["id"] for p in self.simulator.persons()},
            "deals": {d["id"] for d in self.simulator.deals()},
            "activities": {a["id"] for a in self.simulator.activities()},
        }
        self._mark()

    def _mark(self) -> None:
        self._log_start = len(self.sandbox.request_log)

    def _new(self, kind: str, records: list[dict]) -> dict[int, dict]:
        return {r["id"]: r for r in records if r["id"] not in self._existing[kind]}

    @property
    def persons(self) -> dict[int, dict]:
        return self._new("persons", self.simulator.persons())

    @property
    def deals(self) -> dict[int, dict]:
        return self._new("deals", self.simulator.deals())

    @property
    def activities(self) -> dict[int, dict]:
        return self._new("activities", self.simulator.activities())

    def pipeline(self, name: str) -> int:
        pipelines = self.simulator.state["pipelines"].values()
        return next(p["id"] for p in pipelines if p["name"] == name)

    def stage(self, pipeline: str, name: str) -> int:
        return self.simulator.stage_id(pipeline, name)

    def requests(self) -> list[str]:
        """The engine's Pipedrive API calls as "METHOD /path", record ids shown as {id}."""
        return [
            f"{method} {RECORD_ID.sub('/{id}', path)}"
            for remote, method, path in self.sandbox.request_log[self._log_start :]
            if remote == "pipedrive" and path.startswith("/api/")
        ]

    def add_person(self, name: str, email: str) -> dict:
        person = self.simulator.add_person(name=name, email=email)
        self._mark()
        return person

    def add_deal(
        self, person_id: int, pipeline: str, stage: str, status: str = "open", title: str = ""
    ) -> dict:
        """A deal made in Pipedrive by a user, through the (spec-checked) API."""
        client = PipedriveClient.for_connection(self.integration.pipedrive)
        deal = client.create_deal(
            {
                "title": title or f"Deal of {person_id}",
                "person_id": person_id,
                "pipeline_id": self.pipeline(pipeline),
                "stage_id": self.stage(pipeline, stage),
            }
        )
        if status != "open":
            deal = client.update_deal(deal["id"], {"status": status})
        self._mark()
        return deal

    def fail(self, method: str, path: str, status: int = 503) -> None:
        """Pipedrive answers `status` to every such request from now on."""
        self.sandbox.inject("pipedrive", str(status), count=1_000, path=f"^{path}$", method=method)

    def crash_after(self, monkeypatch, client_method: str) -> None:
        """The worker dies right after Pipedrive did the write, before it hears back (once)."""
        real: Callable[..., Any] = getattr(PipedriveClient, client_method)
        crashed: list[bool] = []

        def write_then_crash(client, *args, **kwargs):
            result = real(client, *args, **kwargs)
            if not crashed:
                crashed.append(True)
                raise Crash(client_method)
            return result

        monkeypatch.setattr(PipedriveClient, client_method, write_then_crash)


@pytest.fixture
def pipedrive(sandbox, live) -> PipedriveAccount:
    return PipedriveAccount(sandbox, live)


@pytest.fixture
def run_on_commit(django_capture_on_commit_callbacks):
    """Run on-commit callbacks (the engine enqueues after commit) inside the test transaction."""

    def runner(fn, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return fn(*args, **kwargs)

    return runner
