"""A transfer starts and runs once under double clicks, two POSTs, two commands, two workers.

Each test ends the same way: no email twice in the sandbox's Pipedrive or Snov.io, and one
SyncEvent per sent record. The concurrent ones use real threads, each with its own database
connection, against PostgreSQL (the database that enforces "one transfer at a time").
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable

import django_q.conf
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client
from django.urls import reverse

from integrations import tasks
from integrations.models import Integration, SyncEvent, SyncRun
from integrations.sync import runs
from tests.factories import connected_integration, fast_limits  # noqa: F401
from tests.integrations.exactly_once import assert_transferred_exactly_once, at_once

pytestmark = pytest.mark.usefixtures("fast_limits")

needs_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="threads writing at once need a database server: SQLite's shared in-memory test "
    "database locks whole tables",
)
concurrent = [pytest.mark.django_db(transaction=True), needs_postgresql]

TO_PIPEDRIVE = SyncRun.Direction.TO_PIPEDRIVE


# --- the page --------------------------------------------------------------------------------
@pytest.fixture
def integration(user, sandbox):
    return connected_integration(user, sandbox)


def form_token(client: Client, integration: Integration) -> str:
    page = client.get(reverse("integrations:transfer", args=[integration.pk]))
    return page.context["form"]["submit_token"].value()


def post_transfer(client: Client, integration: Integration, token: str, dry_run: bool = False):
    data = {"direction": TO_PIPEDRIVE, "source_app": "snovio", "submit_token": token}
    if dry_run:
        data["dry_run"] = "on"
    return client.post(reverse("integrations:transfer", args=[integration.pk]), data)


def run_page(integration: Integration, run: SyncRun) -> str:
    return reverse("integrations:transfer_run", args=[integration.pk, run.pk])


@pytest.mark.django_db
def test_the_transfer_form_carries_a_fresh_token_each_time_it_is_shown(
    client_logged_in, integration
):
    first = form_token(client_logged_in, integration)
    second = form_token(client_logged_in, integration)
    assert first and second and first != second
    page = client_logged_in.get(reverse("integrations:transfer", args=[integration.pk]))
    assert f'name="submit_token" value="{first}"' not in page.content.decode()


@pytest.mark.django_db
def test_the_same_transfer_submit_sent_twice_starts_one_run_and_shows_it_again(
    client_logged_in, integration, monkeypatch
):
    monkeypatch.setattr(django_q.conf.Conf, "SYNC", True)  # the worker runs it at once
    token = form_token(client_logged_in, integration)

    first = post_transfer(client_logged_in, integration, token)
    second = post_transfer(client_logged_in, integration, token)

    run = SyncRun.objects.get()
    assert first.status_code == second.status_code == 302
    assert first.url == second.url == run_page(integration, run)
    assert_transferred_exactly_once(integration, run)


@pytest.mark.django_db
def test_two_quick_transfer_clicks_without_waiting_start_one_run(client_logged_in, integration):
    """The queue has not even started the first run when the second click arrives."""
    token = form_token(client_logged_in, integration)
    other_tab = form_token(client_logged_in, integration)

    first = post_transfer(client_logged_in, integration, token)
    again = post_transfer(client_logged_in, integration, token)
    from_other_tab = post_transfer(client_logged_in, integration, other_tab, dry_run=True)

    run = SyncRun.objects.get()
    assert run.status == SyncRun.Status.QUEUED
    assert first.url == again.url == from_other_tab.url == run_page(integration, run)
    shown = client_logged_in.get(from_other_tab.url).content.decode()
    assert f"Transfer #{run.pk} is already running" in shown
    assert "Syncing" in shown  # the badge, from the click on

    tasks.run_transfer(run.pk)  # the worker's turn
    assert_transferred_exactly_once(integration, run)


@pytest.mark.parametrize("same_token", [True, False], ids=["one submit twice", "two submits"])
@pytest.mark.django_db(transaction=True)
@needs_postgresql
def test_two_transfer_posts_at_the_same_moment_start_one_run(user, sandbox, same_token):
    integration = connected_integration(user, sandbox)
    for trial in range(3):
        clients = [Client(), Client()]
        for client in clients:
            client.force_login(user)
        tokens = [form_token(c, integration) for c in clients]
        if same_token:
            tokens[1] = tokens[0]

        answers = at_once(
            *(
                functools.partial(post_transfer, client, integration, token)
                for client, token in zip(clients, tokens, strict=True)
            )
        )

        started = SyncRun.objects.filter(status=SyncRun.Status.QUEUED)
        assert started.count() == 1, f"trial {trial}: {answers}"
        run = started.get()
        assert [a.status_code for a in answers] == [302, 302], f"trial {trial}"
        assert {a.url for a in answers} == {run_page(integration, run)}
        tasks.run_transfer(run.pk)
        assert_transferred_exactly_once(integration, run)
    assert SyncRun.objects.count() == 3


# --- the command -----------------------------------------------------------------------------
def command(integration: Integration) -> Callable[[], str]:
    def run() -> str:
        out = io.StringIO()
        call_command(
            "transfer",
            str(integration.pk),
            "--direction",
            "to-pipedrive",
            stdout=out,
            stderr=io.StringIO(),
        )
        return out.getvalue()

    return run


@pytest.mark.django_db(transaction=True)
@needs_postgresql
def test_two_transfer_commands_at_once_transfer_each_record_once(user, sandbox):
    integration = connected_integration(user, sandbox)

    results = at_once(command(integration), command(integration))

    run = SyncRun.objects.get()  # one run: the second command found the first one's
    refused = [r for r in results if isinstance(r, CommandError)]
    summaries = [r for r in results if isinstance(r, str)]
    assert len(refused) == len(summaries) == 1, results
    assert str(refused[0]) == (
        f"Transfer #{run.pk} of integration {integration.pk} is already running."
    )
    assert summaries[0].strip() == run.summary()
    assert_transferred_exactly_once(integration, run)


# --- the workers -----------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
@needs_postgresql
def test_one_run_handed_to_two_workers_at_once_is_executed_once(user, sandbox):
    integration = connected_integration(user, sandbox)
    run = runs.create_run(integration, TO_PIPEDRIVE)

    results = at_once(lambda: tasks.run_transfer(run.pk), lambda: tasks.run_transfer(run.pk))

    assert sorted(r.split(",")[0].split(": ")[1] for r in results) == ["busy", "finished"], results
    creates = [r for r in sandbox.request_log if r[1] == "POST" and r[2] == "/api/v2/persons"]
    run.refresh_from_db()
    assert len(creates) == run.created
    assert_transferred_exactly_once(integration, run)


@pytest.mark.django_db
def test_a_worker_given_a_finished_run_leaves_it_alone(integration, sandbox):
    run = runs.create_run(integration, TO_PIPEDRIVE)
    tasks.run_transfer(run.pk)
    sandbox.request_log.clear()

    assert tasks.run_transfer(run.pk).startswith(f"transfer {run.pk}: finished, done")
    assert sandbox.request_log == []
    assert SyncEvent.objects.filter(run=run).count() == run.events.count()
