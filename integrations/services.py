"""The integration's life cycle: launch, pause, resume, and reloading the catalogue.

`integrations.lifecycle.set_status()` is the only way an integration's status changes. The
neighbours: `connections` (connect, check, disconnect), `steps` (the setup steps' saves),
`problems` (settings validation), `sync.runs` (`start_transfer`).
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q
from django.utils import timezone

from integrations import catalog, signals
from integrations.catalog import Catalog
from integrations.connections import LEGACY_REASON
from integrations.lifecycle import send_signal, set_status
from integrations.models import Connection, Integration, Provider
from integrations.problems import (
    Problem,
    connection_problems,
    problems_summary,
    settings_problems,
)

Status = Integration.Status


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


def notice_schema_drift(integration_id: int) -> list[Problem]:
    """The scheduled catch-up's check of the accounts' setup, as Refresh does it: a stage,
    pipeline, list or field the settings use that was deleted marks the problem and sets a
    running integration to Connection failed. A remote that cannot be reached changes
    nothing here (the catch-up reports its own errors)."""
    integration = Integration.objects.select_related("pipedrive", "snovio").get(pk=integration_id)
    if not integration.launched_at or integration.status not in (Status.ACTIVE, Status.PAUSED):
        return []
    result, problems = refresh(integration)
    return [] if result.errors else problems


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


class DeleteRefused(Exception):
    """The integration cannot be deleted now (a transfer is running)."""


def delete(integration: Integration, user: Any = None) -> None:
    """Delete the integration with everything it owns, after removing its webhooks.

    The webhook subscriptions in Pipedrive and Snov.io are removed while the credentials
    still work (the same `disconnecting` signal as a Disconnect); the connections' tokens go
    with the integration. Refused while a transfer runs: its worker would write for a
    deleted integration.
    """
    if integration.status == Status.SYNCING:
        raise DeleteRefused("A transfer is running: delete the integration when it has finished.")
    for provider in (Provider.PIPEDRIVE, Provider.SNOVIO):
        if getattr(integration, provider) is not None:
            send_signal(signals.disconnecting, integration=integration, provider=provider)
    owned = [c.pk for c in (integration.pipedrive, integration.snovio) if c is not None]
    integration.delete()
    # A connection belongs to one integration; one still used elsewhere is kept.
    still_used = Integration.objects.filter(Q(pipedrive__in=owned) | Q(snovio__in=owned))
    used = {pk for row in still_used.values_list("pipedrive", "snovio") for pk in row}
    Connection.objects.filter(pk__in=set(owned) - used).delete()
