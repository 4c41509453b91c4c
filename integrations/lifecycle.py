"""The integration's life cycle at the bottom of the layers: the one way a status changes.

Every other module (the pages' services, the sync engine, automations) changes a status
through `set_status`, which records who and why and tells the listeners (`signals`).
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from integrations import signals
from integrations.models import Integration, StatusChange

log = logging.getLogger(__name__)
Status = Integration.Status


def set_status(
    integration: Integration,
    new_status: str,
    changed_by: Any = None,
    reason: str = "",
) -> StatusChange | None:
    """Change the status (the only way it changes), record who and why, tell the listeners.

    Setting the status it already has only updates the reason and records nothing.
    """
    if new_status not in Status.values:
        raise ValueError(f"unknown status {new_status!r}")
    user = changed_by if getattr(changed_by, "is_authenticated", False) else None
    with transaction.atomic():
        current = Integration.objects.select_for_update().only("status").get(pk=integration.pk)
        old_status = current.status
        Integration.objects.filter(pk=integration.pk).update(
            status=new_status, status_reason=reason, updated_at=timezone.now()
        )
        change = None
        if old_status != new_status:
            change = StatusChange.objects.create(
                integration=integration,
                from_status=old_status,
                to_status=new_status,
                changed_by=user,
                reason=reason,
            )
    integration.status = new_status
    integration.status_reason = reason
    if change is not None:
        log.info("integration %s: %s -> %s (%s)", integration.pk, old_status, new_status, reason)
        send_signal(
            signals.status_changed,
            integration=integration,
            old_status=old_status,
            new_status=new_status,
            changed_by=user,
        )
    return change


def send_signal(signal, **kwargs: Any) -> None:
    """Tell the listeners; one failing listener is logged and never undoes the change."""
    for receiver, result in signal.send_robust(sender=Integration, **kwargs):
        if isinstance(result, Exception):
            log.error(
                "%s failed on integration %s: %s",
                getattr(receiver, "__qualname__", receiver),
                kwargs["integration"].pk,
                result,
                exc_info=result,
            )
