"""The one place API clients are built: for a connection, or for one side of an integration."""

from __future__ import annotations

from integrations.http import RemoteError
from integrations.models import Connection, Integration, Provider
from integrations.pipedrive.client import PipedriveClient
from integrations.snovio.client import SnovioClient


def client_for(connection: Connection) -> PipedriveClient | SnovioClient:
    """The API client of a connection, by its provider."""
    if connection.provider == Provider.PIPEDRIVE:
        return PipedriveClient.for_connection(connection)
    return SnovioClient.for_connection(connection)


def pipedrive_client(integration: Integration) -> PipedriveClient:
    """The integration's Pipedrive client; a permanent error when Pipedrive is not connected."""
    if integration.pipedrive is None:
        raise RemoteError("Pipedrive is not connected", remote="pipedrive", permanent=True)
    return PipedriveClient.for_connection(integration.pipedrive)


def snovio_client(integration: Integration) -> SnovioClient:
    """The integration's Snov.io client; a permanent error when Snov.io is not connected."""
    if integration.snovio is None:
        raise RemoteError("Snov.io is not connected", remote="snovio", permanent=True)
    return SnovioClient.for_connection(integration.snovio)
