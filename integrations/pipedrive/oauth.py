"""Pipedrive OAuth 2.0 (authorization-code grant): consent URL, code exchange, token refresh,
and recognising the uninstall callback.

Token requests send a form body with HTTP Basic client authentication, as Pipedrive asks.
The token response carries `api_domain`, the company's base URL for every API call.
The `state` value is made and checked by the view; this module only carries it.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import os
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from oauthlib.oauth2 import OAuth2Error, WebApplicationClient
from requests.auth import HTTPBasicAuth
from requests_oauthlib import OAuth2Session

from integrations.http import AuthError, HttpClient, raise_for_status
from integrations.models import Connection
from integrations.pipedrive.constants import AUTHORIZE_PATH, REMOTE, TOKEN_PATH

log = logging.getLogger(__name__)

TOKEN_FIELDS = ("access_token", "refresh_token", "expires_at", "api_domain")
FORM_HEADERS = {
    "Content-Type": "application/x-www-form-urlencoded",
    "Accept": "application/json",
}


def is_pipedrive_itself(authorization: str) -> bool:
    """Whether an `Authorization` header carries this app's client id and secret (HTTP Basic).

    Pipedrive's OAuth server signs the uninstall callback that way ("Handling user app
    uninstallation"); nobody else knows the secret.
    """
    if not authorization.lower().startswith("basic "):
        return False
    try:
        pair = base64.b64decode(authorization[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return False
    client_id, _, secret = pair.partition(":")
    return hmac.compare_digest(client_id, settings.PIPEDRIVE_CLIENT_ID) & hmac.compare_digest(
        secret, settings.PIPEDRIVE_CLIENT_SECRET
    )


def authorization_url(state: str) -> str:
    """The Pipedrive consent page to send the user to."""
    url = _oauth_url(AUTHORIZE_PATH)
    session = OAuth2Session(
        settings.PIPEDRIVE_CLIENT_ID, redirect_uri=settings.PIPEDRIVE_REDIRECT_URI
    )
    uri, _ = session.authorization_url(url, state=state)
    return uri


def exchange_code(code: str, http: HttpClient | None = None) -> dict:
    """Trade the code from the consent redirect for tokens (incl. `api_domain`)."""
    body = _oauth_client().prepare_request_body(
        code=code, redirect_uri=settings.PIPEDRIVE_REDIRECT_URI, include_client_id=False
    )
    return _token_request(body, http)


def refresh(connection: Connection, http: HttpClient | None = None) -> None:
    """Get a new access token for `connection` and store it (in place and in the DB).

    Refresh tokens rotate, so two workers refreshing at once would make one of them send a
    refresh token that is already spent. The row lock serialises them, and a worker that
    finds a token newer than the one it holds uses that one instead of refreshing again.
    A refused refresh marks the connection failed and raises `AuthError` (permanent).
    """
    try:
        with transaction.atomic():
            _refresh_locked(connection, http)
    except AuthError as exc:
        _mark_failed(connection, str(exc))
        raise


def store_token(connection: Connection, token: dict) -> None:
    """Save a token response on the connection and mark it a working OAuth connection."""
    connection.access_token = token["access_token"]
    if token.get("refresh_token"):  # a refresh answer may omit it: keep the one we have
        connection.refresh_token = token["refresh_token"]
    expires_in = token.get("expires_in")
    connection.expires_at = (
        timezone.now() + timedelta(seconds=int(expires_in)) if expires_in else None
    )
    connection.api_domain = (token.get("api_domain") or connection.api_domain).rstrip("/")
    connection.auth_kind = Connection.AuthKind.OAUTH
    connection.status = Connection.Status.OK
    connection.last_error = ""
    if connection.pk is None:
        connection.save()
    else:
        connection.save(
            update_fields=[*TOKEN_FIELDS, "auth_kind", "status", "last_error", "updated_at"]
        )


# --- internals -------------------------------------------------------------------------------


def _refresh_locked(connection: Connection, http: HttpClient | None) -> None:
    held = connection.access_token
    current = _lock_row(connection)
    if current.access_token != held and not current.token_expired():
        _copy_token_fields(current, connection)  # another worker refreshed meanwhile
        return
    if not current.refresh_token:
        raise AuthError("pipedrive: no refresh token stored; reconnect Pipedrive", remote=REMOTE)
    body = _oauth_client().prepare_refresh_body(refresh_token=current.refresh_token)
    store_token(connection, _token_request(body, http))


def _lock_row(connection: Connection) -> Connection:
    if connection.pk is None:
        return connection
    return Connection.objects.select_for_update().get(pk=connection.pk)


def _copy_token_fields(source: Connection, target: Connection) -> None:
    for name in (*TOKEN_FIELDS, "status"):
        setattr(target, name, getattr(source, name))


def _mark_failed(connection: Connection, message: str) -> None:
    connection.status = Connection.Status.FAILED
    connection.last_error = message
    if connection.pk is not None:
        connection.save(update_fields=["status", "last_error", "updated_at"])


def _token_request(body: str, http: HttpClient | None) -> dict:
    http = http or HttpClient(REMOTE)
    response = http.request(
        "POST",
        _oauth_url(TOKEN_PATH),
        # Resending creates nothing: a grant spent by a lost first answer is refused (400).
        idempotent=True,
        data=body,
        headers=FORM_HEADERS,
        auth=HTTPBasicAuth(settings.PIPEDRIVE_CLIENT_ID, settings.PIPEDRIVE_CLIENT_SECRET),
    )
    if response.status_code in (400, 401):
        # invalid_grant / invalid_client: the code or refresh token is spent or revoked.
        raise AuthError(_oauth_error(response), remote=REMOTE, status=response.status_code)
    raise_for_status(response, REMOTE)
    try:
        token = _oauth_client().parse_request_body_response(response.text)
    except (OAuth2Error, ValueError) as exc:
        raise AuthError(f"pipedrive: unusable token response: {exc}", remote=REMOTE) from exc
    return dict(token)


def _oauth_error(response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = {}
    reason = body.get("error_description") or body.get("error") or body.get("message") or ""
    detail = f": {reason}" if reason else ""
    return f"pipedrive: token request refused ({response.status_code}){detail}"


def _oauth_client() -> WebApplicationClient:
    return WebApplicationClient(settings.PIPEDRIVE_CLIENT_ID)


def _oauth_url(path: str) -> str:
    url = settings.PIPEDRIVE_OAUTH_URL.rstrip("/") + path
    if url.startswith("http://"):
        # oauthlib refuses plain http. Only the sandbox and local setups configure an
        # http:// OAuth URL; production points at https://oauth.pipedrive.com.
        os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")
    return url
