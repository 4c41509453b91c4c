"""A stateful fake of Pipedrive, at the same paths and with the same shapes as the real one.

What it covers, as far as SyncBridge uses Pipedrive:
- OAuth 2.0: a consent page with an Allow button, codes, the token endpoint (authorization
  code and refresh grants, HTTP Basic client auth, rotating refresh tokens, `api_domain`),
  access tokens that expire on `sandbox.clock()`, and the legacy `x-api-token` header.
- API v2: persons (cursor pages, `updated_since`, search), organizations (list, get, create,
  search by name), deals, activities, pipelines, stages. API v1: users, person fields,
  webhooks.
- Webhooks v2 deliveries for person create/change/delete, with HTTP Basic credentials.
- The known traps: person search answers partial email matches even with `exact_match`.

State lives in plain dicts (ids as string keys) so the sandbox can dump it to JSON.
An account always has its users, pipelines, stages and person fields; `seed_demo` adds
organizations and persons (each linked to its organization by `org_id`). In strict mode
(`strict_spec`) every API request and answer is checked against Pipedrive's official OpenAPI
specs (see `integrations/sandbox/spec.py`).
"""

from __future__ import annotations

from integrations.sandbox.pipedrive.common import ADMIN_NAME, PIPELINES, custom_field_key
from integrations.sandbox.pipedrive.simulator import PipedriveSimulator

__all__ = ["PipedriveSimulator", "ADMIN_NAME", "PIPELINES", "custom_field_key"]
