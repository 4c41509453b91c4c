"""The database settings as production reads them from the environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parent.parent
SHOW = (
    "import django, json; django.setup(); from django.conf import settings; "
    "d = settings.DATABASES['default']; "
    "print(json.dumps([d['ENGINE'], d.get('CONN_MAX_AGE', 0), d.get('CONN_HEALTH_CHECKS')]))"
)


def database_settings(**env: str) -> list:
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "syncbridge.settings", **env}
    answer = subprocess.run(
        [sys.executable, "-c", SHOW],
        cwd=BASE_DIR,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(answer.stdout.strip().splitlines()[-1])


def test_postgresql_connections_are_kept_and_health_checked_by_default():
    engine, max_age, checks = database_settings(DATABASE_URL="postgres://u@db.invalid:5432/x")
    assert engine.endswith("postgresql")
    assert max_age == 600 and checks is True


@pytest.mark.parametrize("value", ["0", "60"])
def test_the_connection_age_can_be_set(value):
    _, max_age, _ = database_settings(
        DATABASE_URL="postgres://u@db.invalid:5432/x", DB_CONN_MAX_AGE=value
    )
    assert max_age == int(value)


def test_sqlite_keeps_one_connection_per_request():
    engine, max_age, _ = database_settings(DATABASE_URL="sqlite:////tmp/any.sqlite3")
    assert engine.endswith("sqlite3") and max_age == 0
