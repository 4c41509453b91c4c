"""A sales-ops admin sets up an integration in the browser: all seven steps, then the settings.

Headless Chromium drives the live app; Pipedrive and Snov.io are the sandbox over real HTTP
(OAuth consent page included). A screenshot of every step lands in test-artifacts/screenshots,
and, with UPDATE_README_SCREENSHOT=1, the settings page in docs/screenshots/settings.png.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from playwright.sync_api import Page, expect

from integrations.models import Integration, StatusChange
from tests.factories import delete_pipedrive_field

SHOTS = Path(django_settings.BASE_DIR) / "test-artifacts" / "screenshots"
README_SHOT = Path(django_settings.BASE_DIR) / "docs" / "screenshots" / "settings.png"


def shot(page: Page, name: str, full_page: bool = True) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_admin_walks_through_the_seven_steps_launches_pauses_and_resumes(
    page: Page, live_server, sandbox_server, sync_tasks, django_user_model, settings
):
    django_user_model.objects.create_user("ops", "ops@example.com", "ops-password-1")
    # The preview reads each new prospect's profile by id (list rows carry names and emails
    # only): at Snov.io's 60 a minute that is minutes, and tasks run inline here. The limiter
    # has its own tests; this one is about the pages.
    settings.SNOVIO_RATE_LIMIT = 1_000_000
    page.set_default_timeout(20_000)
    page.set_viewport_size({"width": 1280, "height": 900})

    # Log in.
    page.goto(f"{live_server.url}/")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    page.fill("#id_username", "ops")
    page.fill("#id_password", "ops-password-1")
    page.click("button[type=submit]")
    expect(page.get_by_role("heading", name="Your integrations")).to_be_visible()
    page.click("#new-integration")

    # Step 1: Connect. Pipedrive by OAuth through the sandbox's consent page.
    expect(page.get_by_role("heading", name="1. Connect your accounts")).to_be_visible()
    expect(page.locator(".badge").first).to_have_text("Paused")
    page.click("#connect-pipedrive")
    expect(page.locator("#allow")).to_be_visible()
    assert page.url.startswith(sandbox_server.url)
    shot(page, "step-1-pipedrive-consent")
    page.click("#allow")
    expect(page.locator(".msg-success")).to_contain_text("Pipedrive is connected")
    expect(page.locator("#pipedrive-connection")).to_contain_text("Sandbox Company")

    # Snov.io: a wrong secret is refused by a real token request, the right one is saved.
    page.fill("#id_client_id", settings.SANDBOX_SNOVIO_CLIENT_ID)
    page.fill("#id_client_secret", "wrong-secret")
    page.click("#connect-snovio")
    expect(page.locator("#snovio-form .problem")).to_contain_text("Snov.io refused")
    page.fill("#id_client_id", settings.SANDBOX_SNOVIO_CLIENT_ID)
    page.fill("#id_client_secret", settings.SANDBOX_SNOVIO_CLIENT_SECRET)
    page.click("#connect-snovio")
    expect(page.locator(".msg-success")).to_contain_text("Snov.io is connected")
    shot(page, "step-1-connect")
    page.click("#continue")

    # Step 2: Direction, two-way by default.
    expect(page.locator("#direction-two_way")).to_be_checked()
    shot(page, "step-2-direction")
    page.click("#save-direction")

    # Step 3: Data exchange.
    expect(page.get_by_role("heading", name="3. Data exchange")).to_be_visible()
    expect(page.locator("#id_all_lists")).to_be_checked()
    expect(page.locator("#lists-choice")).to_be_hidden()
    expect(page.locator("#id_only_with_email")).to_be_checked()
    expect(page.locator("#email-warning")).to_be_hidden()
    page.uncheck("#id_only_with_email")
    expect(page.locator("#email-warning")).to_be_visible()
    page.check("#id_only_with_email")
    expect(page.locator(".system-pair")).to_have_count(7)
    page.select_option("#id_target_list", label="Conference leads 2026")
    expect(page.locator("#id_owner")).to_have_value(
        str(sandbox_server.pipedrive.user_id("Robin Admin"))
    )
    page.click("#add-mapping")
    expect(page.locator("#add-mapping")).to_be_disabled()  # right side first
    page.select_option("#id_map-0-snovio_field", "customFields[Industry]")
    number_option = page.locator("#id_map-0-pipedrive_field option[data-type=number]").first
    expect(number_option).to_be_disabled()  # the type rule, in the page
    page.select_option("#id_map-0-pipedrive_field", label="Industry (Text)")
    page.select_option("#id_map-0-conflict_rule", "fill_empty")  # the pair's conflict rule
    page.select_option("#id_rule_position", "keep_pipedrive")  # a system pair's rule
    expect(page.locator("#add-mapping")).to_be_enabled()
    shot(page, "step-3-data-exchange")
    page.click("#save-data")

    # Step 4: Constants for both receiving sides (two-way).
    expect(page.get_by_role("heading", name="4. Constants")).to_be_visible()
    rules = dict(
        Integration.objects.get(owner__username="ops")
        .field_mappings.filter(snovio_field__in=["position", "customFields[Industry]"])
        .values_list("snovio_field", "conflict_rule")
    )
    assert rules == {"position": "keep_pipedrive", "customFields[Industry]": "fill_empty"}
    expect(page.locator("#constant-pipedrive")).to_be_visible()
    expect(page.locator("#constant-snovio")).to_be_visible()
    page.select_option("#id_pipedrive_field", label="Lead source (Single option)")
    # A single-option field offers its options instead of a free-text box.
    expect(page.locator("#id_pipedrive_value")).to_be_hidden()
    page.select_option("#id_pipedrive_value_choice", "Snov.io campaign")
    shot(page, "step-4-constants")
    page.click("#save-constants")

    # Step 5: Automations (data flows to Pipedrive, so the step is there).
    expect(page.get_by_role("heading", name="5. Automations")).to_be_visible()
    shot(page, "step-5-automations")
    page.click("form button#continue")

    # Step 6: review and launch.
    expect(page.get_by_role("heading", name="6. Review and launch")).to_be_visible()
    expect(page.locator(".review")).to_contain_text("Conference leads 2026")
    expect(page.locator(".review")).to_contain_text("Lead source")
    shot(page, "step-6-review")
    page.click("#launch")
    expect(page.locator("#launched")).to_contain_text("The integration is Active")
    expect(page.locator("#not-now")).to_be_visible()
    shot(page, "step-6-launched")
    integration = Integration.objects.get(owner__username="ops")
    assert integration.status == Integration.Status.ACTIVE

    # Step 7: the transfer dialog; the source app follows the direction (sender by default).
    page.click("#offer-transfer")
    expect(page.get_by_role("heading", name="7. Transfer existing data")).to_be_visible()
    expect(page.locator("input[name=direction][value=to_pipedrive]")).to_be_checked()
    expect(page.locator("input[name=source_app][value=snovio]")).to_be_checked()
    page.check("input[name=direction][value=to_snovio]")
    expect(page.locator("input[name=source_app][value=pipedrive]")).to_be_checked()
    page.check("input[name=direction][value=to_pipedrive]")
    expect(page.locator("input[name=source_app][value=snovio]")).to_be_checked()
    expect(page.locator(".explain")).to_contain_text("source app")
    page.check("#id_dry_run")
    shot(page, "step-7-transfer")
    page.click("#start-transfer")
    expect(page.get_by_role("heading", name="Transfer", exact=True)).to_be_visible()
    expect(page.locator("#transfer-progress")).to_contain_text("preview")
    shot(page, "step-7-transfer-progress", full_page=False)
    page.click("#to-settings")

    # The settings page: pause, then resume.
    expect(page.locator("#status-switch")).to_be_visible()
    expect(page.locator("#status-active")).to_have_class("seg on")
    shot(page, "step-8-settings-full")
    # The README shows the top of the page: status switch, actions, connections, direction.
    settings_shot = shot(page, "step-8-settings", full_page=False)
    if os.environ.get("UPDATE_README_SCREENSHOT"):
        shutil.copyfile(settings_shot, README_SHOT)

    page.click("#status-paused")
    expect(page.locator(".page-head .badge")).to_have_text("Paused")
    expect(page.locator("#status-history")).to_contain_text("Paused by the user")
    shot(page, "step-9-paused")
    page.click("#status-active")
    expect(page.locator(".page-head .badge")).to_have_text("Active")
    expect(page.locator("#status-history")).to_contain_text("Resumed")
    shot(page, "step-10-resumed")

    # A mapped field disappears from Pipedrive: resuming marks it in red, fixing it resumes.
    page.click("#status-paused")
    expect(page.locator(".page-head .badge")).to_have_text("Paused")
    delete_pipedrive_field(sandbox_server, "Industry")
    page.click("#status-active")
    expect(page.locator(".page-head .badge")).to_have_text("Connection failed")
    expect(page.locator("#problems .problem")).to_contain_text(
        "The Pipedrive field “Industry” (pair “Industry” ↔ “Industry”) no longer exists."
    )
    expect(page.locator("#data .mapping-row.problem-row")).to_have_count(1)
    page.locator("#problems").scroll_into_view_if_needed()
    shot(page, "step-11-connection-failed", full_page=False)
    page.locator("#mapping-rows .trash").first.click()
    page.click("#save-data")
    expect(page.locator(".msg-success")).to_contain_text("Data exchange saved.")
    page.click("#status-active")
    expect(page.locator(".page-head .badge")).to_have_text("Active")
    expect(page.locator("#problems")).to_have_count(0)

    changes = list(
        StatusChange.objects.filter(integration=integration)
        .order_by("at", "pk")
        .values_list("to_status", flat=True)
    )
    assert changes == ["active", "paused", "active", "paused", "failed", "active"]
