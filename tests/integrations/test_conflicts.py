"""Source-app-wins merge: the chosen source wins conflicts; empty never erases."""

from integrations.sync.conflicts import merge, new_record


def test_the_sending_side_wins_every_differing_field_when_it_is_the_source_app():
    result = merge(
        {"phone": "+33 1", "job_title": "CTO", "name": "Anna"},
        {"phone": "+49 2", "job_title": "Founder", "name": "Anna"},
        sending_wins=True,
    )
    assert result.changes == {"phone": "+49 2", "job_title": "Founder"}
    assert set(result.conflicts) == {"phone", "job_title"}
    assert result.conflicts["phone"]["winner"] == "sending"


def test_the_receiving_side_keeps_its_values_when_it_is_the_source_app():
    result = merge({"phone": "+33 1"}, {"phone": "+49 2"}, sending_wins=False)
    assert result.changes == {}
    assert result.conflicts == {
        "phone": {
            "receiving": "+33 1",
            "sending": "+49 2",
            "winner": "receiving",
            "rule": "source_app",  # each conflict names the rule that settled it
            "rule_label": "The source app wins",
        }
    }


def test_an_empty_source_value_never_erases_a_filled_one():
    result = merge(
        {"phone": "+33 1", "job_title": "CTO"}, {"phone": None, "job_title": ""}, sending_wins=True
    )
    assert not result.changed
    assert result.conflicts == {}


def test_an_empty_receiving_field_is_filled_whoever_is_the_source_app():
    result = merge({"job_title": None}, {"job_title": "CTO"}, sending_wins=False)
    assert result.changes == {"job_title": "CTO"}
    assert result.diffs == {"job_title": {"old": None, "new": "CTO"}}
    assert result.conflicts == {}


def test_the_matching_email_is_never_rewritten():
    result = merge({"email": "a@x.example"}, {"email": "b@x.example"}, sending_wins=True)
    assert not result.changed


def test_constants_fill_empty_fields_but_never_overwrite_an_existing_record():
    result = merge(
        {"source": "Website", "stage": None},
        {"name": "Anna"},
        sending_wins=True,
        defaults={"source": "Snov.io", "stage": "Lead"},
    )
    assert result.changes == {"name": "Anna", "stage": "Lead"}


def test_a_new_record_is_stamped_with_the_constants():
    values = new_record({"name": "Anna", "phone": None}, {"source": "Snov.io"})
    assert values == {"name": "Anna", "source": "Snov.io"}


def test_the_field_changes_are_reported_for_the_record_log():
    result = merge({"phone": "1"}, {"phone": "2"}, sending_wins=True)
    rule = {"rule": "source_app", "rule_label": "The source app wins"}
    assert result.as_dict() == {
        "fields": {"phone": {"old": "1", "new": "2", "rule_label": rule["rule_label"]}},
        "conflicts": {"phone": {"receiving": "1", "sending": "2", "winner": "sending", **rule}},
    }
