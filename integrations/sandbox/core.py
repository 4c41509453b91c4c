"""The sandbox dispatcher: both simulators behind one request handler.

One core serves two ways: in-process in tests through `responses` callbacks (see
`integrations/sandbox/testing.py`) and over HTTP as its own process (`manage.py sandbox`).
It owns what both simulators share: the state file, injectable faults, rate limits
(429 + `x-ratelimit-*`), the clock and outgoing webhook deliveries.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from integrations.sandbox.messages import SandboxRequest, SandboxResponse, json_response
from integrations.sandbox.pipedrive import PipedriveSimulator
from integrations.sandbox.seed import seed_sandbox
from integrations.sandbox.snovio import SnovioSimulator

__all__ = [
    "Fault",
    "Sandbox",
    "SandboxRequest",
    "SandboxResponse",
    "SandboxTimeout",
    "json_response",
    "remote_settings",
]


class Fault:
    """An injected failure: `kind` is a status code ("500"), "timeout", "slow", "revoked" or
    "lost_response" (the request is processed, then answered 504 as if a gateway lost the
    answer). `path` is a regex on the path; `method` ("POST"...) limits it to one method."""

    def __init__(
        self,
        remote: str,
        kind: str,
        count: int = 1,
        path: str = "",
        delay: float = 0,
        method: str = "",
    ):
        self.remote, self.kind, self.count, self.path, self.delay = remote, kind, count, path, delay
        self.method = method.upper()

    def matches(self, remote: str, method: str, path: str) -> bool:
        return (
            self.count > 0
            and remote == self.remote
            and self.method in ("", method)
            and bool(re.search(self.path or "", path))
        )

    def as_dict(self) -> dict:
        return {
            "remote": self.remote,
            "kind": self.kind,
            "count": self.count,
            "path": self.path,
            "method": self.method,
        }


LOST_RESPONSE = "lost_response"


def remote_settings(url: str) -> dict[str, str]:
    """The settings (or environment variables) that point SyncBridge at a sandbox at `url`."""
    url = url.rstrip("/")
    return {
        "PIPEDRIVE_OAUTH_URL": f"{url}/pipedrive",
        "PIPEDRIVE_API_URL": f"{url}/pipedrive",
        "SNOVIO_API_URL": f"{url}/snovio",
    }


class SandboxTimeout(Exception):
    """Raised so the transport layer can present a timeout to the client."""


class RollingLimit:
    """At most `limit` requests per rolling `period` seconds for one key."""

    def __init__(self, limit: int, period: float):
        self.limit, self.period = limit, period
        self.hits: dict[str, list[float]] = {}

    def check(self, key: str, now: float) -> tuple[bool, int, float]:
        hits = [t for t in self.hits.get(key, []) if t > now - self.period]
        allowed = len(hits) < self.limit
        if allowed:
            hits.append(now)
        self.hits[key] = hits
        reset = (hits[0] + self.period - now) if hits else 0.0
        return allowed, self.limit - len(hits), max(reset, 0.0)


class Sandbox:
    """Both simulated remotes. `public_url` is the address handed out to clients."""

    def __init__(
        self,
        public_url: str = "http://sandbox.test",
        state_file: str | Path | None = None,
        seed: bool = True,
        clock: Callable[[], float] = time.time,
        settings: dict | None = None,
    ):
        self.public_url = public_url.rstrip("/")
        self.state_file = Path(state_file) if state_file else None
        self.clock = clock
        self.lock = threading.RLock()
        self.faults: list[Fault] = []
        self.rate_limits: dict[str, RollingLimit] = {}
        # Where webhooks go: a callable(url, headers, body_bytes) -> status code.
        self.deliver: Callable[[str, dict, bytes], int] = _deliver_over_http
        self.delivery_log: list[dict] = []
        self.request_log: list[tuple[str, str, str]] = []
        self.config = settings or {}
        self.pipedrive = PipedriveSimulator(self)
        self.snovio = SnovioSimulator(self)
        self.remotes = {"pipedrive": self.pipedrive, "snovio": self.snovio}
        if self.state_file and self.state_file.exists():
            self.load()
        elif seed:
            self.seed()

    # --- state -----------------------------------------------------------------------------
    def seed(self, **options) -> None:
        with self.lock:
            seed_sandbox(self, **options)
            self.save()

    def reset(self, seed: bool = True) -> None:
        with self.lock:
            for remote in self.remotes.values():
                remote.reset()
            self.faults.clear()
            self.rate_limits.clear()
            if seed:
                self.seed()
            else:
                self.save()

    def dump(self) -> dict:
        return {name: remote.dump() for name, remote in self.remotes.items()}

    def save(self) -> None:
        if not self.state_file:
            return
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.dump()))
        tmp.replace(self.state_file)

    def load(self) -> None:
        data = json.loads(self.state_file.read_text())
        for name, remote in self.remotes.items():
            remote.load(data.get(name, {}))

    # --- faults and limits -----------------------------------------------------------------
    def inject(
        self,
        remote: str,
        kind: str,
        count: int = 1,
        path: str = "",
        delay: float = 0,
        method: str = "",
    ) -> None:
        with self.lock:
            self.faults.append(Fault(remote, kind, count, path, delay, method))

    def set_rate_limit(self, remote: str, limit: int | None, period: float = 2.0) -> None:
        with self.lock:
            if limit is None:
                self.rate_limits.pop(remote, None)
            else:
                self.rate_limits[remote] = RollingLimit(limit, period)

    def _take_fault(self, remote: str, request: SandboxRequest) -> Fault | None:
        for fault in self.faults:
            if fault.matches(remote, request.method, request.path):
                fault.count -= 1
                return fault
        return None

    # --- dispatch --------------------------------------------------------------------------
    def handle(self, remote: str, request: SandboxRequest) -> SandboxResponse:
        with self.lock:
            self.request_log.append((remote, request.method, request.path))
            fault = self._take_fault(remote, request)
        if fault:
            refused = self._fault_before(fault, remote, request)
            if refused is not None:
                return refused
        response = self._answer(remote, request)
        if fault and fault.kind == LOST_RESPONSE:
            # Processed (and saved, webhooks sent), but the client never hears so.
            return json_response({"success": False, "error": "Gateway Timeout (injected)"}, 504)
        return response

    def _fault_before(
        self, fault: Fault, remote: str, request: SandboxRequest
    ) -> SandboxResponse | None:
        """Apply a fault that acts before the request is handled; an answer replaces it."""
        if fault.kind == "timeout":
            raise SandboxTimeout(request.path)
        if fault.kind == "slow":
            time.sleep(fault.delay or 1.0)
        elif fault.kind == "revoked":
            with self.lock:
                self.remotes[remote].revoke_all()
        elif fault.kind != LOST_RESPONSE:
            return json_response(
                {"success": False, "error": f"Injected fault {fault.kind}"}, int(fault.kind)
            )
        return None

    def _answer(self, remote: str, request: SandboxRequest) -> SandboxResponse:
        """Rate limit, then the simulator's answer; webhooks go out once the lock is released."""
        with self.lock:
            limit = self.rate_limits.get(remote)
            if limit:
                key = request.header("authorization") or request.header("x-api-token") or "anon"
                allowed, remaining, reset = limit.check(key, self.clock())
                headers = {
                    "x-ratelimit-limit": str(limit.limit),
                    "x-ratelimit-remaining": str(max(remaining, 0)),
                    "x-ratelimit-reset": f"{reset:.2f}",
                }
                if not allowed:
                    return json_response(
                        {"success": False, "error": "Request over limit"}, 429, **headers
                    )
            else:
                headers = {}
            response = self.remotes[remote].handle(request)
            response.headers.update(headers)
            if request.method != "GET":
                self.save()
        # Webhooks go out after the lock is released: the app may call back while handling one.
        flush = getattr(self.remotes[remote], "flush_webhooks", None)
        if flush:
            flush()
        return response

    def handle_url(self, method: str, url: str, headers: dict, body: bytes) -> SandboxResponse:
        """Route a full URL (as a client would send it) to the right simulator."""
        parts = urlsplit(url)
        remote, _, rest = parts.path.lstrip("/").partition("/")
        if remote not in self.remotes:
            return json_response({"success": False, "error": "Unknown sandbox path"}, 404)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        request = SandboxRequest(
            method=method.upper(),
            path="/" + rest,
            query=query,
            headers={k.lower(): v for k, v in headers.items()},
            body=body or b"",
        )
        return self.handle(remote, request)

    # --- webhooks --------------------------------------------------------------------------
    def send_webhook(self, url: str, headers: dict, payload: Any) -> int:
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", **headers}
        try:
            status = self.deliver(url, headers, body)
        except Exception as exc:  # a failed delivery is logged, as the real services do
            status = 0
            error = str(exc)
        else:
            error = ""
        self.delivery_log.append({"url": url, "status": status, "error": error, "at": self.clock()})
        return status


def _deliver_over_http(url: str, headers: dict, body: bytes) -> int:
    return requests.post(url, data=body, headers=headers, timeout=10).status_code
