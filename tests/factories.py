"""The one place tests build integrations.

Three starting points, from the cheapest:
- `stored_integration(user, **fields)`: an Active integration stored with placeholder
  connections, for tests that never call a remote (pages, settings checks);
- `integration_with_both_apps` / `ready_integration` / `launched_integration`: set up through
  the same service functions the setup pages call, step by step, against the sandbox;
- `connected_integration(user, sandbox, **settings)`: set up directly through the models.

`connected_integration(user, sandbox, **settings)` gives an Active integration as it stands
after setup and launch: both connections (a Pipedrive OAuth token from the sandbox's token
endpoint, Snov.io client credentials from settings), the system field pairs, the first Snov.io
list as the sync-to list, a Pipedrive owner and the catalogue loaded. Keyword arguments set
Integration fields (`direction=`, `only_with_email=`, `include_email_history=`, ...), plus:

- `pairs=[(snovio_field, pipedrive_field, data_type), ...]` extra custom pairs;
- `constants=[(side, field_key, value), ...]` constants of a receiving side;
- `owner="Sam Seller"` the Pipedrive owner by name (None for none);
- `catalog=False` to skip loading the catalogue.

Webhook subscriptions are not made here (see `integrations.sync.receivers`).
"""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone

from integrations import connections, services, steps
from integrations.models import (
    Connection,
    ConstantField,
    FieldMapping,
    Integration,
    Provider,
)
from integrations.sandbox.pipedrive import custom_field_key

DEFAULT_OWNER = "Sam Seller"  # not the admin who connected, so the owner setting is visible


def stored_integration(user, **fields: Any) -> Integration:
    """An Active two-way integration with stored (never called) connections of both apps."""
    pipedrive = Connection.objects.create(
        owner=user, provider="pipedrive", auth_kind="api_token", access_token="x", account_id="1"
    )
    snovio = Connection.objects.create(
        owner=user, provider="snovio", auth_kind="credentials", client_id="c", client_secret="s"
    )
    return Integration.objects.create(
        owner=user,
        pipedrive=pipedrive,
        snovio=snovio,
        status=Integration.Status.ACTIVE,
        **fields,
    )


def pipedrive_connection(user, sandbox) -> Connection:
    from integrations.pipedrive import oauth

    connection = Connection(
        owner=user,
        provider=Provider.PIPEDRIVE,
        auth_kind=Connection.AuthKind.OAUTH,
        account_name="Sandbox Company",
        account_id="7001",
    )
    oauth.store_token(connection, sandbox.pipedrive.issue_token())
    return connection


def snovio_connection(user) -> Connection:
    return Connection.objects.create(
        owner=user,
        provider=Provider.SNOVIO,
        auth_kind=Connection.AuthKind.CREDENTIALS,
        account_name="Snov.io sandbox",
        account_id=settings.SANDBOX_SNOVIO_CLIENT_ID,
        client_id=settings.SANDBOX_SNOVIO_CLIENT_ID,
        client_secret=settings.SANDBOX_SNOVIO_CLIENT_SECRET,
    )


def connected_integration(user, sandbox, **options: Any) -> Integration:
    """An Active, launched integration joining the sandbox's two accounts."""
    from integrations.snovio.client import SnovioClient

    pairs = options.pop("pairs", [])
    constants = options.pop("constants", [])
    owner_name = options.pop("owner", DEFAULT_OWNER)
    load_catalog = options.pop("catalog", True)
    integration = Integration.objects.create(
        owner=user,
        pipedrive=pipedrive_connection(user, sandbox),
        snovio=snovio_connection(user),
        status=Integration.Status.ACTIVE,
        launched_at=timezone.now(),
    )
    first = SnovioClient.for_connection(integration.snovio).get_user_lists()[0]
    integration.target_list_id = str(first["id"])
    integration.target_list_name = first["name"]
    if owner_name:
        integration.pipedrive_owner_id = sandbox.pipedrive.user_id(owner_name)
        integration.pipedrive_owner_name = owner_name
    for name, value in options.items():
        if not hasattr(integration, name):
            raise TypeError(f"Integration has no setting {name!r}")
        setattr(integration, name, value)
    integration.save()
    steps.ensure_system_mappings(integration)
    for position, (snovio_field, pipedrive_field, data_type) in enumerate(pairs, start=100):
        FieldMapping.objects.create(
            integration=integration,
            snovio_field=snovio_field,
            pipedrive_field=pipedrive_field,
            data_type=data_type,
            position=position,
        )
    for side, field_key, value in constants:
        ConstantField.objects.create(
            integration=integration, side=side, field_key=field_key, value=value
        )
    if load_catalog:
        from integrations.catalog import refresh_catalog

        refresh_catalog(integration)
    return integration


# --- through the setup pages' service functions, step by step -------------------------------
def integration_with_both_apps(owner, sandbox) -> Integration:
    """Steps 1 done: both apps connected (OAuth token from the sandbox, real Snov.io check)."""
    integration = steps.create_integration(owner)
    connections.connect_pipedrive(integration, sandbox.pipedrive.issue_token(), owner)
    checked = connections.check_snovio_credentials(
        settings.SANDBOX_SNOVIO_CLIENT_ID, settings.SANDBOX_SNOVIO_CLIENT_SECRET
    )
    connections.connect_snovio(integration, checked, owner)
    integration.refresh_from_db()
    return integration


def ready_integration(owner, sandbox, direction: str = Integration.Direction.TWO_WAY):
    """Steps 1-4 done: every required setting chosen, one custom pair Industry ↔ Industry."""
    integration = integration_with_both_apps(owner, sandbox)
    steps.save_direction(integration, direction, owner)
    lists = integration.catalog.get(kind="snovio_lists").items
    users = integration.catalog.get(kind="pipedrive_users").items
    steps.save_data_exchange(
        integration,
        steps.DataExchange(
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


@pytest.fixture
def fast_limits(settings):
    """Rate limits out of the way: the sandbox still answers 429 if a test asks it to."""
    settings.PIPEDRIVE_BURST_LIMIT = 1_000_000
    settings.PIPEDRIVE_API_TOKEN_BURST_LIMIT = 1_000_000
    settings.PIPEDRIVE_SEARCH_LIMIT = 1_000_000
    settings.SNOVIO_RATE_LIMIT = 1_000_000
