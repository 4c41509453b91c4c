"""In the browser: Launch without a transfer, two catch-up cycles, and nothing that existed moved.

Headless Chromium drives the live app; Pipedrive and Snov.io are the seeded sandbox over real
HTTP (40 contacts are in both apps with different phones and titles). django-q2 runs tasks
inline, so the drain that records the baseline and each catch-up run as they are queued.
"""

from __future__ import annotations

import copy

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from integrations import tasks
from tests.e2e.test_automations_browser import shot
from tests.factories import ready_integration


def both_apps(sandbox) -> tuple[dict, dict]:
    persons = {p["id"]: copy.deepcopy(p) for p in sandbox.pipedrive.persons()}
    prospects = {
        pid: {k: copy.deepcopy(v) for k, v in p.items() if k not in ("updatedAt", "campaigns")}
        for pid, p in sandbox.snovio.state["prospects"].items()
    }
    return persons, prospects


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_launch_without_a_transfer_changes_no_existing_contact_and_leaves_no_change_waiting(
    page: Page, live_server, sandbox_server, sync_tasks, django_user_model, settings
):
    # Two catch-ups back to back (webhook checks, campaign history, profile re-checks) need
    # more than Snov.io's 60 requests a minute, and tasks run inline here. The limiter has
    # its own tests; this one is about launch and the baseline.
    settings.SNOVIO_RATE_LIMIT = 1_000_000
    user = django_user_model.objects.create_user("ops", "ops@example.com", "ops-password-1")
    integration = ready_integration(user, sandbox_server)  # steps 1-4 done, two-way, all lists
    before = both_apps(sandbox_server)
    page.set_default_timeout(20_000)
    page.goto(f"{live_server.url}/")
    page.fill("#id_username", "ops")
    page.fill("#id_password", "ops-password-1")
    page.click("button[type=submit]")

    page.goto(live_server.url + reverse("integrations:launch", args=[integration.pk]))
    page.click("#launch")
    expect(page.locator("#launched")).to_contain_text("The integration is Active")
    page.click("#not-now")
    expect(page.locator("#baseline")).to_contain_text("were recorded as they were")

    for _ in range(2):  # two scheduled catch-up cycles
        tasks.catch_up(integration.pk)
    page.reload()

    expect(page.locator("#queue-waiting")).to_have_attribute("data-waiting", "0")
    expect(page.locator("#last-catch-up")).to_contain_text("0 change(s) found")
    shot(page, "settings-after-launch-without-transfer")
    assert both_apps(sandbox_server) == before
    page.goto(f"{live_server.url}/")
    expect(page.locator("td.waiting")).to_have_text("0")
