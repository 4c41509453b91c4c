"""`{% pipedrive_budget integration as budget %}`: the company's daily token budget today."""

from __future__ import annotations

from django import template

from integrations.budget import Standing, standing
from integrations.models import Integration
from integrations.pipedrive.client import budget_key

register = template.Library()


@register.simple_tag
def pipedrive_budget(integration: Integration) -> Standing | None:
    connection = integration.pipedrive
    return standing(budget_key(connection)) if connection else None
