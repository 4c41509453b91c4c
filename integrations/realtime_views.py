"""The settings page's real-time card: the conflict rules and failed changes (thin views)."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from integrations import mapping_forms
from integrations.pages import owned_integration
from integrations.sync import queue
from integrations.sync.runs import enqueue_pending


def _back(pk: int) -> HttpResponse:
    response = redirect("integrations:settings", pk=pk)
    response["Location"] += "#realtime"
    return response


@require_POST
def save_rule(request: HttpRequest, pk: int) -> HttpResponse:
    integration = owned_integration(request, pk)
    form = mapping_forms.ConflictRulesForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose one of the listed rules for fields changed in both apps.")
        return _back(pk)
    integration.realtime_rule = form.cleaned_data["realtime_rule"]
    integration.conflict_rule = form.cleaned_data["conflict_rule"] or integration.conflict_rule
    integration.save(update_fields=["realtime_rule", "conflict_rule", "updated_at"])
    messages.success(
        request,
        f"Saved: {integration.get_conflict_rule_display()} by default; in real time, "
        f"{integration.get_realtime_rule_display().lower()} under “the source app wins”.",
    )
    return _back(pk)


@require_POST
def retry_change(request: HttpRequest, pk: int, change_pk: int) -> HttpResponse:
    integration = owned_integration(request, pk)
    if queue.retry(integration, change_pk) is None:
        messages.error(request, "That change is not a failed change of this integration.")
    else:
        enqueue_pending(integration.pk)
        messages.success(
            request, "Queued again: it is applied as soon as the integration is Active."
        )
    return _back(pk)
