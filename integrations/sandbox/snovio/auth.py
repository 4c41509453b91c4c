"""Client-credentials tokens, request authorization, routing and required parameters."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from functools import partial

from django.conf import settings

from integrations.sandbox.messages import SandboxRequest, SandboxResponse, json_response
from integrations.sandbox.snovio.common import (
    HISTORY_ROUTES,
    WEBHOOK_ITEM,
    BadRequest,
    _oauth_error,
)
from integrations.snovio import constants as C


class AuthMixin:
    def _issue_token(self, params: dict) -> SandboxResponse:
        if params.get("grant_type") != "client_credentials":
            return _oauth_error(
                400, "unsupported_grant_type", "grant_type must be client_credentials"
            )
        if self.state["revoked"] or (params.get("client_id"), params.get("client_secret")) != (
            settings.SANDBOX_SNOVIO_CLIENT_ID,
            settings.SANDBOX_SNOVIO_CLIENT_SECRET,
        ):
            return _oauth_error(401, "invalid_client", "Client authentication failed")
        now = self._now()
        tokens = {t: exp for t, exp in self.state["tokens"].items() if exp > now}
        token = secrets.token_hex(20)
        tokens[token] = now + C.TOKEN_LIFETIME_SECONDS
        self.state["tokens"] = tokens
        return json_response(
            {"access_token": token, "token_type": "Bearer", "expires_in": C.TOKEN_LIFETIME_SECONDS}
        )

    def _authorized(self, request: SandboxRequest, params: dict) -> bool:
        header = request.header("authorization")
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        token = token or str(params.get("access_token") or "")
        expires = self.state["tokens"].get(token)
        return expires is not None and expires > self._now()

    def _resolve(self, method: str, path: str) -> tuple[Callable | None, bool]:
        match = WEBHOOK_ITEM.match(path)
        if match:
            item = {"PUT": self._change_webhook, "DELETE": self._delete_webhook}.get(method)
            return (partial(item, match[1]) if item else None), True
        if path in HISTORY_ROUTES:
            handler = partial(self._history, HISTORY_ROUTES[path])
            return (handler if method == "GET" else None), True
        methods = {m: h for (m, p), h in self._routes.items() if p == path}
        return methods.get(method), bool(methods)

    def _require(self, params: dict, *names: str) -> None:
        if not self.sandbox.config.get("strict_spec"):
            return
        absent = [n for n in names if params.get(n) in (None, "", [], {})]
        if absent:
            raise BadRequest(f"Missing required parameter: {', '.join(absent)}")
