"""Snov.io API facts SyncBridge relies on: paths, limits, statuses and webhook events.

Sources (checked with the search tool, see specs/snovio/NOTES.md):
- snov.io/api (a 2026 mirror of the Portuguese edition, and HelgeSverre/snov-io's api.json
  scraped from the English edition): every path below, the parameters of add-prospect-to-list
  (`updateContact`, `createDuplicates`, `customFields[<name>]`, `socialLinks[<network>]`,
  `phones`), the custom-field types `string` / `number` / `date`, and the v2 webhook models.
- The knowledge-base article "How to set up webhooks via Snov.io API": the supported
  (event_object, event_action) pairs and the limit of 50 webhooks per account.

Corrections to NOTES.md found on the way: the find-by-email path is
`/v1/get-prospects-by-email` (plural), and the API docs list a `campaign_email` / `clicked`
webhook, so link clicks no longer depend on the clicked-emails history alone.
"""

TOKEN_PATH = "/v1/oauth/access_token"
USER_LISTS_PATH = "/v1/get-user-lists"
CREATE_LIST_PATH = "/v1/lists"
# The list SyncBridge puts prospects in when their Pipedrive person was deleted (Snov.io has
# no tags: docs/specs/deletes.md). "All lists" never sends it to Pipedrive.
DELETED_IN_PIPEDRIVE_LIST = "Deleted in Pipedrive"
PROSPECT_LIST_PATH = "/v1/prospect-list"
ADD_PROSPECT_PATH = "/v1/add-prospect-to-list"
PROSPECTS_BY_EMAIL_PATH = "/v1/get-prospects-by-email"
PROSPECT_BY_ID_PATH = "/v1/get-prospect-by-id"
CUSTOM_FIELDS_PATH = "/v1/prospect-custom-fields"
USER_CAMPAIGNS_PATH = "/v1/get-user-campaigns"
EMAILS_SENT_PATH = "/v1/emails-sent"
EMAILS_OPENED_PATH = "/v1/get-emails-opened"
EMAILS_CLICKED_PATH = "/v1/get-emails-clicked"
EMAILS_REPLIES_PATH = "/v1/get-emails-replies"
PROSPECTS_FINISHED_PATH = "/v1/prospect-finished"
WEBHOOKS_PATH = "/v2/webhooks"

REMOTE = "snovio"
RATE_LIMIT_PER_MINUTE = 60
TOKEN_LIFETIME_SECONDS = 3600
# The docs once capped perPage at 100 and now say 5,000; 100 is safe under both.
MAX_PER_PAGE = 100
WEBHOOK_LIMIT = 50
HISTORY_PAGE_SIZE = 10_000  # emails-sent & co. answer at most this many rows per offset

# Plain prospect fields add-prospect-to-list accepts by name.
PROSPECT_FIELDS = (
    "fullName",
    "firstName",
    "lastName",
    "position",
    "companyName",
    "companySite",
    "country",
    "locality",
)
CUSTOM_FIELD_TYPES = ("string", "number", "date")

# Email statuses on a prospect. "unverified" marks emails that entered Snov.io without a
# verification run (added through the API from a CRM); the others are verification results.
EMAIL_VALID = "valid"
EMAIL_UNKNOWN = "unknown"
EMAIL_NOT_VALID = "not_valid"
EMAIL_UNVERIFIED = "unverified"

WEBHOOK_ACTIVE = "active"
WEBHOOK_DEACTIVATED = "deactivated"

# Every (event_object, event_action) pair Snov.io documents for campaigns.
CAMPAIGN_WEBHOOK_EVENTS = (
    ("campaign_email", "sent"),
    ("campaign_email", "first_sent"),
    ("campaign_email", "opened"),
    ("campaign_email", "clicked"),
    ("campaign_email", "bounced"),
    ("campaign_reply", "received"),
    ("campaign_reply", "first_received"),
    ("campaign_reply", "autoreply_received"),
    ("prospect", "campaign_finished"),
    ("prospect", "unsubscribed"),
)

# Snov.io webhook event -> automations.models.Trigger value. Plain strings, so importing this
# module never needs the Django app registry; a test checks they are valid Trigger values.
WEBHOOK_TRIGGERS: dict[tuple[str, str], str] = {
    ("campaign_email", "sent"): "email_sent",
    ("campaign_email", "opened"): "email_opened",
    ("campaign_email", "clicked"): "link_clicked",
    ("campaign_reply", "received"): "reply_received",
    ("campaign_email", "bounced"): "email_bounced",
    ("prospect", "campaign_finished"): "campaign_finished",
}

# The subscription that feeds each trigger (the reverse of WEBHOOK_TRIGGERS).
TRIGGER_WEBHOOKS: dict[str, tuple[str, str]] = {v: k for k, v in WEBHOOK_TRIGGERS.items()}

# The same labels as automations.models.Trigger, for pages that must not import models.
TRIGGER_LABELS: dict[str, str] = {
    "email_sent": "Campaign email sent",
    "email_opened": "Campaign email opened",
    "link_clicked": "Link clicked",
    "reply_received": "Reply received",
    "email_bounced": "Email bounced",
    "campaign_finished": "Prospect finished campaign",
}


def trigger_for(event_object: str, event_action: str) -> str | None:
    """The Trigger value a Snov.io webhook event stands for, or None if SyncBridge ignores it."""
    return WEBHOOK_TRIGGERS.get((event_object, event_action))
