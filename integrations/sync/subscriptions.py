"""Webhook subscriptions on both remotes: made exactly as needed, re-checked on every catch-up.

- Snov.io deactivates a webhook after repeated failed deliveries: a deactivated subscription
  of ours is switched back on (PUT status=active), a missing one is created again.
- Pipedrive deletes a webhook after 3 days without a successful delivery: a missing
  subscription is created again.
- Each Snov.io event has its own URL (`.../hooks/snovio/<secret>/<object>/<action>/`), so a
  delivery is understood even if its body does not name the event. Subscriptions made to the
  older shared URL are replaced.

Listing comes first, so no duplicate is ever created. What the last check found and did is
kept on the integration (`subscriptions_health`) and shown on the settings page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from integrations.catalog import client_for
from integrations.http import RemoteError
from integrations.models import Integration
from integrations.snovio import constants as snovio_constants
from integrations.snovio.constants import WEBHOOK_TRIGGERS

log = logging.getLogger(__name__)

# Pipedrive: persons created, changed or deleted (v2 payloads; deletes: sync/deletes.py).
PIPEDRIVE_EVENTS = (("create", "person"), ("change", "person"), ("delete", "person"))
# Snov.io: the campaign events behind automations and the email history.
SNOVIO_EVENTS = tuple(WEBHOOK_TRIGGERS)


@dataclass
class SideHealth:
    """One remote's subscriptions after a check."""

    needed: int = 0
    active: int = 0
    reactivated: list[str] = field(default_factory=list)
    recreated: list[str] = field(default_factory=list)
    removed: int = 0
    error: str = ""

    @property
    def healthy(self) -> bool:
        return not self.error and self.active == self.needed


def _public(path: str) -> str:
    return settings.PUBLIC_URL.rstrip("/") + path


def pipedrive_hook_url(integration: Integration) -> str:
    return _public(reverse("sync:pipedrive_hook", args=[integration.webhook_secret]))


def snovio_base_url(integration: Integration) -> str:
    """The shared URL older subscriptions used; every per-event URL starts with it."""
    return _public(reverse("sync:snovio_hook", args=[integration.webhook_secret]))


def snovio_event_url(integration: Integration, event: tuple[str, str]) -> str:
    path = reverse("sync:snovio_event_hook", args=[integration.webhook_secret, *event])
    return _public(path)


def _reconcile(
    hooks: list[dict],
    needed: set[tuple[str, str]],
    event_of: Callable[[dict], tuple[str, str] | None],
    create: Callable[[tuple[str, str]], dict],
    delete: Callable[[Any], Any],
    reactivate: Callable[[dict], bool] = lambda hook: False,
) -> tuple[list[int], SideHealth]:
    """Keep one working subscription per needed event, delete the rest, create what is missing."""
    health = SideHealth(needed=len(needed))
    missing = set(needed)
    ids = []
    for hook in hooks:
        event = event_of(hook)
        if event in missing:
            missing.discard(event)
            if reactivate(hook):
                health.reactivated.append("/".join(event))
            ids.append(int(hook["id"]))
        else:  # a duplicate, an old version or URL, or one the direction no longer needs
            delete(hook["id"])
            health.removed += 1
    for event in sorted(missing):
        ids.append(int(create(event)["id"]))
        health.recreated.append("/".join(event))
    health.active = len(ids)
    return ids, health


def _store_ids(integration: Integration, field_name: str, ids: list[int]) -> None:
    Integration.objects.filter(pk=integration.pk).update(**{field_name: ids})
    setattr(integration, field_name, ids)


def ensure_pipedrive(integration: Integration, wanted: bool = True) -> SideHealth:
    """Make Pipedrive's subscriptions for this integration exactly what it needs."""
    if integration.pipedrive is None:
        return SideHealth()
    client = client_for(integration.pipedrive)
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
    ids, health = _reconcile(ours, needed, event_of, create, client.delete_webhook)
    _store_ids(integration, "pipedrive_webhook_ids", ids)
    return health


def ensure_snovio(integration: Integration, wanted: bool = True) -> SideHealth:
    """Make Snov.io's subscriptions exactly what the integration needs, all of them active."""
    if integration.snovio is None:
        return SideHealth()
    client = client_for(integration.snovio)
    base = snovio_base_url(integration)
    ours = [h for h in client.list_webhooks() if str(h.get("end_point") or "").startswith(base)]

    def event_of(hook: dict) -> tuple[str, str] | None:
        event = (hook.get("event_object"), hook.get("event_action"))
        # A subscription to the older shared URL is replaced by the event's own URL.
        return event if hook.get("end_point") == snovio_event_url(integration, event) else None

    def reactivate(hook: dict) -> bool:
        if hook.get("status", snovio_constants.WEBHOOK_ACTIVE) == snovio_constants.WEBHOOK_ACTIVE:
            return False
        client.change_webhook_status(hook["id"], snovio_constants.WEBHOOK_ACTIVE)
        return True

    needed = set(SNOVIO_EVENTS) if wanted else set()
    ids, health = _reconcile(
        ours,
        needed,
        event_of,
        lambda event: client.create_webhook(
            event[0], event[1], snovio_event_url(integration, event)
        ),
        client.delete_webhook,
        reactivate,
    )
    _store_ids(integration, "snovio_webhook_ids", ids)
    return health


def check_subscriptions(integration: Integration) -> dict:
    """Re-check both sides (the scheduled catch-up calls this); keep and return the health."""
    report = {}
    for name, ensure, wanted in (
        ("pipedrive", ensure_pipedrive, integration.sends_to_snovio),
        ("snovio", ensure_snovio, integration.sends_to_pipedrive),
    ):
        try:
            health = ensure(integration, wanted)
        except RemoteError as exc:
            log.warning("integration %s: %s webhooks not checked: %s", integration.pk, name, exc)
            health = SideHealth(needed=0, error=str(exc)[:300])
        report[name] = {**asdict(health), "healthy": health.healthy}
    now = timezone.now()
    Integration.objects.filter(pk=integration.pk).update(
        subscriptions_health=report, subscriptions_checked_at=now
    )
    integration.subscriptions_health, integration.subscriptions_checked_at = report, now
    return report


def summary(report: dict) -> str:
    """One line for logs and task results."""
    parts = []
    for name, side in report.items():
        fixed = len(side.get("reactivated", [])) + len(side.get("recreated", []))
        state = side.get("error") or f"{side.get('active', 0)}/{side.get('needed', 0)} active"
        parts.append(f"{name}: {state}" + (f", {fixed} repaired" if fixed else ""))
    return "webhooks " + "; ".join(parts)
