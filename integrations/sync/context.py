"""What every sync operation of one integration shares: clients, mapping spec, links, events.

Not pure (it reads the database and builds API clients); the decisions it feeds are made by
the pure modules `mapping`, `matching` and `conflicts`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from integrations import fieldspec as fs
from integrations.http import create_once
from integrations.models import (
    ConstantField,
    Integration,
    Provider,
    RecordLink,
    RemoteCatalog,
    SyncEvent,
    SyncRun,
)
from integrations.pipedrive.client import PipedriveClient
from integrations.snovio.client import SnovioClient
from integrations.snovio.constants import DELETED_IN_PIPEDRIVE_LIST
from integrations.sync import mapping, sanitize, threeway
from integrations.sync.mapping import (
    Constant,
    MappingSpec,
    Pair,
    pipedrive_field_facts,
    system_pairs,
)
from integrations.sync.matching import SecondKey, normalise_email

log = logging.getLogger(__name__)

TO_PIPEDRIVE = SyncRun.Direction.TO_PIPEDRIVE
TO_SNOVIO = SyncRun.Direction.TO_SNOVIO
Outcome = SyncEvent.Outcome


def pairs_for(integration: Integration) -> list[Pair]:
    """The integration's field pairs (the system pairs when none were stored)."""
    rows = list(integration.field_mappings.all())
    if not rows:
        return [replace(p, rule=integration.conflict_rule) for p in system_pairs()]
    return [
        Pair(
            r.snovio_field,
            r.pipedrive_field,
            r.data_type or fs.TEXT,
            r.pipedrive_label,
            r.conflict_rule or integration.conflict_rule,
        )
        for r in rows
    ]


def build_spec(
    integration: Integration, pipedrive_fields: Iterable[dict] | None = None
) -> MappingSpec:
    """The mapping spec of an integration, from its settings and the stored catalogue."""
    constants = list(ConstantField.objects.filter(integration=integration))
    if pipedrive_fields is None:
        row = RemoteCatalog.objects.filter(
            integration=integration, kind=RemoteCatalog.Kind.PIPEDRIVE_FIELDS
        ).first()
        pipedrive_fields = row.items if row else []
    pipedrive_fields = list(pipedrive_fields)
    options, types = pipedrive_field_facts(pipedrive_fields)
    labels = {f.key: f.label for f in (*fs.SNOVIO_STANDARD_FIELDS, *fs.PIPEDRIVE_STANDARD_FIELDS)}
    labels.update({f["key"]: f["name"] for f in pipedrive_fields if f.get("key") and f.get("name")})
    for row in integration.field_mappings.all():
        labels[row.snovio_field] = row.snovio_label or labels.get(row.snovio_field, "")
        labels[row.pipedrive_field] = row.pipedrive_label or labels.get(row.pipedrive_field, "")
    for c in constants:
        labels[c.field_key] = c.field_label or labels.get(c.field_key) or c.field_key
    for key in list(labels):
        name = fs.snovio_custom_name(key)
        if name and not labels[key]:
            labels[key] = name
    return MappingSpec(
        pairs=pairs_for(integration),
        pipedrive_constants=[
            Constant(c.field_key, c.value, c.field_label)
            for c in constants
            if c.side == Provider.PIPEDRIVE
        ],
        snovio_constants=[
            Constant(c.field_key, c.value, c.field_label)
            for c in constants
            if c.side == Provider.SNOVIO
        ],
        owner_id=integration.pipedrive_owner_id,
        target_list_id=integration.target_list_id,
        pipedrive_options=options,
        pipedrive_types=types,
        labels={k: v for k, v in labels.items() if v},
    )


def _needs_field_facts(spec: MappingSpec) -> bool:
    keys = [p.pipedrive for p in spec.pairs if fs.is_pipedrive_custom_key(p.pipedrive)]
    keys += [c.field for c in spec.pipedrive_constants]
    return any(k not in spec.pipedrive_types for k in keys)


class Organizations:
    """Pipedrive organizations by name, listed once per context, created when missing.

    Pipedrive persons carry `org_id`; the Snov.io side has a company *name*. Names match
    exactly, in any case, against one listing of every organization (never a search per
    record). A client without organization methods leaves the company pair out instead of
    failing the record.
    """

    METHODS = ("iter_organizations", "create_organization", "find_organizations_by_name")

    def __init__(self, client: Any, owner_id: int | None = None):
        self.client = client
        self.owner_id = owner_id
        self._by_name: dict[str, int] | None = None
        self.names: dict[str, str] = {}

    @property
    def supported(self) -> bool:
        return all(hasattr(self.client, method) for method in self.METHODS)

    def load(self) -> None:
        if self._by_name is not None or not self.supported:
            return
        self._by_name = {}
        for org in self.client.iter_organizations():
            self._remember(org)

    def _remember(self, org: dict) -> None:
        name = str(org.get("name") or "").strip()
        if not name or org.get("id") is None:
            return
        self.names[str(org["id"])] = name
        assert self._by_name is not None
        self._by_name.setdefault(name.casefold(), int(org["id"]))  # the oldest of namesakes

    def id_for(self, name: str) -> int | None:
        if not self.supported or not name:
            return None
        self.load()
        assert self._by_name is not None
        found = self._by_name.get(name.strip().casefold())
        if found is None:
            org = self._create(name.strip())
            self._remember(org)
            found = int(org["id"])
        return found

    def spelling(self, name: str) -> str:
        """The name as the matching listed organization spells it (`name` when none does)."""
        if not self.supported:
            return name
        self.load()
        assert self._by_name is not None
        found = self._by_name.get(name.strip().casefold())
        return self.names[str(found)] if found is not None else name

    def _create(self, name: str) -> dict:
        """Create the organization; after a lost answer, adopt the one it made instead."""
        data: dict[str, Any] = {"name": name}
        if self.owner_id:
            data["owner_id"] = self.owner_id

        def find() -> dict | None:
            found = self.client.find_organizations_by_name(name)
            return min(found, key=lambda org: org["id"]) if found else None

        return create_once(
            lambda: self.client.create_organization(data),
            find,
            http=self.client.http,
            what="organization",
        )

    def name_of(self, org_id: Any) -> str | None:
        """The name of an organization: one lookup if the client can, else the listing."""
        if not org_id:
            return None
        if isinstance(org_id, dict):
            return org_id.get("name")
        if str(org_id) not in self.names and self.supported:
            getter = getattr(self.client, "get_organization", None)
            if getter is None:
                self.load()
            else:
                org = getter(int(org_id)) or {}
                if org.get("name"):
                    self.names[str(org_id)] = str(org["name"])
        return self.names.get(str(org_id))


def second_key_of(integration: Integration) -> SecondKey | None:
    """The integration's second match key, or None (none chosen, or no Pipedrive field)."""
    if integration.second_key and integration.second_key_field:
        return SecondKey(integration.second_key, integration.second_key_field)
    return None


class SyncContext:
    """One integration's clients, spec and record links, for one transfer or change."""

    def __init__(self, integration: Integration, pipedrive: Any = None, snovio: Any = None):
        self.integration = integration
        self.pipedrive = pipedrive or PipedriveClient.for_connection(integration.pipedrive)
        self.snovio = snovio or SnovioClient.for_connection(integration.snovio)
        self.spec = build_spec(integration)
        if _needs_field_facts(self.spec):
            self.spec = build_spec(integration, self.pipedrive.list_person_fields())
        self.orgs = Organizations(self.pipedrive, integration.pipedrive_owner_id)
        if not self.orgs.supported:
            self.spec.pairs = [p for p in self.spec.pairs if p.pipedrive != "org_id"]
        self.spec.org_names = self.orgs.names
        self.second_key = second_key_of(integration)

    # --- API call accounting --------------------------------------------------------------
    @property
    def api_calls(self) -> int:
        return self.pipedrive.http.calls + self.snovio.http.calls

    # --- Pipedrive organization names -------------------------------------------------------
    @property
    def maps_organization(self) -> bool:
        return any(p.pipedrive == "org_id" for p in self.spec.pairs)

    def person_org_names(self, persons: Iterable[dict]) -> None:
        """Make sure the organization names of these persons are known (one listing)."""
        if self.maps_organization and any(p.get("org_id") for p in persons):
            self.orgs.load()

    def person_org_name(self, person: dict) -> None:
        if self.maps_organization and person.get("org_id"):
            self.orgs.name_of(person["org_id"])

    # --- links ------------------------------------------------------------------------------
    def links(self) -> list[RecordLink]:
        return list(RecordLink.objects.filter(integration=self.integration))

    def link_for(
        self,
        *,
        email: str = "",
        person_id: int | None = None,
        prospect_id: str = "",
    ) -> RecordLink | None:
        links = RecordLink.objects.filter(integration=self.integration)
        if person_id:
            found = links.filter(pipedrive_person_id=person_id).first()
            if found:
                return found
        if prospect_id:
            found = links.filter(snovio_prospect_id=str(prospect_id)).first()
            if found:
                return found
        if email:
            return links.filter(email=normalise_email(email)).first()
        return None

    def save_link(
        self,
        key: str,
        *,
        person_id: int | None = None,
        prospect_id: str | None = None,
        snovio_values: dict | None = None,
        person: dict | None = None,
        match_key: str = "",
    ) -> RecordLink:
        """Record, *after* the writes, what both sides hold now: the link's base.

        `key` is the normalised email (or `snovio:<id>` / `pipedrive:<id>` for a contact
        without one). `snovio_values` are the prospect's mapped values (Snov.io space) and
        `person` the Pipedrive person as it stands; a side not given keeps its base.
        `match_key` is the contact's tagged second-key value, when known.
        """
        link, created = RecordLink.objects.get_or_create(integration=self.integration, email=key)
        if created and "@" in key or person_id and prospect_id and not link.pipedrive_person_id:
            # A contact that gained an email, or a contact without one matched by the second
            # key, leaves its placeholder links (skip or no-email) behind.
            placeholders = [f"pipedrive:{person_id}"] if person_id else []
            placeholders += [f"snovio:{prospect_id}"] if prospect_id else []
            RecordLink.objects.filter(
                integration=self.integration, email__in=[p for p in placeholders if p != key]
            ).delete()
        if person_id:
            link.pipedrive_person_id = int(person_id)
        if prospect_id:
            link.snovio_prospect_id = str(prospect_id)
        if match_key:
            link.match_key = match_key[:300]
        link.base = self.base_of(link.base, snovio_values, person)
        link.save()
        return link

    def note_creating(self, key: str, side: str, values: dict) -> None:
        """Before a create: the values sent, so that a worker dying before the create is
        recorded leaves a contact that is recognised as SyncBridge's own, not a user's."""
        if side == threeway.PIPEDRIVE:
            marker, fields = threeway.CREATING_PIPEDRIVE, self.spec.pipedrive_fields
        else:
            marker, fields = threeway.CREATING_SNOVIO, self.spec.snovio_fields
        sent = {marker: {f: values.get(f) for f in fields}}
        try:  # the usual case, a new contact: one INSERT, not a look-up, an INSERT and an UPDATE
            with transaction.atomic():
                RecordLink.objects.create(
                    integration=self.integration, email=key, base=sanitize.json_safe(sent)
                )
            return
        except IntegrityError:  # the contact has a link already (an earlier skip, a resume)
            link = RecordLink.objects.get(integration=self.integration, email=key)
        link.base = sanitize.json_safe({**(link.base or {}), **sent})
        link.save(update_fields=["base", "updated_at"])

    def base_of(self, base: dict | None, snovio_values: dict | None, person: dict | None) -> dict:
        """A link's base with the sides given replaced by their current values."""
        base = dict(base or {})
        if person is not None:
            self.person_org_name(person)
            base[threeway.PIPEDRIVE] = mapping.pipedrive_values(person, self.spec)
            base.pop(threeway.CREATING_PIPEDRIVE, None)
        if snovio_values is not None:
            # A field the Snov.io answer did not carry keeps its recorded value (unknown is
            # not empty: docs/specs/snovio-shapes.md); one never recorded stays unrecorded.
            # Constant fields are kept too: Snov.io never returns custom fields, so the base is
            # the only way to know a constant was already written.
            old = base.get(threeway.SNOVIO) or base.get(threeway.CREATING_SNOVIO) or {}
            snovio_values = {
                key: snovio_values[key] if key in snovio_values else old[key]
                for key in self.spec.snovio_read_fields
                if key in snovio_values or key in old
            }
            base[threeway.SNOVIO] = snovio_values
            base.pop(threeway.CREATING_SNOVIO, None)
        if person is not None and snovio_values is not None:
            in_snovio_space = mapping.person_to_prospect(person, self.spec).values
            base["in_sync"] = [
                threeway.pair_key(p)
                for p in self.spec.pairs
                if not mapping.is_empty(snovio_values.get(p.snovio))
                and threeway.same(
                    in_snovio_space.get(p.snovio),
                    snovio_values.get(p.snovio),
                    p.pipedrive in threeway.CASELESS_PIPEDRIVE_FIELDS,
                )
            ]
        return sanitize.json_safe(base)

    # --- the record log ---------------------------------------------------------------------
    def event(
        self,
        direction: str,
        outcome: str,
        *,
        email: str = "",
        record_id: Any = "",
        reason: str = "",
        changes: dict | None = None,
        run: SyncRun | None = None,
    ) -> SyncEvent:
        return SyncEvent.objects.create(
            integration=self.integration,
            run=run,
            direction=direction,
            email=sanitize.json_safe(normalise_email(email))[:254],
            record_id=str(record_id or ""),
            outcome=outcome,
            reason=sanitize.json_safe(reason)[:2000],
            changes=sanitize.json_safe(changes or {}),
            at=timezone.now(),
        )

    # --- Snov.io lists ----------------------------------------------------------------------
    def sending_list_ids_from(self, lists: Iterable[dict], every: bool = False) -> list[str]:
        """Ids of the Snov.io lists whose prospects go to Pipedrive (`every`: all lists).

        `lists` is the answer of `get_user_lists()`; deleted lists are left out.
        """
        lists = [x for x in lists if not x.get("isDeleted")]
        live = [str(x["id"]) for x in lists]
        if every:
            return live
        if self.integration.all_lists:
            return [str(x["id"]) for x in lists if x.get("name") != DELETED_IN_PIPEDRIVE_LIST]
        chosen = {s.list_id for s in self.integration.list_selections.all()}
        return [list_id for list_id in live if list_id in chosen]


def link_key(email: str, prospect_id: Any = None) -> str:
    """RecordLink key: the normalised email, or the Snov.io id for a prospect without one."""
    email = normalise_email(email)
    return email or f"snovio:{prospect_id}"
