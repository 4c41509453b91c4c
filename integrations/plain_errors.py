"""Remote errors in the words of the person using SyncBridge, each with what to do about it.

The engine's errors (`integrations.http.RemoteError`) are written for the logs and the admin:
"pipedrive: token request refused (400): Invalid or expired grant". The pages say what that
means and how to fix it. A connection keeps only the text of its last error, so both an error
and that stored text can be explained.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from integrations.http import AuthError, RateLimited, RemoteError
from integrations.models import Provider


@dataclass(frozen=True)
class PlainError:
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.message} {self.fix}"


AUTH = re.compile(r"refused|invalid[_ ]grant|invalid[_ ]client|revoked|unauthori[sz]ed|\b401\b")
FORBIDDEN = re.compile(r"\b403\b|forbidden|scope")
RATE = re.compile(r"rate limit|\b429\b")
UNREACHABLE = re.compile(
    r"\b5\d\d\b|timed? ?out|timeout|connection|could not be sent|no answer|failed after"
)


def explain(provider: str, error: RemoteError | str) -> PlainError:
    """What went wrong with `provider` and the fix, from an error or its stored text."""
    name = Provider(provider).label if provider in Provider.values else provider
    kind = _kind(error)
    if kind == "auth":
        if provider == Provider.SNOVIO:
            return PlainError(
                "Snov.io did not accept the API credentials.",
                "Enter the API User ID and API Secret again (Snov.io: Settings → API).",
            )
        return PlainError(
            f"{name} no longer accepts SyncBridge's access (it was revoked or has expired).",
            f"Click Reconnect and allow access in {name} again; every setting is kept.",
        )
    if kind == "forbidden":
        return PlainError(
            f"{name} did not allow SyncBridge to do this with the connected user.",
            f"Reconnect {name} as a user with admin rights.",
        )
    if kind == "rate":
        return PlainError(
            f"{name} asked SyncBridge to slow down (its rate limit was reached).",
            "Nothing to do: SyncBridge tries again by itself in a few minutes.",
        )
    if kind == "unreachable":
        return PlainError(
            f"{name} could not be reached or had a problem of its own.",
            f"Try again in a few minutes; if it goes on, check {name}'s status page.",
        )
    return PlainError(
        f"{name} refused a request from SyncBridge.",
        "Try again; if it goes on, ask support (the details are in the admin).",
    )


def _kind(error: RemoteError | str) -> str:
    if isinstance(error, RateLimited):
        return "rate"
    if isinstance(error, AuthError):
        return "forbidden" if getattr(error, "status", None) == 403 else "auth"
    status = getattr(error, "status", None)
    text = str(error).lower()
    if status == 403 or FORBIDDEN.search(text):
        return "forbidden"
    if (status in (400, 401) and "token" in text) or AUTH.search(text):
        return "auth"
    if RATE.search(text):
        return "rate"
    if (status and status >= 500) or UNREACHABLE.search(text):
        return "unreachable"
    return "other"
