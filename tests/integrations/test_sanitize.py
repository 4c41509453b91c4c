"""Values a database or a remote cannot take: cleaned with a note, or the record refused."""

from __future__ import annotations

import datetime as dt
import decimal
import json

import pytest

from integrations.sync import sanitize


def test_nul_and_control_characters_are_removed_but_newlines_and_tabs_kept():
    cleaned = sanitize.clean_prospect(
        {"id": "p1", "firstName": "An\x00na", "position": "Head\x07 of\tsales\nEMEA", "email": ""}
    )
    assert cleaned.record["firstName"] == "Anna"
    assert cleaned.record["position"] == "Head of\tsales\nEMEA"
    assert not cleaned.refused
    assert "removed 1 control character(s) from firstName" in cleaned.notes


def test_an_over_long_name_is_cut_with_a_note_and_the_record_still_goes():
    cleaned = sanitize.clean_person({"id": 7, "name": "N" * 300, "emails": []})
    assert cleaned.record["name"] == "N" * sanitize.NAME_LIMIT
    assert cleaned.notes == [f"name cut to {sanitize.NAME_LIMIT} characters (it had 300)"]
    assert not cleaned.refused


def test_custom_field_names_and_values_are_cleaned_too():
    cleaned = sanitize.clean_prospect(
        {"id": "p1", "customFields": {"Indus\x00try": "Lo\x00gistics"}}
    )
    assert cleaned.record["customFields"] == {"Industry": "Logistics"}


@pytest.mark.parametrize(
    ("email", "why"),
    [
        ("a" * 250 + "@x.example", "longer than 254"),
        ("no-at-sign.example", "not an email address"),
        ("two@@x.example", "invalid part before the @"),
        ("ann@localhost", "invalid domain"),
        ("ann@-x.example", "invalid domain"),
        ("ann..lee@x.example", "invalid part before the @"),
        ("an\x00n@x.example", "control characters"),
        ("ann lee@x.example", "invalid part before the @"),
    ],
)
def test_a_prospect_whose_email_cannot_be_used_is_refused_with_the_reason(email, why):
    cleaned = sanitize.clean_prospect({"id": "p9", "email": email, "firstName": "Ann"})
    assert why in cleaned.refused
    assert cleaned.refused.startswith("Not sent: the email")
    assert "\x00" not in cleaned.refused  # quoted visibly, never raw


@pytest.mark.parametrize(
    "email",
    ["ann@x.example", "Ann.Lee+promo@mail.x-y.example", "o'brien@x.co", "zoë@café.example"],
)
def test_ordinary_emails_are_accepted(email):
    assert sanitize.email_problem(email) == ""


def test_a_persons_invalid_second_email_is_left_out_with_a_note():
    person = {
        "id": 3,
        "name": "Ann",
        "emails": [
            {"value": "bad@@x", "primary": False},
            {"value": "ann@x.example", "primary": True},
        ],
    }
    cleaned = sanitize.clean_person(person)
    assert not cleaned.refused
    assert cleaned.record["emails"] == [{"value": "ann@x.example", "primary": True}]
    assert any("left out the email “bad@@x”" in note for note in cleaned.notes)


def test_a_person_whose_primary_email_is_invalid_is_refused():
    person = {"id": 3, "name": "Ann", "emails": [{"value": "x" * 255, "primary": True}]}
    assert "longer than 254 characters (255)" in sanitize.clean_person(person).refused


def test_json_safe_makes_anything_storable_as_json():
    value = {
        "name": "A\x00B",
        1: ("x", {"when": dt.datetime(2026, 1, 2, 3, 4, 5)}),
        "amount": decimal.Decimal("1.50"),
        "nan": float("nan"),
        "raw": b"\xffok",
        "lone": "\ud800x",
        "kept": "line\nnext\ttab\x07bell",
    }
    safe = sanitize.json_safe(value)
    text = json.dumps(safe)  # would raise on anything non-JSON
    assert "\\u0000" not in text and "\\ud800" not in text
    assert safe["name"] == "AB" and safe["1"] == ["x", {"when": "2026-01-02T03:04:05"}]
    assert safe["amount"] == "1.50" and safe["nan"] is None and safe["lone"] == "x"
    assert safe["kept"] == "line\nnext\ttab\x07bell"  # only what storage refuses is removed
