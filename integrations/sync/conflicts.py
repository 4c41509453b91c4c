"""Source-app-wins merge of one record's values into the other side's record. Pure.

Both dicts are in the receiving side's comparison space (`mapping.py`). The rules:
- a field that is equal on both sides is left alone;
- a field that is empty on the receiving side is filled from the sending side;
- a field filled on both sides with different values is a *conflict*: the chosen source app
  wins it (written when the sending side is the source app, kept otherwise);
- an empty value on the sending side never erases a filled one;
- identity fields (the email that matched the two records) are never rewritten;
- `defaults` (constants of the receiving side) are stamped on a new record and only fill
  empty fields of an existing one (a constant never overwrites what a user entered).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from integrations.sync.mapping import is_empty

SENDING = "sending"
RECEIVING = "receiving"


@dataclass
class Merge:
    # Field -> value to write on the receiving side.
    changes: dict[str, Any] = field(default_factory=dict)
    # Field -> {"old": receiving value, "new": value written} for every change.
    diffs: dict[str, dict] = field(default_factory=dict)
    # Field -> {"receiving": ..., "sending": ..., "winner": "sending"|"receiving"}.
    conflicts: dict[str, dict] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def as_dict(self) -> dict:
        """JSON-able summary (what a SyncEvent or a preview row stores)."""
        data: dict[str, Any] = {}
        if self.diffs:
            data["fields"] = self.diffs
        if self.conflicts:
            data["conflicts"] = self.conflicts
        return data


def merge(
    receiving: Mapping[str, Any],
    sending: Mapping[str, Any],
    *,
    sending_wins: bool,
    defaults: Mapping[str, Any] | None = None,
    identity: Iterable[str] = ("email",),
) -> Merge:
    """What changes on the receiving record when `sending`'s values are merged into it."""
    identity = set(identity)
    result = Merge()
    for key, new in sending.items():
        old = receiving.get(key)
        if is_empty(new) or old == new:
            continue
        if key in identity and not is_empty(old):
            continue
        if is_empty(old):
            _change(result, key, old, new)
            continue
        winner = SENDING if sending_wins else RECEIVING
        result.conflicts[key] = {"receiving": old, "sending": new, "winner": winner}
        if sending_wins:
            _change(result, key, old, new)
    for key, value in (defaults or {}).items():
        if key not in result.changes and is_empty(receiving.get(key)) and not is_empty(value):
            _change(result, key, receiving.get(key), value)
    return result


def _change(result: Merge, key: str, old: Any, new: Any) -> None:
    result.changes[key] = new
    result.diffs[key] = {"old": old, "new": new}


def new_record(sending: Mapping[str, Any], defaults: Mapping[str, Any] | None = None) -> dict:
    """The values of a record created on the receiving side: the sending values, stamped with
    the receiving side's constants."""
    values = {k: v for k, v in sending.items() if not is_empty(v)}
    values.update({k: v for k, v in (defaults or {}).items() if not is_empty(v)})
    return values
