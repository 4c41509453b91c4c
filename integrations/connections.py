"""Connections: connect Pipedrive (OAuth) and Snov.io (API pair), check, disconnect.

Reconnecting updates the same connection, so every setting of the integration is kept. A
legacy Pipedrive API-token connection keeps its integration Paused (`ensure_legacy_paused`).
Disconnecting sends `signals.disconnecting` first, while the credentials still work.
"""

from __future__ import annotations

import logging
from typing import Any

from integrations import catalog, signals
from integrations.http import RemoteError
from integrations.lifecycle import send_signal, set_status
from integrations.models import Connection, Integration, Provider
from integrations.pipedrive import oauth

log = logging.getLogger(__name__)

Status = Integration.Status

LEGACY_REASON = (
    "Pipedrive is connected with a legacy API token. Reconnect Pipedrive (OAuth) to resume."
)


def check_connection(connection: Connection) -> bool:
    """Make one cheap live call through a connection and remember whether it worked."""
    try:
        client = catalog.client_for(connection)
        if connection.provider == Provider.PIPEDRIVE:
            client.me()
        else:
            client.check_credentials()
    except RemoteError as exc:
        catalog.mark_connection(connection, exc)
        return False
    catalog.mark_connection(connection, None)
    return True


def ensure_legacy_paused(integration: Integration) -> None:
    """A legacy API-token connection runs nothing: keep its integration Paused."""
    conn = integration.pipedrive
    if conn and conn.is_legacy_token and integration.status != Status.PAUSED:
        set_status(integration, Status.PAUSED, None, LEGACY_REASON)


def connect_pipedrive(integration: Integration, token: dict, user: Any = None) -> Connection:
    """Store an OAuth token on the integration's Pipedrive connection.

    Reconnecting (a legacy API-token connection, or a failed one) updates the same connection,
    so every setting of the integration is kept. The integration stays Paused until launched
    or resumed.
    """
    conn = integration.pipedrive
    if conn is None or conn.provider != Provider.PIPEDRIVE:
        conn = Connection(owner=integration.owner, provider=Provider.PIPEDRIVE)
    oauth.store_token(conn, token)
    try:
        me = catalog.client_for(conn).me()
    except RemoteError as exc:
        log.warning("pipedrive me() after connect failed: %s", exc)
        me = {}
    conn.account_id = str(me.get("company_id") or conn.account_id or "")
    company = me.get("company_name") or ""
    person = me.get("name") or me.get("email") or ""
    conn.account_name = f"{company} ({person})" if company and person else company or person
    conn.save(update_fields=["account_id", "account_name", "updated_at"])
    Integration.objects.filter(pk=integration.pk).update(pipedrive=conn)
    integration.pipedrive = conn
    if integration.status == Status.FAILED:
        set_status(integration, Status.PAUSED, user, "Pipedrive reconnected")
    catalog.refresh_catalog(integration, [Provider.PIPEDRIVE])
    _default_owner(integration, me)
    return conn


def _default_owner(integration: Integration, me: dict) -> None:
    """The Pipedrive user who connected owns contacts from Snov.io until someone chooses."""
    if integration.pipedrive_owner_id or not me.get("id"):
        return
    integration.pipedrive_owner_id = me["id"]
    integration.pipedrive_owner_name = me.get("name") or ""
    integration.save(update_fields=["pipedrive_owner_id", "pipedrive_owner_name", "updated_at"])


def check_snovio_credentials(client_id: str, client_secret: str) -> Connection:
    """Try the pair with a real token request; raises AuthError / RemoteError when it fails.

    Returns an unsaved connection holding the pair and the token just issued.
    """
    conn = Connection(
        provider=Provider.SNOVIO,
        auth_kind=Connection.AuthKind.CREDENTIALS,
        client_id=client_id.strip(),
        client_secret=client_secret.strip(),
    )
    catalog.client_for(conn).check_credentials()
    return conn


def connect_snovio(integration: Integration, checked: Connection, user: Any = None) -> Connection:
    """Save a Snov.io pair checked by `check_snovio_credentials` on the integration."""
    conn = integration.snovio
    if conn is None or conn.provider != Provider.SNOVIO:
        conn = Connection(owner=integration.owner, provider=Provider.SNOVIO)
    conn.auth_kind = Connection.AuthKind.CREDENTIALS
    conn.client_id = checked.client_id
    conn.client_secret = checked.client_secret
    conn.access_token = checked.access_token
    conn.expires_at = checked.expires_at
    conn.account_id = checked.client_id
    conn.account_name = conn.account_name or f"API user {checked.client_id}"
    conn.status = Connection.Status.OK
    conn.last_error = ""
    conn.save()
    Integration.objects.filter(pk=integration.pk).update(snovio=conn)
    integration.snovio = conn
    if integration.status == Status.FAILED:
        set_status(integration, Status.PAUSED, user, "Snov.io reconnected")
    catalog.refresh_catalog(integration, [Provider.SNOVIO])
    return conn


def disconnect(integration: Integration, provider: str, user: Any = None) -> None:
    """Remove a connection's tokens and secret; a running integration is paused first."""
    conn = integration.pipedrive if provider == Provider.PIPEDRIVE else integration.snovio
    if conn is None:
        return
    send_signal(signals.disconnecting, integration=integration, provider=provider)
    if integration.status != Status.PAUSED:
        set_status(integration, Status.PAUSED, user, f"{Provider(provider).label} was disconnected")
    conn.access_token = ""
    conn.refresh_token = ""
    conn.client_secret = ""
    conn.expires_at = None
    conn.status = Connection.Status.REVOKED
    conn.save()
    field = "pipedrive" if provider == Provider.PIPEDRIVE else "snovio"
    Integration.objects.filter(pk=integration.pk).update(**{field: None})
    setattr(integration, field, None)
