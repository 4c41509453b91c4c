"""Helpers for the settings-page, life-cycle and catalogue tests: integrations set up as a
user would leave them after each step, against the in-process sandbox."""

from __future__ import annotations

from django.conf import settings

from integrations import services
from integrations.models import Connection, Integration, Provider
from integrations.sandbox.pipedrive import custom_field_key


def connected_integration(owner, sandbox) -> Integration:
    """Steps 1 done: both apps connected (OAuth token from the sandbox, real Snov.io check)."""
    integration = services.create_integration(owner)
    services.connect_pipedrive(integration, sandbox.pipedrive.issue_token(), owner)
    checked = services.check_snovio_credentials(
        settings.SANDBOX_SNOVIO_CLIENT_ID, settings.SANDBOX_SNOVIO_CLIENT_SECRET
    )
    services.connect_snovio(integration, checked, owner)
    integration.refresh_from_db()
    return integration


def ready_integration(owner, sandbox, direction: str = Integration.Direction.TWO_WAY):
    """Steps 1-4 done: every required setting chosen, one custom pair Industry ↔ Industry."""
    integration = connected_integration(owner, sandbox)
    services.save_direction(integration, direction, owner)
    lists = integration.catalog.get(kind="snovio_lists").items
    users = integration.catalog.get(kind="pipedrive_users").items
    services.save_data_exchange(
        integration,
        services.DataExchange(
            target_list={"id": lists[0]["id"], "name": lists[0]["name"]},
            owner={"id": users[0]["id"], "name": users[0]["name"]},
            pairs=[industry_pair()],
        ),
        owner,
    )
    integration.refresh_from_db()
    return integration


def industry_pair() -> dict:
    return {
        "snovio_field": "customFields[Industry]",
        "snovio_label": "Industry",
        "pipedrive_field": custom_field_key("Industry"),
        "pipedrive_label": "Industry",
        "data_type": "text",
    }


def launched_integration(owner, sandbox, direction: str = Integration.Direction.TWO_WAY):
    integration = ready_integration(owner, sandbox, direction)
    problems = services.launch(integration, owner)
    assert problems == [], problems
    return integration


def delete_pipedrive_field(sandbox, name: str) -> str:
    key = custom_field_key(name)
    with sandbox.lock:
        del sandbox.pipedrive.state["person_fields"][key]
    return key


def add_pipedrive_field(sandbox, name: str, field_type: str = "varchar") -> str:
    with sandbox.lock:
        field = sandbox.pipedrive._insert_field(custom_field_key(name), name, field_type, 99, True)
    return field["key"]


def legacy_connection(owner) -> Connection:
    return Connection.objects.create(
        owner=owner,
        provider=Provider.PIPEDRIVE,
        auth_kind=Connection.AuthKind.API_TOKEN,
        access_token=settings.SANDBOX_PIPEDRIVE_API_TOKEN,
        account_name="Sandbox Company",
    )
