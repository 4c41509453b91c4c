"""What the SyncBridge management commands share: finding the integration, quiet worker logs.

Errors are `CommandError`s, which Django prints as one `CommandError: ...` line (exit code 1).
"""

from __future__ import annotations

import logging

from django.core.management.base import CommandError

from integrations.models import Integration
from integrations.problems import Problem

QUIET_LOGGERS = ("django-q", "integrations", "automations")


def quiet_worker_logs() -> None:
    """The task queue logs each enqueued task at INFO ("Enqueued [syncbridge] 108"), the engine
    each status change: noise in a command's output, which says what happened in its own words.
    Warnings and errors still show."""
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def integration_or_error(pk: int) -> Integration:
    integration = (
        Integration.objects.select_related("pipedrive", "snovio", "owner").filter(pk=pk).first()
    )
    if integration is None:
        raise CommandError(f"No integration with id {pk}. `manage.py integrations` lists them.")
    return integration


def problems_line(problems: list[Problem]) -> str:
    """Each problem with its fix, on one line."""
    return " ".join(f"{p.message} {p.fix}".strip() for p in problems)
