"""The sandbox's own pages and controls (not part of either simulated API).

GET  /                      index: demo credentials, state counts, fire a campaign event
GET  /_sandbox/state        the whole state as JSON
POST /_sandbox/reset        forget everything and re-seed (`{"seed": false}` for empty)
POST /_sandbox/faults       inject `{remote, kind, count, path, delay, method}`
POST /_sandbox/rate-limit   `{remote, limit, period}`; limit null turns it off
POST /_sandbox/events       fire a Snov.io campaign event (form or JSON)
POST /_sandbox/schema       change an account's setup: `{what, id, action, name}` with `what`
                            stage | pipeline | person_field | list, `action` delete | rename
                            (so "Connection failed" can be tried from the demo)
"""

from __future__ import annotations

import html
import json
from urllib.parse import parse_qs, urlsplit

from django.conf import settings

from integrations.sandbox.core import Sandbox, SandboxResponse, json_response
from integrations.sandbox.pipedrive.common import ApiError


def _data(headers: dict, body: bytes) -> dict:
    content_type = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
    if "json" in content_type:
        return json.loads(body or b"{}")
    return {k: v[-1] for k, v in parse_qs(body.decode()).items()}


def handle(sandbox: Sandbox, method: str, raw_path: str, headers: dict, body: bytes):
    path = urlsplit(raw_path).path.rstrip("/") or "/"
    data = _data(headers, body) if method == "POST" else {}
    if path == "/" and method == "GET":
        return SandboxResponse(200, index_page(sandbox), content_type="text/html; charset=utf-8")
    if path == "/_sandbox/state" and method == "GET":
        return json_response(sandbox.dump())
    if path == "/_sandbox/reset" and method == "POST":
        sandbox.reset(seed=str(data.get("seed", "true")).lower() not in ("false", "0", ""))
        return json_response({"success": True})
    if path == "/_sandbox/faults" and method == "POST":
        if data.get("remote") not in sandbox.remotes or not data.get("kind"):
            return json_response({"success": False, "error": "remote and kind are required"}, 400)
        sandbox.inject(
            data["remote"],
            str(data["kind"]),
            int(data.get("count", 1)),
            data.get("path", ""),
            float(data.get("delay", 0)),
            data.get("method", ""),
        )
        return json_response({"success": True, "faults": [f.as_dict() for f in sandbox.faults]})
    if path == "/_sandbox/rate-limit" and method == "POST":
        if data.get("remote") not in sandbox.remotes:
            return json_response({"success": False, "error": "unknown remote"}, 400)
        limit = data.get("limit")
        sandbox.set_rate_limit(
            data["remote"], int(limit) if limit else None, float(data.get("period", 2))
        )
        return json_response({"success": True})
    if path == "/_sandbox/pipedrive-limits" and method == "POST":
        try:
            with sandbox.lock:
                sandbox.pipedrive.limits.configure(**data)
        except (TypeError, ValueError) as exc:
            return json_response({"success": False, "error": str(exc)}, 400)
        return json_response({"success": True})
    if path == "/_sandbox/events" and method == "POST":
        try:
            result = sandbox.snovio.fire_campaign_event(
                data.get("event", ""), data.get("email", ""), data.get("campaign", "")
            )
        except ValueError as exc:
            return json_response({"success": False, "error": str(exc)}, 400)
        if "json" not in {k.lower(): v for k, v in headers.items()}.get("accept", ""):
            page = index_page(sandbox, notice=f"Event fired: {result.get('summary', '')}")
            return SandboxResponse(200, page, content_type="text/html; charset=utf-8")
        return json_response({"success": True, **result})
    if path == "/_sandbox/schema" and method == "POST":
        try:
            done = change_schema(sandbox, data)
        except (ApiError, ValueError, KeyError) as exc:
            return json_response({"success": False, "error": _reason(exc)}, 400)
        if "json" not in {k.lower(): v for k, v in headers.items()}.get("accept", ""):
            page = index_page(sandbox, notice=done)
            return SandboxResponse(200, page, content_type="text/html; charset=utf-8")
        return json_response({"success": True, "done": done})
    return json_response({"success": False, "error": f"No sandbox page {method} {path}"}, 404)


SCHEMA_CHANGES = {
    ("stage", "delete"): lambda box, ident, name: box.pipedrive.delete_stage(int(ident)),
    ("stage", "rename"): lambda box, ident, name: box.pipedrive.rename_stage(int(ident), name),
    ("pipeline", "delete"): lambda box, ident, name: box.pipedrive.delete_pipeline(int(ident)),
    ("pipeline", "rename"): lambda box, ident, name: box.pipedrive.rename_pipeline(
        int(ident), name
    ),
    ("person_field", "delete"): lambda box, ident, name: box.pipedrive.delete_person_field(ident),
    ("person_field", "rename"): lambda box, ident, name: box.pipedrive.rename_person_field(
        ident, name
    ),
    ("list", "delete"): lambda box, ident, name: box.snovio.delete_list(ident),
    ("list", "rename"): lambda box, ident, name: box.snovio.rename_list(ident, name),
}


def change_schema(sandbox: Sandbox, data: dict) -> str:
    """Delete or rename a stage, pipeline, custom person field or Snov.io list."""
    what, action = str(data.get("what", "")), str(data.get("action", ""))
    ident, name = str(data.get("id", "")).strip(), str(data.get("name", "")).strip()
    change = SCHEMA_CHANGES.get((what, action))
    if change is None:
        raise ValueError("what is stage, pipeline, person_field or list; action delete or rename")
    if not ident:
        raise ValueError("id is required")
    try:
        change(sandbox, ident, name)
    except (TypeError, ValueError) as exc:
        raise ValueError(str(exc) or f"{what} {ident!r} cannot be changed") from exc
    done = "deleted" if action == "delete" else f"renamed to “{name}”"
    return f"{what.replace('_', ' ').capitalize()} {ident} {done}."


def _reason(exc: Exception) -> str:
    return str(getattr(exc, "message", "") or exc)


def index_page(sandbox: Sandbox, notice: str = "") -> str:
    e = html.escape
    events = sandbox.snovio.event_choices()
    prospects = sandbox.snovio.prospect_emails()[:300]
    options = "".join(f'<option value="{e(k)}">{e(label)}</option>' for k, label in events)
    emails = "".join(f'<option value="{e(m)}">{e(m)}</option>' for m in prospects)
    counts = sandbox.snovio.summary() | sandbox.pipedrive.summary()
    rows = "".join(f"<tr><td>{e(k)}</td><td>{v}</td></tr>" for k, v in counts.items())
    deliveries = "".join(
        f"<li>{e(d['url'])} → {d['status'] or e(d['error'])}</li>"
        for d in sandbox.delivery_log[-10:][::-1]
    )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>SyncBridge sandbox</title>
<style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;color:#1f2933}}
table{{border-collapse:collapse}}td{{border:1px solid #ccd;padding:.2rem .6rem}}
.notice{{background:#e3f9e5;padding:.5rem 1rem;border-radius:4px}}
label{{display:block;margin:.5rem 0}}</style></head><body>
<h1>SyncBridge sandbox</h1>
<p>Simulated Pipedrive and Snov.io for trying SyncBridge without real accounts.</p>
{f'<p class="notice" id="notice">{e(notice)}</p>' if notice else ""}
<h2>Demo credentials</h2>
<ul><li>Pipedrive: connect with OAuth (consent page here) — legacy API token
<code>{e(settings.SANDBOX_PIPEDRIVE_API_TOKEN)}</code></li>
<li>Snov.io API User ID <code>{e(settings.SANDBOX_SNOVIO_CLIENT_ID)}</code>,
API Secret <code>{e(settings.SANDBOX_SNOVIO_CLIENT_SECRET)}</code></li></ul>
<h2>Fire a Snov.io campaign event</h2>
<form method="post" action="/_sandbox/events" id="fire-event">
<label>Event <select name="event">{options}</select></label>
<label>Prospect <select name="email">{emails}</select></label>
<label>Campaign name <input name="campaign" value="Demo outreach"></label>
<button type="submit">Fire event</button></form>
<h2>Change an account's setup</h2>
<p>Delete or rename what SyncBridge's settings point at, then press Refresh in SyncBridge
(or wait for the next catch-up) to see “Connection failed” and the problem marked.</p>
<form method="post" action="/_sandbox/schema" id="change-schema">
<label>What <select name="what"><option value="stage">Pipedrive stage (id)</option>
<option value="pipeline">Pipedrive pipeline (id)</option>
<option value="person_field">Pipedrive custom person field (key)</option>
<option value="list">Snov.io list (id or name)</option></select></label>
<label>Id, key or name <input name="id" required></label>
<label>Action <select name="action"><option value="delete">Delete</option>
<option value="rename">Rename</option></select></label>
<label>New name (rename) <input name="name"></label>
<button type="submit">Apply</button></form>
<h2>State</h2><table>{rows}</table>
<h2>Latest webhook deliveries</h2><ul id="deliveries">{deliveries or "<li>none yet</li>"}</ul>
</body></html>"""
