"""`manage.py integrations`, `pause`, `resume`, `refresh`, and what every command shares:
one `CommandError:` line for a mistake, no worker log lines, the demo's sandbox when one runs."""

from __future__ import annotations

import io
import logging
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import ManagementUtility, call_command
from django.core.management.base import CommandError
from django.utils import timezone

from integrations.models import Integration, PendingChange, SyncRun
from syncbridge import demo_env
from tests.factories import connected_integration, fast_limits, legacy_connection  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_limits")]


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def shell(*args: str, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        ManagementUtility(["manage.py", *args]).execute()
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


# --- integrations ---------------------------------------------------------------------------


def test_the_list_shows_each_integration_with_status_and_queue(user, other_user, sandbox):
    mine = connected_integration(user, sandbox)
    theirs = connected_integration(other_user, sandbox, status=Integration.Status.PAUSED)
    for n in range(3):
        PendingChange.objects.create(
            integration=mine, source="pipedrive", kind="person", dedupe_key=f"k{n}", payload={}
        )
    SyncRun.objects.create(
        integration=mine, direction="to_pipedrive", source_app="snovio", status="done"
    )

    out, _ = run("integrations")
    lines = out.splitlines()

    assert lines[0].split()[:4] == ["ID", "NAME", "OWNER", "STATUS"]
    row = next(line for line in lines if line.startswith(f"{mine.pk} "))
    assert "Active" in row and " 3 " in row and "Done" in row
    assert timezone.now().strftime("%Y-%m-%d") in row  # the oldest change waiting
    other = next(line for line in lines if line.startswith(f"{theirs.pk} "))
    assert "Paused" in other and other_user.username in other

    only_paused, _ = run("integrations", "--status", "paused")
    assert [line.split()[0] for line in only_paused.splitlines()[1:]] == [str(theirs.pk)]
    only_mine, _ = run("integrations", "--owner", user.username)
    assert [line.split()[0] for line in only_mine.splitlines()[1:]] == [str(mine.pk)]


def test_the_list_shows_a_legacy_token_connection_as_paused(user, sandbox):
    integration = connected_integration(user, sandbox)
    integration.pipedrive = legacy_connection(user)
    integration.save()
    out, _ = run("integrations")
    row = next(line for line in out.splitlines() if line.startswith(f"{integration.pk} "))
    assert "Paused" in row and "Active" not in row


def test_the_list_says_when_there_are_none(db):
    assert run("integrations")[0].strip() == "No integrations."


# --- pause / resume / refresh ---------------------------------------------------------------


def test_pause_and_resume_go_through_the_services(user, sandbox):
    integration = connected_integration(user, sandbox)

    paused, _ = run("pause", str(integration.pk))
    integration.refresh_from_db()
    assert integration.status == Integration.Status.PAUSED
    assert paused.strip().startswith(f"Integration {integration.pk} is Paused")
    assert integration.status_changes.first().reason == "Paused from the command line"
    assert "already Paused" in run("pause", str(integration.pk))[0]

    resumed, _ = run("resume", str(integration.pk))
    integration.refresh_from_db()
    assert integration.status == Integration.Status.ACTIVE
    assert "is Active" in resumed
    assert "already Active" in run("resume", str(integration.pk))[0]


def one_line_error(*args: str) -> str:
    """The message of the CommandError (Django prints it as one `CommandError: ...` line)."""
    with pytest.raises(CommandError) as error:
        run(*args)
    message = str(error.value)
    assert "\n" not in message
    return message


def test_resume_with_broken_settings_is_one_error_line_with_the_fix(user, sandbox):
    integration = connected_integration(user, sandbox, status=Integration.Status.PAUSED)
    integration.target_list_id = "no-such-list"
    integration.save()
    message = one_line_error("resume", str(integration.pk))
    assert message.startswith(f"Integration {integration.pk} could not resume:")
    assert "Choose another sync-to list" in message  # the fix
    integration.refresh_from_db()
    assert integration.status == Integration.Status.FAILED


def test_a_legacy_token_integration_does_not_resume(user, sandbox):
    integration = connected_integration(user, sandbox, status=Integration.Status.PAUSED)
    integration.pipedrive = legacy_connection(user)
    integration.save()
    assert "legacy API token" in one_line_error("resume", str(integration.pk))
    integration.refresh_from_db()
    assert integration.status == Integration.Status.PAUSED


def test_refresh_reloads_the_catalogue(user, sandbox):
    integration = connected_integration(user, sandbox)
    out, _ = run("refresh", str(integration.pk))
    assert out.startswith(f"Integration {integration.pk}: ")
    assert "Nothing changed since the last refresh." in out


def test_refresh_that_cannot_reach_an_app_is_one_error_line(user, sandbox):
    integration = connected_integration(user, sandbox)
    sandbox.inject("pipedrive", "500", count=100)
    assert "Pipedrive" in one_line_error("refresh", str(integration.pk))


@pytest.mark.parametrize("command", ["pause", "resume", "refresh", "transfer"])
def test_an_unknown_integration_is_one_error_line(command, db, capsys):
    extra = ["--direction", "to-pipedrive"] if command == "transfer" else []
    code, out, err = shell(command, "999", *extra, capsys=capsys)
    lines = err.strip().splitlines()
    assert code == 1 and lines == [
        "CommandError: No integration with id 999. `manage.py integrations` lists them."
    ]


# --- transfer: quiet, one progress line, previews while Paused -------------------------------


def test_a_preview_runs_while_paused_and_a_transfer_does_not(user, sandbox):
    integration = connected_integration(user, sandbox, status=Integration.Status.PAUSED)
    persons_before = len(sandbox.pipedrive.persons())
    out, err = run("transfer", str(integration.pk), "--direction", "to-pipedrive", "--dry-run")
    assert out.startswith("created=")
    assert len(sandbox.pipedrive.persons()) == persons_before
    integration.refresh_from_db()
    assert integration.status == Integration.Status.PAUSED
    with pytest.raises(CommandError, match="only while the integration is Active"):
        run("transfer", str(integration.pk), "--direction", "to-pipedrive")


def test_the_transfer_prints_one_progress_line_and_no_worker_logs(user, sandbox, caplog):
    integration = connected_integration(user, sandbox)
    caplog.set_level(logging.INFO)
    out, err = run("transfer", str(integration.pk), "--direction", "to-pipedrive")
    progress = [line for line in err.splitlines() if line.startswith("[")]
    assert progress == ["[##############################] 150/150"]
    assert len(out.strip().splitlines()) == 1
    assert not [r for r in caplog.records if r.name == "django-q" and r.levelno < logging.WARNING]


# --- the demo's settings reach every command in its folder -----------------------------------


def _settings_seen_by_manage_py(env_file: Path, **extra: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_URL")}
    env.update(SYNCBRIDGE_DEMO_ENV=str(env_file), DJANGO_SETTINGS_MODULE="syncbridge.settings")
    env.update(extra)
    code = "from django.conf import settings; print(settings.SNOVIO_API_URL)"
    done = subprocess.run(
        [sys.executable, str(settings.BASE_DIR / "manage.py"), "shell", "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_manage_py_reads_the_settings_of_a_running_demo(tmp_path):
    env_file = tmp_path / "demo.env"
    demo_env.write(env_file, {"SNOVIO_API_URL": "http://127.0.0.1:8765/snovio"}, os.getpid())
    assert _settings_seen_by_manage_py(env_file) == "http://127.0.0.1:8765/snovio"
    # A variable set in the environment wins over the demo's file.
    explicit = _settings_seen_by_manage_py(env_file, SNOVIO_API_URL="http://elsewhere/snovio")
    assert explicit == "http://elsewhere/snovio"


def test_the_file_of_a_demo_that_was_killed_is_ignored(tmp_path):
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    env_file = tmp_path / "demo.env"
    demo_env.write(
        env_file, {"SNOVIO_API_URL": "http://127.0.0.1:8765/snovio"}, int(finished.stdout)
    )
    assert demo_env.read(env_file) == {}
    assert _settings_seen_by_manage_py(env_file) == "https://api.snov.io"


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_demo_writes_its_settings_while_it_runs_and_removes_them_when_it_stops(tmp_path):
    import signal
    import time

    env_file = tmp_path / "demo.env"
    web, box = _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_URL")}
    env.update(
        SYNCBRIDGE_DEMO_ENV=str(env_file),
        DJANGO_SETTINGS_MODULE="syncbridge.settings",
        SYNCBRIDGE_SANDBOX="true",
        DATABASE_URL=f"sqlite:///{tmp_path / 'demo.sqlite3'}",
        SANDBOX_STATE_FILE=str(tmp_path / "sandbox.json"),
        Q_WORKERS="1",
    )
    demo = subprocess.Popen(
        [
            sys.executable,
            str(settings.BASE_DIR / "manage.py"),
            "demo",
            "--web-port",
            str(web),
            "--sandbox-port",
            str(box),
            "--legacy-example",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while not env_file.exists() and demo.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        shared = demo_env.read(env_file)
        assert shared["SNOVIO_API_URL"] == f"http://127.0.0.1:{box}/snovio"
        assert shared["PIPEDRIVE_API_URL"] == f"http://127.0.0.1:{box}/pipedrive"
        assert shared["SYNCBRIDGE_SANDBOX"] == "true"
    finally:
        demo.send_signal(signal.SIGINT)
        output, _ = demo.communicate(timeout=60)
    assert not env_file.exists(), output
    with sqlite3.connect(tmp_path / "demo.sqlite3") as db:
        rows = db.execute("SELECT name, status FROM integrations_integration").fetchall()
    assert rows == [("Legacy API-token example", "paused")]
