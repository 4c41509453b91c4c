"""A small in-memory Pipedrive for engine tests that need exact control (crashes, errors)."""

from __future__ import annotations

from datetime import UTC, datetime

from integrations.http import RemoteError

PIPELINES = {1: "Sales", 2: "Partners"}
STAGES = [
    {"id": 11, "name": "Lead in", "pipeline_id": 1, "order_nr": 1},
    {"id": 12, "name": "Contacted", "pipeline_id": 1, "order_nr": 2},
    {"id": 13, "name": "Demo", "pipeline_id": 1, "order_nr": 3},
    {"id": 21, "name": "Intro", "pipeline_id": 2, "order_nr": 1},
    {"id": 22, "name": "Signed", "pipeline_id": 2, "order_nr": 2},
]


class Crash(BaseException):
    """A worker dying mid-task (not an Exception: nothing in the engine may swallow it)."""


class FakePipedrive:
    def __init__(self) -> None:
        self.persons: dict[int, dict] = {}
        self.deals: dict[int, dict] = {}
        self.activities: dict[int, dict] = {}
        self.next_id = 100
        self.calls: list[str] = []
        self.fail: dict[str, RemoteError] = {}  # method -> error raised once per call
        self.crash_after: set[str] = set()  # method -> raise Crash after doing the write

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id

    def _enter(self, name: str) -> None:
        self.calls.append(name)
        if name in self.fail:
            raise self.fail[name]

    def _leave(self, name: str) -> None:
        if name in self.crash_after:
            self.crash_after.discard(name)
            raise Crash(name)

    @staticmethod
    def _now() -> str:
        return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    # persons
    def add_person(self, name: str, email: str) -> dict:
        pid = self._id()
        self.persons[pid] = {"id": pid, "name": name, "emails": [{"value": email, "primary": True}]}
        return self.persons[pid]

    def find_persons_by_email(self, email: str) -> list[dict]:
        self._enter("find_persons_by_email")
        wanted = email.strip().casefold()
        return [
            p
            for p in self.persons.values()
            if wanted in {e["value"].strip().casefold() for e in p["emails"]}
        ]

    def create_person(self, data: dict) -> dict:
        self._enter("create_person")
        pid = self._id()
        self.persons[pid] = {"id": pid, **data}
        self._leave("create_person")
        return self.persons[pid]

    # deals
    def add_deal(
        self, person_id: int, pipeline_id: int, stage_id: int, status="open", title=""
    ) -> dict:
        did = self._id()
        self.deals[did] = {
            "id": did,
            "title": title or f"Deal {did}",
            "person_id": person_id,
            "pipeline_id": pipeline_id,
            "stage_id": stage_id,
            "status": status,
            "add_time": self._now(),
        }
        return self.deals[did]

    def list_deals(self, person_id: int | None = None, status: str | None = "open") -> list[dict]:
        self._enter("list_deals")
        return [
            dict(d)
            for d in self.deals.values()
            if (person_id is None or d["person_id"] == person_id)
            and (status is None or d["status"] == status)
        ]

    def create_deal(self, data: dict) -> dict:
        self._enter("create_deal")
        deal = self.add_deal(
            data["person_id"], data["pipeline_id"], data["stage_id"], title=data["title"]
        )
        deal.update({k: v for k, v in data.items() if k == "owner_id"})
        self._leave("create_deal")
        return dict(deal)

    def update_deal(self, deal_id: int, data: dict) -> dict:
        self._enter("update_deal")
        self.deals[deal_id].update(data)
        self._leave("update_deal")
        return dict(self.deals[deal_id])

    # activities
    def create_activity(self, data: dict) -> dict:
        self._enter("create_activity")
        aid = self._id()
        self.activities[aid] = {"id": aid, "add_time": self._now(), **data}
        self._leave("create_activity")
        return dict(self.activities[aid])

    def list_activities(self, person_id: int | None = None, done: bool | None = None) -> list[dict]:
        self._enter("list_activities")
        return [
            dict(a)
            for a in self.activities.values()
            if (person_id is None or a.get("person_id") == person_id)
            and (done is None or a.get("done") == done)
        ]

    # pipelines
    def list_stages(self, pipeline_id: int | None = None) -> list[dict]:
        self._enter("list_stages")
        return [dict(s) for s in STAGES if pipeline_id is None or s["pipeline_id"] == pipeline_id]

    def list_pipelines(self) -> list[dict]:
        return [{"id": k, "name": v} for k, v in PIPELINES.items()]
