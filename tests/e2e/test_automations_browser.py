"""In the browser: build the seed's example chain in step 5, fire the event from the sandbox
page, and read the outcome in the automation log.

Headless Chromium drives the live app; Pipedrive and Snov.io are the sandbox over real HTTP.
The Snov.io webhook the sync engine subscribes at launch delivers the event to the live app,
and django-q2 runs the automation inline.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Page, expect

from automations.models import ActionKind, AutomationRun, Trigger
from integrations.pipedrive.client import PipedriveClient
from tests.factories import ready_integration

SHOTS = Path(django_settings.BASE_DIR) / "test-artifacts" / "screenshots"
SUBJECT = "Call about the demo"


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def fresh_prospect(sandbox) -> tuple[str, str]:
    """A seeded Snov.io prospect with an email and no Pipedrive person: (email, name)."""
    known = {e["value"].lower() for p in sandbox.pipedrive.persons() for e in p.get("emails") or []}
    for prospect in sandbox.snovio.state["prospects"].values():
        emails = prospect.get("emails") or []
        if emails and emails[0]["email"].lower() not in known:
            return emails[0]["email"], sandbox.snovio._prospect_out(prospect)["name"]
    raise AssertionError("the seed has no prospect without a Pipedrive person")


def add_action(page: Page, trigger: str, kind: str, **fields: str) -> None:
    block = page.locator(f"#scenario-{trigger}")
    block.locator("details.add-action summary").click()
    page.select_option(f"#id_{trigger}_kind", kind)
    if "pipeline" in fields:
        page.select_option(f"#id_{trigger}_pipeline_id", label=fields["pipeline"])
    if "stage" in fields:
        page.select_option(f"#id_{trigger}_stage_id", label=fields["stage"])
    if "subject" in fields:
        page.fill(f"#id_{trigger}_subject", fields["subject"])
    block.get_by_role("button", name="Add action").click()
    # Each action has its own message: waiting for it means the new page has loaded.
    expect(page.locator(".msg-success")).to_contain_text(f"Added “{ActionKind(kind).label}”")


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_the_chain_built_in_step_5_runs_when_the_sandbox_fires_the_event(
    page: Page, live_server, sandbox_server, sync_tasks, django_user_model
):
    user = django_user_model.objects.create_user("ops", "ops@example.com", "ops-password-1")
    integration = ready_integration(user, sandbox_server)  # steps 1-4 done
    email, name = fresh_prospect(sandbox_server)
    page.set_default_timeout(20_000)
    page.set_viewport_size({"width": 1280, "height": 900})

    page.goto(f"{live_server.url}/")
    page.fill("#id_username", "ops")
    page.fill("#id_password", "ops-password-1")
    page.click("button[type=submit]")

    # Step 5: campaign email sent -> create a deal -> move it to a stage -> add an activity.
    page.goto(live_server.url + reverse("integrations:automations", args=[integration.pk]))
    expect(page.get_by_role("heading", name="5. Automations")).to_be_visible()
    trigger = Trigger.EMAIL_SENT.value
    expect(page.locator(f"#scenario-{trigger} summary")).to_have_text("+ Add an action")
    add_action(page, trigger, ActionKind.CREATE_DEAL, pipeline="Sales")
    expect(page.locator(f"#scenario-{trigger} summary")).to_have_text("+ Add another action")
    # Only the chosen pipeline's stages are offered for the move.
    block = page.locator(f"#scenario-{trigger}")
    block.locator("details.add-action summary").click()
    page.select_option(f"#id_{trigger}_kind", ActionKind.MOVE_TO_STAGE)
    page.select_option(f"#id_{trigger}_pipeline_id", label="Sales")
    expect(page.locator(f"#id_{trigger}_stage_id optgroup[label=Partnerships]")).to_be_hidden()
    page.select_option(f"#id_{trigger}_stage_id", label="Demo scheduled")
    block.get_by_role("button", name="Add action").click()
    moved = ActionKind.MOVE_TO_STAGE.label
    expect(page.locator(".msg-success")).to_contain_text(f"Added “{moved}”")
    add_action(page, trigger, ActionKind.ADD_ACTIVITY, subject=SUBJECT)
    steps = page.locator(f"#scenario-{trigger} .action-list li.action .description")
    expect(steps).to_have_text(
        [
            "Create a deal in “Sales” at its first stage",
            "Move the active deal to “Sales” → “Demo scheduled”",
            f"Add a task “{SUBJECT}” due the same day",
        ]
    )
    shot(page, "automations-step-5-chain")

    # Continue to step 6 and launch: the sync engine subscribes the Snov.io webhooks.
    page.click("form button#continue")
    page.click("#launch")
    expect(page.locator("#launched")).to_contain_text("The integration is Active")

    # Fire "Campaign email sent" for the prospect from the sandbox's own page.
    page.goto(sandbox_server.url + "/")
    page.select_option("#fire-event select[name=event]", "email_sent")
    page.select_option("#fire-event select[name=email]", email)
    page.click("#fire-event button[type=submit]")
    expect(page.locator("#notice")).to_contain_text("Event fired")
    shot(page, "automations-sandbox-fired")

    # The log shows each action's outcome and the Pipedrive objects.
    page.goto(live_server.url + reverse("automations:log", args=[integration.pk]))
    run_row = page.locator("tr.run").first
    expect(run_row).to_contain_text("Campaign email sent")
    expect(run_row).to_contain_text(email)
    expect(run_row.locator(".status")).to_have_text("Done")
    expect(run_row.locator("li.outcome .outcome-label")).to_have_text(["Done", "Done", "Done"])
    expect(run_row).to_contain_text(f"“{name} deal”")
    expect(run_row).to_contain_text("stage Demo scheduled")
    expect(run_row).to_contain_text(f"“{SUBJECT}” due {timezone.localdate().isoformat()}")
    shot(page, "automations-log")

    # The settings page shows the latest runs too.
    page.goto(live_server.url + reverse("integrations:settings", args=[integration.pk]))
    expect(page.locator(".automation-runs tr.run").first).to_contain_text("Done")

    # And Pipedrive has exactly what the log says.
    integration.pipedrive.refresh_from_db()
    client = PipedriveClient.for_connection(integration.pipedrive)
    (person,) = client.find_persons_by_email(email)
    (deal,) = client.list_deals(person_id=person["id"], status=None)
    assert deal["title"] == f"{name} deal"
    assert deal["stage_id"] == sandbox_server.pipedrive.stage_id("Sales", "Demo scheduled")
    (activity,) = sandbox_server.pipedrive.activities(person_id=person["id"])
    assert (activity["subject"], activity["done"]) == (SUBJECT, False)
    assert AutomationRun.objects.get(integration=integration).status == AutomationRun.Status.DONE
