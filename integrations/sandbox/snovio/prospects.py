"""Lists and prospects: the API endpoints and the records behind them."""

from __future__ import annotations

import hashlib

from integrations.sandbox.messages import SandboxResponse, json_response
from integrations.sandbox.snovio.common import (
    MAX_PER_PAGE,
    BadRequest,
    _email_entry,
    _int,
    _php_date,
    _truthy,
)
from integrations.snovio import constants as C


class ProspectsMixin:
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
        # The prospect's few lists, not the list's members: O(1) at 100,000 members.
        if lst["id"] in prospect["lists"]:
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
        """A prospect as prospect-list shows it: the documented row carries names and emails
        only (docs/specs/snovio-shapes.md); position, company, phones and custom fields are
        not in it."""
        first, last = prospect["firstName"], prospect["lastName"]
        return {
            "id": prospect["id"],
            "name": prospect["fullName"] or f"{first} {last}".strip(),
            "firstName": first,
            "lastName": last,
            "emails": [_documented_email(e) for e in prospect["emails"]],
        }

    def _prospect_record(self, prospect: dict) -> dict:
        """Everything the sandbox holds about a prospect (for tests and the sandbox page;
        no API answer carries all of it)."""
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
            "lists": list(prospect["lists"]),
        }

    def _prospect_full(self, prospect: dict) -> dict:
        """A prospect as get-prospect-by-id / get-prospects-by-email show it: the documented
        profile (names, location, jobs, lists, campaigns). Neither answer documents the
        prospect's emails, phones or custom fields, so none is sent."""
        lists = [self.state["lists"][str(i)] for i in prospect["lists"]]
        first, last = prospect["firstName"], prospect["lastName"]
        job = {
            "companyName": prospect["companyName"],
            "position": prospect["position"],
            "socialLink": None,
            "site": prospect["companySite"],
            "locality": prospect["country"] or None,
            "state": None,
            "city": None,
            "street": None,
            "street2": None,
            "postal": None,
            "founded": None,
            "startDate": None,
            "endDate": None,
            "size": None,
            "industry": prospect["customFields"].get("Industry"),
            "companyType": None,
            "country": prospect["country"] or None,
            "hqPhone": None,
        }
        has_job = bool(prospect["companyName"] or prospect["position"] or prospect["companySite"])
        return {
            "id": prospect["id"],
            "name": prospect["fullName"] or f"{first} {last}".strip(),
            "firstName": first,
            "lastName": last,
            "industry": prospect["customFields"].get("Industry"),
            "country": prospect["country"],
            "locality": prospect["locality"],
            "social": [{"link": v, "type": k} for k, v in prospect["socialLinks"].items()],
            "lastUpdateDate": _php_date(prospect["updatedAt"]),
            "currentJob": [job] if has_job else [],
            "previousJob": [],
            "lists": [{"id": x["id"], "name": x["name"]} for x in lists],
            "campaigns": [dict(c) for c in prospect["campaigns"].values()],
        }


def _documented_email(entry: dict) -> dict:
    """An email of a prospect-list row, with the documented keys (the example's values for
    what the sandbox does not model)."""
    verified = entry["status"] != C.EMAIL_UNVERIFIED
    return {
        "email": entry["email"],
        "probability": 99 if entry["status"] == C.EMAIL_VALID else None,
        "isVerified": verified or None,
        "jobStatus": "any",
        "domainType": "linkedin",
        "isValidFormat": True if verified else None,
        "isDisposable": False if verified else None,
        "isWebmail": None,
        "isGibberish": False if verified else None,
        "smtpStatus": entry["status"] if verified else None,
    }
