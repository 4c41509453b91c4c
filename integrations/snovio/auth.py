"""Snov.io access tokens by client credentials (the account's API User ID and API Secret).

`POST /v1/oauth/access_token` with the form fields grant_type=client_credentials, client_id and
client_secret answers `{access_token, token_type: "Bearer", expires_in: 3600}`. There is no
refresh token: a new token is simply requested again with the same pair. The token is cached
on the Connection (encrypted at rest) until shortly before it expires.

Not verified: the exact status and body Snov.io answers for a refused pair (we treat any 4xx
from the token endpoint as "credentials refused").
"""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from integrations.http import AuthError, HttpClient, RemoteError
from integrations.snovio.constants import REMOTE, TOKEN_LIFETIME_SECONDS, TOKEN_PATH


def request_token(http: HttpClient, base_url: str, client_id: str, client_secret: str) -> dict:
    """Ask Snov.io for a new access token; AuthError when the pair is refused."""
    if not client_id or not client_secret:
        raise AuthError("Snov.io: API User ID and API Secret are both required", remote=REMOTE)
    response = http.request(
        "POST",
        base_url + TOKEN_PATH,
        idempotent=True,  # a second token request only gives a second token
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": client_secret,
        },
    )
    if 400 <= response.status_code < 500:
        # Never echo the secret; the remote's own message is enough to act on.
        raise AuthError(
            f"Snov.io refused the API credentials ({response.status_code}): "
            f"{_error_text(response)}",
            remote=REMOTE,
            status=response.status_code,
        )
    token = _json(response)
    if not token.get("access_token"):
        raise RemoteError("Snov.io: token answer without access_token", remote=REMOTE)
    return token


def store_token(connection, token: dict) -> None:
    """Cache the token and its expiry on the Connection."""
    lifetime = int(token.get("expires_in") or TOKEN_LIFETIME_SECONDS)
    connection.access_token = token["access_token"]
    connection.expires_at = timezone.now() + timedelta(seconds=lifetime)
    if connection.pk:
        connection.save(update_fields=["access_token", "expires_at", "updated_at"])


def access_token(connection, http: HttpClient, base_url: str, force: bool = False) -> str:
    """The cached token, or a new one when there is none, it is about to expire, or `force`."""
    if force or not connection.access_token or connection.token_expired():
        token = request_token(http, base_url, connection.client_id, connection.client_secret)
        store_token(connection, token)
    return connection.access_token


def _json(response) -> dict:
    try:
        body = response.json()
    except ValueError as exc:
        raise RemoteError("Snov.io: token answer is not JSON", remote=REMOTE) from exc
    return body if isinstance(body, dict) else {}


def _error_text(response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        for key in ("error_description", "message", "error", "errors"):
            if body.get(key):
                return str(body[key])
    return str(body)[:200]
