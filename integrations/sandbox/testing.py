"""Serve a Sandbox in-process through `responses`, for tests (see tests/conftest.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import requests
import responses

from integrations.sandbox.core import Sandbox, SandboxTimeout

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _callback(sandbox: Sandbox):
    def respond(request: requests.PreparedRequest):
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode()
        try:
            result = sandbox.handle_url(request.method, request.url, dict(request.headers), body)
        except SandboxTimeout as exc:
            raise requests.exceptions.ReadTimeout(f"sandbox timeout on {exc}") from exc
        headers = {"Content-Type": result.content_type, **result.headers}
        return result.status, headers, result.content()

    return respond


@contextmanager
def serve_in_process(sandbox: Sandbox, rsps: responses.RequestsMock) -> Iterator[Sandbox]:
    """Answer every request to `sandbox.public_url` from the simulator."""
    pattern = re.compile(re.escape(sandbox.public_url) + r"/.*")
    for method in METHODS:
        rsps.add_callback(method, pattern, callback=_callback(sandbox))
    yield sandbox
