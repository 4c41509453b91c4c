"""Check Pipedrive requests and responses against Pipedrive's official OpenAPI specs.

The strict sandbox (`settings={"strict_spec": True}`) calls `request_error` on every API
request it receives and `check_response` on every 2xx answer it gives, so a request that the
real Pipedrive would refuse fails in tests too, and the simulator cannot drift from the spec.

`/api/v2/...` is checked against openapi-v2.yaml, `/api/v1/...` against openapi-v1.yaml.
OAuth endpoints are not in the specs and are not checked.

One rule is stricter than the spec's letter: request bodies may not carry properties the
spec does not declare (openapi-core's "forbid" policy). Pipedrive would ignore or refuse such a
field; either way it means our data would not arrive, so we want to hear about it.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml
from django.conf import settings
from jsonschema_path import SchemaPath
from openapi_core import Config, OpenAPI
from openapi_core.security.exceptions import SecurityProviderError
from openapi_core.security.factories import SecurityProviderFactory
from openapi_core.security.providers import BaseProvider
from openapi_core.testing import MockRequest, MockResponse

from integrations.sandbox.messages import SandboxRequest, SandboxResponse

SPEC_FILES = {"v1": "openapi-v1.yaml", "v2": "openapi-v2.yaml"}
# The specs' `servers` entries: requests are presented to openapi-core under these URLs.
HOST = "https://api.pipedrive.com"
PREFIXES = {"v1": "/v1", "v2": "/api/v2"}


class SpecViolation(AssertionError):
    """The simulator answered something the official spec does not allow (a sandbox bug)."""


def spec_dir() -> Path:
    """Where the spec files live: `PIPEDRIVE_SPEC_DIR`, else the copy in docs/specs/pipedrive."""
    candidates = [
        getattr(settings, "PIPEDRIVE_SPEC_DIR", None),
        Path(settings.BASE_DIR) / "docs" / "specs" / "pipedrive",
    ]
    for candidate in candidates:
        if candidate and (Path(candidate) / SPEC_FILES["v2"]).exists():
            return Path(candidate)
    raise FileNotFoundError("Pipedrive OpenAPI specs not found; set PIPEDRIVE_SPEC_DIR")


def api_version(path: str) -> str | None:
    """ "v1" or "v2" for API paths, None for anything the specs do not describe (OAuth)."""
    for version in ("v1", "v2"):
        if path.startswith(f"/api/{version}/"):
            return version
    return None


def request_error(request: SandboxRequest) -> str | None:
    """Why the request violates the spec, or None when it is valid (or not an API call)."""
    version = api_version(request.path)
    if version is None:
        return None
    request_app, _ = _apps(version)
    errors = list(request_app.iter_request_errors(_openapi_request(request, version)))
    return "; ".join(_describe(e) for e in errors) or None


def check_response(request: SandboxRequest, response: SandboxResponse) -> None:
    """Raise `SpecViolation` if a 2xx answer does not match the spec's response schema."""
    version = api_version(request.path)
    if version is None or not 200 <= response.status < 300:
        return
    _, response_app = _apps(version)
    openapi_response = MockResponse(
        data=response.content(), status_code=response.status, content_type=response.content_type
    )
    errors = list(
        response_app.iter_response_errors(_openapi_request(request, version), openapi_response)
    )
    if errors:
        raise SpecViolation(
            f"sandbox answer to {request.method} {request.path} violates the Pipedrive spec: "
            + "; ".join(_describe(e) for e in errors)
        )


@cache
def _apps(version: str) -> tuple[OpenAPI, OpenAPI]:
    """(request validator, response validator) for one spec, loaded once per process."""
    with open(spec_dir() / SPEC_FILES[version], "rb") as handle:
        document = yaml.load(handle, Loader=yaml.CSafeLoader)
    schema = SchemaPath.from_dict(document)
    # The specs are Pipedrive's, assumed well-formed: skip the slow meta-validation.
    common = {"spec_validator_cls": None, "security_provider_factory": PipedriveSecurity()}
    strict = Config(**common, additional_properties_default_policy="forbid")
    # Response schemas are allOf compositions: "forbid" would reject every combined object.
    lenient = Config(**common)
    return OpenAPI(schema, config=strict), OpenAPI(schema, config=lenient)


def _openapi_request(request: SandboxRequest, version: str) -> MockRequest:
    path = PREFIXES[version] + request.path[len(f"/api/{version}") :]
    content_type = request.header("content-type", "application/json").split(";")[0].strip()
    return MockRequest(
        HOST,
        request.method.lower(),
        path,
        args=dict(request.query),
        headers=dict(request.headers),
        data=request.body or None,
        content_type=content_type,
    )


def _describe(error: Exception) -> str:
    """A readable one-liner: which field broke which rule."""
    details = []
    text = str(error)
    subject = getattr(error, "name", None) or "body"  # parameter errors carry its name
    cause: Any = error
    while cause is not None:
        for schema_error in getattr(cause, "schema_errors", None) or []:
            where = "/".join(str(p) for p in schema_error.absolute_path) or subject
            details.append(f"{where}: {schema_error.message}")
        text = str(cause) or text  # the innermost cause says the most
        cause = cause.__cause__
    return f"{error.__class__.__name__}: {'; '.join(details) if details else text}"


class BearerProvider(BaseProvider):
    """openapi-core cannot check the `oauth2` scheme (it warns on every call); all the spec can
    ask of a request is a Bearer token. Whether the token is valid is the simulator's job."""

    def __call__(self, parameters: Any) -> Any:
        header = parameters.header.get("Authorization", "")
        if not header.lower().startswith("bearer "):
            raise SecurityProviderError("Missing bearer token.")
        return header[7:]


class PipedriveSecurity(SecurityProviderFactory):
    PROVIDERS = SecurityProviderFactory.PROVIDERS | {"oauth2": BearerProvider}
