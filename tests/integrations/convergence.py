"""Seeded random histories of two-way real-time sync, checked against what users rely on.

One scenario: a small account on each side (some contacts on both sides with different
values, some on one side only), launched two-way; then a random history of edits and creates
on both sides, webhook deliveries held, delivered late, out of order, twice or never,
catch-ups and drains at random points, pause and resume, and workers killed in the middle of
a drain (before or after a remote write). Then everything drains, and the invariants hold:

1. no contact is duplicated on either side;
2. a contact untouched since launch is unchanged on both sides, field by field;
3. every field edited after launch holds the same value on both sides, and that value is the
   last edit made to it, or, when both sides changed it before a sync, the value of the side
   the real-time rule chose, recorded as a conflict;
4. a contact created (or changed) after launch exists on both sides.

Each test field's pairs get a conflict rule drawn at random (from a generator of its own, so
a seed replays the same history as before rules existed). Invariants 3 and its write-only
variant hold for the pairs whose rule lets the later change win (the source app wins, the
most recent change wins). For a pair whose rule keeps filled values (fill empty only, never
overwrite on one side), the invariant is checked after every step instead:
5. a filled value on a kept side changes only when that side's own user edits it.

Phones and custom fields are write-only in Snov.io: no documented answer returns them
(docs/specs/snovio-shapes.md), so SyncBridge cannot see a Snov.io user's edit of them. For
those fields invariant 3 becomes: Pipedrive holds the last value its own users set (never one
from Snov.io), and when the last edit was made in Pipedrive, Snov.io holds it too.

`run_scenario(seed, ...)` returns the violations found (an empty list when all hold) and the
history, so a failing seed can be printed and replayed alone.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import responses
from django.test import Client

from integrations import lifecycle
from integrations.models import (
    ConflictRule,
    FieldMapping,
    Integration,
    PendingChange,
    RealtimeRule,
    SyncEvent,
)
from integrations.sandbox.core import Sandbox
from integrations.sandbox.pipedrive import custom_field_key
from integrations.sandbox.testing import serve_in_process
from integrations.sync import catchup, realtime
from integrations.sync.receivers import register_webhooks
from tests.conftest import SANDBOX_URL, make_sandbox
from tests.factories import connected_integration

FIELDS = ("name", "position", "phone", "industry")
WRITE_ONLY_IN_SNOVIO = ("phone", "industry")
INDUSTRY = custom_field_key("Industry")
# The pairs each test field travels through (a name edit moves first, last and full name).
PAIR_KEYS = {
    "name": {"name|name", "firstName|first_name", "lastName|last_name"},
    "position": {"position|job_title"},
    "phone": {"phones|phone"},
    "industry": {f"customFields[Industry]|{INDUSTRY}"},
}
SNOVIO, PIPEDRIVE = "snovio", "pipedrive"
# The sides whose filled values each rule keeps (invariant 5); other rules converge.
KEPT_SIDES = {
    ConflictRule.FILL_EMPTY: (SNOVIO, PIPEDRIVE),
    ConflictRule.KEEP_PIPEDRIVE: (PIPEDRIVE,),
    ConflictRule.KEEP_SNOVIO: (SNOVIO,),
}


class WorkerKilled(BaseException):
    """Stands for the worker process ending: nothing in the sync engine catches it."""


@dataclass
class Result:
    seed: int
    violations: list[str]
    history: list[str]
    stats: dict[str, int] = field(default_factory=dict)


def point_settings_at_the_sandbox(settings) -> None:
    """Once per test: the pytest-django `settings` fixture stacks one override per change."""
    make_sandbox(settings, seed=False)


def run_scenario(seed: int, user, strict: bool = False) -> Result:
    """One history. `strict` checks every Pipedrive request against the OpenAPI spec (slow;
    the client's requests are proven valid by the spec tests, so the soak leaves it off)."""
    box = Sandbox(public_url=SANDBOX_URL, seed=False, settings={"strict_spec": strict})
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        with serve_in_process(box, rsps):
            return _Scenario(seed, user, box).run()


class _Scenario:
    def __init__(self, seed: int, user, box):
        self.seed, self.user, self.box = seed, user, box
        self.rng = random.Random(seed)
        self.step = 0
        self.history: list[str] = []
        self.outbox: list[tuple[str, dict, bytes]] = []
        self.edits: dict[tuple[str, str], list[tuple[int, str, str]]] = defaultdict(list)
        self.touched: set[str] = set()
        self.kill_in: int | None = None
        self.rule_violations: list[str] = []
        self.last_edit: tuple[str, str, str] | None = None  # side, email, field
        self.kill_after_write = False
        self.stats: dict[str, int] = defaultdict(int)
        box.deliver = self._hold
        real_handle = box.handle

        def handle(remote, request):
            if self.kill_in is not None:
                self.kill_in -= 1
                if self.kill_in <= 0:
                    self.kill_in = None
                    if self.kill_after_write:
                        real_handle(remote, request)
                    raise WorkerKilled()
            return real_handle(remote, request)

        box.handle = handle

    # --- set-up -----------------------------------------------------------------------------
    def run(self) -> Result:
        self._seed_accounts()
        rule = self.rng.choice(list(RealtimeRule.values))
        self.integration = connected_integration(
            self.user,
            self.box,
            pairs=[("customFields[Industry]", INDUSTRY, "text")],
            realtime_rule=rule,
            catalog=False,
        )
        self._say(f"launched two-way, rule {rule}")
        self.rules = self._draw_rules()
        register_webhooks(self.integration)
        self._drain()  # records the baseline
        assert Integration.objects.get(pk=self.integration.pk).baseline_at is not None
        # The first scheduled catch-up reads the profiles the baseline could not see in list
        # rows (docs/specs/snovio-shapes.md): a Snov.io edit of position before it would be
        # taken as the launch value, which no invariant here can tell apart.
        self._catch_up()
        self.at_launch = self._snapshot()
        for _ in range(self.rng.randint(6, 24)):
            self.step += 1
            self._watching_kept_fields(self._random_op)
        self._watching_kept_fields(self._settle)
        violations = self.rule_violations + self._violations()
        return Result(self.seed, violations, self.history, dict(self.stats))

    def _draw_rules(self) -> dict[str, str]:
        """A conflict rule per test field (half of them the default), set on its pairs."""
        rng = random.Random(f"rules-{self.seed}")
        rules = {}
        for fld in FIELDS:
            rule = rng.choice([ConflictRule.SOURCE_APP] * 5 + list(ConflictRule.values))
            rules[fld] = rule
            FieldMapping.objects.filter(
                integration=self.integration,
                snovio_field__in=[key.split("|")[0] for key in PAIR_KEYS[fld]],
            ).update(conflict_rule=rule)
            self.stats[f"rule_{rule}"] += 1
        self._say(f"conflict rules per field: {rules}")
        return rules

    def _watching_kept_fields(self, step) -> None:
        """Run one step; a kept side's filled value may change only by its own user's edit."""
        before, self.last_edit = self._snapshot(), None
        step()
        after = self._snapshot()
        for fld, rule in self.rules.items():
            for side in KEPT_SIDES.get(rule, ()):
                for email, sides in before.items():
                    old = (sides.get(side) or {}).get(fld)
                    new = ((after.get(email) or {}).get(side) or {}).get(fld)
                    if old and new != old and self.last_edit != (side, email, fld):
                        self.rule_violations.append(
                            f"{email} {fld} ({rule}): filled {side} value {old!r} became "
                            f"{new!r} at step {self.step} ({self.history[-1]})"
                        )

    def _seed_accounts(self) -> None:
        box, rng = self.box, self.rng
        box.snovio.create_list("Leads")
        box.snovio.add_custom_field("Industry")
        with box.lock:
            box.pipedrive._insert_field(INDUSTRY, "Industry", "varchar", 99, True)
        self.emails: list[str] = []
        for n in range(rng.randint(1, 3)):  # on both sides, with different values
            email = f"shared{n}@acme.example"
            self._put(SNOVIO, email, self._values("s"), create=True)
            self._put(PIPEDRIVE, email, self._values("p"), create=True)
        for n in range(rng.randint(0, 2)):
            self._put(SNOVIO, f"snovio{n}@acme.example", self._values("s"), create=True)
        for n in range(rng.randint(0, 2)):
            self._put(PIPEDRIVE, f"crm{n}@acme.example", self._values("p"), create=True)
        self.outbox.clear()  # what happened before launch is not a change

    def _values(self, tag: str) -> dict[str, str]:
        n = self.rng.randint(0, 999)
        return {
            "name": f"Ann{tag}{n} Lee{tag}{n}",
            "position": f"Title {tag}{n}",
            "phone": f"+1 555 {n:04d}",
            "industry": self.rng.choice(["SaaS", "Retail", "Finance", f"Other {tag}{n}"]),
        }

    # --- the two apps, as their users change them ---------------------------------------------
    def _put(self, side: str, email: str, values: dict[str, str], create: bool = False) -> None:
        if email not in self.emails:
            self.emails.append(email)
        if side == SNOVIO:
            fields: dict[str, Any] = {}
            if "name" in values:
                first, last = values["name"].split(" ")
                fields.update(first_name=first, last_name=last)
            if "position" in values:
                fields["position"] = values["position"]
            if "phone" in values:
                fields["phone"] = values["phone"]
            if "industry" in values:
                fields["customFields"] = {"Industry": values["industry"]}
            if create:
                self.box.snovio.add_prospect("Leads", email=email, **fields)
            else:
                self.box.snovio.update_prospect(email, **fields)
            return
        data: dict[str, Any] = {}
        if "name" in values:
            data["name"] = values["name"]
        if "position" in values:
            data["job_title"] = values["position"]
        if "phone" in values:
            data["phone"] = values["phone"]
        if "industry" in values:
            data["custom_fields"] = {INDUSTRY: values["industry"]}
        if create:
            self.box.pipedrive.add_person(email=email, **data)
        else:
            (person,) = self.box.pipedrive.persons(email)
            self.box.pipedrive.change_person(person["id"], **data)

    def _read(self, side: str, email: str) -> list[dict[str, str]]:
        if side == SNOVIO:
            found = [
                p
                for p in self.box.snovio.state["prospects"].values()
                if email in [e["email"].lower() for e in p["emails"]]
            ]
            return [
                {
                    "name": (p["fullName"] or f"{p['firstName']} {p['lastName']}").strip(),
                    "position": p["position"] or "",
                    "phone": (p["phones"] or [""])[0] or "",
                    "industry": (p["customFields"] or {}).get("Industry") or "",
                }
                for p in found
            ]
        return [
            {
                "name": (p.get("name") or "").strip(),
                "position": p.get("job_title") or "",
                "phone": next((x["value"] for x in p.get("phones") or [] if x["primary"]), ""),
                "industry": _custom(p, INDUSTRY),
            }
            for p in self.box.pipedrive.persons(email)
        ]

    def _snapshot(self) -> dict[str, dict[str, dict | None]]:
        return {
            email: {side: (self._read(side, email) or [None])[0] for side in (SNOVIO, PIPEDRIVE)}
            for email in self.emails
        }

    # --- the random history -------------------------------------------------------------------
    def _random_op(self) -> None:
        ops = {
            self._edit: 6,
            self._create: 2,
            self._deliver: 4,
            self._deliver_twice: 1,
            self._drop: 1,
            self._catch_up: 2,
            self._drain: 3,
            self._drain_killed: 2,
            self._pause: 1,
            self._resume: 1,
        }
        op = self.rng.choices(list(ops), weights=list(ops.values()))[0]
        op()

    def _edit(self) -> None:
        choices = [
            (side, email)
            for email in self.emails
            for side in (SNOVIO, PIPEDRIVE)
            if len(self._read(side, email)) == 1
        ]
        side, email = self.rng.choice(choices)
        # A Snov.io user's edit of a write-only field is invisible to any API client.
        fld = self.rng.choice(
            [f for f in FIELDS if side == PIPEDRIVE or f not in WRITE_ONLY_IN_SNOVIO]
        )
        tag = f"{side[0]}{self.step}"
        value = {
            "name": f"Edna{tag} Ed{tag}",
            "position": f"Role {tag}",
            "phone": f"+44 20 {self.step:04d}",
            "industry": f"Industry {tag}",
        }[fld]
        self._put(side, email, {fld: value})
        self.last_edit = (side, email, fld)
        self.edits[(email, fld)].append((self.step, side, value))
        self.touched.add(email)
        self._say(f"{side} user sets {fld} of {email} to {value!r}")

    def _create(self) -> None:
        side = self.rng.choice((SNOVIO, PIPEDRIVE))
        other = PIPEDRIVE if side == SNOVIO else SNOVIO
        only_other = [e for e in self.emails if not self._read(side, e) and self._read(other, e)]
        if only_other and self.rng.random() < 0.5:
            email = self.rng.choice(only_other)
        else:
            email = f"new{self.step}@fresh.example"
        values = self._values(f"{side[0]}new{self.step}")
        self._put(side, email, values, create=True)
        for fld, value in values.items():
            self.edits[(email, fld)].append((self.step, side, value))
        self.touched.add(email)
        self._say(f"{side} user creates {email}")

    def _hold(self, url: str, headers: dict, body: bytes) -> int:
        self.outbox.append((url, headers, body))
        return 200

    def _post(self, delivery: tuple[str, dict, bytes]) -> None:
        url, headers, body = delivery
        path = "/" + url.split("/", 3)[3]
        extra = (
            {"HTTP_AUTHORIZATION": headers["Authorization"]} if "Authorization" in headers else {}
        )
        response = Client().post(path, data=body, content_type="application/json", **extra)
        assert response.status_code == 200, response.content

    def _deliver(self) -> None:
        if self.outbox:
            index = self.rng.randrange(len(self.outbox))  # any order
            self._post(self.outbox.pop(index))
            self._say(f"a webhook is delivered ({len(self.outbox)} still held)")

    def _deliver_twice(self) -> None:
        if self.outbox:
            delivery = self.outbox.pop(self.rng.randrange(len(self.outbox)))
            self._post(delivery)
            self._post(delivery)
            self._say("a webhook is delivered twice")

    def _drop(self) -> None:
        if self.outbox:
            self.outbox.pop(self.rng.randrange(len(self.outbox)))
            self.stats["dropped"] += 1
            self._say("a webhook is lost for good")

    def _catch_up(self) -> None:
        integration = Integration.objects.get(pk=self.integration.pk)
        found = catchup.catch_up(integration)
        self._say(f"catch-up finds {found} change(s)")

    def _drain(self) -> None:
        applied = realtime.drain(self.integration.pk)
        self._say(f"a worker applies {applied} change(s)")

    def _drain_killed(self) -> None:
        self.kill_in = self.rng.randint(1, 6)
        self.kill_after_write = self.rng.random() < 0.5
        when = "after" if self.kill_after_write else "before"
        try:
            realtime.drain(self.integration.pk)
        except WorkerKilled:
            self.stats["killed"] += 1
            self._say(f"a worker is killed {when} a request, mid-drain")
        else:
            self._say("a worker drains (no request reached the killing point)")
        self.kill_in = None

    def _pause(self) -> None:
        integration = Integration.objects.get(pk=self.integration.pk)
        if integration.status == Integration.Status.ACTIVE:
            lifecycle.set_status(integration, Integration.Status.PAUSED, None, "random pause")
            self._say("paused")

    def _resume(self) -> None:
        integration = Integration.objects.get(pk=self.integration.pk)
        if integration.status == Integration.Status.PAUSED:
            lifecycle.set_status(integration, Integration.Status.ACTIVE, None, "random resume")
            self._say("resumed")

    def _settle(self) -> None:
        """Everything still held is delivered, then catch-ups and drains until at rest."""
        self._resume()
        for _ in range(8):
            self.rng.shuffle(self.outbox)
            while self.outbox:
                self._post(self.outbox.pop())
            found = catchup.catch_up(Integration.objects.get(pk=self.integration.pk))
            realtime.drain(self.integration.pk)
            waiting = PendingChange.objects.filter(
                integration=self.integration, processed_at__isnull=True
            ).exists()
            if not found and not waiting and not self.outbox:
                self._say("at rest")
                return
        self._say("NOT at rest after 8 rounds")

    def _say(self, text: str) -> None:
        self.history.append(f"{self.step:>3}: {text}")

    # --- the invariants ---------------------------------------------------------------------
    def _violations(self) -> list[str]:
        problems: list[str] = []
        if self.history[-1].endswith("NOT at rest after 8 rounds"):
            problems.append("the queue never came to rest")
        conflicts = self._conflicts()
        for email in self.emails:
            now = {side: self._read(side, email) for side in (SNOVIO, PIPEDRIVE)}
            for side, found in now.items():
                if len(found) > 1:
                    problems.append(f"{email} is duplicated in {side} ({len(found)} records)")
            if email not in self.touched:
                for side in (SNOVIO, PIPEDRIVE):
                    before = self.at_launch.get(email, {}).get(side)
                    after = now[side][0] if now[side] else None
                    if before != after:
                        problems.append(
                            f"{email} was untouched since launch but changed in {side}: "
                            f"{before} -> {after}"
                        )
                continue
            if not now[SNOVIO] or not now[PIPEDRIVE]:
                problems.append(f"{email} changed after launch but is missing on one side")
                continue
            s, p = now[SNOVIO][0], now[PIPEDRIVE][0]
            for fld in FIELDS:
                if self.rules[fld] in KEPT_SIDES:
                    continue  # invariant 5, checked step by step
                problems += self._check_field(email, fld, s[fld], p[fld], conflicts)
        return problems

    def _check_field(self, email: str, fld: str, s: str, p: str, conflicts) -> list[str]:
        edits = self.edits.get((email, fld))
        launch = self.at_launch.get(email, {})
        if fld in WRITE_ONLY_IN_SNOVIO:
            return self._check_write_only(email, fld, s, p, edits or [], launch)
        if not edits:
            if launch.get(SNOVIO) and launch.get(PIPEDRIVE):
                expected = {SNOVIO: launch[SNOVIO][fld], PIPEDRIVE: launch[PIPEDRIVE][fld]}
                if (s, p) != (expected[SNOVIO], expected[PIPEDRIVE]):
                    return [f"{email} {fld} was never edited but changed: {expected} -> {(s, p)}"]
                return []
            origin = launch.get(SNOVIO) or launch.get(PIPEDRIVE)
            if origin and s != p:
                return [f"{email} {fld} differs after the contact was carried: {s!r} / {p!r}"]
            return []
        if s != p:
            return [f"{email} {fld} differs: Snov.io {s!r}, Pipedrive {p!r} (edits {edits})"]
        last = edits[-1][2]
        if s == last:
            return []
        edited_values = {value for _, _, value in edits}
        if s in edited_values and conflicts.get(email, set()) & PAIR_KEYS[fld]:
            return []  # both sides changed it before a sync: the rule's winner, recorded
        return [f"{email} {fld} holds {s!r}, not the last edit {last!r} (edits {edits})"]

    def _check_write_only(
        self, email: str, fld: str, s: str, p: str, edits: list, launch: dict
    ) -> list[str]:
        in_pipedrive = [value for _, side, value in edits if side == PIPEDRIVE]
        at_launch = (launch.get(PIPEDRIVE) or {}).get(fld, "")
        expected = in_pipedrive[-1] if in_pipedrive else at_launch
        if p != expected:
            return [f"{email} {fld} in Pipedrive is {p!r}, not its users' {expected!r} ({edits})"]
        if edits and edits[-1][1] == PIPEDRIVE and s != edits[-1][2]:
            return [f"{email} {fld} in Snov.io is {s!r}, not Pipedrive's last edit ({edits})"]
        return []

    def _conflicts(self) -> dict[str, set[str]]:
        found: dict[str, set[str]] = defaultdict(set)
        events = SyncEvent.objects.filter(
            integration=self.integration, changes__has_key="realtime_conflicts"
        )
        for event in events:
            found[event.email] |= set(event.changes["realtime_conflicts"])
            self.stats["conflicts"] += 1
        return found


def _custom(person: dict, key: str) -> str:
    value = (person.get("custom_fields") or {}).get(key)
    if isinstance(value, dict):
        value = value.get("value")
    return value or ""
