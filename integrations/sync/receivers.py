"""The sync engine follows the integration's life cycle (signals from lifecycle).

- Becoming Active: (re)register the webhooks both remotes need, ensure the scheduled
  catch-up exists, and drain the changes held while it was Paused or Syncing.
- Settings saved while Active: the direction may have changed, so the webhooks are
  reconciled (subscribed where needed, removed where not).
- Disconnecting a remote: its webhook subscriptions are removed while the credentials last.

Registering lists the existing subscriptions first and never creates a duplicate.
"""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import receiver

from integrations import signals
from integrations.http import RemoteError
from integrations.models import Integration, Provider
from integrations.sync import runs, subscriptions

log = logging.getLogger(__name__)


def sync_pipedrive_webhooks(integration: Integration, wanted: bool = True) -> list[int]:
    """Make Pipedrive's subscriptions for this integration exactly what it needs."""
    subscriptions.ensure_pipedrive(integration, wanted)
    return integration.pipedrive_webhook_ids


def sync_snovio_webhooks(integration: Integration, wanted: bool = True) -> list[int]:
    """Make Snov.io's subscriptions for this integration exactly what it needs."""
    subscriptions.ensure_snovio(integration, wanted)
    return integration.snovio_webhook_ids


def register_webhooks(integration: Integration) -> str:
    """Subscribe to what the direction needs on both sides; report what failed."""
    problems = []
    for name, sync, wanted in (
        ("Pipedrive", sync_pipedrive_webhooks, integration.sends_to_snovio),
        ("Snov.io", sync_snovio_webhooks, integration.sends_to_pipedrive),
    ):
        try:
            sync(integration, wanted)
        except RemoteError as exc:
            log.warning("integration %s: %s webhooks not registered: %s", integration.pk, name, exc)
            problems.append(f"{name}: {exc}")
    return "; ".join(problems) or "webhooks registered"


@receiver(signals.status_changed, dispatch_uid="sync-status-changed")
def on_status_changed(
    sender: Any, integration: Integration, new_status: str, **kwargs: Any
) -> None:
    if new_status != Integration.Status.ACTIVE:
        return
    runs.ensure_schedule()
    runs.enqueue_register_webhooks(integration.pk)
    runs.enqueue_pending(integration.pk)


@receiver(signals.settings_changed, dispatch_uid="sync-settings-changed")
def on_settings_changed(sender: Any, integration: Integration, **kwargs: Any) -> None:
    if integration.status != Integration.Status.ACTIVE:
        return
    runs.enqueue_register_webhooks(integration.pk)


@receiver(signals.disconnecting, dispatch_uid="sync-disconnecting")
def on_disconnecting(sender: Any, integration: Integration, provider: str, **kwargs: Any) -> None:
    """Remove our subscriptions now: once the connection is gone we cannot reach them."""
    remove = {Provider.PIPEDRIVE: sync_pipedrive_webhooks, Provider.SNOVIO: sync_snovio_webhooks}
    stored = {
        Provider.PIPEDRIVE: integration.pipedrive_webhook_ids,
        Provider.SNOVIO: integration.snovio_webhook_ids,
    }
    if not stored.get(provider):
        return  # nothing was ever subscribed through this integration
    try:
        remove[provider](integration, wanted=False)
    except (RemoteError, KeyError) as exc:
        log.warning("integration %s: %s webhooks not removed: %s", integration.pk, provider, exc)
