"""The second match key in the data-exchange step, as a user sees it."""

from __future__ import annotations

import pytest

from integrations.catalog import refresh_catalog
from integrations.sandbox.pipedrive import custom_field_key
from tests.factories import integration_with_both_apps
from tests.integrations.test_pages_setup import data_post, text, url

pytestmark = pytest.mark.django_db

LINKEDIN = custom_field_key("LinkedIn")
EMPLOYEES = custom_field_key("Employees")


@pytest.fixture
def integration(user, sandbox):
    sandbox.pipedrive.add_person_field("LinkedIn", "varchar")
    integration = integration_with_both_apps(user, sandbox)
    refresh_catalog(integration)
    return integration


def test_the_page_offers_linkedin_and_says_why_phone_is_not_offered(client_logged_in, integration):
    page = text(client_logged_in.get(url("data", integration)))
    assert "Second match key" in page
    assert '<option value="linkedin">LinkedIn profile URL</option>' in page
    assert f'<option value="{LINKEDIN}">LinkedIn</option>' in page
    assert f'value="{EMPLOYEES}"' not in page.split('id="second-key"')[1]  # a number field
    assert "never returns a prospect's phones" in page
    assert "can be turned off safely" in page


def test_choosing_linkedin_and_its_pipedrive_field_is_saved(client_logged_in, integration):
    form = data_post(integration, second_key="linkedin", second_key_field=LINKEDIN)
    response = client_logged_in.post(url("data", integration), form)
    assert response.status_code == 302
    integration.refresh_from_db()
    assert (integration.second_key, integration.second_key_field) == ("linkedin", LINKEDIN)

    client_logged_in.post(url("data", integration), data_post(integration, second_key=""))
    integration.refresh_from_db()
    assert (integration.second_key, integration.second_key_field) == ("", "")


def test_linkedin_without_its_pipedrive_field_is_refused_next_to_the_field(
    client_logged_in, integration
):
    response = client_logged_in.post(
        url("data", integration), data_post(integration, second_key="linkedin")
    )
    assert response.status_code == 200
    assert "Choose the Pipedrive field that holds the LinkedIn URL." in text(response)
    integration.refresh_from_db()
    assert integration.second_key == ""


@pytest.mark.parametrize("field", [EMPLOYEES, "0" * 40, "<script>"])
def test_a_field_that_cannot_hold_the_url_is_refused(client_logged_in, integration, field):
    form = data_post(integration, second_key="linkedin", second_key_field=field)
    response = client_logged_in.post(url("data", integration), form)
    assert response.status_code == 200
    assert "Select a valid choice" in text(response)
    integration.refresh_from_db()
    assert integration.second_key_field == ""


def test_an_unknown_key_is_refused(client_logged_in, integration):
    form = data_post(integration, second_key="phone", second_key_field=LINKEDIN)
    response = client_logged_in.post(url("data", integration), form)
    assert response.status_code == 200 and "Select a valid choice" in text(response)
