"""django-q2 task entry points: thin wrappers around the engine."""

from __future__ import annotations

from automations import engine
from automations.models import AutomationRun


def run_contact_queue(run_id: int) -> str:
    """Run an automation run (and its contact's later runs, in order), and other due contacts
    of the integration alongside it (`queue.run_batch`)."""
    try:
        run = engine.run_batch(run_id)
    except AutomationRun.DoesNotExist:
        return f"run {run_id} no longer exists"
    return f"run {run.pk}: {run.status}"
