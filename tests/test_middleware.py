import pytest

pytestmark = pytest.mark.django_db


def test_a_search_with_a_nul_character_is_a_clear_400(client_logged_in):
    response = client_logged_in.get("/", {"email": "anna\x00@example.com"})
    assert response.status_code == 400
    assert b"NUL character" in response.content


def test_an_ordinary_query_string_passes_through(client_logged_in):
    assert client_logged_in.get("/", {"email": "anna@example.com"}).status_code == 200
