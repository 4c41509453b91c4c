"""Field facts: the system pairs, the data types of both sides and the type rule."""

from integrations import fieldspec as fs


def test_the_system_pairs_are_those_of_the_snovio_notes():
    assert [(p.snovio_label, p.pipedrive_field) for p in fs.SYSTEM_PAIRS] == [
        ("Email", "email"),
        ("First name", "first_name"),
        ("Last name", "last_name"),
        ("Full name", "name"),
        ("Phone", "phone"),
        ("Position", "job_title"),
        ("Company name", "org_id"),
    ]
    snov_keys = {f.key for f in fs.SNOVIO_STANDARD_FIELDS}
    pipe_keys = {f.key for f in fs.PIPEDRIVE_STANDARD_FIELDS}
    assert all(p.snovio_field in snov_keys for p in fs.SYSTEM_PAIRS)
    assert all(p.pipedrive_field in pipe_keys for p in fs.SYSTEM_PAIRS)


def test_only_fields_of_the_same_pairable_type_can_be_paired():
    assert fs.can_pair(fs.TEXT, fs.TEXT)
    assert fs.can_pair(fs.NUMBER, fs.NUMBER)
    assert fs.can_pair(fs.DATE, fs.DATE)
    assert not fs.can_pair(fs.TEXT, fs.NUMBER)
    assert not fs.can_pair(fs.DATE, fs.TEXT)
    assert not fs.can_pair(fs.EMAIL, fs.EMAIL)  # email belongs to the system pair
    assert not fs.can_pair(fs.OTHER, fs.OTHER)


def test_pipedrive_field_types_map_to_data_types():
    assert fs.pipedrive_data_type("varchar") == fs.TEXT
    assert fs.pipedrive_data_type("text") == fs.TEXT
    assert fs.pipedrive_data_type("phone") == fs.TEXT
    assert fs.pipedrive_data_type("double") == fs.NUMBER
    assert fs.pipedrive_data_type("monetary") == fs.NUMBER
    assert fs.pipedrive_data_type("date") == fs.DATE
    assert fs.pipedrive_data_type("enum") == fs.ENUM
    assert fs.pipedrive_data_type("set") == fs.SET
    assert fs.pipedrive_data_type("user") == fs.OTHER
    assert fs.pipedrive_data_type(None) == fs.OTHER


def test_snovio_field_types_map_to_data_types():
    assert fs.snovio_data_type("string") == fs.TEXT
    assert fs.snovio_data_type("number") == fs.NUMBER
    assert fs.snovio_data_type("date") == fs.DATE
    assert fs.snovio_data_type("something new") == fs.TEXT


def test_snovio_custom_keys_round_trip_their_name():
    assert fs.snovio_custom_key("Industry") == "customFields[Industry]"
    assert fs.snovio_custom_name("customFields[Industry]") == "Industry"
    assert fs.snovio_custom_name("customFields['Lead score']") == "Lead score"
    assert fs.snovio_custom_name("firstName") is None


def test_pipedrive_custom_keys_are_40_hex_characters():
    assert fs.is_pipedrive_custom_key("a" * 40)
    assert not fs.is_pipedrive_custom_key("job_title")
