"""Facts about the Pipedrive API that the client, the simulator and the sync engine share."""

REMOTE = "pipedrive"

# OAuth (https://pipedrive.readme.io/docs/marketplace-oauth-authorization).
AUTHORIZE_PATH = "/oauth/authorize"
TOKEN_PATH = "/oauth/token"
ACCESS_TOKEN_LIFETIME = 3600  # seconds; the refresh token lives 60 days from last use
REFRESH_MARGIN = 60  # refresh this many seconds before the access token runs out
# The smallest set that covers every endpoint the client calls (each operation's `security`
# in the official OpenAPI specs; tests/integrations/test_pipedrive_scopes.py checks it).
# Scopes are chosen on the app in Developer Hub; this list is what the README and the
# sandbox's consent page show.
SCOPES = (
    "base",  # GET /users/me: who connected, the company id
    "contacts:full",  # persons and organizations: list, search, create, update; person fields
    "deals:full",  # automations create and move deals; pipelines and stages are read
    "activities:full",  # the email history and automations add and update activities
    "users:read",  # GET /users: the owner of the contacts SyncBridge creates
    "webhooks:full",  # subscribe to person changes (narrower than `admin`)
)
# Webhook endpoints: the spec lists only `admin`; Pipedrive's changelog "Introducing new
# OAuth scopes for Webhooks" (effective 2024-01-26) adds `webhooks:full` for them.
WEBHOOK_SCOPE = "webhooks:full"

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
