"""Refresh: lists, fields, users, pipelines and stages reloaded from both accounts."""

from __future__ import annotations

import pytest

from integrations import catalog, services
from integrations.catalog import Catalog, Kind
from integrations.models import Connection, RemoteCatalog
from integrations.problems import connection_problems
from integrations.sandbox.pipedrive import custom_field_key
from tests.factories import (
    add_pipedrive_field,
    delete_pipedrive_field,
    integration_with_both_apps,
    ready_integration,
)

pytestmark = pytest.mark.django_db


def test_connecting_loads_every_kind_of_the_catalogue(user, sandbox):
    integration = integration_with_both_apps(user, sandbox)
    cat = Catalog.for_integration(integration)
    assert {row.kind for row in RemoteCatalog.objects.filter(integration=integration)} == set(
        Kind.values
    )
    assert [x["name"] for x in cat.items(Kind.SNOVIO_LISTS)] == [
        "Conference leads 2026",
        "SaaS founders EU",
        "Re-engagement",
    ]
    assert [u["name"] for u in cat.items(Kind.PIPEDRIVE_USERS)] == [
        "Sam Seller",
        "Pat Pipeline",
        "Robin Admin",
    ]
    assert [p["name"] for p in cat.items(Kind.PIPEDRIVE_PIPELINES)] == ["Sales", "Partnerships"]
    assert len(cat.items(Kind.PIPEDRIVE_STAGES)) == 10
    industry = cat.get(Kind.PIPEDRIVE_FIELDS, custom_field_key("Industry"))
    assert industry["type"] == "text" and industry["custom"] is True
    lead_source = cat.get(Kind.PIPEDRIVE_FIELDS, custom_field_key("Lead source"))
    assert lead_source["type"] == "enum"
    assert [o["label"] for o in lead_source["options"]][:2] == ["Snov.io campaign", "Website"]


def test_snovio_custom_fields_are_keyed_by_their_label_next_to_the_standard_fields(user, sandbox):
    integration = integration_with_both_apps(user, sandbox)
    cat = Catalog.for_integration(integration)
    keys = {f["key"]: f for f in cat.items(Kind.SNOVIO_FIELDS)}
    assert keys["customFields[Industry]"] == {
        "key": "customFields[Industry]",
        "name": "Industry",
        "type": "text",
        "custom": True,
    }
    assert keys["customFields[Employees]"]["type"] == "number"
    assert keys["email"]["custom"] is False and keys["country"]["type"] == "text"


def test_pairable_fields_leave_out_system_fields_and_other_types(user, sandbox):
    integration = integration_with_both_apps(user, sandbox)
    cat = Catalog.for_integration(integration)
    snov = {f["key"] for f in cat.snovio_pairable_fields()}
    pipe = {f["name"] for f in cat.pipedrive_pairable_fields()}
    assert "email" not in snov and "firstName" not in snov and "country" in snov
    assert pipe == {"Industry", "Employees", "Lead source", "Last event date"}


def test_a_refresh_with_nothing_new_says_so(user, sandbox):
    integration = integration_with_both_apps(user, sandbox)
    result = catalog.refresh_catalog(integration)
    assert not result.changed and not result.errors
    assert result.summary() == "Nothing changed since the last refresh."


def test_refresh_picks_up_a_new_field(user, sandbox):
    integration = integration_with_both_apps(user, sandbox)
    key = add_pipedrive_field(sandbox, "Lead score", "double")
    sandbox.snovio.add_custom_field("Seniority")
    result = catalog.refresh_catalog(integration)
    assert result.change_for(Kind.PIPEDRIVE_FIELDS).added == ["Lead score"]
    assert result.change_for(Kind.SNOVIO_FIELDS).added == ["Seniority"]
    assert "Pipedrive person fields: added “Lead score”" in result.summary()
    cat = Catalog.for_integration(integration)
    assert cat.get(Kind.PIPEDRIVE_FIELDS, key)["type"] == "number"
    assert cat.has(Kind.SNOVIO_FIELDS, "customFields[Seniority]")


def test_refresh_flags_a_deleted_field_that_is_still_paired(user, sandbox):
    integration = ready_integration(user, sandbox)
    delete_pipedrive_field(sandbox, "Industry")
    result, problems = services.refresh(integration, user)
    assert result.change_for(Kind.PIPEDRIVE_FIELDS).removed == ["Industry"]
    assert "removed “Industry”" in result.summary()
    assert [p.field for p in problems] == [
        f"mapping-{integration.field_mappings.get(is_system=False).pk}"
    ]


def test_refresh_reports_a_renamed_list_and_updates_the_saved_name(user, sandbox):
    integration = ready_integration(user, sandbox)
    with sandbox.lock:
        lst = next(
            x
            for x in sandbox.snovio.state["lists"].values()
            if x["name"] == "Conference leads 2026"
        )
        lst["name"] = "Conference leads (all)"
    result = catalog.refresh_catalog(integration)
    assert result.change_for(Kind.SNOVIO_LISTS).renamed == [
        ("Conference leads 2026", "Conference leads (all)")
    ]
    integration.refresh_from_db()
    assert integration.target_list_name == "Conference leads (all)"


def test_refresh_notices_a_deleted_list_and_new_users_and_stages(user, sandbox):
    integration = integration_with_both_apps(user, sandbox)
    sandbox.snovio.delete_list("Re-engagement")
    sandbox.snovio.create_list("Webinar 2026")
    with sandbox.lock:
        sandbox.pipedrive._insert_user("Quinn New", "quinn@sandbox-company.example", False)
    result = catalog.refresh_catalog(integration)
    lists = result.change_for(Kind.SNOVIO_LISTS)
    assert (lists.added, lists.removed) == (["Webinar 2026"], ["Re-engagement"])
    assert result.change_for(Kind.PIPEDRIVE_USERS).added == ["Quinn New"]


def test_an_unreachable_remote_keeps_its_catalogue_and_marks_the_connection_failed(
    user, sandbox, settings
):
    settings.HTTP_MAX_RETRIES = 1
    integration = integration_with_both_apps(user, sandbox)
    before = Catalog.for_integration(integration).items(Kind.SNOVIO_LISTS)
    sandbox.inject("snovio", "503", count=10)
    result = catalog.refresh_catalog(integration)
    assert set(result.errors) == {"snovio"}
    assert result.summary().startswith("Could not reload from Snov.io.")
    assert Catalog.for_integration(integration).items(Kind.SNOVIO_LISTS) == before
    integration.snovio.refresh_from_db()
    assert integration.snovio.status == Connection.Status.FAILED
    problems = connection_problems(integration)
    assert [p.field for p in problems] == ["snovio"]
    assert "could not be reached" in problems[0].message

    sandbox.faults.clear()
    catalog.refresh_catalog(integration)
    integration.snovio.refresh_from_db()
    assert integration.snovio.status == Connection.Status.OK
