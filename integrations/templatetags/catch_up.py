"""Template tags for the catch-up's figures on the settings page."""

from __future__ import annotations

from django import template

from integrations.models import Integration
from integrations.sync import catchup

register = template.Library()


@register.simple_tag
def catch_up_freshness(integration: Integration) -> catchup.Freshness | None:
    """How recent the catch-up's view of Snov.io is (None before its first look)."""
    return catchup.freshness(integration)


@register.simple_tag
def catch_up_policy() -> dict:
    """The catch-up's schedule and its share of Snov.io's request budget."""
    return {
        "cycle_minutes": catchup.CYCLE_MINUTES,
        "share": round(catchup.RECHECK_SHARE * 100),
        "calls": catchup.snovio_calls_per_cycle(),
        "history_calls": catchup.history_calls_per_cycle(),
    }
