"""The integration's life cycle: connect, save settings, check them, launch, pause, resume.

`set_status()` is the only way an integration's status changes: it records a `StatusChange`
and sends `signals.status_changed`. Saving settings sends `signals.settings_changed`;
disconnecting sends `signals.disconnecting`. The pages call these functions and nothing else.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from automations.services import scenario_problems
from integrations import catalog, fieldspec, signals
from integrations.catalog import Catalog, Kind
from integrations.http import AuthError, RemoteError
from integrations.lifecycle import send_signal, set_status
from integrations.models import (
    Connection,
    ConstantField,
    FieldMapping,
    Integration,
    ListSelection,
    Provider,
)
from integrations.pipedrive import oauth

log = logging.getLogger(__name__)

Status = Integration.Status

LEGACY_REASON = (
    "Pipedrive is connected with a legacy API token. Reconnect Pipedrive (OAuth) to resume."
)


# --- problems -------------------------------------------------------------------------------


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


def _connection_error_problem(provider: str, error: str, auth: bool) -> Problem:
    name = Provider(provider).label
    if auth:
        return Problem(
            "connect",
            provider,
            f"{name} refused SyncBridge's access: {error}",
            f"Reconnect {name} in step 1 (Connect).",
        )
    return Problem(
        "connect",
        provider,
        f"{name} could not be reached: {error}",
        f"Check {name} is up, then switch the integration back to Active.",
    )


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
            auth = "refused" in conn.last_error or "401" in conn.last_error
            problems.append(_connection_error_problem(provider, conn.last_error, auth))
    return problems


def check_connection(connection: Connection) -> bool:
    """Make one cheap live call through a connection and remember whether it worked."""
    try:
        client = catalog.client_for(connection)
        if connection.provider == Provider.PIPEDRIVE:
            client.me()
        else:
            client.check_credentials()
    except RemoteError as exc:
        catalog.mark_connection(connection, exc)
        return False
    catalog.mark_connection(connection, None)
    return True


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


def _as_problem(value: Any) -> Problem:
    """Accept the automations' problems as Problem, dict or text."""
    if isinstance(value, Problem):
        return value
    if isinstance(value, dict):
        return Problem(
            value.get("section", "automations"),
            str(value.get("field", "automations")),
            str(value.get("message", "")),
            str(value.get("fix", "Fix the scenario in Automations.")),
        )
    return Problem(
        getattr(value, "section", "automations"),
        str(getattr(value, "field", "automations")),
        str(getattr(value, "message", value)),
        str(getattr(value, "fix", "Fix the scenario in Automations.")),
    )


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


# --- status ---------------------------------------------------------------------------------


def _preflight(integration: Integration) -> list[Problem]:
    """Reload the catalogue (which also tries both connections) and check every setting."""
    catalog.refresh_catalog(integration)
    for conn in (integration.pipedrive, integration.snovio):
        if conn is not None:
            conn.refresh_from_db()
    return settings_problems(integration)


def launch(integration: Integration, user: Any = None) -> list[Problem]:
    """Start real-time sync for the first time. Returns the problems that stop it, if any."""
    problems = _preflight(integration)
    if problems:
        return problems
    # The contacts that exist now are recorded as the baseline (by the first drain, under the
    # integration's lock) and move only by a manual transfer.
    integration.launched_at = timezone.now()
    integration.baseline_at = integration.baseline_started_at = None
    integration.baseline_lists = []
    integration.save(
        update_fields=[
            "launched_at",
            "baseline_at",
            "baseline_started_at",
            "baseline_lists",
            "updated_at",
        ]
    )
    set_status(integration, Status.ACTIVE, user, "Launched")
    return []


def pause(integration: Integration, user: Any = None, reason: str = "") -> bool:
    """Stop real-time sync (changes are held and applied in order on resume)."""
    if integration.status not in (Status.ACTIVE, Status.FAILED):
        return False
    set_status(integration, Status.PAUSED, user, reason or "Paused by the user")
    return True


def resume(integration: Integration, user: Any = None) -> list[Problem]:
    """Back to Active after checking every setting and connection; Connection failed if not.

    A legacy API-token connection stays Paused until it is reconnected by OAuth.
    """
    if integration.status not in (Status.PAUSED, Status.FAILED):
        return []
    if integration.pipedrive and integration.pipedrive.is_legacy_token:
        problems = connection_problems(integration)
        set_status(integration, Status.PAUSED, user, LEGACY_REASON)
        return problems
    if not integration.launched_at:
        return launch(integration, user)
    problems = _preflight(integration)
    if problems:
        set_status(integration, Status.FAILED, user, problems_summary(problems))
        return problems
    set_status(integration, Status.ACTIVE, user, "Resumed")
    return []


def ensure_legacy_paused(integration: Integration) -> None:
    """A legacy API-token connection runs nothing: keep its integration Paused."""
    conn = integration.pipedrive
    if conn and conn.is_legacy_token and integration.status != Status.PAUSED:
        set_status(integration, Status.PAUSED, None, LEGACY_REASON)


# --- connections ----------------------------------------------------------------------------


def create_integration(owner: Any) -> Integration:
    """A new integration, Paused until launch, with the system field pairs in place."""
    integration = Integration.objects.create(owner=owner)
    ensure_system_mappings(integration)
    return integration


def ensure_system_mappings(integration: Integration) -> None:
    existing = set(
        integration.field_mappings.filter(is_system=True).values_list("snovio_field", flat=True)
    )
    for position, pair in enumerate(fieldspec.SYSTEM_PAIRS):
        if pair.snovio_field in existing:
            continue
        # A custom pair may not hold a system field; drop any that would clash.
        integration.field_mappings.filter(is_system=False, snovio_field=pair.snovio_field).delete()
        integration.field_mappings.filter(
            is_system=False, pipedrive_field=pair.pipedrive_field
        ).delete()
        FieldMapping.objects.create(
            integration=integration,
            snovio_field=pair.snovio_field,
            snovio_label=pair.snovio_label,
            pipedrive_field=pair.pipedrive_field,
            pipedrive_label=pair.pipedrive_label,
            data_type=pair.data_type,
            is_system=True,
            position=position,
        )


def connect_pipedrive(integration: Integration, token: dict, user: Any = None) -> Connection:
    """Store an OAuth token on the integration's Pipedrive connection.

    Reconnecting (a legacy API-token connection, or a failed one) updates the same connection,
    so every setting of the integration is kept. The integration stays Paused until launched
    or resumed.
    """
    conn = integration.pipedrive
    if conn is None or conn.provider != Provider.PIPEDRIVE:
        conn = Connection(owner=integration.owner, provider=Provider.PIPEDRIVE)
    oauth.store_token(conn, token)
    try:
        me = catalog.client_for(conn).me()
    except RemoteError as exc:
        log.warning("pipedrive me() after connect failed: %s", exc)
        me = {}
    conn.account_id = str(me.get("company_id") or conn.account_id or "")
    company = me.get("company_name") or ""
    person = me.get("name") or me.get("email") or ""
    conn.account_name = f"{company} ({person})" if company and person else company or person
    conn.save(update_fields=["account_id", "account_name", "updated_at"])
    Integration.objects.filter(pk=integration.pk).update(pipedrive=conn)
    integration.pipedrive = conn
    if integration.status == Status.FAILED:
        set_status(integration, Status.PAUSED, user, "Pipedrive reconnected")
    catalog.refresh_catalog(integration, [Provider.PIPEDRIVE])
    _default_owner(integration, me)
    return conn


def _default_owner(integration: Integration, me: dict) -> None:
    """The Pipedrive user who connected owns contacts from Snov.io until someone chooses."""
    if integration.pipedrive_owner_id or not me.get("id"):
        return
    integration.pipedrive_owner_id = me["id"]
    integration.pipedrive_owner_name = me.get("name") or ""
    integration.save(update_fields=["pipedrive_owner_id", "pipedrive_owner_name", "updated_at"])


def check_snovio_credentials(client_id: str, client_secret: str) -> Connection:
    """Try the pair with a real token request; raises AuthError / RemoteError when it fails.

    Returns an unsaved connection holding the pair and the token just issued.
    """
    conn = Connection(
        provider=Provider.SNOVIO,
        auth_kind=Connection.AuthKind.CREDENTIALS,
        client_id=client_id.strip(),
        client_secret=client_secret.strip(),
    )
    catalog.client_for(conn).check_credentials()
    return conn


def connect_snovio(integration: Integration, checked: Connection, user: Any = None) -> Connection:
    """Save a Snov.io pair checked by `check_snovio_credentials` on the integration."""
    conn = integration.snovio
    if conn is None or conn.provider != Provider.SNOVIO:
        conn = Connection(owner=integration.owner, provider=Provider.SNOVIO)
    conn.auth_kind = Connection.AuthKind.CREDENTIALS
    conn.client_id = checked.client_id
    conn.client_secret = checked.client_secret
    conn.access_token = checked.access_token
    conn.expires_at = checked.expires_at
    conn.account_id = checked.client_id
    conn.account_name = conn.account_name or f"API user {checked.client_id}"
    conn.status = Connection.Status.OK
    conn.last_error = ""
    conn.save()
    Integration.objects.filter(pk=integration.pk).update(snovio=conn)
    integration.snovio = conn
    if integration.status == Status.FAILED:
        set_status(integration, Status.PAUSED, user, "Snov.io reconnected")
    catalog.refresh_catalog(integration, [Provider.SNOVIO])
    return conn


def disconnect(integration: Integration, provider: str, user: Any = None) -> None:
    """Remove a connection's tokens and secret; a running integration is paused first."""
    conn = integration.pipedrive if provider == Provider.PIPEDRIVE else integration.snovio
    if conn is None:
        return
    send_signal(signals.disconnecting, integration=integration, provider=provider)
    if integration.status != Status.PAUSED:
        set_status(integration, Status.PAUSED, user, f"{Provider(provider).label} was disconnected")
    conn.access_token = ""
    conn.refresh_token = ""
    conn.client_secret = ""
    conn.expires_at = None
    conn.status = Connection.Status.REVOKED
    conn.save()
    field = "pipedrive" if provider == Provider.PIPEDRIVE else "snovio"
    Integration.objects.filter(pk=integration.pk).update(**{field: None})
    setattr(integration, field, None)


# --- settings -------------------------------------------------------------------------------


def receiving_sides(integration: Integration) -> list[str]:
    sides = []
    if integration.sends_to_pipedrive:
        sides.append(Provider.PIPEDRIVE)
    if integration.sends_to_snovio:
        sides.append(Provider.SNOVIO)
    return sides


def settings_saved(integration: Integration, user: Any = None) -> list[Problem]:
    """Restart real-time sync on the saved settings, and check them."""
    Integration.objects.filter(pk=integration.pk).update(updated_at=timezone.now())
    send_signal(signals.settings_changed, integration=integration)
    return settings_problems(integration)


def save_direction(integration: Integration, direction: str, user: Any = None) -> list[Problem]:
    integration.direction = direction
    integration.save(update_fields=["direction", "updated_at"])
    return settings_saved(integration, user)


@dataclass
class DataExchange:
    """The step-3 choices, already validated against the catalogue by the form."""

    target_list: dict | None = None  # {id, name}
    owner: dict | None = None  # {id, name}
    all_lists: bool = True
    lists: list[dict] | None = None  # [{id, name}]
    include_email_history: bool = False
    only_with_email: bool = True
    pairs: list[dict] | None = None  # [{snovio_field, snovio_label, pipedrive_field, ...}]


def save_data_exchange(
    integration: Integration, data: DataExchange, user: Any = None
) -> list[Problem]:
    """Save step 3. Settings of a direction not in use are left as they were."""
    with transaction.atomic():
        if integration.sends_to_snovio and data.target_list is not None:
            integration.target_list_id = str(data.target_list["id"])
            integration.target_list_name = data.target_list["name"]
        if integration.sends_to_pipedrive:
            if data.owner is not None:
                integration.pipedrive_owner_id = int(data.owner["id"])
                integration.pipedrive_owner_name = data.owner["name"]
            integration.all_lists = data.all_lists
            integration.include_email_history = data.include_email_history
            if not data.all_lists:
                chosen = {str(entry["id"]): entry["name"] for entry in data.lists or []}
                integration.list_selections.exclude(list_id__in=chosen).delete()
                have = set(integration.list_selections.values_list("list_id", flat=True))
                ListSelection.objects.bulk_create(
                    ListSelection(integration=integration, list_id=list_id, list_name=name)
                    for list_id, name in chosen.items()
                    if list_id not in have
                )
        integration.only_with_email = data.only_with_email
        integration.save()
        if data.pairs is not None:
            save_field_mappings(integration, data.pairs)
    return settings_saved(integration, user)


def save_field_mappings(integration: Integration, pairs: list[dict]) -> None:
    """Replace the custom pairs (system pairs are locked); the fields themselves stay."""
    wanted = {(p["snovio_field"], p["pipedrive_field"]): p for p in pairs}
    custom = integration.field_mappings.filter(is_system=False)
    for mapping in custom:
        if (mapping.snovio_field, mapping.pipedrive_field) not in wanted:
            mapping.delete()
    have = set(custom.values_list("snovio_field", "pipedrive_field"))
    for position, (key, pair) in enumerate(wanted.items(), start=100):
        if key in have:
            integration.field_mappings.filter(snovio_field=key[0], pipedrive_field=key[1]).update(
                position=position
            )
            continue
        FieldMapping.objects.create(
            integration=integration,
            snovio_field=pair["snovio_field"],
            snovio_label=pair.get("snovio_label", ""),
            pipedrive_field=pair["pipedrive_field"],
            pipedrive_label=pair.get("pipedrive_label", ""),
            data_type=pair.get("data_type", fieldspec.TEXT),
            is_system=False,
            position=position,
        )


def save_constants(
    integration: Integration, constants: dict[str, dict | None], user: Any = None
) -> list[Problem]:
    """Set one constant per receiving side: `{side: {field_key, field_label, value} | None}`."""
    with transaction.atomic():
        for side, constant in constants.items():
            integration.constants.filter(side=side).delete()
            if constant:
                ConstantField.objects.create(integration=integration, side=side, **constant)
    return settings_saved(integration, user)


# --- catalogue and transfer -----------------------------------------------------------------


def refresh(
    integration: Integration, user: Any = None
) -> tuple[catalog.RefreshResult, list[Problem]]:
    """Reload the catalogue from both accounts and check the settings against it.

    A running integration whose settings no longer hold is set to Connection failed.
    """
    result = catalog.refresh_catalog(integration)
    for conn in (integration.pipedrive, integration.snovio):
        if conn is not None:
            conn.refresh_from_db()
    problems = settings_problems(integration)
    if problems and integration.status == Status.ACTIVE:
        set_status(integration, Status.FAILED, user, problems_summary(problems))
    return result, problems


def ensure_catalog(integration: Integration) -> catalog.RefreshResult | None:
    """Load the catalogue of a connected account that was never loaded."""
    providers = [
        p
        for p, conn in (
            (Provider.SNOVIO, integration.snovio),
            (Provider.PIPEDRIVE, integration.pipedrive),
        )
        if conn is not None
    ]
    missing = Catalog.for_integration(integration).missing_kinds(providers)
    if not missing:
        return None
    wanted = {p for p in providers if set(catalog.KINDS_BY_PROVIDER[p]) & set(missing)}
    return catalog.refresh_catalog(integration, wanted)


__all__ = [
    "AuthError",
    "DataExchange",
    "Problem",
    "RemoteError",
    "check_snovio_credentials",
    "connect_pipedrive",
    "connect_snovio",
    "create_integration",
    "disconnect",
    "ensure_catalog",
    "ensure_legacy_paused",
    "launch",
    "pause",
    "refresh",
    "resume",
    "save_constants",
    "save_data_exchange",
    "save_direction",
    "set_status",
    "settings_problems",
]
