"""`{% deletes_card integration %}`: the settings page's Deletes card (sync/deletes.py)."""

from django import template

from integrations.deletes_forms import card_context
from integrations.models import Integration

register = template.Library()


@register.inclusion_tag("integrations/_deletes.html", takes_context=True)
def deletes_card(context, integration: Integration) -> dict:
    return {
        "integration": integration,
        "csrf_token": context.get("csrf_token"),
        **card_context(integration),
    }
