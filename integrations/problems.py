"""Settings validation: what stops an integration from running, and how to fix it.

`settings_problems(integration)` checks every setting against the stored catalogue (and the
connections, live with `check_connections`); each finding is a `Problem(section, field,
message, fix)` the pages mark in red.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from automations.services import ScenarioProblem, scenario_problems
from integrations import fieldspec
from integrations.catalog import Catalog, Kind
from integrations.connections import check_connection
from integrations.models import Connection, Integration, Provider
from integrations.plain_errors import explain


@dataclass(frozen=True)
class Problem:
    """Something that stops the integration from running, and one line on how to fix it.

    `section` is the settings section it belongs to (connect, direction, data, constants,
    automations); `field` names the setting (a form field, `mapping-<pk>`, `constant-<pk>`,
    `list-<id>`, `pipedrive`, `snovio`) so the page can mark it in red.
    """

    section: str
    field: str
    message: str
    fix: str

    def __str__(self) -> str:
        return self.message

    @property
    def anchor(self) -> str:
        """The id of the settings-page section that holds the setting."""
        return {"connect": "connections", "automations": "automations-card"}.get(
            self.section, self.section
        )


SECTIONS = ("connect", "direction", "data", "constants", "automations")


def problems_by_section(problems: Iterable[Problem]) -> dict[str, list[Problem]]:
    grouped: dict[str, list[Problem]] = {s: [] for s in SECTIONS}
    for problem in problems:
        grouped.setdefault(problem.section, []).append(problem)
    return grouped


def problem_fields(problems: Iterable[Problem]) -> dict[str, Problem]:
    return {p.field: p for p in problems}


def _connection_error_problem(provider: str, error: str) -> Problem:
    """The connection's last error in plain words, with its fix."""
    plain = explain(provider, error)
    return Problem("connect", provider, plain.message, plain.fix)


def connection_problems(integration: Integration, ping: bool = False) -> list[Problem]:
    """Missing, legacy or failing connections. With `ping`, each connection is tried live."""
    problems = []
    for provider, conn in (
        (Provider.PIPEDRIVE, integration.pipedrive),
        (Provider.SNOVIO, integration.snovio),
    ):
        name = Provider(provider).label
        if conn is None or conn.status == Connection.Status.REVOKED:
            problems.append(
                Problem(
                    "connect",
                    provider,
                    f"{name} is not connected.",
                    f"Connect {name} in step 1 (Connect).",
                )
            )
            continue
        if conn.is_legacy_token:
            problems.append(
                Problem(
                    "connect",
                    provider,
                    "Pipedrive is connected with a legacy API token.",
                    "Click Reconnect to connect Pipedrive by OAuth; every setting is kept.",
                )
            )
            continue
        if ping:
            check_connection(conn)
        if conn.status == Connection.Status.FAILED:
            problems.append(_connection_error_problem(provider, conn.last_error))
    return problems


def _data_problems(integration: Integration, cat: Catalog) -> list[Problem]:
    problems = []
    if integration.sends_to_snovio:
        if not integration.target_list_id:
            problems.append(
                Problem(
                    "data",
                    "target_list",
                    "No Snov.io list is chosen to receive contacts from Pipedrive.",
                    "Choose the sync-to list in Data exchange.",
                )
            )
        elif cat.known(Kind.SNOVIO_LISTS) and not cat.has(
            Kind.SNOVIO_LISTS, integration.target_list_id
        ):
            target = integration.target_list_name or integration.target_list_id
            problems.append(
                Problem(
                    "data",
                    "target_list",
                    f"The Snov.io list “{target}” no longer exists.",
                    "Choose another sync-to list in Data exchange.",
                )
            )
    if integration.sends_to_pipedrive:
        if not integration.pipedrive_owner_id:
            problems.append(
                Problem(
                    "data",
                    "owner",
                    "No Pipedrive user is chosen to own contacts from Snov.io.",
                    "Choose the Pipedrive owner in Data exchange.",
                )
            )
        elif cat.known(Kind.PIPEDRIVE_USERS):
            user = cat.get(Kind.PIPEDRIVE_USERS, integration.pipedrive_owner_id)
            if user is None or not user.get("active", True):
                owner = integration.pipedrive_owner_name or integration.pipedrive_owner_id
                problems.append(
                    Problem(
                        "data",
                        "owner",
                        f"The Pipedrive user “{owner}” no longer exists or is deactivated.",
                        "Choose another Pipedrive owner in Data exchange.",
                    )
                )
        if not integration.all_lists:
            selections = list(integration.list_selections.all())
            if not selections:
                problems.append(
                    Problem(
                        "data",
                        "lists",
                        "No Snov.io list is chosen to send prospects to Pipedrive.",
                        "Turn on “All lists” or tick at least one list in Data exchange.",
                    )
                )
            elif cat.known(Kind.SNOVIO_LISTS):
                for selection in selections:
                    if not cat.has(Kind.SNOVIO_LISTS, selection.list_id):
                        problems.append(
                            Problem(
                                "data",
                                "lists",
                                f"The Snov.io list “{selection.list_name or selection.list_id}"
                                "” no longer exists.",
                                "Untick it (or turn on “All lists”) in Data exchange.",
                            )
                        )
    return problems


def _mapping_problems(integration: Integration, cat: Catalog) -> list[Problem]:
    problems = []
    for mapping in integration.field_mappings.filter(is_system=False):
        pair = f"“{mapping.snovio_label or mapping.snovio_field}” ↔ “"
        pair += f"{mapping.pipedrive_label or mapping.pipedrive_field}”"
        key = f"mapping-{mapping.pk}"
        fix = "Remove the pair or choose another field in Data exchange."
        snov = cat.get(Kind.SNOVIO_FIELDS, mapping.snovio_field)
        pipe = cat.get(Kind.PIPEDRIVE_FIELDS, mapping.pipedrive_field)
        if cat.known(Kind.SNOVIO_FIELDS) and snov is None:
            problems.append(
                Problem(
                    "data",
                    key,
                    f"The Snov.io field “{mapping.snovio_label or mapping.snovio_field}” "
                    f"(pair {pair}) no longer exists.",
                    fix,
                )
            )
        if cat.known(Kind.PIPEDRIVE_FIELDS) and pipe is None:
            problems.append(
                Problem(
                    "data",
                    key,
                    f"The Pipedrive field “{mapping.pipedrive_label or mapping.pipedrive_field}” "
                    f"(pair {pair}) no longer exists.",
                    fix,
                )
            )
        if snov and pipe and not fieldspec.can_pair(snov["type"], pipe["type"]):
            problems.append(
                Problem(
                    "data",
                    key,
                    f"The pair {pair} joins a {fieldspec.type_label(snov['type'])} field with a "
                    f"{fieldspec.type_label(pipe['type'])} field.",
                    fix,
                )
            )
    return problems


def _constant_problems(integration: Integration, cat: Catalog) -> list[Problem]:
    problems = []
    receiving = receiving_sides(integration)
    for constant in integration.constants.all():
        if constant.side not in receiving:
            continue
        kind = Kind.SNOVIO_FIELDS if constant.side == Provider.SNOVIO else Kind.PIPEDRIVE_FIELDS
        if cat.known(kind) and not cat.has(kind, constant.field_key):
            problems.append(
                Problem(
                    "constants",
                    f"constant-{constant.pk}",
                    f"The {Provider(constant.side).label} field "
                    f"“{constant.field_label or constant.field_key}” of a constant no longer "
                    "exists.",
                    "Choose another field for the constant (or clear it) in Constants.",
                )
            )
    return problems


def _automation_problems(integration: Integration) -> list[Problem]:
    if not integration.sends_to_pipedrive:
        return []
    return [_as_problem(p) for p in scenario_problems(integration) or []]


def _as_problem(value: ScenarioProblem) -> Problem:
    """A broken automation setting as the settings check shows every problem."""
    return Problem(value.section, str(value.field), value.message, value.fix)


def settings_problems(integration: Integration, check_connections: bool = False) -> list[Problem]:
    """Everything that stops this integration from running, checked against the stored catalogue.

    Required settings for the chosen direction; every chosen list, owner and mapped or
    constant field still present in the accounts; the automations' pipelines and stages; and
    the connections (tried live with `check_connections`, else as last seen).
    """
    cat = Catalog.for_integration(integration)
    return [
        *connection_problems(integration, ping=check_connections),
        *_data_problems(integration, cat),
        *_mapping_problems(integration, cat),
        *_constant_problems(integration, cat),
        *_automation_problems(integration),
    ]


def problems_summary(problems: Iterable[Problem]) -> str:
    return " ".join(p.message for p in problems)


def receiving_sides(integration: Integration) -> list[str]:
    sides = []
    if integration.sends_to_pipedrive:
        sides.append(Provider.PIPEDRIVE)
    if integration.sends_to_snovio:
        sides.append(Provider.SNOVIO)
    return sides
