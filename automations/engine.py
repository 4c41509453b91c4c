"""The automation engine: Snov.io campaign events in, Pipedrive deals, stages and activities out.

Two entry points, both thin enough to be called from a webhook, a task or a test:

- `receive_event(integration, payload)` stores one delivery as an `AutomationRun` keyed by a
  dedupe `event_key` (a duplicate delivery returns the existing run and runs nothing), then
  enqueues it when the integration is Active, or holds it (status pending) while it is Paused,
  Syncing or Connection failed. `release_held(integration)` enqueues the held runs, oldest
  first, when the integration is Active again (`automations.receivers`).
- `run_automations(run)` performs the trigger's enabled actions in order through
  `PipedriveClient` and records one `ActionOutcome` per action: done (with the Pipedrive
  objects created or moved), skipped with the reason (no active deal, already at the last
  stage, ...) or failed (a remote error after the HTTP layer's retries).
- `run_batch(run_id)` (the task) performs a run's contact and other due contacts side by side.

The work is split by job, each module importing only the ones below it:

    queue.py    receiving, holding, leases, running a contact's runs in order
    actions.py  the four actions and their idempotent outcomes
    lookups.py  the Pipedrive person, stages, the active deal, the Snov.io prospect
    events.py   reading a campaign event and its dedupe key
"""

from __future__ import annotations

from automations.queue import (
    receive_event,
    receive_event_once,
    release_held,
    run_automations,
    run_batch,
)

__all__ = ["receive_event", "receive_event_once", "release_held", "run_automations", "run_batch"]
