"""What each Pipedrive endpoint SyncBridge calls costs from the company's daily token budget.

Copied from the `x-token-cost` of each operation in Pipedrive's OpenAPI specs
(docs/specs/pipedrive/openapi-v1.yaml and openapi-v2.yaml); tests/integrations/
test_token_costs.py checks every entry against the specs. Paths are the API path with
`{id}` for a numeric id.
"""

from __future__ import annotations

import re

TOKEN_COSTS: dict[tuple[str, str], int] = {
    ("GET", "/api/v2/persons"): 10,
    ("POST", "/api/v2/persons"): 5,
    ("GET", "/api/v2/persons/search"): 20,
    ("GET", "/api/v2/persons/{id}"): 1,
    ("PATCH", "/api/v2/persons/{id}"): 5,
    ("DELETE", "/api/v2/persons/{id}"): 3,
    ("GET", "/api/v2/organizations"): 10,
    ("POST", "/api/v2/organizations"): 5,
    ("GET", "/api/v2/organizations/search"): 20,
    ("GET", "/api/v2/organizations/{id}"): 1,
    ("GET", "/api/v2/deals"): 10,
    ("POST", "/api/v2/deals"): 5,
    ("GET", "/api/v2/deals/{id}"): 1,
    ("PATCH", "/api/v2/deals/{id}"): 5,
    ("GET", "/api/v2/activities"): 10,
    ("POST", "/api/v2/activities"): 5,
    ("GET", "/api/v2/activities/{id}"): 1,
    ("PATCH", "/api/v2/activities/{id}"): 5,
    ("GET", "/api/v2/pipelines"): 5,
    ("GET", "/api/v2/pipelines/{id}"): 1,
    ("GET", "/api/v2/stages"): 5,
    ("GET", "/api/v2/stages/{id}"): 1,
    ("GET", "/api/v1/users"): 20,
    ("GET", "/api/v1/users/me"): 2,
    ("GET", "/api/v1/personFields"): 20,
    ("POST", "/api/v2/personFields/{field_code}/options"): 5,
    ("GET", "/api/v1/webhooks"): 10,
    ("POST", "/api/v1/webhooks"): 10,
    ("DELETE", "/api/v1/webhooks/{id}"): 6,
}
# An endpoint missing above (a new call nobody priced yet) is counted as a list call.
UNKNOWN_COST = 10
# Pipedrive's search endpoints, under their own limit of 10 requests per 2 s.
SEARCH_PATH = re.compile(r"/api/v[12]/\w+/search$")

_ID = re.compile(r"/\d+(?=/|$)")
_FIELD_CODE = re.compile(r"(/\w+Fields)/\w+(?=/|$)")


def template(path: str) -> str:
    """`/api/v2/persons/1001` -> `/api/v2/persons/{id}`, `/api/v2/personFields/label_ids/options`
    -> `/api/v2/personFields/{field_code}/options` (any query string dropped)."""
    return _FIELD_CODE.sub(r"\1/{field_code}", _ID.sub("/{id}", path.split("?", 1)[0]))


def token_cost(method: str, path: str) -> int:
    return TOKEN_COSTS.get((method.upper(), template(path)), UNKNOWN_COST)


def is_search(path: str) -> bool:
    return bool(SEARCH_PATH.search(path.split("?", 1)[0]))
