"""The token cost of every Pipedrive endpoint SyncBridge calls is the one the specs give."""

from __future__ import annotations

import pytest
import yaml

from integrations.pipedrive.token_costs import TOKEN_COSTS, is_search, template, token_cost
from integrations.sandbox.pipedrive.common import _ROUTES
from integrations.sandbox.spec import SPEC_FILES, spec_dir


@pytest.fixture(scope="module")
def specs():
    return {
        version: yaml.load((spec_dir() / name).read_text(), Loader=yaml.CSafeLoader)
        for version, name in SPEC_FILES.items()
    }


@pytest.mark.parametrize(("method", "path"), sorted(TOKEN_COSTS))
def test_each_cost_is_the_x_token_cost_of_the_spec(specs, method, path):
    version = "v2" if path.startswith("/api/v2") else "v1"
    relative = path.removeprefix(f"/api/{version}")
    operation = specs[version]["paths"][relative][method.lower()]

    assert TOKEN_COSTS[(method, path)] == operation["x-token-cost"]


def test_every_endpoint_the_simulator_serves_is_priced():
    served = {
        (m, template(p.replace(r"(?P<id>\d+)", "1").replace(r"(?P<field_code>\w+)", "label_ids")))
        for m, p, _ in _ROUTES
    }

    assert served <= set(TOKEN_COSTS)


def test_ids_and_query_strings_do_not_change_the_price():
    assert token_cost("GET", "/api/v2/persons/1001?fields=x") == 1
    assert token_cost("patch", "/api/v2/persons/1001") == 5
    assert token_cost("POST", "/api/v2/personFields/label_ids/options") == 5
    assert is_search("/api/v2/persons/search?term=a") and not is_search("/api/v2/persons")
