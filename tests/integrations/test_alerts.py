"""Alerts: the owner is emailed when work stops, at most once per integration, cause and hour."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from integrations import lifecycle, tasks
from integrations.alerts import raise_alert
from integrations.models import Alert, Integration, PendingChange, SyncRun
from integrations.sync import catchup, realtime
from integrations.sync.runs import create_run
from tests.factories import connected_integration, fast_limits  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_limits")]
Cause = Alert.Cause


@pytest.fixture
def integration(user, sandbox):
    return connected_integration(user, sandbox)


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Alerts are raised once the work's transaction commits: `with committed():` commits."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def test_a_transfer_stopped_by_a_revoked_token_emails_the_owner_both_causes(
    sandbox, integration, user, mailoutbox, committed
):
    run = create_run(integration, SyncRun.Direction.TO_PIPEDRIVE, None)
    sandbox.pipedrive.revoke_all()

    with committed():
        tasks.run_transfer(run.pk)

    run.refresh_from_db()
    integration.refresh_from_db()
    assert run.status == SyncRun.Status.FAILED
    assert integration.status == Integration.Status.FAILED
    causes = sorted(integration.alerts.values_list("cause", flat=True))
    assert causes == [Cause.CONNECTION_FAILED, Cause.TRANSFER_FAILED]
    assert len(mailoutbox) == 2
    assert {tuple(m.to) for m in mailoutbox} == {(user.email,)}
    subjects = sorted(m.subject for m in mailoutbox)
    assert subjects[0].startswith("SyncBridge: Connection failed in ")
    assert subjects[1].startswith("SyncBridge: Transfer failed in ")
    transfer_mail = next(m for m in mailoutbox if "Transfer failed" in m.subject)
    assert f"Transfer #{run.pk}" in transfer_mail.body
    assert reverse("integrations:detail", args=[integration.pk]) in transfer_mail.body


def test_the_same_cause_is_emailed_once_per_hour_and_every_occurrence_is_kept(
    integration, mailoutbox, committed
):
    for _ in range(3):
        with committed():
            lifecycle.set_status(integration, Integration.Status.FAILED, None, "token refused")
            lifecycle.set_status(integration, Integration.Status.ACTIVE, None, "reconnected")

    assert len(mailoutbox) == 1
    alerts = integration.alerts.filter(cause=Cause.CONNECTION_FAILED)
    assert alerts.count() == 3
    assert alerts.exclude(emailed_to="").count() == 1


def test_after_an_hour_the_same_cause_is_emailed_again(integration, mailoutbox):
    raise_alert(integration.pk, Cause.CONNECTION_FAILED, "token refused")
    integration.alerts.update(at=timezone.now() - timedelta(minutes=59))
    raise_alert(integration.pk, Cause.CONNECTION_FAILED, "token refused")
    assert len(mailoutbox) == 1

    integration.alerts.update(at=timezone.now() - timedelta(minutes=61))
    raise_alert(integration.pk, Cause.CONNECTION_FAILED, "token refused")

    assert len(mailoutbox) == 2


def test_different_causes_and_different_integrations_are_emailed_separately(
    user, sandbox, integration, mailoutbox
):
    second = connected_integration(user, sandbox)

    raise_alert(integration.pk, Cause.CONNECTION_FAILED, "a")
    raise_alert(integration.pk, Cause.TRANSFER_FAILED, "b")
    raise_alert(second.pk, Cause.CONNECTION_FAILED, "c")
    raise_alert(second.pk, Cause.CONNECTION_FAILED, "d")

    assert len(mailoutbox) == 3


def test_a_record_that_failed_three_times_is_emailed_once(
    user, empty_sandbox, mailoutbox, committed
):
    box = empty_sandbox
    box.snovio.create_list("Leads")
    integration = connected_integration(user, box, catalog=False)
    realtime.drain(integration.pk)  # the baseline
    box.snovio.add_prospect("Leads", email="late@new.example", first_name="Late", last_name="One")
    box.inject("pipedrive", "503", count=1000, path=r"^/api/v2/persons$", method="POST")
    catchup.catch_up(Integration.objects.get(pk=integration.pk))

    for attempt in (1, 2, 3):  # each drain tries the create until its retries run out
        with committed():
            realtime.drain(integration.pk)
        if attempt < 3:
            assert mailoutbox == [] and not integration.alerts.exists()

    (alert,) = integration.alerts.all()
    assert alert.cause == Cause.RECORD_FAILED
    assert "failed 3 times" in alert.message and "503" in alert.message
    (mail,) = mailoutbox
    assert mail.subject.startswith("SyncBridge: A record failed three times in ")


def test_waiting_for_a_rate_limit_or_a_preview_failing_raises_no_alert(
    integration, mailoutbox, committed
):
    change = PendingChange.objects.create(
        integration=integration, source="pipedrive", kind="person.change", dedupe_key="d2"
    )
    change.attempts = 3
    change.last_error_kind = PendingChange.ErrorKind.RATE_LIMIT
    preview = create_run(integration, SyncRun.Direction.TO_PIPEDRIVE, None, dry_run=True)
    preview.status = SyncRun.Status.FAILED
    with committed():
        change.save(update_fields=["attempts", "last_error_kind"])
        preview.save(update_fields=["status"])

    assert not integration.alerts.exists()
    assert mailoutbox == []


def test_an_owner_without_an_email_address_still_sees_the_alert(user, integration, mailoutbox):
    user.email = ""
    user.save()

    alert = raise_alert(integration.pk, Cause.TRANSFER_FAILED, "Transfer #1 stopped")

    assert alert.emailed_to == "" and mailoutbox == []
    assert integration.alerts.count() == 1


def test_a_mail_server_that_is_down_does_not_break_the_work(integration, settings, mailoutbox):
    settings.EMAIL_BACKEND = "tests.integrations.test_alerts.BrokenBackend"

    alert = raise_alert(integration.pk, Cause.TRANSFER_FAILED, "Transfer #1 stopped")

    alert.refresh_from_db()
    assert alert.emailed_to == ""  # not sent: the next occurrence tries again


class BrokenBackend:
    def __init__(self, *args, **kwargs):
        pass

    def send_messages(self, messages):
        raise ConnectionRefusedError("smtp.example.com:25")


def test_the_settings_page_shows_the_alerts(user, integration, mailoutbox):
    raise_alert(integration.pk, Cause.TRANSFER_FAILED, "Transfer #7 stopped: Pipedrive said no")
    client = Client()
    client.force_login(user)

    page = client.get(reverse("integrations:settings", args=[integration.pk]))

    html = page.content.decode()
    assert "Transfer failed" in html
    assert "Transfer #7 stopped: Pipedrive said no" in html
    assert f"emailed to {user.email}" in html
