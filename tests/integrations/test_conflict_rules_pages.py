"""Setting conflict rules in the pages: on each field-mapping row, and the integration's
default on the settings page's real-time card."""

from __future__ import annotations

import pytest

from integrations.models import ConflictRule
from tests.factories import integration_with_both_apps, launched_integration
from tests.integrations.test_pages_setup import INDUSTRY, data_post, text, url, with_pairs

pytestmark = pytest.mark.django_db


def test_each_mapping_row_has_a_conflict_rule_select_defaulting_to_the_integrations(
    client_logged_in, user, sandbox
):
    integration = integration_with_both_apps(user, sandbox)
    page = text(client_logged_in.get(url("data", integration)))
    assert page.count('<td class="conflict-rule">') == 7 + 1  # system rows + the empty row
    assert "Integration default (The source app wins)" in page
    assert "Never overwrite on Pipedrive&#x27;s side" in page


def test_rules_chosen_on_a_custom_row_and_a_system_row_are_saved_and_shown_again(
    client_logged_in, user, sandbox
):
    integration = integration_with_both_apps(user, sandbox)
    form = with_pairs(integration, ("customFields[Industry]", INDUSTRY))
    form["map-0-conflict_rule"] = ConflictRule.FILL_EMPTY
    form["rule_position"] = ConflictRule.KEEP_PIPEDRIVE

    assert client_logged_in.post(url("data", integration), form).status_code == 302

    rules = dict(integration.field_mappings.values_list("snovio_field", "conflict_rule"))
    assert rules["customFields[Industry]"] == ConflictRule.FILL_EMPTY
    assert rules["position"] == ConflictRule.KEEP_PIPEDRIVE
    assert rules["email"] == ""  # blank: the integration's default
    page = text(client_logged_in.get(url("data", integration)))
    assert '<option value="keep_pipedrive" selected>' in page
    assert '<option value="fill_empty" selected>' in page
    # Saving the row again with another rule changes it (the pair itself stays).
    form["map-INITIAL_FORMS"] = "1"
    form["map-0-conflict_rule"] = ConflictRule.LATEST
    client_logged_in.post(url("data", integration), form)
    assert integration.field_mappings.get(is_system=False).conflict_rule == ConflictRule.LATEST


def test_an_unknown_rule_is_a_red_form_error_not_a_500(client_logged_in, user, sandbox):
    integration = integration_with_both_apps(user, sandbox)
    form = data_post(integration, rule_position="whoever_shouts")

    response = client_logged_in.post(url("data", integration), form)

    assert response.status_code == 200
    assert "Choose one of the listed conflict rules." in text(response)
    assert integration.field_mappings.get(snovio_field="position").conflict_rule == ""


def test_the_real_time_card_sets_the_integrations_default_rule(client_logged_in, user, sandbox):
    integration = launched_integration(user, sandbox)
    page = text(client_logged_in.get(url("settings", integration)))
    assert "Default conflict rule of a field pair" in page

    response = client_logged_in.post(
        url("realtime_rule", integration),
        {"conflict_rule": ConflictRule.KEEP_SNOVIO, "realtime_rule": "pipedrive"},
    )

    assert response.status_code == 302 and response["Location"].endswith("#realtime")
    integration.refresh_from_db()
    assert (integration.conflict_rule, integration.realtime_rule) == ("keep_snovio", "pipedrive")
    page = text(client_logged_in.get(url("data", integration)))
    assert "Integration default (Never overwrite on Snov.io&#x27;s side)" in page
    bad = client_logged_in.post(
        url("realtime_rule", integration), {"conflict_rule": "nope", "realtime_rule": "latest"}
    )
    assert bad.status_code == 302
    integration.refresh_from_db()
    assert integration.conflict_rule == "keep_snovio"
