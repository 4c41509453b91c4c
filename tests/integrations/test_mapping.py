"""Mapping a Snov.io prospect to a Pipedrive person and back (pure functions)."""

from integrations import fieldspec as fs
from integrations.sync import mapping
from integrations.sync.mapping import Constant, MappingSpec, Pair

INDUSTRY = "a" * 40  # a Pipedrive custom field (single option)
TAGS = "b" * 40  # a Pipedrive custom field (multiple options)
EMPLOYEES = "c" * 40  # a Pipedrive custom field (number)
SOURCE = "d" * 40  # a Pipedrive custom field a constant is stamped into

PROSPECT = {
    "id": "p1",
    "name": "Anna Schmidt",
    "firstName": "Anna",
    "lastName": "Schmidt",
    "emails": [{"email": " Anna.Schmidt@Acme.example ", "status": "valid"}],
    "phones": ["+49 30 1234567"],
    "position": "Head of Sales",
    "companyName": "Acme Logistics",
    "customFields": {"Industry": "software", "Employees": "120", "Tags": "b2b, eu"},
}
PERSON = {
    "id": 11,
    "name": "Anna Schmidt",
    "first_name": "Anna",
    "last_name": "Schmidt",
    "owner_id": 2,
    "org_id": 5,
    "emails": [
        {"value": "anna.schmidt@acme.example", "primary": True, "label": "work"},
        {"value": "anna@home.example", "primary": False, "label": "home"},
    ],
    "phones": [{"value": "+33 4 700", "primary": True, "label": "work"}],
    "job_title": "CTO",
    "custom_fields": {INDUSTRY: 2, TAGS: [10, 11], EMPLOYEES: 120.0, SOURCE: None},
}


def make_spec(**overrides) -> MappingSpec:
    pairs = mapping.system_pairs() + [
        Pair(fs.snovio_custom_key("Industry"), INDUSTRY, fs.ENUM, "Industry"),
        Pair(fs.snovio_custom_key("Employees"), EMPLOYEES, fs.NUMBER, "Employees"),
        Pair(fs.snovio_custom_key("Tags"), TAGS, fs.SET, "Tags"),
    ]
    options = {
        INDUSTRY: {"1": "Logistics", "2": "Software", "3": "Retail"},
        TAGS: {"10": "B2B", "11": "EU", "12": "US"},
    }
    defaults = dict(
        pairs=pairs,
        pipedrive_options=options,
        pipedrive_types={SOURCE: fs.TEXT},
        org_names={"5": "Acme Logistics"},
        owner_id=3,
        target_list_id="L1",
        pipedrive_constants=[Constant(SOURCE, "Snov.io")],
        snovio_constants=[Constant("country", "Germany")],
    )
    defaults.update(overrides)
    return MappingSpec(**defaults)


def test_a_prospect_maps_to_a_person_through_the_system_and_custom_pairs():
    mapped = mapping.prospect_to_person(PROSPECT, make_spec())
    assert mapped.problems == []
    assert mapped.values == {
        "email": "anna.schmidt@acme.example",
        "first_name": "Anna",
        "last_name": "Schmidt",
        "name": "Anna Schmidt",
        "phone": "+49 30 1234567",
        "job_title": "Head of Sales",
        "org_id": "Acme Logistics",
        INDUSTRY: "Software",
        EMPLOYEES: 120,
        TAGS: ["B2B", "EU"],
    }
    assert mapped.defaults == {SOURCE: "Snov.io"}


def test_option_values_are_written_as_the_pipedrive_option_ids_matched_by_label():
    spec = make_spec()
    values = mapping.prospect_to_person(PROSPECT, spec).values
    payload, problems = mapping.person_payload(
        {INDUSTRY: values[INDUSTRY], TAGS: values[TAGS]}, spec, PERSON
    )
    assert problems == []
    assert payload == {"custom_fields": {INDUSTRY: 2, TAGS: [10, 11]}}


def test_an_option_value_pipedrive_does_not_have_is_reported_not_silently_dropped():
    prospect = dict(PROSPECT, customFields={"Industry": "Biotech", "Employees": "12"})
    mapped = mapping.prospect_to_person(prospect, make_spec())
    assert mapped.values[INDUSTRY] is None  # not written...
    assert mapped.problems == ["Industry: no option 'Biotech' in Pipedrive (value not written)"]
    assert mapped.values["email"] == "anna.schmidt@acme.example"  # ...but the record still moves


def test_a_new_person_gets_the_owner_the_constants_and_a_primary_email_and_phone():
    spec = make_spec()
    mapped = mapping.prospect_to_person(PROSPECT, spec)
    values = {**mapped.values, **mapped.defaults}
    payload, problems = mapping.new_person_payload(values, spec, org_id_for=lambda name: 5)
    assert problems == []
    assert payload["owner_id"] == 3
    assert payload["name"] == "Anna Schmidt"
    assert "first_name" not in payload  # v2 writes carry only the name
    assert payload["emails"] == [
        {"value": "anna.schmidt@acme.example", "primary": True, "label": "work"}
    ]
    assert payload["phones"] == [{"value": "+49 30 1234567", "primary": True, "label": "work"}]
    assert payload["org_id"] == 5
    assert payload["job_title"] == "Head of Sales"
    assert payload["custom_fields"][SOURCE] == "Snov.io"


def test_a_new_primary_phone_keeps_the_persons_other_phones():
    person = dict(
        PERSON,
        phones=[
            {"value": "+33 4 700", "primary": True, "label": "work"},
            {"value": "+33 6 800", "primary": False, "label": "mobile"},
        ],
    )
    payload, _ = mapping.person_payload({"phone": "+49 30 1"}, make_spec(), person)
    assert payload["phones"] == [
        {"value": "+49 30 1", "primary": True, "label": "work"},
        {"value": "+33 6 800", "primary": False, "label": "mobile"},
    ]


def test_a_person_reads_back_in_the_same_space_with_option_labels_and_org_name():
    values = mapping.pipedrive_values(PERSON, make_spec())
    assert values[INDUSTRY] == "Software"
    assert values[TAGS] == ["B2B", "EU"]
    assert values["org_id"] == "Acme Logistics"
    assert values["phone"] == "+33 4 700"
    assert values["email"] == "anna.schmidt@acme.example"


def test_a_person_maps_to_a_prospect_with_labels_as_text_and_the_snovio_constants():
    spec = make_spec()
    mapped = mapping.person_to_prospect(PERSON, spec)
    assert mapped.values["customFields[Industry]"] == "Software"
    assert mapped.values["position"] == "CTO"
    assert mapped.values["phones"] == "+33 4 700"
    assert mapped.defaults == {"country": "Germany"}
    payload = mapping.prospect_payload(
        {**mapped.values, **mapped.defaults}, "anna.schmidt@acme.example"
    )
    assert payload["email"] == "anna.schmidt@acme.example"
    assert payload["fullName"] == "Anna Schmidt"
    assert payload["phones"] == ["+33 4 700"]
    assert payload["country"] == "Germany"
    assert payload["customFields"] == {
        "Industry": "Software",
        "Employees": "120",
        "Tags": "B2B, EU",
    }


def test_numbers_dates_and_text_compare_by_value_not_by_spelling():
    assert mapping.coerce("120", fs.NUMBER) == mapping.coerce(120.0, fs.NUMBER) == 120
    assert mapping.coerce("2026-03-01T10:00:00Z", fs.DATE) == "2026-03-01"
    assert mapping.coerce("  CTO ", fs.TEXT) == "CTO"
    assert mapping.coerce("", fs.TEXT) is None
    assert mapping.coerce("eu, B2B", fs.SET) == ["B2B", "eu"]


def test_a_prospect_without_an_email_maps_with_an_empty_email():
    prospect = dict(PROSPECT, emails=[])
    assert mapping.prospect_to_person(prospect, make_spec()).values["email"] is None
    assert mapping.prospect_email(prospect) == ""


def test_the_full_name_is_built_from_first_and_last_name_when_missing():
    person = {"first_name": "Ben", "last_name": "Novak", "emails": []}
    spec = make_spec()
    assert mapping.person_to_prospect(person, spec).values["name"] == "Ben Novak"


class FakeOrganizations:
    """A Pipedrive client's organization methods, counting calls."""

    def __init__(self):
        from integrations.http import HttpClient

        self.orgs = [{"id": 5, "name": "Acme Logistics"}]
        self.listed = 0
        self.http = HttpClient("fake", sleep=lambda seconds: None)

    def iter_organizations(self):
        self.listed += 1
        return iter(list(self.orgs))

    def create_organization(self, data):
        org = {"id": 100 + len(self.orgs), **data}
        self.orgs.append(org)
        return org

    def find_organizations_by_name(self, name):
        return [o for o in self.orgs if o["name"].casefold() == name.casefold()]


def test_company_names_match_organizations_listed_once_and_missing_ones_are_created():
    from integrations.sync.context import Organizations

    client = FakeOrganizations()
    orgs = Organizations(client, owner_id=3)
    assert orgs.id_for(" acme logistics ") == 5
    new_id = orgs.id_for("Brightpath Labs")
    assert orgs.id_for("BRIGHTPATH LABS") == new_id
    assert client.listed == 1
    assert client.orgs[-1] == {"id": new_id, "name": "Brightpath Labs", "owner_id": 3}
    assert orgs.name_of(new_id) == "Brightpath Labs"


def test_without_organization_support_the_company_pair_is_left_out_not_failed():
    from integrations.sync.context import Organizations

    orgs = Organizations(object())
    assert not orgs.supported
    assert orgs.id_for("Acme") is None
