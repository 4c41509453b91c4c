"""Automations follow the integration's life cycle (signals from lifecycle)."""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from automations import engine
from integrations import signals
from integrations.models import Integration


@receiver(signals.status_changed, dispatch_uid="automations-release-held")
def release_held_runs(
    sender: Any, integration: Integration, new_status: str, **kwargs: Any
) -> None:
    """Active again: the events held while Paused or Syncing run now, oldest first."""
    if new_status == Integration.Status.ACTIVE:
        engine.release_held(integration)
