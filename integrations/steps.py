"""The setup steps' saves: a new integration, direction, data exchange, constants.

Each save sends `signals.settings_changed` (`settings_saved`) and returns the settings'
problems (`integrations.problems`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from integrations import fieldspec, signals
from integrations.lifecycle import send_signal
from integrations.models import ConstantField, FieldMapping, Integration, ListSelection
from integrations.problems import Problem, settings_problems


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
    second_key: str = ""  # "" (email only) or "linkedin" (matching.LINKEDIN)
    second_key_field: str = ""  # the Pipedrive custom field holding it
    pairs: list[dict] | None = None  # [{snovio_field, snovio_label, pipedrive_field, ...}]
    system_rules: dict[str, str] | None = None  # system pair's Snov.io field -> conflict rule


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
        integration.second_key = data.second_key
        integration.second_key_field = data.second_key_field if data.second_key else ""
        integration.save()
        if data.pairs is not None:
            save_field_mappings(integration, data.pairs)
        for snovio_field, rule in (data.system_rules or {}).items():
            integration.field_mappings.filter(is_system=True, snovio_field=snovio_field).update(
                conflict_rule=rule
            )
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
                position=position, conflict_rule=pair.get("conflict_rule", "")
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
            conflict_rule=pair.get("conflict_rule", ""),
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
