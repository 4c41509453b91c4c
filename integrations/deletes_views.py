"""The Deletes card's actions: save the policy, approve or reject a waiting deletion (thin)."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from integrations.deletes_forms import DeletePolicyForm, card_context
from integrations.pages import owned_integration
from integrations.sync import deletes


def _back(pk: int) -> HttpResponse:
    response = redirect("integrations:settings", pk=pk)
    response["Location"] += "#deletes"
    return response


@require_POST
def save_policy(request: HttpRequest, pk: int) -> HttpResponse:
    integration = owned_integration(request, pk)
    form = DeletePolicyForm(request.POST, integration=integration)
    if not form.is_valid():
        context = {"integration": integration, **card_context(integration, form)}
        return render(request, "integrations/deletes_settings.html", context, status=400)
    form.save()
    messages.success(request, "Delete handling saved.")
    return _back(pk)


@require_POST
def decide(request: HttpRequest, pk: int, action_pk: int, decision: str) -> HttpResponse:
    integration = owned_integration(request, pk)
    if decision not in ("approve", "reject"):
        raise Http404("Approve or reject.")
    try:
        if decision == "approve":
            note = deletes.approve(integration, action_pk, request.user)
        else:
            note = deletes.reject(integration, action_pk, request.user)
    except ValueError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, note[:1].upper() + note[1:])
    return _back(pk)
