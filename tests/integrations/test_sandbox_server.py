"""The sandbox as its own HTTP server: index page, firing events, state kept in its file."""

from __future__ import annotations

import json
import socket
import threading
from http.server import ThreadingHTTPServer

import pytest
import requests
from django.conf import settings

from integrations.sandbox.core import Sandbox
from integrations.sandbox.server import make_handler


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def live(tmp_path):
    """A seeded sandbox served on a loopback port; webhooks are captured, not sent."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    box = Sandbox(public_url=base, state_file=tmp_path / "sandbox.json", seed=True)
    received: list[dict] = []
    box.deliver = lambda url, headers, body: (
        received.append({"url": url, **json.loads(body)}) or 200
    )
    server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(box))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield box, base, received
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def snovio_token(base: str) -> str:
    answer = requests.post(
        f"{base}/snovio/v1/oauth/access_token",
        data={
            "grant_type": "client_credentials",
            "client_id": settings.SANDBOX_SNOVIO_CLIENT_ID,
            "client_secret": settings.SANDBOX_SNOVIO_CLIENT_SECRET,
        },
        timeout=5,
    )
    answer.raise_for_status()
    return answer.json()["access_token"]


def subscribe_to_replies(base: str) -> dict:
    answer = requests.post(
        f"{base}/snovio/v2/webhooks",
        json={
            "event_object": "campaign_reply",
            "event_action": "received",
            "endpoint_url": "http://app.test/hooks/snovio/s3cret",
        },
        headers={"Authorization": f"Bearer {snovio_token(base)}"},
        timeout=5,
    )
    answer.raise_for_status()
    return answer.json()["data"]


def test_index_page_shows_demo_credentials_counts_and_the_event_form(live):
    box, base, _ = live

    page = requests.get(base + "/", timeout=5)

    assert page.status_code == 200
    assert "text/html" in page.headers["Content-Type"]
    assert settings.SANDBOX_SNOVIO_CLIENT_ID in page.text
    assert settings.SANDBOX_SNOVIO_CLIENT_SECRET in page.text
    assert "<td>Snov.io prospects</td><td>150</td>" in page.text
    assert 'value="reply_received">Reply received</option>' in page.text
    assert box.snovio.prospect_emails()[0] in page.text


def test_firing_an_event_from_the_page_delivers_the_webhook(live):
    box, base, received = live
    hook = subscribe_to_replies(base)
    email = box.snovio.prospect_emails()[0]

    page = requests.post(
        f"{base}/_sandbox/events",
        data={"event": "reply_received", "email": email, "campaign": "Demo outreach"},
        timeout=5,
    )
    as_json = requests.post(
        f"{base}/_sandbox/events",
        json={"event": "email_opened", "email": email, "campaign": "Demo outreach"},
        headers={"Accept": "application/json"},
        timeout=5,
    )

    assert page.status_code == 200 and "Event fired: Reply received for" in page.text
    assert [(r["url"], r["event_object"], r["event_action"]) for r in received] == [
        (hook["end_point"], "campaign_reply", "received")
    ]
    assert received[0]["data"]["recipient_email"] == email
    assert as_json.json()["success"] is True
    assert as_json.json()["deliveries"] == []  # nobody subscribed to opens


def test_an_unknown_prospect_is_refused_with_a_clear_message(live):
    _, base, received = live

    answer = requests.post(
        f"{base}/_sandbox/events",
        json={"event": "reply_received", "email": "ghost@nowhere.example"},
        timeout=5,
    )

    assert answer.status_code == 400
    assert "ghost@nowhere.example" in answer.json()["error"]
    assert received == []


def test_state_is_saved_to_the_file_and_loaded_by_a_new_sandbox(live, tmp_path):
    box, base, _ = live
    hook = subscribe_to_replies(base)
    email = box.snovio.prospect_emails()[3]
    requests.post(
        f"{base}/_sandbox/events",
        json={"event": "reply_received", "email": email, "campaign": "Demo outreach"},
        headers={"Accept": "application/json"},
        timeout=5,
    ).raise_for_status()

    again = Sandbox(public_url=base, state_file=tmp_path / "sandbox.json", seed=True)

    assert again.snovio.webhooks() == [hook]
    assert again.snovio.summary() == box.snovio.summary()
    assert again.snovio.history("Demo outreach", "replies")[0]["prospectEmail"] == email
    assert again.pipedrive.summary() == box.pipedrive.summary()


def test_the_sandbox_command_on_a_busy_port_is_a_clear_error():
    import io

    from django.core.management import call_command
    from django.core.management.base import CommandError

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(CommandError, match=f"127.0.0.1:{port}.*--port"):
            call_command("sandbox", "--port", str(port), "--state-file", "", stdout=io.StringIO())
