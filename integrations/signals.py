"""Life-cycle signals that connect the settings pages to the sync engine and automations.

Sent through `integrations.lifecycle` (by `services`, `connections` and `steps`); received
by `integrations.sync.receivers` and `automations.receivers`, so the pages never call the
engine directly.
"""

from django.dispatch import Signal

# kwargs: integration, old_status, new_status, changed_by
status_changed = Signal()
# kwargs: integration (its settings were saved; real-time sync restarts on them)
settings_changed = Signal()
# kwargs: integration, provider (a connection is about to be removed)
disconnecting = Signal()
