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
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.dispatch import receiver
from django.urls import reverse

from integrations import signals
from integrations.catalog import client_for
from integrations.http import RemoteError
from integrations.models import Integration, Provider
from integrations.snovio.constants import WEBHOOK_TRIGGERS
from integrations.sync import runs

log = logging.getLogger(__name__)

# Pipedrive: persons created or changed (v2 payloads).
PIPEDRIVE_EVENTS = (("create", "person"), ("change", "person"))
# Snov.io: the campaign events behind automations and the email history.
SNOVIO_EVENTS = tuple(WEBHOOK_TRIGGERS)


def pipedrive_hook_url(integration: Integration) -> str:
    path = reverse("sync:pipedrive_hook", args=[integration.webhook_secret])
    return settings.PUBLIC_URL.rstrip("/") + path


def snovio_hook_url(integration: Integration) -> str:
    path = reverse("sync:snovio_hook", args=[integration.webhook_secret])
    return settings.PUBLIC_URL.rstrip("/") + path


def _client(connection) -> Any:
    return client_for(connection)


def _reconcile(
    hooks: list[dict],
    needed: set[tuple[str, str]],
    event_of: Callable[[dict], tuple[str, str] | None],
    create: Callable[[tuple[str, str]], dict],
    delete: Callable[[Any], Any],
) -> list[int]:
    """Keep one subscription per needed event, delete the rest, create what is missing."""
    needed = set(needed)
    ids = []
    for hook in hooks:
        event = event_of(hook)
        if event in needed:
            needed.discard(event)
            ids.append(int(hook["id"]))
        else:  # a duplicate, an old version or one the direction no longer needs
            delete(hook["id"])
    ids.extend(int(create(event)["id"]) for event in sorted(needed))
    return ids


def _store_ids(integration: Integration, field: str, ids: list[int]) -> list[int]:
    Integration.objects.filter(pk=integration.pk).update(**{field: ids})
    setattr(integration, field, ids)
    return ids


def sync_pipedrive_webhooks(integration: Integration, wanted: bool = True) -> list[int]:
    """Make Pipedrive's subscriptions for this integration exactly what it needs."""
    if integration.pipedrive is None:
        return []
    client = _client(integration.pipedrive)
    url = pipedrive_hook_url(integration)

    def event_of(hook: dict) -> tuple[str, str] | None:
        if str(hook.get("version", "2.0")) != "2.0":
            return None
        return (hook.get("event_action"), hook.get("event_object"))

    def create(event: tuple[str, str]) -> dict:
        action, obj = event
        return client.create_webhook(
            url,
            action,
            obj,
            integration.pipedrive_webhook_user,
            integration.pipedrive_webhook_password,
            name=f"SyncBridge #{integration.pk}",
        )

    ours = [h for h in client.list_webhooks() if h.get("subscription_url") == url]
    needed = set(PIPEDRIVE_EVENTS) if wanted else set()
    ids = _reconcile(ours, needed, event_of, create, client.delete_webhook)
    return _store_ids(integration, "pipedrive_webhook_ids", ids)


def sync_snovio_webhooks(integration: Integration, wanted: bool = True) -> list[int]:
    """Make Snov.io's subscriptions for this integration exactly what it needs."""
    if integration.snovio is None:
        return []
    client = _client(integration.snovio)
    url = snovio_hook_url(integration)
    ours = [h for h in client.list_webhooks() if h.get("end_point") == url]
    needed = set(SNOVIO_EVENTS) if wanted else set()
    ids = _reconcile(
        ours,
        needed,
        lambda hook: (hook.get("event_object"), hook.get("event_action")),
        lambda event: client.create_webhook(event[0], event[1], url),
        client.delete_webhook,
    )
    return _store_ids(integration, "snovio_webhook_ids", ids)


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
