"""Moving one record to the other side: create, update only what differs, or leave it.

Shared by the manual transfer (receiving record found in a listing made once) and real-time
sync (receiving record looked up for the one change). The decision is made by the pure
functions; this module performs it through the clients and keeps the RecordLink current.
The link's base (what both sides hold, `threeway.py`) is recorded *after* the remote write
succeeds, never before: a write that failed leaves the contact "to be synced". The webhook
our own write causes is held while a transfer runs and, once applied, finds both sides equal
to the base: nothing to do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from integrations.http import create_once
from integrations.models import SyncEvent
from integrations.snovio.client import has_detail as snovio_has_detail
from integrations.sync import conflicts, mapping, sanitize, threeway
from integrations.sync.context import TO_PIPEDRIVE, TO_SNOVIO, SyncContext, link_key
from integrations.sync.matching import SecondKey

Outcome = SyncEvent.Outcome
NO_EMAIL = "No email: “Only contacts with an email” is on, and email is how contacts are matched."
NO_EMAIL_SNOVIO = "No email: Snov.io keeps prospects by email, so a person without one is not sent."


def no_email_nor_key(key: SecondKey) -> str:
    return (
        f"No email and no {key.label}: nothing to match it by, so it is not sent "
        "(it would be created again on every transfer)."
    )


NO_PROSPECT_EMAIL = (
    "Matched by {label}, but the Snov.io prospect has no email: Snov.io updates a prospect "
    "only through its email."
)


@dataclass
class RecordResult:
    outcome: str
    email: str = ""
    record_id: str = ""  # the sending record
    target_id: str = ""  # the receiving record
    reason: str = ""
    merge: conflicts.Merge | None = None
    created_values: dict | None = None
    problems: list[str] = field(default_factory=list)
    record: dict | None = None  # the receiving record after the write (None if not re-read)

    @property
    def conflict(self) -> bool:
        return bool(self.merge and self.merge.conflicts)

    def changes(self, labels: Mapping[str, str] | None = None) -> dict:
        """What changed, JSON-able; each field entry carries the field's label."""
        data: dict[str, Any] = self.merge.as_dict() if self.merge else {}
        if self.created_values is not None:
            data["fields"] = {k: {"old": None, "new": v} for k, v in self.created_values.items()}
        for part in ("fields", "conflicts"):
            for key, entry in data.get(part, {}).items():
                entry["label"] = _label(key, labels)
        if self.problems:
            data["problems"] = self.problems
        if self.target_id:
            data["target_id"] = self.target_id
        return data

    def describe(self, labels: Mapping[str, str] | None = None) -> str:
        if self.reason:
            return self.reason
        if self.outcome == Outcome.UPDATED and self.merge:
            text = "Updated " + ", ".join(_label(k, labels) for k in self.merge.changes)
        elif self.outcome == Outcome.CREATED:
            text = "Created"
        elif self.outcome == Outcome.UNCHANGED:
            text = "Already the same on both sides"
        else:
            text = ""
        if self.merge and self.merge.conflicts:
            text += f"{'; ' if text else ''}" + conflict_text(self.merge.conflicts, labels)
        if self.problems:  # once each: a row and its profile may report the same cleaning
            text += f"{'; ' if text else ''}" + "; ".join(dict.fromkeys(self.problems))
        return text

    def log(self, ctx: SyncContext, direction: str, run=None) -> SyncEvent:
        return ctx.event(direction, self.outcome, **self._event_fields(ctx), run=run)

    def event(self, ctx: SyncContext, direction: str, run=None, at=None) -> SyncEvent:
        """The event, not saved yet (a transfer writes a page's events together)."""
        return ctx.new_event(direction, self.outcome, **self._event_fields(ctx), run=run, at=at)

    def intent(self) -> dict[str, Any]:
        """What this result will be once its remote write is done, JSON-able (`INTENT`)."""
        merge = self.merge
        return {
            "record": self.record_id,
            "outcome": self.outcome,
            "target_id": self.target_id,
            "created_values": self.created_values,
            "merge": merge
            and {"changes": merge.changes, "diffs": merge.diffs, "conflicts": merge.conflicts},
            "problems": self.problems,
        }

    @classmethod
    def intended(cls, intent: Mapping[str, Any], now: RecordResult) -> RecordResult:
        """The result an `intent` announced, for a record found already written (`now`)."""
        merge = intent.get("merge")
        return cls(
            intent["outcome"],
            email=now.email,
            record_id=now.record_id,
            target_id=intent.get("target_id") or now.target_id,
            merge=conflicts.Merge(**merge) if merge else None,
            created_values=intent.get("created_values"),
            problems=list(intent.get("problems") or []),
            record=now.record,
        )

    def _event_fields(self, ctx: SyncContext) -> dict[str, Any]:
        labels = ctx.spec.labels
        return {
            "email": self.email,
            "record_id": self.record_id,
            "reason": self.describe(labels),
            "changes": self.changes(labels),
        }


def conflict_text(found: Mapping[str, dict], labels: Mapping[str, str] | None) -> str:
    """The conflicts of a merge in words, each with the rule that settled it."""
    parts = []
    for key, c in found.items():
        how = "sent value written" if c["winner"] == conflicts.SENDING else "kept as it was"
        parts.append(f"{_label(key, labels)} {how} ({c.get('rule_label') or 'source app'})")
    return "conflicts: " + ", ".join(parts)


def _label(key: str, labels: Mapping[str, str] | None) -> str:
    return (labels or {}).get(key) or key


def _person_values(ctx: SyncContext, person: dict, read: bool = False) -> dict:
    """A person's mapped values (`read`: with the constant fields a merge compares too)."""
    ctx.person_org_name(person)
    keys = ctx.spec.pipedrive_read_fields if read else ctx.spec.pipedrive_fields
    return mapping.pipedrive_values(person, ctx.spec, keys)


def after_write(current: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """The values a side holds once `changes` are written over `current`."""
    return {**current, **changes}


def prospect_to_pipedrive(
    ctx: SyncContext,
    prospect: dict,
    person: dict | None,
    *,
    sending_wins: bool,
    dry_run: bool = False,
) -> RecordResult:
    """Send one prospect to Pipedrive: create `person` when None, else update what differs."""
    spec = ctx.spec
    email = mapping.prospect_email(prospect)
    result = RecordResult(Outcome.UNCHANGED, email=email, record_id=str(prospect.get("id") or ""))
    key = link_key(email, prospect.get("id"))
    notes: list[str] = []
    if needs_profile(ctx, prospect, person, key):
        cleaned = sanitize.clean_prospect(ctx.snovio.complete(prospect))
        prospect, notes = cleaned.record, list(cleaned.notes)  # the profile, made storable
    snovio_now = mapping.snovio_values(prospect, spec)
    second = ctx.second_key
    match_key = second.of_prospect(prospect) if second else ""
    if not email and (ctx.integration.only_with_email or (second and not match_key and not person)):
        result.outcome, result.reason = Outcome.SKIPPED, NO_EMAIL
        if not ctx.integration.only_with_email and second:
            result.reason = no_email_nor_key(second)
        if not dry_run:  # remembered, so the catch-up reports it again only once it changes
            ctx.save_link(key, prospect_id=prospect.get("id"), snovio_values=snovio_now)
        return result
    mapped = mapping.prospect_to_person(prospect, spec)
    result.problems = [*mapped.problems, *notes]
    _org_spelling(ctx, mapped.values, person)

    if person is None:
        values = conflicts.new_record(mapped.values, mapped.defaults)
        result.outcome, result.created_values = Outcome.CREATED, values
        if dry_run:
            return result
        payload, problems = mapping.new_person_payload(values, spec, ctx.orgs.id_for)
        result.problems += problems
        if match_key and second:  # the new person carries the key, so it is found by it later
            custom = payload.setdefault("custom_fields", {})
            custom.setdefault(second.pipedrive_field, second.prospect_value(prospect))
        ctx.note_creating(key, threeway.PIPEDRIVE, values, result.intent())
        created = _create_person(ctx, payload, email)
        result.target_id, result.record = str(created["id"]), created
        ctx.save_link(
            key,
            person_id=created["id"],
            prospect_id=prospect.get("id"),
            snovio_values=snovio_now,
            person=created,
            match_key=match_key,
        )
        return result

    result.target_id = str(person.get("id") or "")
    current = _person_values(ctx, person, read=True)
    merged = conflicts.merge(
        current,
        mapped.values,
        sending_wins=sending_wins,
        defaults=mapped.defaults,
        rules=spec.rules(threeway.PIPEDRIVE),
        receiving_side=threeway.PIPEDRIVE,
    )
    result.merge = merged
    payload, problems = ({}, [])
    if merged.changed:
        payload, problems = mapping.person_payload(merged.changes, spec, person, ctx.orgs.id_for)
        payload = drop_same_name(payload, person)
    if not payload:
        result.problems += problems
        if not dry_run:
            ctx.save_link(
                key,
                person_id=person.get("id"),
                prospect_id=prospect.get("id"),
                snovio_values=snovio_now,
                person=person,
                match_key=match_key,
            )
        return result
    result.outcome = Outcome.UPDATED
    result.problems += problems
    if dry_run:
        return result
    ctx.note_updating(key, result.intent())
    result.record = ctx.pipedrive.update_person(person["id"], payload)
    ctx.save_link(
        key,
        person_id=person.get("id"),
        prospect_id=prospect.get("id"),
        snovio_values=snovio_now,
        person=result.record,
        match_key=match_key,
    )
    return result


def needs_profile(ctx: SyncContext, prospect: dict, person: dict | None, key: str) -> bool:
    """Whether a list row must be completed by a by-id read before it is sent: Snov.io's
    rows carry names and emails only, so a record new to SyncBridge (no person, or no base
    yet) or whose row differs from its base is read in full; one whose row is as last synced
    is not (its other fields are re-checked by the catch-up), to stay within 60 calls/min."""
    if snovio_has_detail(prospect):
        return False
    second = ctx.second_key
    if (
        second
        and not ctx.integration.only_with_email
        and second.prospect_value(prospect) is None
        and not mapping.prospect_emails(prospect)
    ):
        return True  # a row without an email: its LinkedIn URL, in the profile, matches it
    if all(mapping.snovio_known(prospect, k) for k in ctx.spec.snovio_fields):
        return False  # the mapping reads nothing a list row lacks
    if person is None:
        return True
    link = ctx.link_for(prospect_id=prospect.get("id")) or ctx.link_for(email=key)
    side_base = (link.base or {}).get(threeway.SNOVIO) if link else None
    if not side_base:
        return True
    return threeway.changed_since(side_base, mapping.snovio_values(prospect, ctx.spec))


def drop_same_name(payload: dict, person: dict) -> dict:
    """Pipedrive derives first/last name from `name`: the current name again is no change."""
    if "name" in payload and str(payload["name"]).strip() == str(person.get("name") or "").strip():
        payload = {k: v for k, v in payload.items() if k != "name"}
    return payload


def _org_spelling(ctx: SyncContext, values: dict, person: dict | None) -> None:
    """Company names match organizations in any case. Compare a company under the spelling
    of the person's own organization (else of the listed one), so that a difference in case
    is neither a conflict nor a write that would move the person to a namesake."""
    name = values.get("org_id")
    if not name or not ctx.maps_organization:
        return
    current = None
    if person is not None:
        ctx.person_org_name(person)
        current = mapping.pipedrive_raw(person, "org_id", ctx.spec)
    if current and str(current).strip().casefold() == str(name).casefold():
        values["org_id"] = str(current).strip()
    else:
        values["org_id"] = ctx.orgs.spelling(str(name))


def _create_person(ctx: SyncContext, payload: dict, email: str) -> dict:
    """Create the person; after a lost answer, adopt the one it made (found by email) rather
    than create a second. Without an email there is nothing to find it by: not resent."""

    def find() -> dict | None:
        found = ctx.pipedrive.find_persons_by_email(email)
        return min(found, key=lambda p: p.get("id") or 0) if found else None

    return create_once(
        lambda: ctx.pipedrive.create_person(payload),
        find if email else None,
        http=ctx.pipedrive.http,
        what="person",
    )


def person_to_snovio(
    ctx: SyncContext,
    person: dict,
    prospect: dict | None,
    *,
    sending_wins: bool,
    dry_run: bool = False,
) -> RecordResult:
    """Send one person to Snov.io: add to the target list when new, else update what differs."""
    spec = ctx.spec
    email = mapping.person_email(person)
    result = RecordResult(Outcome.UNCHANGED, email=email, record_id=str(person.get("id") or ""))
    ctx.person_org_name(person)
    second = ctx.second_key
    match_key = second.of_person(person) if second else ""
    if not email and prospect is None:
        result.outcome, result.reason = Outcome.SKIPPED, NO_EMAIL_SNOVIO
        if not dry_run:  # remembered, so the catch-up reports it again only once it changes
            ctx.save_link(
                f"pipedrive:{person.get('id')}", person_id=person.get("id"), person=person
            )
        return result
    if not spec.target_list_id:
        result.outcome = Outcome.SKIPPED
        result.reason = "No Snov.io list is chosen to receive contacts from Pipedrive."
        return result
    mapped = mapping.person_to_prospect(person, spec)
    result.problems = list(mapped.problems)

    if prospect is None:
        values = conflicts.new_record(mapped.values, mapped.defaults)
        result.outcome, result.created_values = Outcome.CREATED, values
        if dry_run:
            return result
        # A new prospect's email arrives unverified (Snov.io marks API-added emails so).
        ctx.note_creating(email, threeway.SNOVIO, values, result.intent())
        payload = mapping.prospect_payload(values, email)
        if match_key and second:  # the new prospect carries the key, so it is found by it later
            payload["socialLinks"] = {"linkedIn": second.person_value(person)}
        answer = ctx.snovio.add_prospect_to_list(spec.target_list_id, payload, update=False)
        if answer.get("added") is False and answer.get("id"):
            # Already in the list: the prospect existed (no write was made); update it instead.
            existing = _profile(ctx, answer["id"], email)
            if existing is not None:
                return person_to_snovio(
                    ctx, person, existing, sending_wins=sending_wins, dry_run=dry_run
                )
        result.target_id = str(answer.get("id") or "")
        ctx.save_link(
            email,
            person_id=person.get("id"),
            prospect_id=result.target_id,
            snovio_values=after_write(dict.fromkeys(spec.snovio_fields), values),
            person=person,
            match_key=match_key,
        )
        return result

    # Matched by the second key, the prospect is written to through its own email: another
    # email would make Snov.io add a second prospect instead of updating this one.
    match_email = _shared_email(person, prospect) or mapping.prospect_email(prospect)
    if not match_email:
        result.outcome = Outcome.SKIPPED
        result.reason = NO_PROSPECT_EMAIL.format(label=second.label if second else "key")
        return result
    key = mapping.normalise_email(match_email)
    result.target_id = str(prospect.get("id") or "")
    current = _known_snovio_values(ctx, prospect, key)
    merged = _merge_into_snovio(current, mapped, sending_wins, spec)
    if merged.changed and not snovio_has_detail(prospect):
        # A list row differs (or may: it lacks the profile): read the profile once, compare.
        prospect = ctx.snovio.complete(prospect)
        current = _known_snovio_values(ctx, prospect, key)
        merged = _merge_into_snovio(current, mapped, sending_wins, spec)
    result.merge = merged
    if not merged.changed:
        if not dry_run:
            ctx.save_link(
                key,
                person_id=person.get("id"),
                prospect_id=prospect.get("id"),
                snovio_values=current,
                person=person,
                match_key=match_key,
            )
        return result
    result.outcome = Outcome.UPDATED
    if dry_run:
        return result
    ctx.note_updating(key, result.intent())
    ctx.snovio.add_prospect_to_list(
        spec.target_list_id,
        mapping.prospect_payload(merged.changes, match_email, full=False),
        update=True,
    )
    result.record = {**prospect, **_as_prospect_fields(merged.changes)}
    ctx.save_link(
        key,
        person_id=person.get("id"),
        prospect_id=prospect.get("id"),
        snovio_values=after_write(current, merged.changes),
        person=person,
        match_key=match_key,
    )
    return result


def _merge_into_snovio(
    current: dict, mapped: mapping.Mapped, sending_wins: bool, spec: mapping.MappingSpec
) -> conflicts.Merge:
    """Merge a person into a prospect. A field Snov.io never returns and SyncBridge never
    wrote is unknown: where the receiving side would win a conflict (by its rule) it is left
    alone, since it may hold a value that cannot be read (only a winning sender writes it
    blind)."""
    rules = spec.rules(threeway.SNOVIO)

    def sender_wins(key: str) -> bool:
        return conflicts.sending_wins_transfer(
            rules.get(key) or conflicts.SOURCE_APP,
            sending_is_source=sending_wins,
            receiving_side=threeway.SNOVIO,
        )

    values = {k: v for k, v in mapped.values.items() if k in current or sender_wins(k)}
    return conflicts.merge(
        current,
        values,
        sending_wins=sending_wins,
        defaults=mapped.defaults,
        rules=rules,
        receiving_side=threeway.SNOVIO,
    )


def _profile(ctx: SyncContext, prospect_id, email: str) -> dict | None:
    """A prospect read by id, with the email it is known by (profiles carry none)."""
    profile = ctx.snovio.get_prospect_by_id(prospect_id)
    if profile is not None:
        profile.setdefault("emails", [{"email": email}])
    return profile


def _known_snovio_values(ctx: SyncContext, prospect: dict, key: str) -> dict:
    """The prospect's mapped values; a field no Snov.io answer carries (phones, custom
    fields) counts as what SyncBridge last wrote there (the link's base), if anything."""
    link = ctx.link_for(prospect_id=str(prospect.get("id") or "")) or ctx.link_for(email=key)
    base = (link.base or {}).get(threeway.SNOVIO) if link else None
    known = mapping.prospect_with_base(prospect, base)
    return mapping.snovio_values(known, ctx.spec, ctx.spec.snovio_read_fields)


def _shared_email(person: dict, prospect: dict) -> str:
    emails = set(mapping.prospect_emails(prospect))
    return next((e for e in mapping.person_emails(person) if e in emails), "")


def _as_prospect_fields(changes: dict) -> dict:
    """Snov.io-space changes as prospect keys, good enough to keep a listing index current."""
    out: dict[str, Any] = {}
    for key, value in changes.items():
        if key == "phones":
            out["phones"] = [value]
        elif mapping.fs.snovio_custom_name(key) is None and key != "email":
            out[key] = value
    return out


DIRECTIONS = {TO_PIPEDRIVE: prospect_to_pipedrive, TO_SNOVIO: person_to_snovio}
