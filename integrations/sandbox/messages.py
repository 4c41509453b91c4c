"""The requests and answers the simulators deal in, whichever way they are served.

The bottom of the sandbox app: the simulators and the core import it; it imports nothing of
the project's own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs


@dataclass
class SandboxRequest:
    method: str
    path: str  # path below the remote's prefix, e.g. "/api/v2/persons"
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""

    def json(self) -> Any:
        if not self.body:
            return {}
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(self.body.decode(), keep_blank_values=True).items()}

    def data(self) -> dict[str, Any]:
        """JSON or form body, whichever the client sent."""
        if "json" in self.headers.get("content-type", ""):
            return self.json()
        return self.form()

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)


@dataclass
class SandboxResponse:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"

    def content(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


def json_response(body: Any, status: int = 200, **headers: str) -> SandboxResponse:
    return SandboxResponse(status=status, body=body, headers=dict(headers))
