"""Scenario pages: thin wrappers around `automations.services` (rules) and forms (validation).

Every view needs a login (middleware) and only reaches the user's own integrations. Changes are
POSTs that go back to `next` (the setup step or the settings page the section sits in) when it
is a local URL; an invalid form is shown again on its own page with each error by its field.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from automations import services
from automations.forms import ActionForm, MoveForm, ReorderForm
from automations.models import ActionKind, AutomationRun, ScenarioAction, Trigger
from integrations.models import Integration
from integrations.pages import owned_integration, safe_next


def _action(integration: Integration, action_id: int) -> ScenarioAction:
    return get_object_or_404(
        ScenarioAction.objects.select_related("scenario"),
        pk=action_id,
        scenario__integration=integration,
    )


def _back(request: HttpRequest, integration: Integration) -> HttpResponse:
    target = safe_next(request)
    if target:
        return redirect(f"{target}#automations")
    return redirect(reverse("automations:index", args=[integration.pk]) + "#automations")


def _posted(request: HttpRequest):
    """The form data of a POST (even an empty one, which is then invalid), None for a GET."""
    return request.POST if request.method == "POST" else None


def index(request: HttpRequest, integration_id: int) -> HttpResponse:
    """All six triggers with their actions (the same section the setup and settings pages show)."""
    integration = owned_integration(request, integration_id)
    return render(request, "automations/index.html", {"integration": integration})


@require_http_methods(["GET", "POST"])
def add_action(request: HttpRequest, integration_id: int) -> HttpResponse:
    integration = owned_integration(request, integration_id)
    trigger = request.POST.get("trigger") or request.GET.get("trigger") or ""
    if trigger not in Trigger.values:
        trigger = Trigger.EMAIL_SENT
    form = ActionForm(_posted(request), integration=integration, trigger=trigger)
    if request.method == "POST" and form.is_valid():
        action = form.save()
        messages.success(
            request, f"Added “{action.get_kind_display()}” to “{Trigger(trigger).label}”."
        )
        return _back(request, integration)
    status = 400 if request.method == "POST" else 200
    return render(
        request,
        "automations/action_form.html",
        {
            "integration": integration,
            "form": form,
            "trigger_label": Trigger(trigger).label,
            "next": safe_next(request),
            "idle": not services.automations_enabled(integration),
            "idle_message": services.IDLE_MESSAGE,
        },
        status=status,
    )


@require_http_methods(["GET", "POST"])
def edit_action(request: HttpRequest, integration_id: int, action_id: int) -> HttpResponse:
    integration = owned_integration(request, integration_id)
    action = _action(integration, action_id)
    form = ActionForm(_posted(request), integration=integration, action=action)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, f"Saved “{ActionKind(action.kind).label}”.")
        return _back(request, integration)
    status = 400 if request.method == "POST" else 200
    return render(
        request,
        "automations/action_form.html",
        {
            "integration": integration,
            "form": form,
            "action": action,
            "trigger_label": Trigger(action.scenario.trigger).label,
            "next": safe_next(request),
            "idle": not services.automations_enabled(integration),
            "idle_message": services.IDLE_MESSAGE,
        },
        status=status,
    )


@require_POST
def toggle_action(request: HttpRequest, integration_id: int, action_id: int) -> HttpResponse:
    integration = owned_integration(request, integration_id)
    action = services.toggle_action(_action(integration, action_id))
    state = "on" if action.enabled else "off"
    messages.success(request, f"“{action.get_kind_display()}” switched {state}.")
    return _back(request, integration)


@require_POST
def remove_action(request: HttpRequest, integration_id: int, action_id: int) -> HttpResponse:
    integration = owned_integration(request, integration_id)
    action = _action(integration, action_id)
    label = action.get_kind_display()
    services.remove_action(action)
    messages.success(request, f"Removed “{label}”.")
    return _back(request, integration)


@require_POST
def move_action(request: HttpRequest, integration_id: int, action_id: int) -> HttpResponse:
    integration = owned_integration(request, integration_id)
    action = _action(integration, action_id)
    form = MoveForm(request.POST)
    if form.is_valid():
        services.move_action(action, form.offset)
    else:
        messages.error(request, "Choose up or down to move an action.")
    return _back(request, integration)


@require_POST
def reorder(request: HttpRequest, integration_id: int, trigger: str) -> HttpResponse:
    integration = owned_integration(request, integration_id)
    if trigger not in Trigger.values:
        messages.error(request, "Unknown trigger.")
        return _back(request, integration)
    scenario = services.scenario_for(integration, trigger)
    form = ReorderForm(request.POST, scenario=scenario)
    if form.is_valid():
        try:
            services.reorder_actions(scenario, form.cleaned_data["order"])
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, f"New order saved for “{Trigger(trigger).label}”.")
    else:
        messages.error(request, " ".join(form.errors.get("order", ["Invalid order."])))
    return _back(request, integration)


@require_POST
def toggle_scenario(request: HttpRequest, integration_id: int, trigger: str) -> HttpResponse:
    integration = owned_integration(request, integration_id)
    if trigger not in Trigger.values:
        messages.error(request, "Unknown trigger.")
        return _back(request, integration)
    scenario = services.toggle_scenario(integration, trigger)
    state = "on" if scenario.enabled else "off"
    messages.success(request, f"“{Trigger(trigger).label}” switched {state}.")
    return _back(request, integration)


def run_log(request: HttpRequest, integration_id: int) -> HttpResponse:
    """Every automation run: the event, the trigger, each action's outcome and its objects."""
    integration = owned_integration(request, integration_id)
    runs = AutomationRun.objects.filter(integration=integration).prefetch_related("outcomes")
    status = request.GET.get("status", "")
    if status in AutomationRun.Status.values:
        runs = runs.filter(status=status)
    email = request.GET.get("email", "").strip()
    if email:
        runs = runs.filter(email__icontains=email)
    page = Paginator(runs, 50).get_page(request.GET.get("page"))
    return render(
        request,
        "automations/log.html",
        {
            "integration": integration,
            "page": page,
            "runs": page.object_list,
            "statuses": AutomationRun.Status.choices,
            "status": status,
            "email": email,
        },
    )
