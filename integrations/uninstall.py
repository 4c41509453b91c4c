"""The Pipedrive app was uninstalled: the connection is disconnected and its work stops.

Pipedrive's OAuth server tells the app with a `DELETE` to the app's callback URL, a JSON body
`{client_id, company_id, user_id, timestamp}` and HTTP Basic client credentials ("Handling
user app uninstallation"). The tokens no longer work, so nothing is asked of Pipedrive: the
tokens are erased at once, every integration using the connection is paused with the reason
and detached from it (as a disconnect does), and the settings page shows why until Pipedrive
is connected again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from integrations.lifecycle import set_status
from integrations.models import Connection, Integration, Provider

log = logging.getLogger(__name__)

REASON = (
    "The SyncBridge app was uninstalled in Pipedrive{who}{when}: its access was removed and "
    "nothing is synced. Connect Pipedrive again to resume."
)


@dataclass(frozen=True)
class Uninstall:
    company_id: str
    user_id: str = ""
    timestamp: str = ""

    @classmethod
    def from_body(cls, body: object) -> Uninstall:
        """Read the callback's JSON body; raises ValueError when it names no company."""
        if not isinstance(body, dict):
            raise ValueError("the body is not a JSON object")
        company = str(body.get("company_id") or "").strip()
        if not company or len(company) > 100:
            raise ValueError("company_id is missing")
        return cls(
            company, str(body.get("user_id") or "")[:100], str(body.get("timestamp") or "")[:40]
        )

    def reason(self) -> str:
        who = f" by user {self.user_id}" if self.user_id else ""
        when = f" at {self.timestamp}" if self.timestamp else ""
        return REASON.format(who=who, when=when)


def app_uninstalled(event: Uninstall) -> int:
    """Disconnect every OAuth connection to the company; returns how many there were."""
    connections = Connection.objects.filter(
        provider=Provider.PIPEDRIVE,
        auth_kind=Connection.AuthKind.OAUTH,
        account_id=event.company_id,
    )
    reason = event.reason()
    count = 0
    for conn in connections:
        count += 1
        conn.access_token = ""
        conn.refresh_token = ""
        conn.expires_at = None
        conn.status = Connection.Status.REVOKED
        conn.last_error = reason
        conn.save()
        for integration in Integration.objects.filter(pipedrive=conn):
            if integration.status != Integration.Status.PAUSED:
                set_status(integration, Integration.Status.PAUSED, None, reason)
            # Detached, as a disconnect does: every scheduled task skips an integration
            # without both connections, so no call is made with the erased tokens.
            Integration.objects.filter(pk=integration.pk).update(
                pipedrive=None, status_reason=reason
            )
        log.warning(
            "pipedrive connection %s: app uninstalled (company %s)", conn.pk, event.company_id
        )
    return count
