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


# --- the second match key ---------------------------------------------------------------------
def test_profile_urls_are_compared_without_scheme_www_country_slash_or_case():
    from integrations.sync.matching import normalise_url

    same = [
        "https://www.linkedin.com/in/Anna-Schmidt/",
        "http://linkedin.com/in/anna-schmidt",
        "linkedin.com/in/anna-schmidt//",
        "  https://de.linkedin.com/in/anna-schmidt?trk=profile#top ",
        "www.LinkedIn.com/in/anna-schmidt",
    ]
    assert {normalise_url(u) for u in same} == {"linkedin.com/in/anna-schmidt"}
    assert normalise_url("https://linkedin.com/in/anna-schmidt-2") != normalise_url(same[0])
    assert [normalise_url(v) for v in (None, "", "   ", "https://")] == ["", "", "", ""]


def test_phones_are_compared_as_digits():
    from integrations.sync.matching import normalise_phone

    assert normalise_phone("+49 (30) 123-45") == normalise_phone("49 30 12345") == "493012345"
    assert normalise_phone(" - ") == ""


def test_a_list_row_has_an_unknown_key_and_a_profile_without_a_link_has_none():
    from integrations.sync.matching import SecondKey

    key = SecondKey("linkedin", "f" * 40)
    assert key.prospect_value({"id": "p1", "emails": []}) is None  # a row: read the profile
    assert key.prospect_value({"id": "p1", "social": []}) == ""
    profile = {"social": [{"type": "twitter", "link": "x"}, {"type": "linkedIn", "link": " L "}]}
    assert key.prospect_value(profile) == "L"
    assert key.of_prospect(
        {"social": [{"type": "other", "link": "https://linkedin.com/in/a/"}]}
    ) == ("linkedin:linkedin.com/in/a")
    assert key.of_person({"custom_fields": {"f" * 40: "   "}}) == ""
    assert (
        key.of_person({"custom_fields": {"f" * 40: "LinkedIn.com/in/A"}})
        == "linkedin:linkedin.com/in/a"
    )


def test_blank_keys_are_never_indexed_and_shared_keys_are_ambiguous():
    from integrations.sync.matching import PackedIndex, SecondKey

    key = SecondKey("linkedin", "f" * 40)

    def keys_of(person):
        return [*person_emails(person), key.of_person(person)]

    index = PackedIndex(keys_of)
    for n, url in enumerate(
        ["", "  ", None, "linkedin.com/in/twin", "https://linkedin.com/in/twin/"]
    ):
        index.add({"id": n, "emails": [], "custom_fields": {"f" * 40: url}})
    index.add(
        {
            "id": 9,
            "emails": [{"value": "solo@x.example"}],
            "custom_fields": {"f" * 40: "linkedin.com/in/solo"},
        }
    )
    assert index.find(["", key.tag(""), key.tag("  ")]) is None
    assert index.ambiguous("linkedin:linkedin.com/in/twin")
    assert not index.ambiguous("linkedin:linkedin.com/in/solo")
    found = index.find(["nobody@x.example", "linkedin:linkedin.com/in/solo"])
    assert found.record_id == 9 and found.by_second_key and found.email == ""
    assert index.find(["SOLO@x.example", "linkedin:linkedin.com/in/twin"]).email == "solo@x.example"


@pytest.mark.parametrize("seed", range(5))
def test_emails_and_key_values_never_stand_for_each_other(seed):
    """A tagged key value is never found by an email and an email never by a key value."""
    from integrations.sync.matching import KeyIndex, SecondKey, is_tagged

    rng = random.Random(seed)
    key = SecondKey("linkedin", "f" * 40)
    records = [
        {
            "id": n,
            "emails": [{"value": f"linkedin.com/in/{rng.randrange(4)}@x.example"}],
            "custom_fields": {"f" * 40: f"linkedin.com/in/{rng.randrange(4)}@x.example"},
        }
        for n in range(10)
    ]
    index = KeyIndex.build(records, lambda p: [*person_emails(p), key.of_person(p)])
    for record in records:
        (email,) = person_emails(record)
        assert not is_tagged(email)
        assert all(email in person_emails(r) for r in index.candidates([email]))
        tagged = key.of_person(record)
        assert is_tagged(tagged)
        assert all(key.of_person(r) == tagged for r in index.candidates([tagged]))
