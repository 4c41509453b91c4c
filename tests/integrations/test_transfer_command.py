"""`manage.py transfer`: the same service, a progress bar, one summary line, clear errors."""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from integrations.models import Integration, SyncRun
from tests.factories import connected_integration, fast_limits  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_limits")]

SUMMARY = re.compile(
    r"^created=\d+ updated=\d+ unchanged=\d+ conflicts=\d+ skipped=\d+ failed=\d+$"
)


def run_command(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("transfer", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_the_command_runs_the_transfer_and_ends_with_one_summary_line(user, sandbox):
    integration = connected_integration(user, sandbox)
    out, err = run_command(str(integration.pk), "--direction", "to-pipedrive")

    lines = out.strip().splitlines()
    assert len(lines) == 1 and SUMMARY.match(lines[0])
    # 18 of the 37 contacts in both apps differ only by phone, which Snov.io's API never
    # returns (docs/specs/snovio-shapes.md): nothing to compare, so unchanged.
    assert lines[0] == "created=103 updated=19 unchanged=18 conflicts=19 skipped=10 failed=0"
    assert "[##############################] 150/150" in err  # the progress bar, on stderr
    integration.refresh_from_db()
    assert integration.status == Integration.Status.ACTIVE


def test_a_dry_run_from_the_command_writes_nothing(user, sandbox):
    integration = connected_integration(user, sandbox)
    persons_before = len(sandbox.pipedrive.persons())
    out, _ = run_command(
        str(integration.pk), "--direction", "to-snovio", "--source", "snovio", "--dry-run"
    )
    assert SUMMARY.match(out.strip())
    assert out.strip().startswith("created=63 ")
    assert len(sandbox.pipedrive.persons()) == persons_before
    assert SyncRun.objects.get().dry_run is True
    assert not any(path.endswith("add-prospect-to-list") for _, _, path in sandbox.request_log)


def test_an_unknown_integration_is_a_clear_error(db):
    with pytest.raises(CommandError, match="No integration with id 999"):
        run_command("999", "--direction", "to-pipedrive")


def test_an_integration_without_both_connections_is_a_clear_error(user):
    integration = Integration.objects.create(owner=user)
    with pytest.raises(CommandError, match="not connected to pipedrive and snovio"):
        run_command(str(integration.pk), "--direction", "to-snovio")


@pytest.mark.parametrize(
    "args",
    [
        ["1", "--direction", "sideways"],
        ["1"],
        ["1", "--direction", "to-pipedrive", "--source", "excel"],
        ["one", "--direction", "to-pipedrive"],
    ],
)
def test_bad_arguments_end_with_an_error_line_and_a_non_zero_exit(args, capsys):
    from django.core.management import ManagementUtility

    with pytest.raises(SystemExit) as exit_info:
        ManagementUtility(["manage.py", "transfer", *args]).execute()
    assert exit_info.value.code != 0
    assert "error:" in capsys.readouterr().err


@pytest.mark.parametrize("status", [Integration.Status.PAUSED, Integration.Status.FAILED])
def test_an_integration_that_is_not_active_is_not_transferred(user, sandbox, status):
    """Like the Transfer page: a paused (or failed) integration writes nothing."""
    integration = connected_integration(user, sandbox, status=status)
    persons_before = len(sandbox.pipedrive.persons())
    with pytest.raises(CommandError, match="only while the integration is Active"):
        run_command(str(integration.pk), "--direction", "to-pipedrive")
    assert len(sandbox.pipedrive.persons()) == persons_before
    assert not SyncRun.objects.exists()
    integration.refresh_from_db()
    assert integration.status == status


def test_a_direction_the_integration_does_not_send_is_refused(user, sandbox):
    """A Snov.io → Pipedrive only integration never writes to Snov.io, not even from the CLI."""
    integration = connected_integration(user, sandbox, direction=Integration.Direction.TO_PIPEDRIVE)
    with pytest.raises(CommandError, match="does not send data to Snov.io"):
        run_command(str(integration.pk), "--direction", "to-snovio")
    assert not SyncRun.objects.exists()
    assert not any(path.endswith("add-prospect-to-list") for _, _, path in sandbox.request_log)


@pytest.mark.parametrize(
    "args",
    [
        ["1", "--direction", "to_pipedrive"],
        ["-5", "--direction", "to-pipedrive"],
        ["1", "--direction", "to-pipedrive", "--source", ""],
    ],
)
def test_other_spellings_end_with_one_error_line(args, capsys):
    from django.core.management import ManagementUtility

    with pytest.raises(SystemExit) as exit_info:
        ManagementUtility(["manage.py", "transfer", *args]).execute()
    assert exit_info.value.code != 0
    err = capsys.readouterr().err
    assert "error:" in err.lower() and "Traceback" not in err


def test_a_paused_integration_from_the_shell_is_one_error_line(user, sandbox, capsys):
    from django.core.management import ManagementUtility

    integration = connected_integration(user, sandbox, status=Integration.Status.PAUSED)
    with pytest.raises(SystemExit) as exit_info:
        ManagementUtility(
            ["manage.py", "transfer", str(integration.pk), "--direction", "to-pipedrive"]
        ).execute()
    assert exit_info.value.code != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("CommandError:"), err
