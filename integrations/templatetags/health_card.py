"""`{% health_card integration %}`: the settings page's Health card (integrations.health)."""

from django import template

from integrations import health
from integrations.models import Integration

register = template.Library()


@register.inclusion_tag("integrations/_health.html")
def health_card(integration: Integration) -> dict:
    return {"integration": integration, "health": health.for_integration(integration)}
