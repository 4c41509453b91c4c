"""Browser tests: headless Debian Chromium against Django's live server and the sandbox over HTTP.

Chromium must be there: a missing browser fails the run, it never skips it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# Playwright's sync API leaves an asyncio loop registered in the main thread from its first
# browser test to the end of the session, and Django then refuses every ORM call in that thread
# (SynchronousOnlyOperation). So this is set when the browser tests are collected, for the rest
# of that session; a run without them (`pytest tests/integrations`) keeps Django's check.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"Chromium is missing at {CHROMIUM}: install Debian's `chromium` package "
            "(`make browser`). Browser tests never skip."
        )
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "headless": True,
        "args": CHROMIUM_ARGS,
    }


@pytest.fixture
def sandbox_server(settings, live_server) -> Iterator:
    """The seeded sandbox as a real HTTP server on a free port, with the app pointed at it."""
    from integrations.sandbox.core import Sandbox, remote_settings
    from integrations.sandbox.server import serve_in_thread

    # Strict: every Pipedrive request the app sends over HTTP is checked against the spec too.
    def build(url: str) -> Sandbox:
        return Sandbox(public_url=url, seed=True, settings={"strict_spec": True})

    with serve_in_thread(build) as sandbox:
        for name, value in remote_settings(sandbox.url).items():
            setattr(settings, name, value)
        settings.PIPEDRIVE_REDIRECT_URI = f"{live_server.url}/connect/pipedrive/callback/"
        settings.PUBLIC_URL = live_server.url
        settings.HTTP_BACKOFF = 0.01
        settings.HTTP_MAX_WAIT = 5
        yield sandbox
