"""The simulator: state, dispatch and the helpers tests and the control pages use."""

from __future__ import annotations

import copy
from collections.abc import Callable

from integrations.sandbox.messages import SandboxRequest, SandboxResponse
from integrations.sandbox.snovio.auth import AuthMixin
from integrations.sandbox.snovio.campaigns import CampaignsMixin
from integrations.sandbox.snovio.common import (
    DEFAULT_CAMPAIGN,
    EVENTS,
    BadRequest,
    _empty_state,
    _error,
    _not_allowed,
    _params,
    _seed_fields,
    _summary,
)
from integrations.sandbox.snovio.prospects import ProspectsMixin
from integrations.sandbox.snovio.webhooks import WebhooksMixin
from integrations.snovio import constants as C


class SnovioSimulator(AuthMixin, ProspectsMixin, CampaignsMixin, WebhooksMixin):
    def __init__(self, sandbox):
        self.sandbox = sandbox
        self.state = _empty_state()
        self._emails: dict[str, str] = {}  # lower-cased email -> prospect id (derived)
        self._routes: dict[tuple[str, str], Callable[[dict], SandboxResponse]] = {
            ("GET", C.USER_LISTS_PATH): self._user_lists,
            ("POST", C.CREATE_LIST_PATH): self._create_list_api,
            ("POST", C.PROSPECT_LIST_PATH): self._prospect_list,
            ("POST", C.ADD_PROSPECT_PATH): self._add_prospect_api,
            ("POST", C.PROSPECTS_BY_EMAIL_PATH): self._prospects_by_email,
            ("POST", C.PROSPECT_BY_ID_PATH): self._prospect_by_id,
            ("GET", C.CUSTOM_FIELDS_PATH): self._custom_fields,
            ("GET", C.USER_CAMPAIGNS_PATH): self._campaigns,
            ("GET", C.WEBHOOKS_PATH): self._list_webhooks,
            ("POST", C.WEBHOOKS_PATH): self._create_webhook,
        }

    # === the simulator interface (core.py, control.py) =====================================
    def handle(self, request: SandboxRequest) -> SandboxResponse:
        path = request.path.rstrip("/") or "/"
        try:
            params = _params(request)
            if path == C.TOKEN_PATH:
                return self._issue_token(params) if request.method == "POST" else _not_allowed()
            handler, known = self._resolve(request.method, path)
            if handler is None:
                return _not_allowed() if known else _error(404, f"Unknown Snov.io path {path}")
            if not self._authorized(request, params):
                return _error(401, "Unauthorized: the access token is missing, wrong or expired")
            return handler(params)
        except BadRequest as exc:
            return _error(400, str(exc))

    def reset(self) -> None:
        self.state = _empty_state()
        self._emails = {}

    def dump(self) -> dict:
        return copy.deepcopy(self.state)

    def load(self, data: dict) -> None:
        self.state = _empty_state() | copy.deepcopy(data or {})
        self._emails = {
            e["email"].lower(): pid
            for pid, p in self.state["prospects"].items()
            for e in p["emails"]
        }

    def revoke_all(self) -> None:
        """The API secret was reset: every token dies and the old pair is refused."""
        self.state["tokens"] = {}
        self.state["revoked"] = True

    def summary(self) -> dict[str, int]:
        live_lists = [x for x in self.state["lists"].values() if not x["isDeleted"]]
        return {
            "Snov.io lists": len(live_lists),
            "Snov.io prospects": len(self.state["prospects"]),
            "Snov.io campaigns": len(self.state["campaigns"]),
            "Snov.io webhooks": len(self.state["webhooks"]),
        }

    def event_choices(self) -> list[tuple[str, str]]:
        return list(C.TRIGGER_LABELS.items())

    def prospects(self) -> list[dict]:
        """Every prospect with everything the sandbox holds about it (no API answer has all)."""
        return [self._prospect_record(p) for p in self.state["prospects"].values()]

    def prospect_emails(self) -> list[str]:
        return [p["emails"][0]["email"] for p in self.state["prospects"].values() if p["emails"]]

    def seed_demo(self, prospects: list[dict], list_names: tuple) -> None:
        """Lists, the Industry/Employees custom fields, prospects and three campaigns."""
        lists = [self._new_list(name) for name in list_names]
        by_name = {x["name"]: x for x in lists}
        self.state["custom_fields"] = [
            {"label": "Industry", "type": "string", "required": False},
            {"label": "Employees", "type": "number", "required": False},
        ]
        for i, record in enumerate(prospects):
            # Seeded prospects were found and verified in Snov.io; a few came back "unknown".
            status = C.EMAIL_UNKNOWN if i % 10 == 4 else C.EMAIL_VALID
            prospect = self._new_prospect(_seed_fields(record), record.get("email", ""), status)
            self._join(by_name.get(record.get("list"), lists[0]), prospect)
        plan = (("Demo outreach", "Active"), ("Founders follow-up", "Active"))
        plan += (("Re-engagement drip", "Paused"),)
        for (title, status), lst in zip(plan, lists, strict=False):
            self._new_campaign(title, lst["id"], status)

    def fire_campaign_event(self, event: str, email: str, campaign: str) -> dict:
        """Record a campaign event and deliver it to every matching webhook subscription."""
        if event not in EVENTS:
            raise ValueError(f"Unknown event {event!r}; choose one of {', '.join(EVENTS)}")
        with self.sandbox.lock:
            prospect = self._prospect_by_email(email)
            if prospect is None:
                raise ValueError(f"No Snov.io prospect has the email {email!r}")
            found = self._campaign_for(campaign or DEFAULT_CAMPAIGN, prospect)
            pairs = self._record_event(event, prospect, found)
            outgoing = self._deliveries(pairs, event, prospect, found)
            self.sandbox.save()
        # Deliver outside the lock: the receiving app may call back into the sandbox.
        deliveries = []
        for meta, payload in outgoing:
            status = self.sandbox.send_webhook(meta["url"], {}, payload)
            with self.sandbox.lock:
                self._delivered(meta["webhook_id"], status)
            deliveries.append({**meta, "status": status})
        return {
            "summary": _summary(event, prospect, found, deliveries),
            "event": event,
            "email": prospect["emails"][0]["email"],
            "campaign": {"id": found["id"], "campaign": found["campaign"]},
            "deliveries": deliveries,
        }

    # === test helpers ======================================================================
    def create_list(self, name: str) -> dict:
        with self.sandbox.lock:
            lst = self._new_list(name)
            self.sandbox.save()
        return self._list_out(lst)

    def delete_list(self, list_name_or_id) -> None:
        with self.sandbox.lock:
            lst = self._list_named(list_name_or_id)
            lst["isDeleted"], lst["deletedAt"] = True, self._now()
            self.sandbox.save()

    def rename_list(self, list_name_or_id, name: str) -> None:
        if not name.strip():
            raise ValueError("A new name is required")
        with self.sandbox.lock:
            self._list_named(list_name_or_id)["name"] = name.strip()
            self.sandbox.save()

    def add_custom_field(self, label: str, type: str = "string", required: bool = False) -> None:
        if type not in C.CUSTOM_FIELD_TYPES:
            raise ValueError(f"Snov.io custom fields are one of {C.CUSTOM_FIELD_TYPES}")
        with self.sandbox.lock:
            self.state["custom_fields"].append({"label": label, "type": type, "required": required})
            self.sandbox.save()

    def add_prospect(self, list_name_or_id, **fields) -> dict:
        """Add one prospect as Snov.io's own tools would (verified email unless `status=`)."""
        with self.sandbox.lock:
            lst = self._list_named(list_name_or_id)
            email = fields.pop("email", "")
            status = fields.pop("status", C.EMAIL_VALID)
            prospect = self._prospect_by_email(email) if email else None
            if prospect is None:
                prospect = self._new_prospect(_seed_fields(fields), email, status)
            self._join(lst, prospect)
            self.sandbox.save()
        return self._prospect_record(prospect)

    def add_prospects(self, list_id, n: int, prefix: str = "prospect") -> list[dict]:
        start = self.state["next"]["prospect"]
        return [
            self.add_prospect(
                list_id,
                email=f"{prefix}{start + k}@prospects.example",
                first_name=f"Pat{start + k}",
                last_name="Example",
            )
            for k in range(n)
        ]

    def update_prospect(self, email_or_id: str, **fields) -> dict:
        """Change a prospect as a Snov.io user would in the app (for catch-up tests)."""
        with self.sandbox.lock:
            prospect = self.state["prospects"].get(email_or_id) or self._prospect_by_email(
                email_or_id
            )
            if prospect is None:
                raise ValueError(f"No Snov.io prospect {email_or_id!r}")
            self._apply(prospect, _seed_fields(fields))
            self.sandbox.save()
        return self._prospect_record(prospect)

    def delete_prospect(self, email_or_id: str) -> None:
        """Delete a prospect as a Snov.io user would in the app: gone from every list and
        from by-id and by-email reads. Snov.io sends no webhook for it (none is documented)."""
        with self.sandbox.lock:
            prospect = self.state["prospects"].get(email_or_id) or self._prospect_by_email(
                email_or_id
            )
            if prospect is None:
                raise ValueError(f"No Snov.io prospect {email_or_id!r}")
            del self.state["prospects"][prospect["id"]]
            self._emails = {e: p for e, p in self._emails.items() if p != prospect["id"]}
            for lst in self.state["lists"].values():
                if prospect["id"] in lst["members"]:
                    lst["members"].remove(prospect["id"])
            self.sandbox.save()

    def list_members(self, list_name_or_id) -> list[str]:
        """The emails of a list's prospects (what a user sees in the list)."""
        lst = self._list_named(list_name_or_id)
        return [self.state["prospects"][pid]["emails"][0]["email"] for pid in lst["members"]]

    def expire_tokens(self) -> None:
        """Forget issued tokens without touching the credentials (a token died early)."""
        self.state["tokens"] = {}

    def webhooks(self) -> list[dict]:
        return [dict(w) for w in self.state["webhooks"].values()]

    def history(self, campaign: str, kind: str) -> list[dict]:
        found = self._campaign_named(campaign)
        return list(self.state["history"].get(str(found["id"]), {}).get(kind, [])) if found else []

    # === state helpers =====================================================================
    def _now(self) -> float:
        return float(self.sandbox.clock())

    def _next(self, kind: str) -> int:
        value = self.state["next"][kind]
        self.state["next"][kind] = value + 1
        return value
