"""A demo fixture: an integration connected to the sandbox's Pipedrive by a legacy API token.

Made as one from before OAuth would be, so the demo shows how SyncBridge treats it: Paused
everywhere (the list, the settings page, the command line), with Reconnect offered and every
setting kept. `manage.py demo --legacy-example` makes it for the demo login.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils import timezone

from integrations import steps
from integrations.connections import LEGACY_REASON
from integrations.lifecycle import set_status
from integrations.models import Connection, Integration, Provider

NAME = "Legacy API-token example"


def legacy_example(owner: Any) -> Integration:
    """Made once per owner; the existing one after that."""
    existing = Integration.objects.filter(owner=owner, name=NAME).first()
    if existing:
        return existing
    pipedrive = Connection.objects.create(
        owner=owner,
        provider=Provider.PIPEDRIVE,
        auth_kind=Connection.AuthKind.API_TOKEN,
        access_token=settings.SANDBOX_PIPEDRIVE_API_TOKEN,
        account_name="Sandbox Company",
    )
    snovio = Connection.objects.create(
        owner=owner,
        provider=Provider.SNOVIO,
        auth_kind=Connection.AuthKind.CREDENTIALS,
        client_id=settings.SANDBOX_SNOVIO_CLIENT_ID,
        client_secret=settings.SANDBOX_SNOVIO_CLIENT_SECRET,
        account_name="Sandbox Snov.io",
    )
    integration = steps.create_integration(owner)
    integration.name = NAME
    integration.pipedrive, integration.snovio = pipedrive, snovio
    integration.launched_at = timezone.now()
    integration.save()
    set_status(integration, Integration.Status.PAUSED, None, LEGACY_REASON)
    return integration
