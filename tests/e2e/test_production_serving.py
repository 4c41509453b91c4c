"""The README's "Running in production", followed as written: gunicorn with DEBUG=false and
WhiteNoise, plus a worker, started by `make serve`; a browser logs in and reads a settings page
and its Health card; /healthz answers 200, then 503 naming the worker once the worker stops.

The steps come from the README itself (its env block, its key commands, its first-login
commands), with the two changes its step 4 allows for a trial without a TLS proxy: an http://
PUBLIC_URL on this machine and no SECURE_* lines. The database is a throwaway PostgreSQL
database (or SQLite file) of its own; the installation is the venv running the tests.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
SECTION = README.split("## Running in production", 1)[1].split("\n## ", 1)[0]
PYTHON = sys.executable
BIN = str(Path(sys.executable).parent)
USERNAME, PASSWORD = "ops", "a-long-production-password"

pytestmark = pytest.mark.e2e


def readme_env() -> dict[str, str]:
    block = SECTION.split("<!-- production-env -->", 1)[1].split("```ini", 1)[1]
    lines = block.split("```", 1)[0].strip().splitlines()
    return dict(line.strip().split("=", 1) for line in lines if line.strip())


def readme_command(marker: str) -> str:
    """A `.venv/bin/python -c "..."` command quoted in the section, run with this venv."""
    (command,) = [c for c in re.findall(r"`(\.venv/bin/python -c [^`]+)`", SECTION) if marker in c]
    return command


def readme_first_login() -> list[list[str]]:
    block = SECTION.split("<!-- production-first-login -->", 1)[1].split("```bash", 1)[1]
    commands = [shlex.split(line) for line in block.split("```", 1)[0].strip().splitlines()]
    return commands


def run_readme_python(command: str, env: dict) -> str:
    args = shlex.split(command)
    assert args[0] == ".venv/bin/python"
    return subprocess.run(
        [PYTHON, *args[1:]], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str) -> tuple[int, bytes, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read(), dict(error.headers)
    except OSError:
        return 0, b"", {}


def wait_for(predicate, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.3)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@pytest.fixture
def database_url() -> str:
    """A database of its own: PostgreSQL next to the test database when it is one."""
    base = os.environ.get("DATABASE_URL", "")
    if not base.startswith("postgres"):
        path = ROOT / "test-artifacts" / "production-e2e.sqlite3"
        path.parent.mkdir(exist_ok=True)
        path.unlink(missing_ok=True)
        yield f"sqlite:///{path}"
        path.unlink(missing_ok=True)
        return
    import psycopg

    server, name = base.rsplit("/", 1)
    name = f"{name}_production_e2e"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    yield f"{server}/{name}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def production(database_url, tmp_path):
    """`make serve` in the README's production configuration; yields (base URL, make process)."""
    port = free_port()
    base = f"http://localhost:{port}"
    # The test process's own Django settings must not leak into the installation.
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "DJANGO_SETTINGS_MODULE",
            "SYNCBRIDGE_SANDBOX",
            "DEBUG",
            "REDIS_URL",
            "DJANGO_ALLOW_ASYNC_UNSAFE",
        )
    }
    config = readme_env()
    assert config["DEBUG"] == "false"
    # Step 4's trial without a TLS proxy: an http:// address, no SECURE_* lines.
    config = {k: v for k, v in config.items() if not k.startswith("SECURE_")}
    config.update(
        {
            "PUBLIC_URL": base,
            "ALLOWED_HOSTS": "localhost",
            "CSRF_TRUSTED_ORIGINS": base,
            "DATABASE_URL": database_url,
            "SECRET_KEY": run_readme_python(readme_command("token_urlsafe"), env),
            "FIELD_ENCRYPTION_KEY": run_readme_python(readme_command("Fernet"), env),
            # Kept out of the project folder: other runs may share it.
            "STATIC_ROOT": str(tmp_path / "static"),
            "CLUSTER_STATUS_DIR": str(tmp_path / "cluster-status"),
            "Q_WORKERS": "1",
        }
    )
    env.update(config)
    env.update(
        DJANGO_SUPERUSER_USERNAME=USERNAME,
        DJANGO_SUPERUSER_EMAIL="ops@example.com",
        DJANGO_SUPERUSER_PASSWORD=PASSWORD,
    )
    for command in readme_first_login():
        assert command[0] == ".venv/bin/python"
        extra = ["--noinput"] if command[-1] == "createsuperuser" else []
        subprocess.run(
            [PYTHON, *command[1:], *extra], cwd=ROOT, env=env, check=True, capture_output=True
        )
    # A launched integration to look at (no remote accounts: production has no sandbox).
    subprocess.run(
        [
            PYTHON,
            "manage.py",
            "shell",
            "-c",
            "from django.contrib.auth.models import User; from django.utils import timezone;"
            "from integrations.models import Integration;"
            "Integration.objects.create(owner=User.objects.get(username='ops'),"
            " name='Production check', launched_at=timezone.now())",
        ],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    log = (tmp_path / "serve.log").open("w")
    make = subprocess.Popen(
        ["make", "--no-print-directory", "serve", f"BIND=localhost:{port}", f"BIN={BIN}"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield base, make, tmp_path / "serve.log"
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGTERM)
            try:
                make.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(make.pid, signal.SIGKILL)
                make.wait()
        log.close()


def healthz(base: str) -> tuple[int, dict]:
    status, body, _ = get(f"{base}/healthz")
    return status, (json.loads(body) if body else {})


def test_the_readme_production_recipe_serves_pages_static_files_and_health(production, page: Page):
    base, make, log = production

    def up() -> bool:
        assert make.poll() is None, "make serve stopped:\n" + log.read_text()[-3000:]
        return healthz(base)[0] == 200

    try:
        wait_for(up, 90, "/healthz to answer 200")
    except AssertionError as failed:
        raise AssertionError(f"{failed}\n{log.read_text()[-3000:]}") from None
    status, body = healthz(base)
    assert body["status"] == "ok" and body["checks"]["worker"] == "ok: 1 cluster(s)"

    # Static files from gunicorn itself (WhiteNoise), with DEBUG=false.
    status, css, headers = get(f"{base}/static/syncbridge.css")
    assert status == 200 and b".health-chart" in css
    assert headers["Content-Type"].startswith("text/css")
    serving = [cmdline(pid) for pid in descendants(make.pid)]
    assert any("gunicorn syncbridge.wsgi" in c for c in serving), serving
    assert any("manage.py qcluster" in c for c in serving), serving

    page.goto(f"{base}/")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    page.fill("input[name=username]", USERNAME)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit], input[type=submit]")
    expect(page.get_by_text("Production check").first).to_be_visible()
    page.get_by_text("Production check").first.click()
    expect(page).to_have_url(re.compile(r"/integrations/\d+/settings/$"))
    health = page.locator("#health")
    expect(health).to_be_visible()
    expect(health.locator("#health-waiting")).to_have_text("0")
    expect(health.locator("svg.health-chart")).to_have_count(6)
    expect(health.locator("#health-no-alerts")).to_be_visible()
    # The stylesheet reached the browser (served by WhiteNoise): its chart rule applies.
    max_width = "getComputedStyle(document.querySelector('.health-chart')).maxWidth"
    assert page.evaluate(max_width) == "240px"

    # The worker stops: the web server stays up and /healthz names the worker.
    def is_worker(pid: int) -> bool:
        return cmdline(pid).split()[1:3] == ["manage.py", "qcluster"]

    # The cluster's main process (its children run the same command line).
    (worker,) = [
        pid for pid in descendants(make.pid) if is_worker(pid) and not is_worker(_parent(pid))
    ]
    os.kill(worker, signal.SIGTERM)
    wait_for(lambda: healthz(base)[0] == 503, 30, "/healthz to answer 503")
    status, body = healthz(base)
    assert body["status"] == "failing"
    assert body["failing"] == ["worker"]
    assert "no worker" in body["checks"]["worker"]
    assert body["checks"]["database"] == "ok" and body["checks"]["broker"] == "ok"
    assert make.poll() is None, "the web server must outlive the worker"
    page.reload()
    expect(page.locator("#health")).to_be_visible()


def _parent(pid: int) -> int:
    try:
        stat = (Path("/proc") / str(pid) / "stat").read_text()
    except OSError:
        return 0
    return int(stat.rsplit(")", 1)[1].split()[1])
