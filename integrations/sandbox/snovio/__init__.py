"""A stateful fake of the Snov.io API, at the real paths (served under `{public_url}/snovio`).

What it models, and where each behaviour comes from:
- Client-credentials tokens (`/v1/oauth/access_token`) that live 3600 s by `sandbox.clock()`;
  401 for a missing, unknown, expired or revoked token (verified: token shape and lifetime;
  not verified: the body of a 401 and of a refused credentials pair, which follow OAuth2
  `invalid_client` conventions here).
- Lists (`get-user-lists` is a bare array with `isDeleted`, `creationDate`, `deletionDate`),
  offset pages of prospects (`prospect-list`: `listId`, `page`, `perPage` capped at 5000 as the
  current docs say), prospects whose emails carry `status` / `isVerified`.
- `add-prospect-to-list` keyed by email, case-insensitively, account-wide: a new email becomes
  a prospect whose email is "unverified" (it entered Snov.io without verification); an existing
  one is joined to the list (`added`) and, only with `updateContact`, has its data overwritten
  (`updated`). Unknown custom fields are dropped. Not verified: a third-party integration
  reports that Snov.io leaves an existing prospect in its original list; this fake follows the
  docs ("added" is true when the prospect joins the list).
- Campaign history (`emails-sent`, `get-emails-opened|clicked|replies`, `prospect-finished`)
  with the documented row shapes and the 10,000-row `offset` window.
- Webhooks v2 (list / create / change status / delete; at most 50) and their deliveries.
  NOT verified: the delivery payload; see integrations/snovio/webhook_payload.py.
With `sandbox.config["strict_spec"]`, requests that miss a documented required parameter get 400.
"""

from __future__ import annotations

from integrations.sandbox.snovio.common import DEFAULT_CAMPAIGN
from integrations.sandbox.snovio.simulator import SnovioSimulator

__all__ = ["SnovioSimulator", "DEFAULT_CAMPAIGN"]
