"""Alerts: the owner of an integration hears about work that stopped, by email and on its page.

Three causes raise one: the integration goes to Connection failed, a transfer fails, a record
(a change waiting to be applied) has failed three times. Every occurrence is recorded (the
settings page's Health card lists them); an email goes out for the first one of a cause, then
at most once per `ALERT_EMAIL_INTERVAL_MINUTES` (60) per integration and cause, so a broken
connection tried every five minutes does not flood the inbox.

Listeners: `lifecycle`'s status signal and the saves of `SyncRun` and `PendingChange`. They
run after the caller's transaction commits, so an alert is never sent for work rolled back,
and the integration row lock that serialises the once-per-hour decision is never taken inside
another module's transaction.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver
from django.urls import reverse
from django.utils import timezone

from integrations import signals
from integrations.models import Alert, Integration, PendingChange, SyncRun

log = logging.getLogger(__name__)
Cause = Alert.Cause

# A change that failed this many times is reported (as the real-time engine gives up on it).
RECORD_FAILURES = 3


def raise_alert(integration_id: int, cause: str, message: str) -> Alert | None:
    """Record the alert; email the owner unless this cause was emailed within the interval."""
    interval = timedelta(minutes=settings.ALERT_EMAIL_INTERVAL_MINUTES)
    with transaction.atomic():
        integration = (
            Integration.objects.select_for_update()
            .select_related("owner")
            .filter(pk=integration_id)
            .first()
        )
        if integration is None:  # deleted meanwhile
            return None
        now = timezone.now()
        emailed_recently = (
            integration.alerts.filter(cause=cause, at__gt=now - interval)
            .exclude(emailed_to="")
            .exists()
        )
        address = integration.owner.email
        alert = Alert.objects.create(
            integration=integration,
            cause=cause,
            message=message[:2000],
            at=now,
            emailed_to="" if emailed_recently or not address else address,
        )
    if alert.emailed_to:
        _send(integration, alert)
    return alert


def _send(integration: Integration, alert: Alert) -> None:
    page = settings.PUBLIC_URL + reverse("integrations:detail", args=[integration.pk])
    subject = f"SyncBridge: {alert.get_cause_display()} in {integration.name}"
    body = (
        f"{alert.get_cause_display()} in the integration {integration.name!r}.\n\n"
        f"{alert.message}\n\n"
        f"Open the integration: {page}\n\n"
        "You get at most one email per hour for the same problem; "
        "the integration's Health card lists every occurrence."
    )
    try:
        send_mail(subject, body, None, [alert.emailed_to])
    except Exception:  # an unreachable mail server must not stop the sync that raised it
        log.exception("alert email for integration %s could not be sent", integration.pk)
        Alert.objects.filter(pk=alert.pk).update(emailed_to="")


def recent(integration: Integration, limit: int = 5) -> list[Alert]:
    return list(integration.alerts.all()[:limit])


def _later(integration_id: int, cause: str, message: str) -> None:
    transaction.on_commit(lambda: raise_alert(integration_id, cause, message), robust=True)


@receiver(signals.status_changed, dispatch_uid="alerts.status_changed")
def on_status_changed(sender, integration, new_status, **kwargs) -> None:
    if new_status == Integration.Status.FAILED:
        reason = integration.status_reason or "A connection to Pipedrive or Snov.io failed."
        _later(integration.pk, Cause.CONNECTION_FAILED, reason)


@receiver(post_save, sender=SyncRun, dispatch_uid="alerts.run_saved")
def on_run_saved(sender, instance: SyncRun, update_fields=None, **kwargs) -> None:
    if instance.dry_run or instance.status != SyncRun.Status.FAILED:
        return
    if update_fields is not None and "status" not in update_fields:
        return  # the run failed earlier; this save is about something else
    if (instance.checkpoint or {}).get("rate_limited"):
        return  # stopped at a rate limit: it resumes on its own when the limit resets
    _later(
        instance.integration_id,
        Cause.TRANSFER_FAILED,
        f"Transfer #{instance.pk} ({instance.get_direction_display()}) stopped: {instance.error}",
    )


@receiver(post_save, sender=PendingChange, dispatch_uid="alerts.change_saved")
def on_change_saved(sender, instance: PendingChange, update_fields=None, **kwargs) -> None:
    if instance.attempts != RECORD_FAILURES or not instance.last_error_kind:
        return
    if instance.last_error_kind == PendingChange.ErrorKind.RATE_LIMIT:
        return  # waiting for a rate limit is not a failure of the record
    if update_fields is not None and "attempts" not in update_fields:
        return
    record = instance.record_key or f"change #{instance.pk}"
    _later(
        instance.integration_id,
        Cause.RECORD_FAILED,
        f"The change to {record} failed {instance.attempts} times: {instance.outcome}",
    )
