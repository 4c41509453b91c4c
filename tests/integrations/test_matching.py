"""Matching by email: normalised, exact, every email, never by a missing email."""

import random

import pytest

from integrations.sync.mapping import person_emails, prospect_emails
from integrations.sync.matching import EmailIndex, duplicate_emails, normalise_email


def test_emails_are_trimmed_and_casefolded():
    assert normalise_email("  Anna.Schmidt@ACME.example ") == "anna.schmidt@acme.example"
    assert normalise_email("STRASSE@x.example") == normalise_email("strasse@x.example")
    assert normalise_email(None) == ""


def test_a_person_is_found_by_any_of_their_emails_not_only_the_primary():
    person = {
        "id": 1,
        "emails": [
            {"value": "primary@acme.example", "primary": True},
            {"value": "Second@Acme.example", "primary": False},
        ],
    }
    index = EmailIndex.build([person], person_emails)
    assert index.find(["second@acme.example"]) is person
    assert index.find([" PRIMARY@acme.example"]) is person


def test_a_partial_email_never_matches():
    person = {"id": 1, "emails": [{"value": "joann@acme.example", "primary": True}]}
    index = EmailIndex.build([person], person_emails)
    assert index.find(["ann@acme.example"]) is None
    assert index.find(["joann@acme"]) is None


def test_two_contacts_without_an_email_are_never_matched_to_each_other():
    a = {"id": 1, "emails": []}
    b = {"id": 2, "emails": [{"value": "", "primary": True}]}
    index = EmailIndex.build([a, b], person_emails)
    assert len(index) == 0
    assert index.find([""]) is None
    assert index.find(prospect_emails({"emails": []})) is None


def test_duplicates_on_one_side_are_reported_and_the_first_one_wins():
    first = {"id": 1, "emails": [{"value": "x@a.example", "primary": True}]}
    second = {"id": 2, "emails": [{"value": "X@A.example", "primary": True}]}
    index = EmailIndex.build([first, second], person_emails)
    assert index.find(["x@a.example"]) is first
    assert index.candidates(["x@a.example"]) == [first, second]
    assert duplicate_emails([first, second], person_emails) == {"x@a.example"}


def test_a_replaced_record_is_found_in_its_new_version():
    old = {"id": 7, "emails": [{"email": "p@a.example"}]}
    new = {"id": 7, "emails": [{"email": "p@a.example"}], "position": "CTO"}
    index = EmailIndex.build([old], prospect_emails)
    index.replace(old, new)
    assert index.find(["p@a.example"]) is new


@pytest.mark.parametrize("seed", range(5))
def test_the_index_answers_like_a_plain_scan_after_random_adds_and_replacements(seed):
    """Replacing a record touches only its own emails' entries, and every look-up still
    finds exactly the current records a scan would (the newest version of each)."""
    rng = random.Random(seed)
    pool = [f"e{n}@x.example" for n in range(12)]

    def record(n: int) -> dict:
        return {"id": n, "emails": [{"email": e} for e in rng.sample(pool, rng.randint(0, 3))]}

    index = EmailIndex(prospect_emails)
    current: list[dict] = []  # the reference: records in the order they were first added
    for step in range(300):
        if current and rng.random() < 0.5:
            position = rng.randrange(len(current))
            old = current[position]
            new = {**record(old["id"]), "emails": old["emails"] + record(0)["emails"][:1]}
            index.replace(old, new)
            current[position] = new
        else:
            new = record(step + 1000)
            index.add(new)
            current.append(new)
        email = rng.choice(pool)
        expected = [r for r in current if email in prospect_emails(r)]
        found = index.candidates([email])
        assert sorted(map(id, found)) == sorted(map(id, expected)), f"seed={seed} step={step}"
