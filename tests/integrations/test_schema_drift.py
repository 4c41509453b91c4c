"""The sandbox's "change the account" control, and drift noticed by the scheduled catch-up."""

from __future__ import annotations

import json

import pytest

from integrations import tasks
from integrations.catalog import Catalog
from integrations.models import Integration, RemoteCatalog
from integrations.sandbox import control
from integrations.services import refresh
from tests.factories import connected_integration, fast_limits  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_limits", "sync_tasks")]
STAGES = RemoteCatalog.Kind.PIPEDRIVE_STAGES
PIPELINES = RemoteCatalog.Kind.PIPEDRIVE_PIPELINES
LISTS = RemoteCatalog.Kind.SNOVIO_LISTS


def change(sandbox, **data) -> tuple[int, dict]:
    answer = control.handle(
        sandbox,
        "POST",
        "/_sandbox/schema",
        {"Content-Type": "application/json", "Accept": "application/json"},
        json.dumps(data).encode(),
    )
    return answer.status, json.loads(answer.content())


def test_the_control_api_deletes_and_renames_stages_pipelines_fields_and_lists(sandbox):
    box = sandbox.pipedrive
    stage = next(iter(box.state["stages"].values()))
    pipeline = next(iter(box.state["pipelines"].values()))
    field = next(f for f in box.state["person_fields"].values() if f["custom"])
    lst = next(iter(sandbox.snovio.state["lists"].values()))

    assert change(sandbox, what="stage", id=stage["id"], action="rename", name="Won big")[0] == 200
    assert box.state["stages"][str(stage["id"])]["name"] == "Won big"
    assert (
        change(sandbox, what="person_field", id=field["key"], action="rename", name="Sector")[0]
        == 200
    )
    assert box.state["person_fields"][field["key"]]["name"] == "Sector"
    assert change(sandbox, what="list", id=lst["id"], action="rename", name="Renamed")[0] == 200
    assert lst["name"] == "Renamed"

    assert change(sandbox, what="pipeline", id=pipeline["id"], action="delete")[0] == 200
    assert str(pipeline["id"]) not in box.state["pipelines"]
    assert not [s for s in box.state["stages"].values() if s["pipeline_id"] == pipeline["id"]]
    assert change(sandbox, what="person_field", id=field["key"], action="delete")[0] == 200
    assert field["key"] not in box.state["person_fields"]
    assert change(sandbox, what="list", id=lst["id"], action="delete")[0] == 200
    assert lst["isDeleted"] is True


@pytest.mark.parametrize(
    "data",
    [
        {"what": "stage", "id": "999999", "action": "delete"},
        {"what": "galaxy", "id": "1", "action": "delete"},
        {"what": "stage", "id": "", "action": "delete"},
        {"what": "list", "id": "1000001", "action": "rename", "name": " "},
        {"what": "person_field", "id": "name", "action": "delete"},  # a standard field stays
    ],
)
def test_the_control_api_refuses_what_it_cannot_do_with_a_clear_message(sandbox, data):
    status, body = change(sandbox, **data)
    assert status == 400 and body["error"]


def test_a_deleted_target_list_is_noticed_by_the_scheduled_catch_up(user, sandbox):
    integration = connected_integration(user, sandbox)
    change(sandbox, what="list", id=integration.target_list_id, action="delete")

    tasks.catch_up(integration.pk)  # no one pressed Refresh

    integration.refresh_from_db()
    assert integration.status == Integration.Status.FAILED
    assert integration.target_list_name in integration.status_changes.last().reason


def test_a_renamed_list_shows_its_new_name_after_the_catch_up(user, sandbox):
    integration = connected_integration(user, sandbox)
    change(sandbox, what="list", id=integration.target_list_id, action="rename", name="Hot leads")

    tasks.catch_up(integration.pk)

    integration.refresh_from_db()
    assert integration.target_list_name == "Hot leads"
    assert integration.status == Integration.Status.ACTIVE


def test_a_deleted_stage_keeps_its_last_known_name(user, sandbox):
    integration = connected_integration(user, sandbox)
    stage = next(iter(sandbox.pipedrive.state["stages"].values()))
    pipeline = sandbox.pipedrive.state["pipelines"][str(stage["pipeline_id"])]
    change(sandbox, what="pipeline", id=pipeline["id"], action="delete")

    refresh(integration)
    catalog = Catalog.for_integration(integration)

    assert not catalog.has(STAGES, stage["id"])  # gone: settings that use it are problems
    assert catalog.name(STAGES, stage["id"]) == f"{stage['name']} (deleted)"
    assert catalog.name(PIPELINES, pipeline["id"]) == f"{pipeline['name']} (deleted)"
    assert catalog.name(LISTS, "no-such-list", "fallback") == "fallback"
