"""The connected accounts' catalogue: lists, fields, users, pipelines and stages.

`refresh_catalog()` reloads it from both remotes through the clients, stores it in
`RemoteCatalog` and reports what changed. Everything else reads the stored copy through
`Catalog`, so rendering a page never calls a remote.

Stored items are normalised:
- Snov.io lists: `{id, name, contacts}` (deleted lists dropped)
- Snov.io fields: `{key, name, type, custom}` (the standard fields of `fieldspec` included)
- Pipedrive person fields: `{key, name, type, field_type, custom, options: [{id, label}]}`
- Pipedrive users: `{id, name, email, active}`
- Pipedrive pipelines: `{id, name}`; stages: `{id, name, pipeline_id, order_nr}`
`type` is a canonical `fieldspec` data type; ids are strings for lists, ints for the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from integrations import fieldspec
from integrations.clients import client_for  # also imported from here by services, receivers
from integrations.http import RemoteError
from integrations.models import (
    Connection,
    ConstantField,
    FieldMapping,
    Integration,
    ListSelection,
    Provider,
    RemoteCatalog,
)

log = logging.getLogger(__name__)

Kind = RemoteCatalog.Kind

SNOVIO_KINDS = (Kind.SNOVIO_LISTS, Kind.SNOVIO_FIELDS)
PIPEDRIVE_KINDS = (
    Kind.PIPEDRIVE_FIELDS,
    Kind.PIPEDRIVE_USERS,
    Kind.PIPEDRIVE_PIPELINES,
    Kind.PIPEDRIVE_STAGES,
)
KINDS_BY_PROVIDER = {Provider.SNOVIO: SNOVIO_KINDS, Provider.PIPEDRIVE: PIPEDRIVE_KINDS}
FIELD_KINDS = (Kind.SNOVIO_FIELDS, Kind.PIPEDRIVE_FIELDS)


def identity(kind: str, item: dict) -> str:
    """The stable identity of a catalogue item: fields by key, everything else by id."""
    return str(item.get("key") if kind in FIELD_KINDS else item.get("id"))


# --- normalisation --------------------------------------------------------------------------


def _snovio_lists(raw: Iterable[dict]) -> list[dict]:
    items = []
    for entry in raw:
        if entry.get("isDeleted"):
            continue
        list_id = str(entry.get("id", ""))
        if not list_id:
            continue
        items.append(
            {
                "id": list_id,
                "name": entry.get("name") or f"List {list_id}",
                "contacts": entry.get("contacts") or 0,
            }
        )
    return items


def _snovio_fields(raw: Iterable[dict]) -> list[dict]:
    items = [
        {"key": f.key, "name": f.label, "type": f.data_type, "custom": False}
        for f in fieldspec.SNOVIO_STANDARD_FIELDS
    ]
    for entry in raw:
        # Prospects carry custom values keyed by the field's label, so the label is its identity.
        label = (
            entry.get("label")
            or entry.get("name")
            or fieldspec.snovio_custom_name(entry.get("key") or "")
        )
        if not label:
            continue
        items.append(
            {
                "key": fieldspec.snovio_custom_key(label),
                "name": label,
                "type": fieldspec.snovio_data_type(entry.get("type")),
                "custom": True,
            }
        )
    return items


def _pipedrive_fields(raw: Iterable[dict]) -> list[dict]:
    items = []
    for entry in raw:
        key = entry.get("key")
        if not key:
            continue
        items.append(
            {
                "key": key,
                "name": entry.get("name") or key,
                "type": fieldspec.pipedrive_data_type(entry.get("field_type")),
                "field_type": entry.get("field_type") or "",
                "custom": fieldspec.is_pipedrive_custom_key(key),
                "options": [
                    {"id": o.get("id"), "label": str(o.get("label", ""))}
                    for o in (entry.get("options") or [])
                    if isinstance(o, dict)
                ],
            }
        )
    return items


def _pipedrive_users(raw: Iterable[dict]) -> list[dict]:
    return [
        {
            "id": u["id"],
            "name": u.get("name") or u.get("email") or f"User {u['id']}",
            "email": u.get("email") or "",
            "active": bool(u.get("active_flag", u.get("is_active", True))),
        }
        for u in raw
        if u.get("id") is not None
    ]


def _pipelines(raw: Iterable[dict]) -> list[dict]:
    return [{"id": p["id"], "name": p.get("name") or f"Pipeline {p['id']}"} for p in raw]


def _stages(raw: Iterable[dict]) -> list[dict]:
    stages = [
        {
            "id": s["id"],
            "name": s.get("name") or f"Stage {s['id']}",
            "pipeline_id": s.get("pipeline_id"),
            "order_nr": s.get("order_nr") or 0,
        }
        for s in raw
    ]
    return sorted(stages, key=lambda s: (s["pipeline_id"] or 0, s["order_nr"], s["id"]))


def fetch_snovio(connection: Connection) -> dict[str, list[dict]]:
    client = client_for(connection)
    return {
        Kind.SNOVIO_LISTS: _snovio_lists(client.get_user_lists()),
        Kind.SNOVIO_FIELDS: _snovio_fields(client.get_prospect_custom_fields()),
    }


def fetch_pipedrive(connection: Connection) -> dict[str, list[dict]]:
    client = client_for(connection)
    return {
        Kind.PIPEDRIVE_FIELDS: _pipedrive_fields(client.list_person_fields()),
        Kind.PIPEDRIVE_USERS: _pipedrive_users(client.list_users()),
        Kind.PIPEDRIVE_PIPELINES: _pipelines(client.list_pipelines()),
        Kind.PIPEDRIVE_STAGES: _stages(client.list_stages()),
    }


FETCHERS = {Provider.SNOVIO: fetch_snovio, Provider.PIPEDRIVE: fetch_pipedrive}


# --- reading the stored catalogue -----------------------------------------------------------


# Items deleted in the account stay in the stored catalogue with this flag, so settings that
# still point at them can show their last known name ("Qualified (deleted)").
REMOVED = "removed"


def live_items(items: Iterable[dict] | None) -> list[dict]:
    return [item for item in items or [] if not item.get(REMOVED)]


def removed_items(kind: str, before: Iterable[dict], now: Iterable[dict]) -> list[dict]:
    """What `before` held (live or already removed) that `now` lacks, flagged removed."""
    present = {identity(kind, item) for item in now}
    return [{**item, REMOVED: True} for item in before if identity(kind, item) not in present]


class Catalog:
    """The stored catalogue of one integration, loaded with one query."""

    def __init__(self, rows: Iterable[RemoteCatalog]):
        self._items: dict[str, list[dict]] = {}
        self._gone: dict[str, dict[str, dict]] = {}
        self._refreshed: dict[str, datetime] = {}
        for row in rows:
            self._items[row.kind] = live_items(row.items)
            self._gone[row.kind] = {
                identity(row.kind, item): item for item in row.items or [] if item.get(REMOVED)
            }
            self._refreshed[row.kind] = row.refreshed_at
        self._index = {
            kind: {identity(kind, item): item for item in items}
            for kind, items in self._items.items()
        }

    @classmethod
    def for_integration(cls, integration: Integration) -> Catalog:
        return cls(RemoteCatalog.objects.filter(integration=integration))

    def known(self, kind: str) -> bool:
        """Whether this kind was ever loaded (an unknown kind cannot prove anything missing)."""
        return kind in self._items

    def items(self, kind: str) -> list[dict]:
        return self._items.get(kind, [])

    def get(self, kind: str, ident: Any) -> dict | None:
        if ident is None or ident == "":
            return None
        return self._index.get(kind, {}).get(str(ident))

    def has(self, kind: str, ident: Any) -> bool:
        return self.get(kind, ident) is not None

    def name(self, kind: str, ident: Any, default: str = "") -> str:
        """The item's name; one deleted in the account keeps its last known name, marked."""
        item = self.get(kind, ident)
        if item:
            return item["name"]
        gone = self._gone.get(kind, {}).get(str(ident)) if ident not in (None, "") else None
        return f"{gone['name']} (deleted)" if gone else default

    @property
    def refreshed_at(self) -> datetime | None:
        return min(self._refreshed.values()) if self._refreshed else None

    def missing_kinds(self, providers: Iterable[str]) -> list[str]:
        return [k for p in providers for k in KINDS_BY_PROVIDER[p] if not self.known(k)]

    # Field choices for the pages.
    def snovio_pairable_fields(self) -> list[dict]:
        return [
            f
            for f in self.items(Kind.SNOVIO_FIELDS)
            if f["key"] not in fieldspec.SYSTEM_SNOVIO_FIELDS
            and f["type"] in fieldspec.PAIRABLE_TYPES
        ]

    def pipedrive_pairable_fields(self) -> list[dict]:
        return [
            f
            for f in self.items(Kind.PIPEDRIVE_FIELDS)
            if f.get("custom") and f["type"] in fieldspec.PAIRABLE_TYPES
        ]

    def constant_fields(self, side: str) -> list[dict]:
        kind = Kind.SNOVIO_FIELDS if side == Provider.SNOVIO else Kind.PIPEDRIVE_FIELDS
        return [
            f for f in self.items(kind) if f.get("custom") and f["type"] in fieldspec.CONSTANT_TYPES
        ]

    def active_users(self) -> list[dict]:
        return [u for u in self.items(Kind.PIPEDRIVE_USERS) if u.get("active", True)]


# --- refreshing -----------------------------------------------------------------------------


@dataclass
class KindChange:
    kind: str
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    renamed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def label(self) -> str:
        return Kind(self.kind).label

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.renamed)

    def lines(self) -> list[str]:
        out = []
        if self.added:
            out.append(f"{self.label}: added {_quoted(self.added)}")
        if self.removed:
            out.append(f"{self.label}: removed {_quoted(self.removed)}")
        if self.renamed:
            pairs = ", ".join(f"“{old}” is now “{new}”" for old, new in self.renamed)
            out.append(f"{self.label}: renamed {pairs}")
        return out


@dataclass
class RefreshResult:
    changes: list[KindChange] = field(default_factory=list)
    loaded: list[str] = field(default_factory=list)  # kinds loaded for the first time
    errors: dict[str, RemoteError] = field(default_factory=dict)  # provider -> error

    @property
    def changed(self) -> bool:
        return any(self.changes)

    def change_for(self, kind: str) -> KindChange | None:
        return next((c for c in self.changes if c.kind == kind), None)

    def lines(self) -> list[str]:
        return [line for change in self.changes for line in change.lines()]

    def summary(self) -> str:
        parts = []
        if self.errors:
            failed = " and ".join(Provider(p).label for p in self.errors)
            parts.append(f"Could not reload from {failed}.")
        if self.changed:
            parts.append("; ".join(self.lines()) + ".")
        elif not self.errors:
            parts.append("Nothing changed since the last refresh.")
        return " ".join(parts)


def _quoted(names: list[str]) -> str:
    return ", ".join(f"“{n}”" for n in names)


def diff(kind: str, old: list[dict], new: list[dict]) -> KindChange:
    before = {identity(kind, i): i for i in old}
    after = {identity(kind, i): i for i in new}
    change = KindChange(kind)
    change.added = [after[k]["name"] for k in after if k not in before]
    change.removed = [before[k]["name"] for k in before if k not in after]
    change.renamed = [
        (before[k]["name"], after[k]["name"])
        for k in after
        if k in before and before[k]["name"] != after[k]["name"]
    ]
    return change


def _connections(integration: Integration, providers: Iterable[str] | None) -> list[Connection]:
    wanted = set(providers or (Provider.SNOVIO, Provider.PIPEDRIVE))
    found = []
    for provider, conn in (
        (Provider.SNOVIO, integration.snovio),
        (Provider.PIPEDRIVE, integration.pipedrive),
    ):
        if provider in wanted and conn is not None and conn.status != Connection.Status.REVOKED:
            found.append(conn)
    return found


def mark_connection(connection: Connection, error: Exception | None) -> None:
    """Remember whether the last call through a connection worked."""
    if error is None:
        if connection.status != Connection.Status.OK or connection.last_error:
            connection.status = Connection.Status.OK
            connection.last_error = ""
            connection.save(update_fields=["status", "last_error", "updated_at"])
        return
    connection.status = Connection.Status.FAILED
    connection.last_error = str(error)[:1000]
    connection.save(update_fields=["status", "last_error", "updated_at"])


def refresh_catalog(
    integration: Integration, providers: Iterable[str] | None = None
) -> RefreshResult:
    """Reload the catalogue of the connected accounts and say what changed.

    A remote that cannot be reached keeps its stored catalogue; its error is in `errors` and
    its connection is marked failed.
    """
    result = RefreshResult()
    stored = {row.kind: row for row in RemoteCatalog.objects.filter(integration=integration)}
    for connection in _connections(integration, providers):
        try:
            fetched = FETCHERS[connection.provider](connection)
        except RemoteError as exc:
            log.warning("catalogue refresh of %s failed: %s", connection, exc)
            result.errors[connection.provider] = exc
            mark_connection(connection, exc)
            continue
        mark_connection(connection, None)
        now = timezone.now()
        with transaction.atomic():
            for kind, items in fetched.items():
                row = stored.get(kind)
                if row is None:
                    result.loaded.append(kind)
                    RemoteCatalog.objects.update_or_create(
                        integration=integration,
                        kind=kind,
                        defaults={"items": items, "refreshed_at": now},
                    )
                    continue
                change = diff(kind, live_items(row.items), items)
                if change:
                    result.changes.append(change)
                row.items = items + removed_items(kind, row.items or [], items)
                row.refreshed_at = now
                row.save(update_fields=["items", "refreshed_at"])
    if result.changed or result.loaded:
        update_labels(integration, Catalog.for_integration(integration))
    return result


def update_labels(integration: Integration, catalog: Catalog) -> None:
    """Keep the names shown next to saved settings in step with renames in the accounts."""
    for mapping in FieldMapping.objects.filter(integration=integration, is_system=False):
        snov = catalog.get(Kind.SNOVIO_FIELDS, mapping.snovio_field)
        pipe = catalog.get(Kind.PIPEDRIVE_FIELDS, mapping.pipedrive_field)
        changed = False
        if snov and snov["name"] != mapping.snovio_label:
            mapping.snovio_label, changed = snov["name"], True
        if pipe and pipe["name"] != mapping.pipedrive_label:
            mapping.pipedrive_label, changed = pipe["name"], True
        if changed:
            mapping.save(update_fields=["snovio_label", "pipedrive_label"])
    for constant in ConstantField.objects.filter(integration=integration):
        kind = Kind.SNOVIO_FIELDS if constant.side == Provider.SNOVIO else Kind.PIPEDRIVE_FIELDS
        item = catalog.get(kind, constant.field_key)
        if item and item["name"] != constant.field_label:
            constant.field_label = item["name"]
            constant.save(update_fields=["field_label"])
    for selection in ListSelection.objects.filter(integration=integration):
        item = catalog.get(Kind.SNOVIO_LISTS, selection.list_id)
        if item and item["name"] != selection.list_name:
            selection.list_name = item["name"]
            selection.save(update_fields=["list_name"])
    updates = {}
    target = catalog.get(Kind.SNOVIO_LISTS, integration.target_list_id)
    if target and target["name"] != integration.target_list_name:
        updates["target_list_name"] = target["name"]
    owner = catalog.get(Kind.PIPEDRIVE_USERS, integration.pipedrive_owner_id)
    if owner and owner["name"] != integration.pipedrive_owner_name:
        updates["pipedrive_owner_name"] = owner["name"]
    if updates:
        Integration.objects.filter(pk=integration.pk).update(**updates)
        for name, value in updates.items():
            setattr(integration, name, value)
