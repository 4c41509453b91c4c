"""Each conflict rule through the simulators: a transfer, its preview and real time follow the
rule set on a field-mapping row (or the integration's default), and the history names it."""

from __future__ import annotations

import pytest
from django.template.loader import render_to_string
from django.urls import reverse

from integrations import services, tasks
from integrations.models import ConflictRule, FieldMapping, SyncEvent, SyncRun
from integrations.snovio.client import SnovioClient
from integrations.sync.receivers import register_webhooks
from integrations.sync.transfer import transfer
from tests.factories import connected_integration, fast_limits  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_limits", "sync_tasks")]

SHARED = "anna.shared@acme.example"  # job title filled on both sides, different
BLANK = "bea.blank@acme.example"  # no job title in Pipedrive yet
R = ConflictRule


@pytest.fixture
def sandbox(empty_sandbox):
    box = empty_sandbox
    box.snovio.create_list("Leads")
    box.snovio.add_prospect(
        "Leads", email=SHARED, first_name="Anna", last_name="Shared", position="Head of Sales"
    )
    box.snovio.add_prospect(
        "Leads", email=BLANK, first_name="Bea", last_name="Blank", position="VP Sales"
    )
    box.pipedrive.add_person(name="Anna Shared", email=SHARED, job_title="Director of Sales")
    box.pipedrive.add_person(name="Bea Blank", email=BLANK)
    return box


@pytest.fixture
def integration(user, sandbox):
    return connected_integration(user, sandbox)


def set_rule(integration, rule: str, where: str = "pair") -> None:
    """The job-title pair's rule, on its mapping row or as the integration's default."""
    if where == "pair":
        FieldMapping.objects.filter(integration=integration, snovio_field="position").update(
            conflict_rule=rule
        )
    else:
        integration.conflict_rule = rule
        integration.save(update_fields=["conflict_rule"])


def job_title(sandbox, email: str):
    [found] = sandbox.pipedrive.persons(email)
    return found.get("job_title") or ""


def position(integration, email: str):
    [found] = SnovioClient.for_connection(integration.snovio).get_prospect_by_email(email)
    return found.get("position") or ""


def run(integration, direction, source="snovio", dry_run=False) -> SyncRun:
    done = transfer(
        SyncRun.objects.create(
            integration=integration, direction=direction, source_app=source, dry_run=dry_run
        )
    )
    assert done.status == SyncRun.Status.DONE, done.error
    return done


# --- transfers and previews ------------------------------------------------------------------
TO_PIPEDRIVE_CASES = [
    # rule, where it is set, Anna's Pipedrive job title after a Snov.io-sourced transfer
    (R.SOURCE_APP, "pair", "Head of Sales"),
    (R.LATEST, "pair", "Head of Sales"),  # no change times in a transfer: the source app
    (R.FILL_EMPTY, "pair", "Director of Sales"),
    (R.KEEP_PIPEDRIVE, "pair", "Director of Sales"),
    (R.KEEP_PIPEDRIVE, "default", "Director of Sales"),
    (R.KEEP_SNOVIO, "pair", "Head of Sales"),
]


@pytest.mark.parametrize(("rule", "where", "expected"), TO_PIPEDRIVE_CASES)
def test_a_transfer_to_pipedrive_follows_the_pairs_conflict_rule_and_the_history_names_it(
    sandbox, integration, rule, where, expected
):
    set_rule(integration, rule, where)

    done = run(integration, SyncRun.Direction.TO_PIPEDRIVE)

    assert job_title(sandbox, SHARED) == expected
    assert job_title(sandbox, BLANK) == "VP Sales"  # every rule fills an empty field
    event = SyncEvent.objects.get(run=done, email=SHARED)
    conflict = event.changes["conflicts"]["job_title"]
    assert (conflict["rule"], conflict["rule_label"]) == (rule, R(rule).label)
    assert f"Job title {'sent value written' if expected == 'Head of Sales' else 'kept'}" in (
        event.reason
    )
    assert str(R(rule).label) in event.reason  # the history page shows the reason


@pytest.mark.parametrize(("rule", "where", "expected"), TO_PIPEDRIVE_CASES)
def test_a_preview_shows_what_the_rule_would_do_and_the_transfer_then_does_it(
    sandbox, integration, rule, where, expected
):
    set_rule(integration, rule, where)

    preview = run(integration, SyncRun.Direction.TO_PIPEDRIVE, dry_run=True)

    assert job_title(sandbox, SHARED) == "Director of Sales"  # a preview writes nothing
    [row] = [r for r in preview.preview if r["email"] == SHARED]
    assert row["conflicts"]["job_title"]["rule_label"] == R(rule).label
    written = "job_title" in row.get("fields", {})
    assert written is (expected == "Head of Sales")
    if written:
        assert row["fields"]["job_title"]["rule_label"] == R(rule).label
    real = run(integration, SyncRun.Direction.TO_PIPEDRIVE)
    assert real.summary() == preview.summary()
    assert job_title(sandbox, SHARED) == expected


def test_the_preview_table_names_the_rule_of_each_conflict(sandbox, integration):
    set_rule(integration, R.FILL_EMPTY)
    preview = run(integration, SyncRun.Direction.TO_PIPEDRIVE, dry_run=True)

    page = render_to_string("integrations/_transfer_progress.html", {"run": preview})

    assert "conflict, Fill empty fields only" in page
    assert "Director of Sales (kept, not “Head of Sales”)" in page


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (R.SOURCE_APP, "Head of Sales"),  # Snov.io is the source app: its value stays
        (R.FILL_EMPTY, "Head of Sales"),
        (R.KEEP_SNOVIO, "Head of Sales"),
        (R.KEEP_PIPEDRIVE, "Director of Sales"),  # Pipedrive's value is the one both keep
    ],
)
def test_a_transfer_to_snovio_follows_the_rule_even_against_the_source_app(
    sandbox, integration, rule, expected
):
    set_rule(integration, rule)

    run(integration, SyncRun.Direction.TO_SNOVIO, source="snovio")

    assert position(integration, SHARED) == expected


# --- real time --------------------------------------------------------------------------------
@pytest.fixture
def live(sandbox, integration):
    """Active with webhooks; both sides transferred (Snov.io the source): Anna is in sync."""
    register_webhooks(integration)
    run(integration, SyncRun.Direction.TO_PIPEDRIVE)
    run(integration, SyncRun.Direction.TO_SNOVIO)
    integration.refresh_from_db()
    assert job_title(sandbox, SHARED) == position(integration, SHARED) == "Head of Sales"
    return integration


def both_sides_change(sandbox, integration, *, pipedrive_value: str, snovio_value: str) -> None:
    """Pipedrive's edit first, Snov.io's a moment later, both before SyncBridge sees either."""
    services.pause(integration)
    [anna] = sandbox.pipedrive.persons(SHARED)
    sandbox.pipedrive.change_person(anna["id"], job_title=pipedrive_value)
    sandbox.snovio.update_prospect(SHARED, position=snovio_value)
    tasks.catch_up(integration.pk)
    assert services.resume(integration) == []


@pytest.mark.parametrize(
    ("rule", "card", "snovio_after", "pipedrive_after"),
    [
        (R.SOURCE_APP, "pipedrive", "P edit", "P edit"),  # the card names the source app
        (R.SOURCE_APP, "latest", "S edit", "S edit"),
        (R.LATEST, "pipedrive", "S edit", "S edit"),  # the later change, whatever the card
        (R.KEEP_PIPEDRIVE, "snovio", "P edit", "P edit"),
        (R.KEEP_SNOVIO, "pipedrive", "S edit", "S edit"),
        (R.FILL_EMPTY, "latest", "S edit", "P edit"),  # each side keeps its filled value
    ],
)
def test_a_field_changed_on_both_sides_in_real_time_is_settled_by_its_rule(
    sandbox, live, rule, card, snovio_after, pipedrive_after
):
    set_rule(live, rule)
    live.realtime_rule = card
    live.save(update_fields=["realtime_rule"])

    both_sides_change(sandbox, live, pipedrive_value="P edit", snovio_value="S edit")

    assert (position(live, SHARED), job_title(sandbox, SHARED)) == (snovio_after, pipedrive_after)
    event = SyncEvent.objects.filter(integration=live, email=SHARED, run=None).last()
    assert str(R(rule).label) in event.reason, event.reason
    if rule != R.FILL_EMPTY:
        [conflict] = event.changes["realtime_conflicts"].values()
        assert conflict["rule"] == rule


@pytest.mark.parametrize(("rule", "carried"), [(R.SOURCE_APP, True), (R.KEEP_PIPEDRIVE, False)])
def test_a_snovio_change_reaches_a_filled_pipedrive_field_unless_the_rule_keeps_it(
    sandbox, live, rule, carried
):
    set_rule(live, rule, where="default")

    sandbox.snovio.update_prospect(SHARED, position="Snov.io only")
    tasks.catch_up(live.pk)

    assert (job_title(sandbox, SHARED) == "Snov.io only") is carried
    if not carried:
        event = SyncEvent.objects.filter(integration=live, email=SHARED, run=None).last()
        assert "Pipedrive's filled value is kept (Never overwrite on Pipedrive's side)" in (
            event.reason
        )


def test_never_overwrite_on_pipedrives_side_still_carries_pipedrives_changes(sandbox, live):
    set_rule(live, R.KEEP_PIPEDRIVE)
    [anna] = sandbox.pipedrive.persons(SHARED)

    sandbox.pipedrive.change_person(anna["id"], job_title="From Pipedrive")

    assert position(live, SHARED) == "From Pipedrive"


def test_the_history_page_says_which_rule_kept_a_value(client, user, sandbox, integration):
    set_rule(integration, R.KEEP_PIPEDRIVE)
    run(integration, SyncRun.Direction.TO_PIPEDRIVE)
    client.force_login(user)

    history = reverse("sync:history", args=[integration.pk])
    # Nothing was written to Anna (her value was kept): an "unchanged" event, filtered for.
    page = client.get(history, {"outcome": "unchanged"}).content.decode()

    assert "Job title kept as it was (Never overwrite on Pipedrive&#x27;s side)" in page
