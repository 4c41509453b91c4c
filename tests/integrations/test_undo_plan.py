"""The undo's decision for one record, pure: what goes back, what is removed, what stays."""

from __future__ import annotations

from integrations.sync.undo import CANNOT_EMPTY, CANNOT_REMOVE_PROSPECT, GONE, plan_record


def change(old, new, label="Job title"):
    return {"old": old, "new": new, "label": label}


def test_a_field_still_as_written_goes_back_and_one_changed_since_stays_with_the_reason():
    fields = {"job_title": change(None, "CTO"), "phone": change("1", "2", "Phone")}
    plan = plan_record(False, fields, {"job_title": "CTO", "phone": "3"}, to_snovio=False)
    assert plan.action == "restore" and plan.restore == {"job_title": None}
    assert plan.rows["job_title"] == {"old": "CTO", "new": None, "label": "Job title"}
    assert "now “3”" in plan.left_alone["phone"]["reason"]


def test_a_record_already_back_as_before_needs_no_write():
    plan = plan_record(False, {"job_title": change("Dev", "CTO")}, {"job_title": "Dev"}, False)
    assert plan.action == "done" and not plan.restore and not plan.left_alone


def test_snovio_fields_cannot_be_emptied_but_can_be_put_back():
    fields = {"position": change("", "CTO", "Position"), "country": change("FR", "DE", "Country")}
    plan = plan_record(False, fields, {"position": "CTO", "country": "DE"}, to_snovio=True)
    assert plan.restore == {"country": "FR"}
    assert plan.left_alone["position"]["reason"] == CANNOT_EMPTY


def test_a_created_record_is_removed_only_if_no_mapped_field_changed_since():
    fields = {"name": change(None, "Ann One", "Name")}
    assert plan_record(True, fields, {"name": "Ann One", "job_title": None}, False).action == (
        "remove"
    )
    now = {"name": "Ann One", "job_title": "CEO"}
    filled = plan_record(True, fields, now, False, labels={"job_title": "Job title"})
    assert filled.action == "leave" and filled.left_alone["job_title"]["label"] == "Job title"
    assert plan_record(True, fields, None, False).action == "gone"


def test_a_created_prospect_is_never_removed_and_an_updated_record_gone_is_left():
    fields = {"name": change(None, "Ann One", "Name")}
    prospect = plan_record(True, fields, {"name": "Ann One"}, to_snovio=True)
    assert prospect.action == "leave" and prospect.reason == CANNOT_REMOVE_PROSPECT
    assert plan_record(False, fields, None, False).reason == GONE


def test_organizations_compare_without_regard_to_case():
    plan = plan_record(
        False, {"org_id": change(None, "Acme", "Company")}, {"org_id": "ACME"}, False
    )
    assert plan.restore == {"org_id": None}
