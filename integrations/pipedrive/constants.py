"""Facts about the Pipedrive API that the client, the simulator and the sync engine share."""

REMOTE = "pipedrive"

# OAuth (https://pipedrive.readme.io/docs/marketplace-oauth-authorization).
AUTHORIZE_PATH = "/oauth/authorize"
TOKEN_PATH = "/oauth/token"
ACCESS_TOKEN_LIFETIME = 3600  # seconds; the refresh token lives 60 days from last use
REFRESH_MARGIN = 60  # refresh this many seconds before the access token runs out
SCOPES = (
    "base",
    "contacts:full",
    "deals:full",
    "activities:full",
    "users:read",
    "search:read",
    "admin",
)

# API v2 cursor pagination: `limit` may not exceed 500.
PAGE_LIMIT = 500
IDS_LIMIT = 100  # the v2 `ids` filter takes up to 100 ids
SEARCH_LIMIT = 500

# What a person write may carry in v2 (POST/PATCH /api/v2/persons). v2 has no
# first_name/last_name on writes: they are derived from `name`.
PERSON_WRITE_FIELDS = frozenset(
    {
        "name",
        "owner_id",
        "org_id",
        "add_time",
        "emails",
        "phones",
        "visible_to",
        "label_ids",
        "postal_address",
        "notes",
        "im",
        "birthday",
        "job_title",
        "marketing_status",
        "custom_fields",
    }
)

DEAL_STATUSES = ("open", "won", "lost")
ACTIVITY_TYPES = ("call", "meeting", "task", "deadline", "email", "lunch")

# Webhooks (v1 endpoints, v2 payloads).
WEBHOOK_VERSION = "2.0"
WEBHOOK_LIMIT = 40  # per user
WEBHOOK_ACTIONS = ("create", "change", "delete", "*")
WEBHOOK_OBJECTS = ("activity", "deal", "lead", "note", "organization", "person", "*")
