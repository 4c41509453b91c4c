"""The second match key (issue 12): contacts without an email matched by their LinkedIn URL,
through the simulators, in both transfer directions and in real time."""

from __future__ import annotations

import random

import pytest

from integrations import tasks
from integrations.catalog import refresh_catalog
from integrations.models import Integration, RecordLink, SyncEvent, SyncRun
from integrations.sync.receivers import register_webhooks
from integrations.sync.runs import create_run
from integrations.sync.transfer import transfer
from tests.factories import connected_integration, fast_limits  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_limits", "sync_tasks")]

Outcome = SyncEvent.Outcome
ANNA = "https://www.linkedin.com/in/anna-schmidt/"  # as Pipedrive holds it
ANNA_IN_SNOVIO = "http://linkedin.com/in/Anna-Schmidt"  # the same profile, spelled otherwise


@pytest.fixture
def linkedin_field(empty_sandbox) -> str:
    empty_sandbox.snovio.create_list("Leads")
    return empty_sandbox.pipedrive.add_person_field("LinkedIn", "varchar")


def keyed_integration(user, sandbox, field: str, **options) -> Integration:
    options.setdefault("only_with_email", False)
    integration = connected_integration(
        user, sandbox, second_key="linkedin", second_key_field=field, **options
    )
    refresh_catalog(integration)
    return integration


def run(integration, direction) -> SyncRun:
    done = transfer(create_run(integration, direction, "snovio", False))
    assert done.status == SyncRun.Status.DONE, done.error
    return done


def event_of(run: SyncRun, record_id: str) -> SyncEvent:
    return run.events.get(record_id=record_id)


def linkedin_of(person: dict, field: str) -> str | None:
    return person["custom_fields"].get(field)


# --- Snov.io -> Pipedrive ---------------------------------------------------------------------
def test_prospects_without_an_email_are_matched_to_persons_by_their_linkedin_url(
    user, empty_sandbox, linkedin_field
):
    box, field = empty_sandbox, linkedin_field
    anna = box.pipedrive.add_person(name="Anna Schmidt", custom_fields={field: ANNA})
    carl = box.pipedrive.add_person(
        name="Carl Crm", email="carl@crm.example", custom_fields={field: "linkedin.com/in/carl"}
    )
    twins = "https://linkedin.com/in/twin"
    box.pipedrive.add_person(name="Twin One", custom_fields={field: twins})
    box.pipedrive.add_person(name="Twin Two", custom_fields={field: twins + "/"})
    box.pipedrive.add_person(name="Blank", custom_fields={field: "   "})
    p_anna = box.snovio.add_prospect(
        "Leads", first_name="Anna", last_name="Schmidt", social_links={"linkedIn": ANNA_IN_SNOVIO}
    )
    # An email that matches nothing: matched by the key instead of created.
    p_carl = box.snovio.add_prospect(
        "Leads",
        email="carl.private@home.example",
        first_name="Carl",
        last_name="Crm",
        social_links={"linkedIn": "https://de.linkedin.com/in/carl"},
    )
    p_none = box.snovio.add_prospect("Leads", first_name="No", last_name="Key")
    p_twin = box.snovio.add_prospect(
        "Leads", first_name="Twin", last_name="Three", social_links={"linkedIn": twins}
    )
    new = "https://www.linkedin.com/in/dora-new"
    p_dora = box.snovio.add_prospect(
        "Leads", first_name="Dora", last_name="New", social_links={"linkedIn": new}
    )
    p_dora_again = box.snovio.add_prospect(
        "Leads", first_name="Dora", last_name="Again", social_links={"linkedIn": new + "/"}
    )
    integration = keyed_integration(user, box, field)
    persons_before = len(box.pipedrive.persons())

    done = run(integration, SyncRun.Direction.TO_PIPEDRIVE)

    assert event_of(done, p_anna["id"]).outcome in (Outcome.UPDATED, Outcome.UNCHANGED)
    assert RecordLink.objects.get(snovio_prospect_id=p_anna["id"]).pipedrive_person_id == anna["id"]
    carl_event = event_of(done, p_carl["id"])
    assert carl_event.outcome in (Outcome.UPDATED, Outcome.UNCHANGED)
    assert RecordLink.objects.get(snovio_prospect_id=p_carl["id"]).pipedrive_person_id == carl["id"]
    assert box.pipedrive.persons("carl.private@home.example") == []  # no second Carl
    skipped = event_of(done, p_none["id"])
    assert skipped.outcome == Outcome.SKIPPED and "No email and no LinkedIn" in skipped.reason
    twin = event_of(done, p_twin["id"])
    assert twin.outcome == Outcome.SKIPPED and "Several Pipedrive persons" in twin.reason
    # Dora is new: created once, with the key, and her namesake profile is not merged into her.
    assert event_of(done, p_dora["id"]).outcome == Outcome.CREATED
    dora = [p for p in box.pipedrive.persons() if p["name"] == "Dora New"]
    assert len(dora) == 1 and linkedin_of(dora[0], field) == new
    again = event_of(done, p_dora_again["id"])
    assert again.outcome == Outcome.SKIPPED and "already linked" in again.reason
    assert len(box.pipedrive.persons()) == persons_before + 1

    # A second transfer finds every contact again: nothing created, nothing merged.
    second = run(integration, SyncRun.Direction.TO_PIPEDRIVE)
    assert second.created == 0
    assert len(box.pipedrive.persons()) == persons_before + 1


def test_with_only_prospects_with_an_email_on_the_key_is_used_only_after_the_email(
    user, empty_sandbox, linkedin_field
):
    box, field = empty_sandbox, linkedin_field
    box.pipedrive.add_person(name="Anna Schmidt", custom_fields={field: ANNA})
    p_anna = box.snovio.add_prospect(
        "Leads", first_name="Anna", last_name="Schmidt", social_links={"linkedIn": ANNA}
    )
    integration = keyed_integration(user, box, field, only_with_email=True)

    done = run(integration, SyncRun.Direction.TO_PIPEDRIVE)

    event = event_of(done, p_anna["id"])
    assert event.outcome == Outcome.SKIPPED and "Only contacts with an email" in event.reason
    joined = RecordLink.objects.filter(pipedrive_person_id__isnull=False).exclude(
        snovio_prospect_id=""
    )
    assert not joined.exists()


# --- Pipedrive -> Snov.io ---------------------------------------------------------------------
def test_persons_without_an_email_update_the_prospect_with_their_linkedin_url(
    user, empty_sandbox, linkedin_field
):
    box, field = empty_sandbox, linkedin_field
    p_anna = box.snovio.add_prospect(
        "Leads", email="anna@acme.example", first_name="Anna", social_links={"linkedIn": ANNA}
    )
    p_nomail = box.snovio.add_prospect(
        "Leads", first_name="Nomail", social_links={"linkedIn": "linkedin.com/in/nomail"}
    )
    anna = box.pipedrive.add_person(
        name="Anna Schmidt", job_title="CEO", custom_fields={field: ANNA_IN_SNOVIO}
    )
    nomail = box.pipedrive.add_person(
        name="Nomail Person", custom_fields={field: "https://linkedin.com/in/nomail/"}
    )
    nobody = box.pipedrive.add_person(name="Nobody Known")
    integration = keyed_integration(user, box, field, direction=Integration.Direction.TO_SNOVIO)
    prospects_before = len(box.snovio.prospects())

    done = run(integration, SyncRun.Direction.TO_SNOVIO)

    assert event_of(done, str(anna["id"])).outcome == Outcome.UPDATED
    held = {p["id"]: p for p in box.snovio.prospects()}
    assert held[p_anna["id"]]["position"] == "CEO"
    link = RecordLink.objects.get(pipedrive_person_id=anna["id"])
    assert link.snovio_prospect_id == p_anna["id"]
    assert link.match_key == "linkedin:linkedin.com/in/anna-schmidt"
    no_email = event_of(done, str(nomail["id"]))
    assert no_email.outcome == Outcome.SKIPPED and "prospect has no email" in no_email.reason
    assert event_of(done, str(nobody["id"])).outcome == Outcome.SKIPPED
    assert len(box.snovio.prospects()) == prospects_before  # nothing created, nothing merged
    assert p_nomail["id"] in held


def test_a_new_prospect_from_pipedrive_carries_the_linkedin_url(
    user, empty_sandbox, linkedin_field
):
    box, field = empty_sandbox, linkedin_field
    box.pipedrive.add_person(
        name="Eva New", email="eva@new.example", custom_fields={field: "linkedin.com/in/eva"}
    )
    integration = keyed_integration(user, box, field, direction=Integration.Direction.TO_SNOVIO)

    run(integration, SyncRun.Direction.TO_SNOVIO)

    (eva,) = box.snovio.prospects()
    assert eva["socialLinks"] == {"linkedIn": "linkedin.com/in/eva"}


# --- real time ----------------------------------------------------------------------------------
@pytest.fixture
def live(user, empty_sandbox, linkedin_field):
    """Two-way, keyed by LinkedIn, webhooks registered, both transfers done."""
    box, field = empty_sandbox, linkedin_field
    box.snovio.add_prospect(
        "Leads", email="anna@acme.example", first_name="Anna", social_links={"linkedIn": ANNA}
    )
    integration = keyed_integration(user, box, field)
    register_webhooks(integration)
    run(integration, SyncRun.Direction.TO_PIPEDRIVE)
    run(integration, SyncRun.Direction.TO_SNOVIO)
    integration.refresh_from_db()
    tasks.catch_up(integration.pk)  # the baseline
    return integration


def test_a_new_prospect_without_an_email_updates_the_person_holding_its_linkedin_url(
    user, empty_sandbox, linkedin_field, live
):
    box, field = empty_sandbox, linkedin_field
    ben = box.pipedrive.add_person(
        name="Ben Crm", custom_fields={field: "https://www.linkedin.com/in/ben"}
    )
    persons_before = len(box.pipedrive.persons())
    prospect = box.snovio.add_prospect(
        "Leads",
        first_name="Ben",
        last_name="Crm",
        position="CTO",
        social_links={"linkedIn": "linkedin.com/in/BEN/"},
    )

    tasks.catch_up(live.pk)

    assert len(box.pipedrive.persons()) == persons_before  # matched, not created
    assert box.pipedrive.person(ben["id"])["job_title"] == "CTO"
    link = RecordLink.objects.get(integration=live, snovio_prospect_id=prospect["id"])
    assert link.pipedrive_person_id == ben["id"]


def test_a_new_person_sharing_a_linked_contacts_linkedin_url_is_never_merged_into_it(
    user, empty_sandbox, linkedin_field, live
):
    box, field = empty_sandbox, linkedin_field
    writes = sum(1 for r in box.request_log if r[2].endswith("add-prospect-to-list"))
    twin = box.pipedrive.add_person(
        name="Anna Twin", job_title="Intern", custom_fields={field: ANNA}
    )

    tasks.catch_up(live.pk)

    event = SyncEvent.objects.filter(integration=live, record_id=str(twin["id"])).last()
    assert event.outcome == Outcome.SKIPPED and "already linked" in event.reason
    assert sum(1 for r in box.request_log if r[2].endswith("add-prospect-to-list")) == writes
    assert all(p["position"] != "Intern" for p in box.snovio.prospects())


def test_a_pipedrive_edit_to_a_person_matched_by_linkedin_reaches_its_prospect(
    user, empty_sandbox, linkedin_field
):
    box, field = empty_sandbox, linkedin_field
    prospect = box.snovio.add_prospect(
        "Leads", email="anna@acme.example", first_name="Anna", social_links={"linkedIn": ANNA}
    )
    anna = box.pipedrive.add_person(name="Anna Schmidt", custom_fields={field: ANNA_IN_SNOVIO})
    integration = keyed_integration(user, box, field)
    register_webhooks(integration)
    run(integration, SyncRun.Direction.TO_SNOVIO)
    tasks.catch_up(integration.pk)

    box.pipedrive.change_person(anna["id"], job_title="Chief Executive")
    tasks.catch_up(integration.pk)

    held = {p["id"]: p for p in box.snovio.prospects()}
    assert held[prospect["id"]]["position"] == "Chief Executive"
    assert len(held) == 1


# --- the invariant, on random populations -----------------------------------------------------
def _spelling(rng: random.Random, slug: str) -> str:
    """One LinkedIn profile, spelled as users and tools do."""
    scheme = rng.choice(["https://", "http://", ""])
    host = rng.choice(["www.linkedin.com", "linkedin.com", "de.linkedin.com", "LinkedIn.com"])
    return f"{scheme}{host}/in/{rng.choice([slug, slug.upper()])}{rng.choice(['', '/'])}"


def _identity(email: int | None, slug: int | None) -> set[str]:
    """The test's own truth: which pool email and which profile a record holds."""
    return ({f"email:{email}"} if email is not None else set()) | (
        {f"url:{slug}"} if slug is not None else set()
    )


@pytest.mark.parametrize("seed", range(16))
def test_random_populations_are_never_merged_without_a_shared_email_or_key(
    user, empty_sandbox, linkedin_field, seed
):
    """Invariant: a sending record is linked to a record that existed before the run only if
    the two share a non-empty normalised email or LinkedIn URL (by the URL alone: one no other
    receiving record holds); no existing record is linked to two sending records; a record is
    created or matched, never both; one created shares nothing with the receiving side, and
    one that shares nothing with either side (and has what its receiving side needs) is
    created."""
    rng = random.Random(seed)
    box, field = empty_sandbox, linkedin_field
    blanks = [None, "", "   "]

    def email() -> tuple[int | None, str | None]:
        if rng.random() < 0.4:
            n = rng.randrange(5)
            return n, rng.choice([f"e{n}@pop.example", f" E{n}@Pop.Example"])
        return None, rng.choice(blanks)

    def link() -> tuple[int | None, str | None]:
        if rng.random() < 0.6:
            n = rng.randrange(5)
            return n, _spelling(rng, f"person-{n}")
        return None, rng.choice(blanks)

    persons: dict[str, set[str]] = {}
    for n in range(rng.randint(0, 7)):
        (mail_id, mail), (slug, url) = email(), link()
        fields = {"custom_fields": {field: url}} if url is not None else {}
        person = box.pipedrive.add_person(name=f"Person {n}", email=mail or None, **fields)
        persons[str(person["id"])] = _identity(mail_id, slug)
    prospects: dict[str, set[str]] = {}
    for n in range(rng.randint(0, 7)):
        (mail_id, mail), (slug, url) = email(), link()
        extra = {"social_links": {"linkedIn": url}} if url else {}
        prospect = box.snovio.add_prospect(
            "Leads", email=(mail or "").strip(), first_name=f"Pat{n}", last_name="Random", **extra
        )
        # Snov.io keeps one prospect per email: a second add with it changes nothing.
        prospects.setdefault(prospect["id"], _identity(mail_id, slug))
    direction = [SyncRun.Direction.TO_PIPEDRIVE, SyncRun.Direction.TO_SNOVIO][seed % 2]
    integration = keyed_integration(user, box, field, only_with_email=rng.random() < 0.3)
    to_pipedrive = direction == SyncRun.Direction.TO_PIPEDRIVE
    sending, receiving = (prospects, persons) if to_pipedrive else (persons, prospects)

    done = run(integration, direction)

    context = f"seed {seed}: {direction}, persons {persons}, prospects {prospects}"
    links = RecordLink.objects.filter(integration=integration).exclude(snovio_prospect_id="")
    pairs = [
        (p, str(x)) if to_pipedrive else (str(x), p)
        for p, x in links.exclude(pipedrive_person_id=None).values_list(
            "snovio_prospect_id", "pipedrive_person_id"
        )
    ]
    matched_to: dict[str, str] = {}
    for sent, got in pairs:
        if got not in receiving:
            continue  # created in the run
        shared = sending[sent] & receiving[got]
        assert shared, f"{sent} merged into {got} with no shared key; {context}"
        if not any(k.startswith("email:") for k in shared):  # by the key alone: unambiguous
            holders = [r for r, theirs in receiving.items() if shared & theirs]
            assert holders == [got], f"{sent} merged by a key {holders} share; {context}"
        assert matched_to.setdefault(got, sent) == sent, f"{got} merged twice; {context}"
    created = set(done.events.filter(outcome=Outcome.CREATED).values_list("record_id", flat=True))
    assert not created & set(matched_to.values()), f"created and matched; {context}"
    for sent, keys in sending.items():
        shared_with = [r for r, theirs in receiving.items() if keys & theirs]
        if sent in created:
            assert not shared_with, f"{sent} created, yet shares with {shared_with}; {context}"
        alone = not any(keys & theirs for other, theirs in sending.items() if other != sent)
        has_email = any(k.startswith("email:") for k in keys)
        creatable = has_email or (to_pipedrive and keys and not integration.only_with_email)
        if not shared_with and alone and creatable:
            assert sent in created, f"{sent} shares nothing, yet was not created; {context}"
    now = box.pipedrive.persons() if to_pipedrive else box.snovio.prospects()
    assert len(now) == len(receiving) + len(created), context
