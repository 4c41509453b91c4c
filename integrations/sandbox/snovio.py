"""A stateful fake of the Snov.io API, at the real paths (served under `{public_url}/snovio`).

What it models, and where each behaviour comes from:
- Client-credentials tokens (`/v1/oauth/access_token`) that live 3600 s by `sandbox.clock()`;
  401 for a missing, unknown, expired or revoked token (verified: token shape and lifetime;
  not verified: the body of a 401 and of a refused credentials pair, which follow OAuth2
  `invalid_client` conventions here).
- Lists (`get-user-lists` is a bare array with `isDeleted`, `creationDate`, `deletionDate`),
  offset pages of prospects (`prospect-list`: `listId`, `page`, `perPage` capped at 5000 as the
  current docs say), prospects whose emails carry `status` / `isVerified`.
- `add-prospect-to-list` keyed by email, case-insensitively, account-wide: a new email becomes
  a prospect whose email is "unverified" (it entered Snov.io without verification); an existing
  one is joined to the list (`added`) and, only with `updateContact`, has its data overwritten
  (`updated`). Unknown custom fields are dropped. Not verified: a third-party integration
  reports that Snov.io leaves an existing prospect in its original list; this fake follows the
  docs ("added" is true when the prospect joins the list).
- Campaign history (`emails-sent`, `get-emails-opened|clicked|replies`, `prospect-finished`)
  with the documented row shapes and the 10,000-row `offset` window.
- Webhooks v2 (list / create / change status / delete; at most 50) and their deliveries.
  NOT verified: the delivery payload; see integrations/snovio/webhook_payload.py.
With `sandbox.config["strict_spec"]`, requests that miss a documented required parameter get 400.
"""

from __future__ import annotations

import copy
import hashlib
import re
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any
from urllib.parse import parse_qs

from django.conf import settings

from integrations.sandbox.core import SandboxRequest, SandboxResponse, json_response
from integrations.snovio import constants as C

USER_ID = 1313777
SENDER_EMAIL = "outreach@sandbox-sender.example"
DEFAULT_CAMPAIGN = "Demo outreach"
MAX_PER_PAGE = 5000  # the current docs; the client itself never asks for more than 100
OTHER_WEBHOOK_EVENTS = {
    ("company", "found_domains_by_names"),
    ("prospect", "found_by_li_url"),
    ("email_verification", "verified"),
}
HISTORY_ROUTES = {
    C.EMAILS_SENT_PATH: "sent",
    C.EMAILS_OPENED_PATH: "opened",
    C.EMAILS_CLICKED_PATH: "clicked",
    C.EMAILS_REPLIES_PATH: "replies",
    C.PROSPECTS_FINISHED_PATH: "finished",
}
# Trigger -> (history kind, recipients-activity event_type, counter on the recipient, status).
EVENTS = {
    "email_sent": ("sent", "sent", "sentCount", "Active"),
    "email_opened": ("opened", "open", "openCount", None),
    "link_clicked": ("clicked", "click", "clickCount", None),
    "reply_received": ("replies", "reply", "replyCount", "Replied"),
    "email_bounced": ("bounced", "bounce", "bounceCount", "Bounced"),
    "campaign_finished": ("finished", "campaign_finished", None, "Finished"),
}
WEBHOOK_ITEM = re.compile(r"^/v2/webhooks/(\d+)$")


class BadRequest(Exception):
    """A request Snov.io would refuse; becomes a 400 with this message."""


def _empty_state() -> dict:
    return {
        "next": {"list": 1000001, "prospect": 1, "campaign": 201, "webhook": 1, "record": 1},
        "tokens": {},
        "revoked": False,
        "lists": {},
        "prospects": {},
        "custom_fields": [],
        "campaigns": {},
        "history": {},
        "webhooks": {},
    }


class SnovioSimulator:
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
        deliveries = [
            {**meta, "status": self.sandbox.send_webhook(meta["url"], {}, payload)}
            for meta, payload in outgoing
        ]
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
        return self._prospect_out(prospect)

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
        return self._prospect_out(prospect)

    def expire_tokens(self) -> None:
        """Forget issued tokens without touching the credentials (a token died early)."""
        self.state["tokens"] = {}

    def webhooks(self) -> list[dict]:
        return [dict(w) for w in self.state["webhooks"].values()]

    def history(self, campaign: str, kind: str) -> list[dict]:
        found = self._campaign_named(campaign)
        return list(self.state["history"].get(str(found["id"]), {}).get(kind, [])) if found else []

    # === auth ==============================================================================
    def _issue_token(self, params: dict) -> SandboxResponse:
        if params.get("grant_type") != "client_credentials":
            return _oauth_error(
                400, "unsupported_grant_type", "grant_type must be client_credentials"
            )
        if self.state["revoked"] or (params.get("client_id"), params.get("client_secret")) != (
            settings.SANDBOX_SNOVIO_CLIENT_ID,
            settings.SANDBOX_SNOVIO_CLIENT_SECRET,
        ):
            return _oauth_error(401, "invalid_client", "Client authentication failed")
        now = self._now()
        tokens = {t: exp for t, exp in self.state["tokens"].items() if exp > now}
        token = secrets.token_hex(20)
        tokens[token] = now + C.TOKEN_LIFETIME_SECONDS
        self.state["tokens"] = tokens
        return json_response(
            {"access_token": token, "token_type": "Bearer", "expires_in": C.TOKEN_LIFETIME_SECONDS}
        )

    def _authorized(self, request: SandboxRequest, params: dict) -> bool:
        header = request.header("authorization")
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        token = token or str(params.get("access_token") or "")
        expires = self.state["tokens"].get(token)
        return expires is not None and expires > self._now()

    def _resolve(self, method: str, path: str) -> tuple[Callable | None, bool]:
        match = WEBHOOK_ITEM.match(path)
        if match:
            item = {"PUT": self._change_webhook, "DELETE": self._delete_webhook}.get(method)
            return (partial(item, match[1]) if item else None), True
        if path in HISTORY_ROUTES:
            handler = partial(self._history, HISTORY_ROUTES[path])
            return (handler if method == "GET" else None), True
        methods = {m: h for (m, p), h in self._routes.items() if p == path}
        return methods.get(method), bool(methods)

    def _require(self, params: dict, *names: str) -> None:
        if not self.sandbox.config.get("strict_spec"):
            return
        absent = [n for n in names if params.get(n) in (None, "", [], {})]
        if absent:
            raise BadRequest(f"Missing required parameter: {', '.join(absent)}")

    # === lists and prospects ===============================================================
    def _user_lists(self, params: dict) -> SandboxResponse:
        return json_response([self._list_out(x) for x in self.state["lists"].values()])

    def _create_list_api(self, params: dict) -> SandboxResponse:
        self._require(params, "name")
        lst = self._new_list(str(params.get("name") or "New list"))
        return json_response([{"success": True, "data": {"id": lst["id"]}}])

    def _prospect_list(self, params: dict) -> SandboxResponse:
        self._require(params, "listId")
        lst = self._list_or_404(params.get("listId"))
        page = _int(params.get("page"), 1, "page")
        per_page = min(_int(params.get("perPage"), 100, "perPage"), MAX_PER_PAGE)
        members = lst["members"][(page - 1) * per_page : page * per_page]
        prospects = [self._prospect_out(self.state["prospects"][pid]) for pid in members]
        info = {
            "name": lst["name"],
            "contacts": len(lst["members"]),
            "creationDate": _php_date(lst["createdAt"]),
            "emailsCount": sum(len(self.state["prospects"][p]["emails"]) for p in lst["members"]),
        }
        return json_response({"success": True, "list": info, "prospects": prospects})

    def _add_prospect_api(self, params: dict) -> SandboxResponse:
        self._require(params, "listId")
        email = str(params.get("email") or "").strip()
        if self.sandbox.config.get("strict_spec") and not email and not params.get("socialLinks"):
            raise BadRequest("email is required (or socialLinks when there is no email)")
        lst = self._list_or_404(params.get("listId"))
        fields = self._fields_from(params)
        prospect = self._prospect_by_email(email) if email else None
        if prospect is None:
            # Emails that arrive through the API were never verified by Snov.io.
            prospect = self._new_prospect(fields, email, C.EMAIL_UNVERIFIED)
            self._join(lst, prospect)
            return json_response(
                {"success": True, "id": prospect["id"], "added": True, "updated": False}
            )
        updated = _truthy(params.get("updateContact"))
        if updated:
            self._apply(prospect, fields)
        added = self._join(lst, prospect)
        return json_response(
            {"success": True, "id": prospect["id"], "added": added, "updated": updated}
        )

    def _prospects_by_email(self, params: dict) -> SandboxResponse:
        self._require(params, "email")
        prospect = self._prospect_by_email(str(params.get("email") or ""))
        data = [self._prospect_full(prospect)] if prospect else []
        return json_response({"success": True, "data": data})

    def _prospect_by_id(self, params: dict) -> SandboxResponse:
        self._require(params, "id")
        prospect = self.state["prospects"].get(str(params.get("id") or ""))
        if prospect is None:
            return json_response({"success": False, "message": "Prospect not found"})
        return json_response({"success": True, "data": self._prospect_full(prospect)})

    def _custom_fields(self, params: dict) -> SandboxResponse:
        return json_response(
            [{"key": f"customFields['{f['label']}']", **f} for f in self.state["custom_fields"]]
        )

    # === campaigns =========================================================================
    def _campaigns(self, params: dict) -> SandboxResponse:
        return json_response([dict(c) for c in self.state["campaigns"].values()])

    def _history(self, kind: str, params: dict) -> SandboxResponse:
        self._require(params, "campaignId")
        rows = self.state["history"].get(str(params.get("campaignId") or ""), {}).get(kind, [])
        if params.get("offset") in (None, ""):
            return json_response(rows[-C.HISTORY_PAGE_SIZE :])  # "the last 10,000"
        offset = _int(params.get("offset"), 0, "offset")
        return json_response(rows[offset : offset + C.HISTORY_PAGE_SIZE])

    # === webhooks ==========================================================================
    def _list_webhooks(self, params: dict) -> SandboxResponse:
        hooks = list(self.state["webhooks"].values())
        meta = {"webhooks_count": len(hooks), "user_id": USER_ID}
        return json_response({"data": [{"data": dict(h)} for h in hooks], "meta": meta})

    def _create_webhook(self, params: dict) -> SandboxResponse:
        obj, action = params.get("event_object"), params.get("event_action")
        url = str(params.get("endpoint_url") or "")
        if not (obj and action and url):
            raise BadRequest("event_object, event_action and endpoint_url are required")
        pairs = set(C.CAMPAIGN_WEBHOOK_EVENTS) | OTHER_WEBHOOK_EVENTS
        if (obj, action) not in pairs:
            raise BadRequest(f"Unsupported webhook event {obj}/{action}")
        if len(self.state["webhooks"]) >= C.WEBHOOK_LIMIT:
            raise BadRequest(f"Webhook limit reached: at most {C.WEBHOOK_LIMIT} per account")
        hook = {
            "id": self._next("webhook"),
            "end_point": url,
            "event_object": obj,
            "event_action": action,
            "created_at": int(self._now()),
            "status": C.WEBHOOK_ACTIVE,
        }
        self.state["webhooks"][str(hook["id"])] = hook
        return json_response({"data": dict(hook), "meta": {"user_id": USER_ID}})

    def _change_webhook(self, webhook_id: str, params: dict) -> SandboxResponse:
        hook = self.state["webhooks"].get(webhook_id)
        if hook is None:
            return _error(404, f"Webhook {webhook_id} not found")
        if params.get("status") not in (C.WEBHOOK_ACTIVE, C.WEBHOOK_DEACTIVATED):
            raise BadRequest("status must be active or deactivated")
        hook["status"] = params["status"]
        return json_response({"data": dict(hook), "meta": {"user_id": USER_ID}})

    def _delete_webhook(self, webhook_id: str, params: dict) -> SandboxResponse:
        if self.state["webhooks"].pop(webhook_id, None) is None:
            return _error(404, f"Webhook {webhook_id} not found")
        return json_response({"data": {"success": True}})

    # === state helpers =====================================================================
    def _now(self) -> float:
        return float(self.sandbox.clock())

    def _next(self, kind: str) -> int:
        value = self.state["next"][kind]
        self.state["next"][kind] = value + 1
        return value

    def _new_list(self, name: str) -> dict:
        lst = {
            "id": self._next("list"),
            "name": name,
            "isDeleted": False,
            "createdAt": self._now(),
            "deletedAt": None,
            "members": [],
        }
        self.state["lists"][str(lst["id"])] = lst
        return lst

    def _list_named(self, name_or_id) -> dict:
        lst = self.state["lists"].get(str(name_or_id))
        lst = lst or next(
            (x for x in self.state["lists"].values() if x["name"] == name_or_id), None
        )
        if lst is None:
            raise ValueError(f"No Snov.io list {name_or_id!r}")
        return lst

    def _list_or_404(self, list_id) -> dict:
        lst = self.state["lists"].get(str(list_id or ""))
        if lst is None or lst["isDeleted"]:
            raise BadRequest(f"List {list_id} not found")
        return lst

    def _list_out(self, lst: dict) -> dict:
        return {
            "id": lst["id"],
            "name": lst["name"],
            "contacts": len(lst["members"]),
            "isDeleted": lst["isDeleted"],
            "creationDate": _php_date(lst["createdAt"]),
            "deletionDate": _php_date(lst["deletedAt"]) if lst["deletedAt"] else None,
        }

    def _new_prospect(self, fields: dict, email: str, status: str) -> dict:
        number = self._next("prospect")
        now = self._now()
        prospect = {
            "id": hashlib.sha256(f"sandbox-prospect-{number}".encode()).hexdigest(),
            **{f: "" for f in C.PROSPECT_FIELDS},
            "phones": [],
            "customFields": {},
            "socialLinks": {},
            "emails": [_email_entry(email, status)] if email else [],
            "lists": [],
            "campaigns": {},
            "createdAt": now,
            "updatedAt": now,
        }
        self._apply(prospect, fields)
        self.state["prospects"][prospect["id"]] = prospect
        if email:
            self._emails[email.lower()] = prospect["id"]
        return prospect

    def _apply(self, prospect: dict, fields: dict) -> None:
        for key in C.PROSPECT_FIELDS:
            if fields.get(key) is not None:
                prospect[key] = str(fields[key])
        if fields.get("fullName") and not (fields.get("firstName") or fields.get("lastName")):
            first, _, last = str(fields["fullName"]).partition(" ")
            prospect["firstName"], prospect["lastName"] = first, last
        if not fields.get("fullName") and (fields.get("firstName") or fields.get("lastName")):
            prospect["fullName"] = f"{prospect['firstName']} {prospect['lastName']}".strip()
        if fields.get("phones") is not None:
            prospect["phones"] = list(fields["phones"])
        prospect["customFields"].update(fields.get("customFields") or {})
        prospect["socialLinks"].update(fields.get("socialLinks") or {})
        prospect["updatedAt"] = self._now()

    def _join(self, lst: dict, prospect: dict) -> bool:
        if prospect["id"] in lst["members"]:
            return False
        lst["members"].append(prospect["id"])
        prospect["lists"].append(lst["id"])
        return True

    def _fields_from(self, params: dict) -> dict:
        known = {f["label"] for f in self.state["custom_fields"]}
        custom = params.get("customFields") if isinstance(params.get("customFields"), dict) else {}
        phones = params.get("phones")
        return {
            **{f: params[f] for f in C.PROSPECT_FIELDS if params.get(f) is not None},
            "phones": [phones] if isinstance(phones, str) else phones,
            "customFields": {k: v for k, v in custom.items() if k in known},
            "socialLinks": params.get("socialLinks")
            if isinstance(params.get("socialLinks"), dict)
            else {},
        }

    def _prospect_by_email(self, email: str) -> dict | None:
        pid = self._emails.get(str(email or "").strip().lower())
        return self.state["prospects"].get(pid) if pid else None

    def _prospect_out(self, prospect: dict) -> dict:
        """A prospect as prospect-list shows it."""
        first, last = prospect["firstName"], prospect["lastName"]
        return {
            "id": prospect["id"],
            "name": prospect["fullName"] or f"{first} {last}".strip(),
            "firstName": first,
            "lastName": last,
            "emails": [dict(e) for e in prospect["emails"]],
            **{f: prospect[f] for f in C.PROSPECT_FIELDS[3:]},
            "phones": list(prospect["phones"]),
            "customFields": dict(prospect["customFields"]),
            "socialLinks": dict(prospect["socialLinks"]),
        }

    def _prospect_full(self, prospect: dict) -> dict:
        """A prospect as get-prospect-by-id / get-prospects-by-email show it."""
        lists = [self.state["lists"][str(i)] for i in prospect["lists"]]
        job = {"companyName": prospect["companyName"], "position": prospect["position"]}
        return {
            **self._prospect_out(prospect),
            "industry": prospect["customFields"].get("Industry"),
            "social": [{"link": v, "type": k} for k, v in prospect["socialLinks"].items()],
            "lastUpdateDate": _php_date(prospect["updatedAt"]),
            "currentJob": [{**job, "site": prospect["companySite"]}],
            "previousJob": [],
            "lists": [{"id": x["id"], "name": x["name"]} for x in lists],
            "campaigns": [dict(c) for c in prospect["campaigns"].values()],
        }

    def _new_campaign(self, title: str, list_id, status: str = "Active") -> dict:
        now = int(self._now())
        campaign = {
            "id": self._next("campaign"),
            "campaign": title,
            "list_id": list_id,
            "status": status,
            "created_at": now,
            "updated_at": now,
            "started_at": now if status != "Draft" else None,
            "hash": hashlib.md5(f"campaign-{title}-{now}".encode()).hexdigest(),
        }
        self.state["campaigns"][str(campaign["id"])] = campaign
        return campaign

    def _campaign_named(self, name_or_id: str) -> dict | None:
        wanted = str(name_or_id).strip()
        found = self.state["campaigns"].get(wanted)
        return found or next(
            (
                c
                for c in self.state["campaigns"].values()
                if c["campaign"].lower() == wanted.lower()
            ),
            None,
        )

    def _campaign_for(self, name_or_id: str, prospect: dict) -> dict:
        found = self._campaign_named(name_or_id)
        if found is None:  # firing into a new campaign starts it, on the prospect's first list
            first_list = prospect["lists"][0] if prospect["lists"] else None
            found = self._new_campaign(name_or_id, first_list)
        return found

    # === campaign events ===================================================================
    def _record_event(self, event: str, prospect: dict, campaign: dict) -> list[tuple[str, str]]:
        """Count the event on the recipient, add a history row; the webhook events it raises."""
        kind, _, counter, status = EVENTS[event]
        recipient = prospect["campaigns"].setdefault(
            str(campaign["id"]), {"id": campaign["id"], "campaign": campaign["campaign"]}
        )
        first = counter is not None and not recipient.get(counter)
        if counter:
            recipient[counter] = recipient.get(counter, 0) + 1
        if status:
            recipient["status"] = status
        history = self.state["history"].setdefault(str(campaign["id"]), {})
        history.setdefault(kind, []).append(self._history_row(kind, prospect, campaign))
        pairs = [C.TRIGGER_WEBHOOKS[event]]
        if first and event == "email_sent":
            pairs.append(("campaign_email", "first_sent"))
        if first and event == "reply_received":
            pairs.append(("campaign_reply", "first_received"))
        return pairs

    def _history_row(self, kind: str, prospect: dict, campaign: dict) -> dict:
        now = self._now()
        row_id = hashlib.md5(f"record-{self._next('record')}".encode()).hexdigest()
        name = self._prospect_out(prospect)["name"]
        email = prospect["emails"][0]["email"]
        if kind in ("sent", "finished", "bounced"):
            row = {"userName": name, "userEmail": email, "campaign": campaign["campaign"]}
            row = {"sentDate": _php_date(now), **row} if kind == "sent" else row
            if kind != "sent":
                row |= {"prospectId": prospect["id"], "date": _php_date(now)}
            return {**row, "hash": row_id, "id": row_id}
        subject, body = _email_text(prospect, campaign)
        return {
            "visitedAt": _php_date(now),
            "campaignId": campaign["id"],
            "campaign": campaign["campaign"],
            "prospectId": prospect["id"],
            "prospectFirstName": prospect["firstName"],
            "prospectLastName": prospect["lastName"],
            "prospectName": name,
            "sourcePage": None,
            "source": "copy",
            "locality": prospect["locality"] or None,
            "industry": prospect["customFields"].get("Industry"),
            "country": prospect["country"] or None,
            "prospectEmail": email,
            "hash": row_id,
            "emailSubject": subject,
            "emailBody": body,
            "skills": "",
            "links": None,
            "customFields": None,
            "id": row_id,
        }

    def _deliveries(self, pairs, event, prospect, campaign) -> list[tuple[dict, dict]]:
        out = []
        for hook in self.state["webhooks"].values():
            pair = (hook["event_object"], hook["event_action"])
            if hook["status"] == C.WEBHOOK_ACTIVE and pair in pairs:
                payload = self._payload(hook, event, prospect, campaign)
                meta = {"webhook_id": hook["id"], "url": hook["end_point"], "event": "/".join(pair)}
                out.append((meta, payload))
        return out

    def _payload(self, hook: dict, event: str, prospect: dict, campaign: dict) -> dict:
        """The delivery body (shape not verified; see integrations/snovio/webhook_payload.py)."""
        now = self._now()
        subject, body = _email_text(prospect, campaign)
        out = self._prospect_out(prospect)
        return {
            "event_object": hook["event_object"],
            "event_action": hook["event_action"],
            "webhook_id": hook["id"],
            "created_at": int(now),
            "data": {
                "event_time": datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d %H:%M:%S"),
                "event_type": EVENTS[event][1],
                "campaign_id": campaign["id"],
                "campaign_name": campaign["campaign"],
                "prospect_id": prospect["id"],
                "recipient_email": out["emails"][0]["email"],
                "recipient_name": out["name"],
                "recipient_first_name": out["firstName"],
                "recipient_last_name": out["lastName"],
                "sender_email": SENDER_EMAIL,
                "email_subject": subject,
                "email_body": body,
            },
        }


# === module helpers ========================================================================
def _params(request: SandboxRequest) -> dict[str, Any]:
    """Query string plus body (JSON or form with Snov.io's bracket notation), merged."""
    merged: dict[str, Any] = dict(request.query)
    if not request.body:
        return merged
    if "json" in request.header("content-type"):
        try:
            body = request.json()
        except ValueError as exc:
            raise BadRequest("Body is not valid JSON") from exc
        merged.update(body if isinstance(body, dict) else {})
    else:
        merged.update(_form(request.body))
    return merged


def _form(body: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, values in parse_qs(body.decode(), keep_blank_values=True).items():
        match = re.fullmatch(r"(\w+)\[([^\]]*)\]", key)
        if match and (match[2] == "" or match[2].isdigit()):
            out.setdefault(match[1], []).extend(values)  # phones[] / phones[0]
        elif match:
            out.setdefault(match[1], {})[match[2].strip("'\"")] = values[-1]
        else:
            out[key] = values if len(values) > 1 else values[0]
    return out


def _seed_fields(record: dict) -> dict:
    """Prospect fields from seed.py's snake_case records (or camelCase test kwargs)."""
    aliases = {
        "first_name": "firstName",
        "last_name": "lastName",
        "full_name": "fullName",
        "company": "companyName",
        "company_name": "companyName",
        "custom_fields": "customFields",
        "social_links": "socialLinks",
    }
    fields = {aliases.get(k, k): v for k, v in record.items()}
    if fields.get("phone"):
        fields["phones"] = [fields.pop("phone")]
    return fields


def _email_entry(email: str, status: str) -> dict:
    return {"email": email, "status": status, "isVerified": status != C.EMAIL_UNVERIFIED}


def _email_text(prospect: dict, campaign: dict) -> tuple[str, str]:
    company = prospect["companyName"] or "your team"
    subject = f"{campaign['campaign']}: a quick idea for {company}"
    body = f"<p>Hi {prospect['firstName'] or 'there'},</p><p>May I show you what we do?</p>"
    return subject, body


def _summary(event: str, prospect: dict, campaign: dict, deliveries: list[dict]) -> str:
    failed = sum(1 for d in deliveries if not 200 <= (d["status"] or 0) < 300)
    text = (
        f"{C.TRIGGER_LABELS[event]} for {prospect['emails'][0]['email']} in campaign "
        f"“{campaign['campaign']}”: {len(deliveries)} webhook delivery(ies)"
    )
    return text + (f", {failed} failed" if failed else "")


def _php_date(timestamp: float) -> dict:
    """Snov.io's v1 date object (a serialised PHP DateTime)."""
    text = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S.000000")
    return {"date": text, "timezone_type": 3, "timezone": "UTC"}


def _int(value: Any, default: int, name: str) -> int:
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"{name} must be a whole number") from exc
    if number < (0 if name == "offset" else 1):
        raise BadRequest(f"{name} is out of range")
    return number


def _truthy(value: Any) -> bool:
    return value is True or str(value).strip().lower() in ("1", "true", "yes", "on")


def _error(status: int, message: str) -> SandboxResponse:
    return json_response({"success": False, "message": message}, status)


def _oauth_error(status: int, code: str, message: str) -> SandboxResponse:
    return json_response({"error": code, "error_description": message, "message": message}, status)


def _not_allowed() -> SandboxResponse:
    return _error(405, "Method not allowed")
