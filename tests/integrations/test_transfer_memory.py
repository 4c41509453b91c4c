"""A transfer holds the receiving side packed, not as dicts: its memory grows by a few hundred
bytes per receiving record (about 4 KB each as dicts), and by an email and an id per record it
creates. The scale benchmark (tests/bench/test_scale.py, BENCH_SCALE_RECEIVING) measures the
same at 10,000 and more."""

from __future__ import annotations

import gc
import random
import tracemalloc

import pytest

from integrations.models import SyncRun
from integrations.sync import mapping
from integrations.sync.matching import PackedIndex
from integrations.sync.runs import create_run
from integrations.sync.transfer import transfer
from tests.factories import connected_integration, fast_limits  # noqa: F401


def _person(n: int) -> dict:
    """A person as Pipedrive's v2 listing gives it (the fields a transfer keeps)."""
    return {
        "id": 1000 + n,
        "name": f"Kim{n} Held",
        "first_name": f"Kim{n}",
        "last_name": "Held",
        "owner_id": 7,
        "org_id": None,
        "add_time": "2026-11-30T10:00:00Z",
        "update_time": "2026-11-30T10:00:00Z",
        "emails": [{"value": f"held{n}@x.example", "primary": True, "label": "work"}],
        "phones": [{"value": f"+1555{n:07d}", "primary": True, "label": "work"}],
        "is_deleted": False,
        "visible_to": 3,
        "label_ids": [],
        "picture_id": None,
        "custom_fields": {"a" * 40: None},
    }


def test_the_packed_index_finds_each_record_by_any_of_its_emails_as_it_was_added():
    index = PackedIndex(mapping.person_emails)
    people = [_person(n) for n in range(50)]
    people[3]["emails"].append({"value": " Second@X.example ", "primary": False})
    for person in people:
        index.add(person)
    index.add({"id": 9, "name": "No email", "emails": []})
    index.add({**_person(7), "id": 77})  # a duplicate email: the first one added is found

    for person in random.Random(4).sample(people, 10):
        assert index.find(["nobody@x.example", person["emails"][0]["value"]]).record == person
    assert index.find(["second@x.example"]).record["id"] == people[3]["id"]
    assert index.find(["held7@x.example"]).record_id == people[7]["id"]
    assert index.find(["", "nobody@x.example"]) is None


def test_a_record_created_in_the_run_is_held_by_its_id_only_and_an_update_is_kept():
    index = PackedIndex(mapping.person_emails)
    index.add(_person(1))
    index.add_id(["New@X.example"], 555)
    created = index.find(["new@x.example"])
    assert (created.slot, created.record, created.record_id) == (None, None, 555)

    match = index.find(["held1@x.example"])
    index.replace(match, {**match.record, "name": "Kim Renamed"})
    assert index.find(["held1@x.example"]).record["name"] == "Kim Renamed"


def test_the_packed_index_holds_a_fraction_of_what_the_records_take_as_dicts():
    def traced(build) -> int:
        gc.collect()
        tracemalloc.start()
        kept = build()
        size = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        del kept
        return size

    count = 5000
    as_dicts = traced(lambda: [_person(n) for n in range(count)])

    def packed():
        index = PackedIndex(mapping.person_emails)
        for n in range(count):
            index.add(_person(n))
        return index

    per_record = traced(packed) / count
    assert per_record < 400, per_record
    assert per_record * 5 < as_dicts / count


@pytest.mark.django_db
@pytest.mark.usefixtures("fast_limits")
def test_a_transfer_does_not_hold_the_receiving_sides_records(user, empty_sandbox):
    """What the sync engine keeps alive while a transfer sends its first page, with 500 and
    with 2,500 persons already in Pipedrive (the in-process sandbox's own memory left out)."""
    box = empty_sandbox
    box.snovio.create_list("Leads")
    for n in range(5):
        box.snovio.add_prospect("Leads", email=f"lead{n}@x.example", first_name=f"Pat{n}")
    admin = box.pipedrive._admin_id()
    integration = connected_integration(user, box, catalog=False)
    engine = [tracemalloc.Filter(True, "*/integrations/sync/*")]

    def held_with_persons_in_pipedrive(total: int) -> int:
        for n in range(len(box.pipedrive.persons()), total):
            box.pipedrive._insert_person(
                {"name": f"Kim{n} Held", "emails": [{"value": f"held{n}@x.example"}]}, admin
            )
        held: list[int] = []

        def after_page(run):
            if not held:
                snapshot = tracemalloc.take_snapshot().filter_traces(engine)
                held.append(sum(stat.size for stat in snapshot.statistics("filename")))

        run = create_run(integration, SyncRun.Direction.TO_PIPEDRIVE, "snovio")
        gc.collect()
        tracemalloc.start()
        try:
            run = transfer(run, after_page=after_page)
        finally:
            tracemalloc.stop()
        assert run.status == SyncRun.Status.DONE, run.error
        return held[0]

    small, large = 500, 2500
    with_few = held_with_persons_in_pipedrive(small)
    growth = held_with_persons_in_pipedrive(large) - with_few
    per_person = growth / (large - small)
    print(f"engine memory held per person in Pipedrive: {per_person:.0f} bytes")
    assert per_person < 400, per_person
