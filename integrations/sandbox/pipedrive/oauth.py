"""OAuth 2.0: the consent page, codes, the token endpoint (both grants), token issue."""

from __future__ import annotations

import html
import secrets

from django.conf import settings

from integrations.pipedrive.constants import (
    ACCESS_TOKEN_LIFETIME,
    SCOPES,
)
from integrations.sandbox.messages import SandboxRequest, SandboxResponse, json_response
from integrations.sandbox.pipedrive.common import (
    ADMIN_NAME,
    CODE_LIFETIME,
    REFRESH_TOKEN_IDLE_LIFETIME,
    _basic_auth_matches,
    _error,
    _html,
    _redirect,
    _with_query,
)


class OAuthMixin:
    def _handle_oauth(self, request: SandboxRequest) -> SandboxResponse:
        if request.path == "/oauth/authorize" and request.method == "GET":
            return self._consent_page(request.query)
        if request.path == "/oauth/authorize" and request.method == "POST":
            return self._consent_decision(request.form())
        if request.path == "/oauth/token" and request.method == "POST":
            return self._token_endpoint(request)
        return _error(404, f"Unknown OAuth endpoint {request.method} {request.path}")

    def _client_problem(self, params: dict) -> str:
        if params.get("client_id") != settings.PIPEDRIVE_CLIENT_ID:
            return "Unknown client_id: this app is not registered."
        redirect_uri = params.get("redirect_uri") or settings.PIPEDRIVE_REDIRECT_URI
        if redirect_uri != settings.PIPEDRIVE_REDIRECT_URI:
            return "redirect_uri does not match the app's registered callback URL."
        return ""

    def _consent_page(self, params: dict) -> SandboxResponse:
        problem = self._client_problem(params)
        if problem:
            return _html(400, "Cannot connect", f"<p id='error'>{html.escape(problem)}</p>")
        hidden = "".join(
            f'<input type="hidden" name="{k}" value="{html.escape(params.get(k, ""))}">'
            for k in ("client_id", "redirect_uri", "state")
        )
        scopes = "".join(f"<li>{html.escape(s)}</li>" for s in SCOPES)
        body = (
            f"<p>Signed in as <strong>{ADMIN_NAME}</strong> "
            f"({html.escape(self.state['company']['name'])}).</p>"
            f"<p><strong>SyncBridge</strong> asks for access to:</p><ul>{scopes}</ul>"
            f'<form method="post" action="{self.sandbox.public_url}/pipedrive/oauth/authorize">'
            f"{hidden}"
            '<button type="submit" name="decision" value="allow" id="allow">Allow</button> '
            '<button type="submit" name="decision" value="deny" id="deny">Deny</button>'
            "</form>"
        )
        return _html(200, "Allow SyncBridge to access your Pipedrive account?", body)

    def _consent_decision(self, form: dict) -> SandboxResponse:
        problem = self._client_problem(form)
        if problem:
            return _html(400, "Cannot connect", f"<p id='error'>{html.escape(problem)}</p>")
        redirect_uri = form.get("redirect_uri") or settings.PIPEDRIVE_REDIRECT_URI
        state = form.get("state", "")
        if form.get("decision") != "allow":
            # "Marketplace OAuth authorization", step 2: a declined install comes back to the
            # callback URL with error=user_denied.
            return _redirect(_with_query(redirect_uri, error="user_denied", state=state))
        code = secrets.token_urlsafe(24)
        self.state["auth_codes"][code] = {
            "user_id": self._admin_id(),
            "redirect_uri": redirect_uri,
            "expires_at": self.sandbox.clock() + CODE_LIFETIME,
        }
        return _redirect(_with_query(redirect_uri, code=code, state=state))

    def _token_endpoint(self, request: SandboxRequest) -> SandboxResponse:
        if not _basic_auth_matches(request.header("authorization")):
            return json_response(
                {"error": "invalid_client", "error_description": "Client authentication failed"},
                401,
            )
        form = request.form()
        grant = form.get("grant_type")
        if grant == "authorization_code":
            user_id = self._redeem_code(form)
        elif grant == "refresh_token":
            user_id = self._redeem_refresh_token(form.get("refresh_token", ""))
        else:
            return json_response({"error": "unsupported_grant_type"}, 400)
        if user_id is None:
            return json_response(
                {"error": "invalid_grant", "error_description": "Invalid or expired grant"}, 400
            )
        return json_response(self._issue_tokens(user_id))

    def _redeem_code(self, form: dict) -> int | None:
        record = self.state["auth_codes"].pop(form.get("code", ""), None)  # single use
        if not record or record["expires_at"] <= self.sandbox.clock():
            return None
        if form.get("redirect_uri", record["redirect_uri"]) != record["redirect_uri"]:
            return None
        return record["user_id"]

    def _redeem_refresh_token(self, token: str) -> int | None:
        """ "Marketplace OAuth authorization", refreshing the tokens: the refresh token is
        not rotated (the answer carries the same one) and expires when unused for 60 days."""
        record = self.state["refresh_tokens"].get(token)
        if not record:
            return None
        if record.get("last_used", self.sandbox.clock()) + REFRESH_TOKEN_IDLE_LIFETIME <= (
            self.sandbox.clock()
        ):
            del self.state["refresh_tokens"][token]
            return None
        self._refreshing = token
        return record["user_id"]

    def _issue_tokens(self, user_id: int) -> dict:
        now = self.sandbox.clock()
        tokens = self.state["access_tokens"]
        for stale in [t for t, r in tokens.items() if r["expires_at"] < now - 86400]:
            del tokens[stale]  # keep the state file small
        access = f"sbx-at-{secrets.token_hex(16)}"
        refresh = getattr(self, "_refreshing", None) or f"sbx-rt-{secrets.token_hex(16)}"
        self._refreshing = None
        tokens[access] = {"user_id": user_id, "expires_at": now + ACCESS_TOKEN_LIFETIME}
        self.state["refresh_tokens"][refresh] = {"user_id": user_id, "last_used": now}
        return {
            "access_token": access,
            "token_type": "Bearer",
            "refresh_token": refresh,
            "scope": ",".join(SCOPES),
            "expires_in": ACCESS_TOKEN_LIFETIME,
            "api_domain": f"{self.sandbox.public_url}/pipedrive",
        }
