"""The documented production settings pass `check --deploy`; unsafe ones refuse to start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]

# The environment the README's "Running in production" section tells an operator to set.
PRODUCTION_ENV = {
    "DEBUG": "false",
    "SYNCBRIDGE_SANDBOX": "false",
    "SECRET_KEY": "".join(chr(33 + (i * 7) % 90) for i in range(60)),
    "FIELD_ENCRYPTION_KEY": Fernet.generate_key().decode(),
    "ALLOWED_HOSTS": "sync.example.com",
    "PUBLIC_URL": "https://sync.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://sync.example.com",
    "SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO,https",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
    "SECURE_HSTS_PRELOAD": "true",
}


def _manage(*args: str, **overrides: str) -> subprocess.CompletedProcess:
    # The test session's own switches (the browser tests set DJANGO_ALLOW_ASYNC_UNSAFE, which
    # `check --deploy` rightly refuses) are not part of a production environment.
    session_only = {"DJANGO_ALLOW_ASYNC_UNSAFE", "DJANGO_SETTINGS_MODULE", "REDIS_URL"}
    env = {k: v for k, v in os.environ.items() if k not in session_only}
    env.update(PRODUCTION_ENV)
    env["DJANGO_SETTINGS_MODULE"] = "syncbridge.settings"
    env.update(overrides)
    env = {k: v for k, v in env.items() if v is not None}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_documented_production_settings_pass_check_deploy_without_warnings():
    result = _manage("check", "--deploy", "--fail-level", "WARNING")

    assert result.returncode == 0, result.stderr + result.stdout
    assert "no issues" in result.stdout


def test_debug_off_without_an_encryption_key_refuses_to_start():
    result = _manage("check", FIELD_ENCRYPTION_KEY="")

    assert result.returncode != 0
    assert "FIELD_ENCRYPTION_KEY is required when DEBUG is false" in result.stderr


def test_an_encryption_key_that_is_not_a_fernet_key_refuses_to_start():
    result = _manage("check", FIELD_ENCRYPTION_KEY="not-a-key")

    assert result.returncode != 0
    assert "FIELD_ENCRYPTION_KEY is not a Fernet key" in result.stderr


def test_debug_mode_may_run_without_a_key():
    result = _manage("check", FIELD_ENCRYPTION_KEY="", DEBUG="true")

    assert result.returncode == 0, result.stderr


def test_https_public_url_makes_cookies_secure_and_redirects_plain_http():
    probe = (
        "from django.conf import settings as s;"
        "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_SSL_REDIRECT,"
        " s.SECURE_PROXY_SSL_HEADER, s.SECURE_HSTS_SECONDS)"
    )
    result = _manage("shell", "--verbosity", "0", "-c", probe)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "True",
        "True",
        "True",
        "('HTTP_X_FORWARDED_PROTO',",
        "'https')",
        "31536000",
    ]
