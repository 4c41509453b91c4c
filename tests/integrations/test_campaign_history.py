"""Snov.io campaign history rows read as campaign events (pure: no HTTP, no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from automations.events import event_key, parse_event, payload_key
from integrations.sync import campaign_history

CAMPAIGN = {"id": 201, "campaign": "Demo outreach"}
AT = datetime(2026, 11, 30, 9, 15, 42, tzinfo=UTC)


def php(moment: datetime) -> dict:
    return {
        "date": moment.strftime("%Y-%m-%d %H:%M:%S.000000"),
        "timezone_type": 3,
        "timezone": "UTC",
    }


def webhook(event_object: str, event_action: str, **data) -> dict:
    """A delivery as the sandbox sends it (see integrations/snovio/webhook_payload.py)."""
    return {
        "event_object": event_object,
        "event_action": event_action,
        "webhook_id": 7,
        "created_at": int(AT.timestamp()),
        "data": {
            "event_time": AT.strftime("%Y-%m-%d %H:%M:%S"),
            "campaign_id": 201,
            "campaign_name": "Demo outreach",
            "prospect_id": "abc",
            "recipient_email": "Anna@Acme.example",
            "email_subject": "Hello Anna",
            **data,
        },
    }


SENT_ROW = {
    "sentDate": php(AT),
    "userName": "Anna Schmidt",
    "userEmail": "anna@acme.example",
    "campaign": "Demo outreach",
    "hash": "h1",
    "id": "h1",
}
OPENED_ROW = {
    "visitedAt": php(AT),
    "campaignId": 201,
    "campaign": "Demo outreach",
    "prospectId": "abc",
    "prospectFirstName": "Anna",
    "prospectLastName": "Schmidt",
    "prospectName": "Anna Schmidt",
    "prospectEmail": "anna@acme.example",
    "emailSubject": "Hello Anna",
    "emailBody": "<p>Hi</p>",
    "hash": "h2",
    "id": "h2",
}


def from_history(kind: str, row: dict) -> dict:
    at = campaign_history.row_time(row, campaign_history.KINDS[kind][3])
    return campaign_history.row_payload(kind, row, CAMPAIGN, at)


def test_a_history_row_and_the_webhook_of_the_same_event_share_one_key():
    assert payload_key(from_history("sent", SENT_ROW)) == payload_key(
        webhook("campaign_email", "sent")
    )
    assert payload_key(from_history("opened", OPENED_ROW)) == payload_key(
        webhook("campaign_email", "opened")
    )


def test_another_second_kind_recipient_or_campaign_is_another_event():
    base = payload_key(webhook("campaign_email", "opened"))
    later = {**OPENED_ROW, "visitedAt": php(AT + timedelta(seconds=1))}
    assert payload_key(from_history("opened", later)) != base
    assert payload_key(from_history("clicked", OPENED_ROW)) != base
    other = {**OPENED_ROW, "prospectEmail": "ben@acme.example"}
    assert payload_key(from_history("opened", other)) != base
    moved = campaign_history.row_payload("opened", OPENED_ROW, {"id": 999, "campaign": "X"}, AT)
    assert payload_key(moved) != base


def test_each_history_kind_reads_as_its_campaign_event():
    expected = {
        "sent": "email_sent",
        "opened": "email_opened",
        "clicked": "link_clicked",
        "replies": "reply_received",
        "finished": "campaign_finished",
    }
    for kind, trigger in expected.items():
        event = parse_event(from_history(kind, {**OPENED_ROW, "date": php(AT)}))
        assert event.trigger == trigger
        assert event.email == "anna@acme.example"
        assert event.campaign_id == "201"


def test_a_row_without_a_time_is_not_read():
    assert campaign_history.row_time({"userEmail": "a@b.example"}, "sentDate") is None


def test_the_read_window_starts_at_the_launch_then_an_hour_before_the_last_event_read():
    launched = AT - timedelta(days=2)
    assert campaign_history.window_start(launched, None) == launched
    assert campaign_history.window_start(launched, AT) == AT - campaign_history.OVERLAP
    assert campaign_history.window_start(launched, launched) == launched  # never before launch
    assert campaign_history.window_start(None, None) is None


class FakeSnovio:
    def get_user_campaigns(self):
        return [CAMPAIGN, {"id": 5, "campaign": "Draft one", "status": "Draft"}]

    def get_emails_sent(self, campaign_id):
        assert campaign_id == 201  # drafts are not read
        old = {**SENT_ROW, "sentDate": php(AT - timedelta(days=1))}
        return [old, SENT_ROW]

    def get_emails_opened(self, campaign_id):
        return [OPENED_ROW]

    def get_emails_clicked(self, campaign_id):
        return []

    def get_emails_replies(self, campaign_id):
        return []


def test_read_events_skips_drafts_rows_before_the_window_and_missing_endpoints():
    events = list(campaign_history.read_events(FakeSnovio(), since=AT - timedelta(hours=1)))

    assert [e.payload["event_action"] for e in events] == ["sent", "opened"]
    assert all(e.at == AT and e.payload["source"] == "campaign_history" for e in events)
    assert event_key(parse_event(events[0].payload)).startswith("email_sent:")


def test_a_catch_up_reads_the_campaigns_read_longest_ago_first_as_many_as_its_calls_allow():
    campaigns = [
        {"id": 1, "status": "Active"},
        {"id": 2, "status": "Draft"},
        {"id": 3, "status": "Paused"},
        {"id": 4, "status": "Active"},
    ]
    read_at = {"1": "2026-11-30T10:05:00+00:00", "3": "2026-11-30T10:00:00+00:00"}
    per = campaign_history.CALLS_PER_CAMPAIGN

    due = campaign_history.due_campaigns(campaigns, read_at, 2 * per + per - 1)

    assert [c["id"] for c in due] == [4, 3]  # never read, then the oldest read; no draft
    assert campaign_history.due_campaigns(campaigns, read_at, per - 1) == []
    assert len(campaign_history.due_campaigns(campaigns, {}, 10 * per)) == 3
