"""Recognising the echo of our own writes, so two-way sync converges and never ping-pongs.

Each RecordLink keeps, per side, a fingerprint of that side's mapped values as they were the
last time both sides were in sync (after SyncBridge wrote them, or after it propagated them).
A change whose values hash to the stored fingerprint is the echo of our own write (or a change
of fields SyncBridge does not map): it changes nothing and sends nothing back.

The fingerprint is stored *before* the remote write: a webhook can arrive before the write
call returns.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from integrations.sync import mapping

# Derived by Pipedrive from `name`; its own split may differ from Snov.io's parts.
_PIPEDRIVE_DERIVED = frozenset(mapping.PIPEDRIVE_NAME_PARTS)


def fingerprint(values: Mapping[str, Any], skip: frozenset[str] = frozenset()) -> str:
    """A stable hash of comparison-space values (empty values ignored)."""
    data = {k: v for k, v in sorted(values.items()) if k not in skip and not mapping.is_empty(v)}
    blob = json.dumps(data, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def pipedrive_fingerprint(values: Mapping[str, Any]) -> str:
    """Fingerprint of a person's mapped values (Pipedrive comparison space)."""
    return fingerprint(values, _PIPEDRIVE_DERIVED)


def snovio_fingerprint(values: Mapping[str, Any]) -> str:
    """Fingerprint of a prospect's mapped values (Snov.io comparison space)."""
    return fingerprint(values)


def person_fingerprint(person: Mapping, spec: mapping.MappingSpec) -> str:
    return pipedrive_fingerprint(mapping.pipedrive_values(person, spec))


def prospect_fingerprint(prospect: Mapping, spec: mapping.MappingSpec) -> str:
    return snovio_fingerprint(mapping.snovio_values(prospect, spec))


def after_write(current: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """The mapped values a side will hold once `changes` are written over `current`.

    `current` holds every mapped field of that side (None for a record being created);
    changes to unmapped fields (constants) do not take part in the fingerprint.
    """
    return {key: changes.get(key, value) for key, value in current.items()}


def is_echo(link, side: str, values: Mapping[str, Any]) -> bool:
    """True when `values` are exactly what the link last recorded for `side`."""
    if link is None:
        return False
    if side == "pipedrive":
        return bool(link.pipedrive_fingerprint) and (
            link.pipedrive_fingerprint == pipedrive_fingerprint(values)
        )
    return bool(link.snovio_fingerprint) and link.snovio_fingerprint == snovio_fingerprint(values)
