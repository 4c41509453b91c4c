"""`{% automations_section integration %}`: the step-5 section, its scenarios and latest runs."""

from __future__ import annotations

from typing import Any

from django import template

from automations import services
from automations.actions import outcome_summary
from automations.forms import ActionForm
from automations.models import AutomationRun
from integrations.catalog import Catalog

register = template.Library()

RECENT_RUNS = 5


@register.inclusion_tag("automations/_scenarios.html", takes_context=True)
def automations_section(context: template.Context, integration: Any) -> dict[str, Any]:
    request = context.get("request")
    catalog = Catalog.for_integration(integration)
    blocks = services.scenario_blocks(integration, catalog)
    for block in blocks:
        block.form = (
            ActionForm(
                integration=integration,
                trigger=block.trigger,
                catalog=catalog,
                auto_id=f"id_{block.trigger}_%s",
            )
            if block.next_kind
            else None
        )
    runs = (
        AutomationRun.objects.filter(integration=integration)
        .prefetch_related("outcomes")
        .order_by("-received_at", "-pk")[:RECENT_RUNS]
    )
    return {
        "integration": integration,
        "blocks": blocks,
        "enabled": services.automations_enabled(integration),
        "idle_message": services.IDLE_MESSAGE,
        "action_count": sum(len(b.rows) for b in blocks),
        "max_actions": services.MAX_ACTIONS,
        "runs": runs,
        "next": request.get_full_path() if request else "",
        "csrf_token": context.get("csrf_token"),
        "request": request,
    }


@register.filter
def pipedrive_objects(objects: dict) -> str:
    """One line naming the Pipedrive objects an action created or moved."""
    return outcome_summary(objects or {})
