"""Webhook endpoints (Pipedrive, Snov.io), the contact history page and transfer progress.

Webhook endpoints need no login and no CSRF token, but authenticate every call: the URL holds
the integration's unguessable secret, and Pipedrive must also send the HTTP Basic credentials
SyncBridge gave it when subscribing. Each delivery is stored once (a dedupe key per change)
and applied later, in order, by a worker; the endpoint answers at once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import threading
import time
from typing import Any

from django.contrib.auth.decorators import login_not_required
from django.db import IntegrityError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from integrations import campaign_events
from integrations.models import Integration, PendingChange, SyncRun
from integrations.pages import owned_integration
from integrations.snovio.constants import CAMPAIGN_WEBHOOK_EVENTS
from integrations.sync.queue import store_change
from integrations.sync.realtime import PERSON_KINDS
from integrations.sync.runs import request_drain

log = logging.getLogger(__name__)


# Pipedrive deliveries find their integration in a short per-process cache: a burst of
# deliveries costs one look-up per process and window, not one per delivery. What they use of
# it stays right: the Basic credentials change only when the webhooks are subscribed again
# (seconds of the old ones are harmless), the status is read fresh by `request_drain`, and a
# deleted integration fails the insert (its foreign key) and answers 404.
INTEGRATION_CACHE_SECONDS = 5.0
INTEGRATION_CACHE_SIZE = 1000
_integrations: dict[str, tuple[float, Integration]] = {}
_integrations_lock = threading.Lock()


def _integration(secret: str) -> Integration | None:
    return Integration.objects.filter(webhook_secret=secret).first()


def _cached_integration(secret: str) -> Integration | None:
    now = time.monotonic()
    with _integrations_lock:
        cached = _integrations.get(secret)
    if cached and cached[0] > now:
        return cached[1]
    integration = _integration(secret)
    if integration is not None:
        with _integrations_lock:
            if len(_integrations) >= INTEGRATION_CACHE_SIZE:
                _integrations.clear()
            _integrations[secret] = (now + INTEGRATION_CACHE_SECONDS, integration)
    return integration


def forget_cached_integration(secret: str) -> None:
    with _integrations_lock:
        _integrations.pop(secret, None)


def _json(request: HttpRequest) -> Any:
    try:
        return json.loads(request.body or b"null")
    except ValueError:
        return None


def _basic_auth_ok(request: HttpRequest, user: str, password: str) -> bool:
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("basic "):
        return False
    try:
        given_user, _, given_password = base64.b64decode(header[6:].strip()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return hmac.compare_digest(given_user, user or "") & hmac.compare_digest(
        given_password, password or ""
    )


def pipedrive_dedupe_key(payload: dict) -> str:
    """The same change delivered twice (a retry carries the same event) has the same key.

    The event's entity, action and time, plus a hash of what changed: two different changes
    made within the same millisecond still get two keys.
    """
    meta = payload.get("meta") or {}
    content = {"data": payload.get("data"), "previous": payload.get("previous")}
    digest = hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode())
    parts = [meta.get(k) for k in ("entity", "entity_id", "action", "timestamp")]
    return "pipedrive:" + ":".join(str(p or "") for p in parts) + ":" + digest.hexdigest()[:24]


@csrf_exempt
@login_not_required
@require_POST
def pipedrive_hook(request: HttpRequest, secret: str) -> HttpResponse:
    integration = _cached_integration(secret)
    if integration is None:
        return JsonResponse({"error": "unknown webhook"}, status=404)
    if not _basic_auth_ok(
        request, integration.pipedrive_webhook_user, integration.pipedrive_webhook_password
    ):
        response = JsonResponse({"error": "authentication required"}, status=401)
        response["WWW-Authenticate"] = 'Basic realm="SyncBridge"'
        return response
    payload = _json(request)
    if not isinstance(payload, dict):
        return JsonResponse({"error": "body is not a JSON object"}, status=400)
    meta = payload.get("meta")
    if not isinstance(meta, dict) or "action" not in meta or "entity" not in meta:
        # Webhooks v1 (`current`/`event`) or something else: answer 200 so it is not retried.
        return JsonResponse({"ok": True, "ignored": "not a Webhooks v2 payload"})
    if meta.get("entity") != "person":
        entity = str(meta.get("entity"))[:50]
        return JsonResponse({"ok": True, "ignored": f"{entity} events are not synced"})
    kind = f"person.{meta.get('action')}"
    if kind not in PERSON_KINDS:
        return JsonResponse({"ok": True, "ignored": f"{kind[:60]} events are not synced"})
    try:
        new = store_change(
            integration,
            PendingChange.Source.PIPEDRIVE,
            kind,
            pipedrive_dedupe_key(payload),
            payload,
            record_key=f"pipedrive:{str(meta.get('entity_id') or '')[:40]}",
            strict=True,
        )
    except IntegrityError:  # the cached integration was deleted meanwhile
        forget_cached_integration(secret)
        return JsonResponse({"error": "unknown webhook"}, status=404)
    if new:
        request_drain(integration.pk)
    return JsonResponse({"ok": True, "duplicate": not new})


@csrf_exempt
@login_not_required
@require_POST
def snovio_hook(
    request: HttpRequest, secret: str, event_object: str = "", event_action: str = ""
) -> HttpResponse:
    """A Snov.io delivery. Each event has its own URL, and the URL names the event: the
    subscription that fired is the surest fact about what happened (the body may not say)."""
    integration = _integration(secret)
    if integration is None:
        return JsonResponse({"error": "unknown webhook"}, status=404)
    if event_object and (event_object, event_action) not in CAMPAIGN_WEBHOOK_EVENTS:
        return JsonResponse({"error": "unknown Snov.io event in the webhook URL"}, status=404)
    payload = _json(request)
    if not isinstance(payload, dict):
        return JsonResponse({"error": "body is not a JSON object"}, status=400)
    if event_object and event_action:
        payload = {**payload, "event_object": event_object, "event_action": event_action}
    try:
        received = campaign_events.receive(integration, payload)
    except Exception:
        # Answering an error makes Snov.io deliver again; both stores ignore duplicates.
        log.exception("integration %s: a Snov.io event could not be recorded", integration.pk)
        return JsonResponse({"error": "event not recorded, please retry"}, status=503)
    return JsonResponse({"ok": True, "automations": True, "email_history": received.email_history})


# --- pages ---------------------------------------------------------------------------------
@require_GET
def transfer_progress(request: HttpRequest, pk: int, run_pk: int) -> HttpResponse:
    """The run's progress as JSON (`?format=json` or Accept: application/json) or the partial."""
    integration = owned_integration(request, pk)
    run = get_object_or_404(SyncRun, pk=run_pk, integration=integration)
    wants_json = request.GET.get("format") == "json" or "application/json" in request.headers.get(
        "Accept", ""
    )
    if wants_json:
        return JsonResponse(progress_data(run))
    html = render_to_string(
        "integrations/_transfer_progress.html",
        {"run": run, "integration": integration},
        request=request,
    )
    return HttpResponse(html)


def progress_data(run: SyncRun) -> dict:
    finished = run.status in (SyncRun.Status.DONE, SyncRun.Status.FAILED, SyncRun.Status.CANCELLED)
    return {
        "id": run.pk,
        "status": run.status,
        "status_label": run.get_status_display(),
        "finished": finished,
        "dry_run": run.dry_run,
        "direction": run.get_direction_display(),
        "source_app": run.get_source_app_display(),
        "done": run.done,
        "total": run.total,
        "percent": round(100 * run.done / run.total) if run.total else (100 if finished else 0),
        "created": run.created,
        "updated": run.updated,
        "unchanged": run.unchanged,
        "conflicts": run.conflicts,
        "skipped": run.skipped,
        "failed": run.failed,
        "api_calls": run.api_calls,
        "error": run.error,
        "summary": run.summary(),
        # The integration's badge follows the transfer (Syncing while it runs).
        "integration_status": run.integration.status,
        "integration_status_label": run.integration.get_status_display(),
    }
