"""The rough edges a new user hit (issue 11), each pinned by a test."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from automations import services as automation_services
from automations.models import ActionKind, Trigger
from integrations.models import Integration
from tests.factories import legacy_connection, ready_integration, stored_integration

pytestmark = pytest.mark.django_db


def url(name: str, integration: Integration) -> str:
    return reverse(f"integrations:{name}", args=[integration.pk])


def bar_and_heading(page: str, title: str) -> tuple[str, str]:
    """The step bar's number for `title` and the number the page heading shows."""
    bar = re.search(rf"(\d+)\. {re.escape(title)}</", page)
    heading = re.search(r"<h2>(\d+)\. ", page)
    assert bar and heading, page[:2000]
    return bar.group(1), heading.group(1)


@pytest.mark.parametrize("direction", Integration.Direction.values)
def test_the_step_bar_and_the_heading_give_each_step_the_same_number(
    client_logged_in, user, sandbox, direction
):
    integration = ready_integration(user, sandbox, direction)
    steps = [("direction", "Direction"), ("data", "Data exchange"), ("constants", "Constants")]
    steps += [("launch", "Launch")]
    if integration.sends_to_pipedrive:
        steps.append(("automations", "Automations"))
    for name, title in steps:
        page = client_logged_in.get(url(name, integration)).content.decode()
        number, shown = bar_and_heading(page, title)
        assert number == shown, (direction, name)
    launch = client_logged_in.get(url("launch", integration)).content.decode()
    expected = "5" if direction == Integration.Direction.TO_SNOVIO else "6"
    assert bar_and_heading(launch, "Launch") == (expected, expected)


def test_the_review_page_lists_the_automations(client_logged_in, user, sandbox):
    integration = ready_integration(user, sandbox)
    automation_services.add_action(
        integration, Trigger.EMAIL_OPENED, ActionKind.ADD_ACTIVITY, subject="Call back"
    )
    page = client_logged_in.get(url("launch", integration)).content.decode()
    review = page[page.index('id="review-automations"') :]
    assert "When campaign email opened" in review
    assert "Add a task “Call back” due the same day" in review


def test_the_review_page_says_when_there_are_no_automations(client_logged_in, user, sandbox):
    integration = ready_integration(user, sandbox)
    page = client_logged_in.get(url("launch", integration)).content.decode()
    assert re.search(r'id="review-automations">\s*none', page)


def test_the_list_shows_a_legacy_connection_as_paused_before_it_is_opened(client_logged_in, user):
    integration = stored_integration(user)
    integration.pipedrive = legacy_connection(user)
    integration.launched_at = integration.created_at
    integration.save()
    assert integration.status == Integration.Status.ACTIVE

    page = client_logged_in.get(reverse("integrations:list")).content.decode()

    row = page[page.index(f"#{integration.pk}</a>") :].split("</tr>")[0]
    assert 'data-status="paused"' in row and "legacy token" in row
    integration.refresh_from_db()
    assert integration.status == Integration.Status.PAUSED
