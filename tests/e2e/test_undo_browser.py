"""In the browser: run a transfer, open its page, preview its undo, undo it, and find the
sandbox's Pipedrive persons back as they were before the transfer (and Snov.io untouched).

Headless Chromium drives the live app; Pipedrive and Snov.io are the seeded sandbox over real
HTTP (40 contacts are in both apps with different phones and titles, the other prospects are
new to Pipedrive). django-q2 runs the transfer and the undo inline.
"""

from __future__ import annotations

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from integrations.models import SyncRun, Undo
from tests.e2e.test_automations_browser import shot
from tests.factories import launched_integration

SHOWN = ("name", "first_name", "last_name", "job_title", "org_id", "custom_fields")


def persons_as_users_see_them(sandbox) -> dict[int, dict]:
    """Each person's values a user reads in Pipedrive (times left out)."""
    return {
        p["id"]: {
            **{k: p.get(k) for k in SHOWN},
            "emails": [e["value"] for e in p.get("emails") or []],
            "phones": [e["value"] for e in p.get("phones") or []],
        }
        for p in sandbox.pipedrive.persons()
    }


def rename_persons(sandbox, count: int) -> list[int]:
    """Give `count` persons that have a prospect another last name, as if a user had changed
    it before SyncBridge was launched (no webhook): the transfer (Snov.io wins) renames them."""
    emails = {
        (p.get("emails") or [{}])[0].get("email", "").lower() for p in sandbox.snovio.prospects()
    }
    renamed = []
    with sandbox.lock:
        for person in sandbox.pipedrive.state["persons"].values():
            if len(renamed) < count and {e["value"].lower() for e in person["emails"]} & emails:
                person["last_name"] = "Renamed"
                person["name"] = f"{person['first_name']} Renamed"
                renamed.append(person["id"])
    assert len(renamed) == count
    return renamed


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_a_transfer_undone_from_its_page_leaves_pipedrive_as_it_was(
    page: Page, live_server, sandbox_server, sync_tasks, django_user_model, settings
):
    settings.SNOVIO_RATE_LIMIT = 1_000_000  # tasks run inline: no minute to wait between calls
    user = django_user_model.objects.create_user("ops", "ops@example.com", "ops-password-1")
    integration = launched_integration(user, sandbox_server)
    renamed = rename_persons(sandbox_server, 3)  # so that the transfer updates them
    before = persons_as_users_see_them(sandbox_server)
    prospects_before = sandbox_server.snovio.prospects()
    page.set_default_timeout(60_000)
    page.goto(f"{live_server.url}/")
    page.fill("#id_username", "ops")
    page.fill("#id_password", "ops-password-1")
    page.click("button[type=submit]")

    page.goto(live_server.url + reverse("integrations:transfer", args=[integration.pk]))
    page.check("input[name=direction][value=to_pipedrive]")
    page.click("#start-transfer")
    expect(page.get_by_role("heading", name="Transfer", exact=True)).to_be_visible()
    run = SyncRun.objects.get(integration=integration, dry_run=False)
    assert run.status == SyncRun.Status.DONE and run.created and run.updated, run.summary()
    assert persons_as_users_see_them(sandbox_server) != before
    page.reload()

    page.click("#undo-preview-button")
    expect(page.locator("#undo-preview")).to_be_visible()
    expect(page.locator("#undo-counts [data-k=removed]")).to_have_text(str(run.created))
    expect(page.locator("#undo-preview .undo-row").first).to_be_visible()
    assert persons_as_users_see_them(sandbox_server) != before  # a preview writes nothing
    shot(page, "undo-preview")
    page.click("#undo-confirm")

    expect(page.locator("#undo-status")).to_contain_text("Done")
    expect(page.locator("#undo-counts [data-k=failed]")).to_have_text("0")
    shot(page, "undo-done")
    assert persons_as_users_see_them(sandbox_server) == before
    assert sandbox_server.snovio.prospects() == prospects_before  # the sending side: untouched
    assert all(sandbox_server.pipedrive.person(i)["last_name"] == "Renamed" for i in renamed)
    undo = Undo.objects.get(dry_run=False)
    assert (undo.removed, undo.left_alone) == (run.created, 0)

    page.goto(live_server.url + reverse("integrations:transfer_run", args=[integration.pk, run.pk]))
    expect(page.locator("#undo-link")).to_be_visible()
