"""What every sync operation of one integration shares: clients, mapping spec, links, events.

Not pure (it reads the database and builds API clients); the decisions it feeds are made by
the pure modules `mapping`, `matching` and `conflicts`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from contextlib import nullcontext
from dataclasses import replace
from datetime import datetime
from typing import Any

from django.db import IntegrityError, connection, transaction
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
# In a link's base while a transfer page is not written yet: the outcome a remote write of
# the run will have (`note_creating`, `note_updating`), written before the write. A worker
# that dies before the page is written leaves it, and the resumed run reports that outcome
# for a record it then finds written, or only repeats (`RecordResult.intended`).
INTENT = "transfer_intent"


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
        self.held: HeldLinks | None = None  # links saved but not yet written (`hold_links`)

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
        held = self.held
        if person_id:
            found = held and held.by_person.get(int(person_id))
            found = found or links.filter(pipedrive_person_id=person_id).first()
            if found:
                return held.known(found) if held else found
        if prospect_id:
            found = held and held.by_prospect.get(str(prospect_id))
            found = found or links.filter(snovio_prospect_id=str(prospect_id)).first()
            if found:
                return held.known(found) if held else found
        if email:
            key = normalise_email(email)
            found = held and held.links.get(key)
            found = found or links.filter(email=key).first()
            return held.known(found) if held and found else found
        return None

    # A transfer page's links are written together (`hold_links` ... `write_held_links`):
    # a created record costs one write of its own (the intent, `note_creating`) instead of
    # three. Until they are written the held links answer `link_for`.
    def hold_links(self, run_id: int) -> None:
        """From now on `save_link` keeps links in memory until `write_held_links`; a remote
        write of run `run_id` is preceded by its intent (`note_creating`, `note_updating`)."""
        self.held = HeldLinks(run_id)

    def write_held_links(self) -> None:
        """Write the held links (a few statements, whatever their number); they stay held
        until `release_links`, so that a transaction rolled back around this can retry it."""
        if self.held is not None:
            self.held.write(self.integration)

    def release_links(self) -> None:
        """Back to writing each link at once (the held ones are forgotten: write them first)."""
        self.held = None

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
        # A contact without an email cannot be found again by email after a crash: its link
        # (the only record of the contact it was paired with) is written at once.
        held = self.held if "@" in key else None
        if held is not None:
            link = held.links.get(key) or held.known_by_key.get(key)
            if link is None:
                link = RecordLink.objects.filter(integration=self.integration, email=key).first()
            created = link is None
            link = link or RecordLink(integration=self.integration, email=key)
        else:
            link, created = RecordLink.objects.get_or_create(
                integration=self.integration, email=key
            )
        if created and "@" in key or person_id and prospect_id and not link.pipedrive_person_id:
            # A contact that gained an email, or a contact without one matched by the second
            # key, leaves its placeholder links (skip or no-email) behind.
            placeholders = [f"pipedrive:{person_id}"] if person_id else []
            placeholders += [f"snovio:{prospect_id}"] if prospect_id else []
            placeholders = [p for p in placeholders if p != key]
            if held is not None:
                held.placeholders.update(placeholders)
            else:
                RecordLink.objects.filter(
                    integration=self.integration, email__in=placeholders
                ).delete()
        if person_id:
            link.pipedrive_person_id = int(person_id)
        if prospect_id:
            link.snovio_prospect_id = str(prospect_id)
        if match_key:
            link.match_key = match_key[:300]
        link.base = self.base_of(link.base, snovio_values, person)
        if held is not None:
            held.add(link, new=created)
        else:
            link.save()
            if self.held is not None:  # a page's cached copy of this link is older now
                self.held.known_by_key[key] = link
        return link

    def note_creating(self, key: str, side: str, values: dict, intent: dict | None = None) -> None:
        """Before a create: the values sent, so that a worker dying before the create is
        recorded leaves a contact that is recognised as SyncBridge's own, not a user's.
        In a transfer page, with the outcome the create will have (`intent`)."""
        if side == threeway.PIPEDRIVE:
            marker, fields = threeway.CREATING_PIPEDRIVE, self.spec.pipedrive_fields
        else:
            marker, fields = threeway.CREATING_SNOVIO, self.spec.snovio_fields
        sent = {marker: {f: values.get(f) for f in fields}}
        held = self.held.links.get(key) if self.held else None
        if held is not None:  # saved earlier on this page, not written yet: write it now
            held.base = self._with_intent({**(held.base or {}), **sent}, intent)
            self.held.write_one(held)
            return
        try:  # the usual case, a new contact: one INSERT, not a look-up, an INSERT and an UPDATE
            # A savepoint only inside a transaction (a refused INSERT poisons it); a worker in
            # autocommit saves a BEGIN and a COMMIT round trip per created record (profiled).
            with transaction.atomic() if connection.in_atomic_block else nullcontext():
                link = RecordLink.objects.create(
                    integration=self.integration,
                    email=key,
                    base=self._with_intent(sent, intent),
                )
        except IntegrityError:  # the contact has a link already (an earlier skip, a resume)
            link = RecordLink.objects.get(integration=self.integration, email=key)
            link.base = self._with_intent({**(link.base or {}), **sent}, intent)
            link.save(update_fields=["base", "updated_at"])
        if self.held is not None:  # `save_link` after the create needs no look-up
            self.held.known_by_key[key] = link

    def note_updating(self, key: str, intent: dict) -> None:
        """Before an update in a transfer page: its outcome, written at once (the link itself
        is written with the page). Outside a transfer page the link is written after the
        update, before anything else happens: nothing to note."""
        held = self.held
        if held is None:
            return
        link = held.links.get(key) or held.known_by_key.get(key)
        if link is None:
            link = RecordLink.objects.filter(integration=self.integration, email=key).first()
            link = held.known(link) if link else None
        if link is None:
            link = RecordLink(integration=self.integration, email=key)
            held.add(link, new=True)
        link.base = self._with_intent(link.base or {}, intent)
        held.write_one(link)

    def _with_intent(self, base: dict, intent: dict | None) -> dict:
        """`base` with the intent of a transfer page's write. An intent of the same run and
        record stays: the worker that left it died after (maybe) making its write, which
        this one only repeats; the outcome to report is the first one."""
        if self.held is None or intent is None:
            return sanitize.json_safe(base)
        old = base.get(INTENT) or {}
        if old.get("run") != self.held.run_id or old.get("record") != intent.get("record"):
            base = {**base, INTENT: {**intent, "run": self.held.run_id}}
        return sanitize.json_safe(base)

    def base_of(self, base: dict | None, snovio_values: dict | None, person: dict | None) -> dict:
        """A link's base with the sides given replaced by their current values."""
        base = dict(base or {})
        base.pop(INTENT, None)  # the write it announced is done and recorded
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
    def event(self, direction: str, outcome: str, **fields: Any) -> SyncEvent:
        """An event, saved (`fields` as `new_event` takes them)."""
        event = self.new_event(direction, outcome, **fields)
        event.save(force_insert=True)
        return event

    def new_event(
        self,
        direction: str,
        outcome: str,
        *,
        email: str = "",
        record_id: Any = "",
        reason: str = "",
        changes: dict | None = None,
        run: SyncRun | None = None,
        at: datetime | None = None,
    ) -> SyncEvent:
        """An event, not saved yet."""
        return SyncEvent(
            integration=self.integration,
            run=run,
            direction=direction,
            email=sanitize.json_safe(normalise_email(email))[:254],
            record_id=str(record_id or ""),
            outcome=outcome,
            reason=sanitize.json_safe(reason)[:2000],
            changes=sanitize.json_safe(changes or {}),
            at=at or timezone.now(),
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


class HeldLinks:
    """Links saved during one transfer page and not written yet, and the links already read
    on the page (so that saving one again costs no look-up)."""

    FIELDS = ("snovio_prospect_id", "pipedrive_person_id", "match_key", "base", "updated_at")

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id
        self.links: dict[str, RecordLink] = {}  # by key (email), to be written
        self.new: set[str] = set()  # keys of the links with no row yet
        self.placeholders: set[str] = set()  # keys of placeholder links to delete
        self.by_person: dict[int, RecordLink] = {}
        self.by_prospect: dict[str, RecordLink] = {}
        self.known_by_key: dict[str, RecordLink] = {}

    def known(self, link: RecordLink) -> RecordLink:
        """The held version of a link read from the database (it is newer), else the link."""
        held = self.links.get(link.email)
        if held is not None:
            return held
        self.known_by_key.setdefault(link.email, link)
        return self.known_by_key[link.email]

    def add(self, link: RecordLink, new: bool) -> None:
        if new or link.email in self.new:
            self.new.add(link.email)
        self.links[link.email] = link
        self.known_by_key.pop(link.email, None)
        if link.pipedrive_person_id:
            self.by_person[int(link.pipedrive_person_id)] = link
        if link.snovio_prospect_id:
            self.by_prospect[str(link.snovio_prospect_id)] = link

    def write_one(self, link: RecordLink) -> None:
        """Write one link now (a held one stays held: later saves on the page update it)."""
        if link.email in self.new:
            link.pk, link._state.adding = None, True
        link.save()
        self.new.discard(link.email)

    def write(self, integration: Integration) -> None:
        """At most three statements: delete the placeholders, insert the new, update the rest."""
        now = timezone.now()
        for link in self.links.values():
            link.updated_at = now
        gone = self.placeholders - set(self.links)
        if gone:
            RecordLink.objects.filter(integration=integration, email__in=gone).delete()
        new = [self.links[key] for key in self.new]
        for link in new:  # no id from an insert a rolled-back transaction undid
            link.pk = None
            link._state.adding = True
        RecordLink.objects.bulk_create(new)
        old = [link for key, link in self.links.items() if key not in self.new]
        if old:
            RecordLink.objects.bulk_update(old, self.FIELDS)


def link_key(email: str, prospect_id: Any = None) -> str:
    """RecordLink key: the normalised email, or the Snov.io id for a prospect without one."""
    email = normalise_email(email)
    return email or f"snovio:{prospect_id}"
