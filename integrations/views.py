"""The seven setup steps and the settings page. Thin: forms validate, services act.

Every view finds the integration among the signed-in user's own (404 otherwise). A step saved
during setup moves on to the next step; after launch it returns to the settings page.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.contrib import messages
from django.db import transaction
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from automations import services as automation_services
from integrations import (
    connections,
    forms,
    mapping_forms,
    plain_errors,
    services,
    status_forms,
    steps,
)
from integrations.catalog import Catalog
from integrations.http import AuthError, RemoteError
from integrations.models import Integration, Provider, SyncRun
from integrations.pages import owned_integration, safe_next
from integrations.pipedrive import oauth
from integrations.problems import (
    Problem,
    problem_fields,
    problems_by_section,
    receiving_sides,
    settings_problems,
)
from integrations.sync import queue, runs

OAUTH_SESSION_KEY = "pipedrive_oauth_states"


@dataclass(frozen=True)
class Step:
    number: int
    slug: str
    title: str
    url_name: str


STEPS = (
    Step(1, "connect", "Connect", "integrations:connect"),
    Step(2, "direction", "Direction", "integrations:direction"),
    Step(3, "data", "Data exchange", "integrations:data"),
    Step(4, "constants", "Constants", "integrations:constants"),
    Step(5, "automations", "Automations", "integrations:automations"),
    Step(6, "launch", "Launch", "integrations:launch"),
    Step(7, "transfer", "Transfer", "integrations:transfer"),
)


def steps_for(integration: Integration) -> list[Step]:
    """Automations are a step only when data flows to Pipedrive."""
    return [s for s in STEPS if s.slug != "automations" or integration.sends_to_pipedrive]


def _connected(integration: Integration) -> bool:
    return integration.pipedrive is not None and integration.snovio is not None


def _after_save(integration: Integration, slug: str) -> HttpResponse:
    """Next step during setup; the settings page once launched."""
    if integration.launched_at:
        return redirect("integrations:settings", pk=integration.pk)
    number = next(s.number for s in STEPS if s.slug == slug)
    following = next(s for s in steps_for(integration) if s.number > number)
    return redirect(following.url_name, pk=integration.pk)


def _context(integration: Integration, slug: str, **extra) -> dict:
    steps = steps_for(integration)
    current = next((s for s in steps if s.slug == slug), None)
    slugs = [s.slug for s in steps]
    previous = None
    if current and slugs.index(slug) > 0:
        previous = steps[slugs.index(slug) - 1]
    if integration.launched_at and "problems" not in extra:
        problems = settings_problems(integration)
        extra.setdefault("problems_by_section", problems_by_section(problems))
        extra.setdefault("problem_fields", problem_fields(problems))
    return {
        "integration": integration,
        "steps": steps,
        "step": current,
        # The number the step bar shows (Automations is left out for one direction).
        "step_position": steps.index(current) + 1 if current else None,
        "previous_step": previous,
        "setup": not integration.launched_at,
        **extra,
    }


def _posted(request: HttpRequest):
    """The form data of a POST (even an empty one), None for a GET."""
    return request.POST if request.method == "POST" else None


def _needs_connections(request: HttpRequest, integration: Integration) -> HttpResponse | None:
    if _connected(integration):
        return None
    messages.warning(request, "Connect both Pipedrive and Snov.io first.")
    return redirect("integrations:connect", pk=integration.pk)


def _catalog(request: HttpRequest, integration: Integration) -> Catalog:
    result = services.ensure_catalog(integration)
    if result and result.errors:
        messages.error(request, result.summary())
    return Catalog.for_integration(integration)


def _report(
    request: HttpRequest, integration: Integration, problems: list[Problem], saved: str
) -> None:
    """Say it was saved; once launched, also say what still stops the integration."""
    messages.success(request, saved)
    if problems and integration.launched_at:
        messages.warning(
            request,
            f"{len(problems)} setting(s) still need attention before the integration can run.",
        )


# --- list and new ---------------------------------------------------------------------------


def integration_list(request: HttpRequest) -> HttpResponse:
    integrations = (
        Integration.objects.filter(owner=request.user)
        .select_related("pipedrive", "snovio")
        .annotate(waiting=Count("pending_changes", filter=Q(pending_changes__processed_at=None)))
    )
    for integration in integrations:
        connections.ensure_legacy_paused(integration)  # listed as Paused before it is opened
    return render(request, "integrations/list.html", {"integrations": integrations})


# The OAuth state of a sign-in started before the integration exists (see `integration_new`).
NEW_INTEGRATION = 0


@require_http_methods(["GET", "POST"])
def integration_new(request: HttpRequest) -> HttpResponse:
    """Step 1 of an integration that does not exist yet: it is created by the first
    connection that succeeds, so "+ New integration" alone leaves nothing behind."""
    if request.method == "POST":  # the old "+ New integration" form
        return redirect("integrations:new")
    return _new_connect_page(request, forms.SnovioConnectForm())


def _new_connect_page(request: HttpRequest, snovio_form) -> HttpResponse:
    draft = Integration(owner=request.user)
    context = _context(draft, "connect", snovio_form=snovio_form)
    return render(request, "integrations/step_connect.html", context)


@require_POST
def new_connect_pipedrive(request: HttpRequest) -> HttpResponse:
    return _start_oauth(request, NEW_INTEGRATION)


@require_POST
def new_connect_snovio(request: HttpRequest) -> HttpResponse:
    form = forms.SnovioConnectForm(request.POST)
    if not form.is_valid():
        return _new_connect_page(request, form)
    with transaction.atomic():
        integration = steps.create_integration(request.user)
        connections.connect_snovio(integration, form.checked, request.user)
    messages.success(request, "Snov.io is connected.")
    return redirect("integrations:connect", pk=integration.pk)


def integration_detail(request: HttpRequest, pk: int) -> HttpResponse:
    integration = owned_integration(request, pk)
    if integration.launched_at:
        return redirect("integrations:settings", pk=pk)
    if not _connected(integration):
        return redirect("integrations:connect", pk=pk)
    return redirect("integrations:direction", pk=pk)


# --- step 1: connect ------------------------------------------------------------------------


def connect(request: HttpRequest, pk: int) -> HttpResponse:
    integration = owned_integration(request, pk)
    return render(
        request,
        "integrations/step_connect.html",
        _context(integration, "connect", snovio_form=forms.SnovioConnectForm()),
    )


@require_POST
def connect_pipedrive(request: HttpRequest, pk: int) -> HttpResponse:
    """Start OAuth: remember a random `state` for this integration and go to the consent page."""
    return _start_oauth(request, owned_integration(request, pk).pk)


def _start_oauth(request: HttpRequest, integration_pk: int) -> HttpResponse:
    state = secrets.token_urlsafe(32)
    states = dict(request.session.get(OAUTH_SESSION_KEY) or {})
    states[state] = integration_pk
    request.session[OAUTH_SESSION_KEY] = dict(list(states.items())[-5:])
    return redirect(oauth.authorization_url(state))


def pipedrive_callback(request: HttpRequest) -> HttpResponse:
    """Pipedrive sends the user back here with `code` and the `state` we made."""
    states = dict(request.session.get(OAUTH_SESSION_KEY) or {})
    state = request.GET.get("state", "")
    pk = states.pop(state, None) if state else None
    request.session[OAUTH_SESSION_KEY] = states
    if pk is None:
        messages.error(
            request,
            "This Pipedrive sign-in was not started from this browser session (the state "
            "did not match). Click “Connect Pipedrive” again.",
        )
        return redirect("integrations:list")
    if pk == NEW_INTEGRATION:
        integration, back = None, redirect("integrations:new")
    else:
        integration = owned_integration(request, pk)
        back = redirect("integrations:connect", pk=integration.pk)
    if request.GET.get("error") == "user_denied":
        messages.error(
            request,
            "You chose not to give SyncBridge access to Pipedrive, so nothing was connected. "
            "Click “Connect Pipedrive” when you want to try again.",
        )
        return back
    if request.GET.get("error") or not request.GET.get("code"):
        reason = request.GET.get("error") or "no authorisation code"
        messages.error(request, f"Pipedrive access was not granted ({reason}).")
        return back
    try:
        token = oauth.exchange_code(request.GET["code"])
        with transaction.atomic():  # a new integration exists only once it is connected
            integration = integration or steps.create_integration(request.user)
            connections.connect_pipedrive(integration, token, request.user)
    except AuthError:
        messages.error(
            request,
            "Pipedrive could not be connected: it did not accept this sign-in (it took too "
            "long or was already used). Click “Connect Pipedrive” and allow access again.",
        )
        return back
    except RemoteError as exc:
        messages.error(
            request,
            f"Pipedrive could not be connected. {plain_errors.explain(Provider.PIPEDRIVE, exc)}",
        )
        return back
    messages.success(request, "Pipedrive is connected.")
    if integration.launched_at:
        return redirect("integrations:settings", pk=integration.pk)
    return redirect("integrations:connect", pk=integration.pk)


@require_POST
def connect_snovio(request: HttpRequest, pk: int) -> HttpResponse:
    integration = owned_integration(request, pk)
    form = forms.SnovioConnectForm(request.POST)
    if not form.is_valid():
        context = _context(integration, "connect", snovio_form=form)
        return render(request, "integrations/step_connect.html", context)
    connections.connect_snovio(integration, form.checked, request.user)
    messages.success(request, "Snov.io is connected.")
    if integration.launched_at:
        return redirect("integrations:settings", pk=integration.pk)
    return redirect("integrations:connect", pk=integration.pk)


@require_POST
def disconnect(request: HttpRequest, pk: int, provider: str) -> HttpResponse:
    integration = owned_integration(request, pk)
    if provider not in Provider.values:
        messages.error(request, "Unknown app.")
        return redirect("integrations:connect", pk=pk)
    connections.disconnect(integration, provider, request.user)
    messages.success(request, f"{Provider(provider).label} is disconnected; its tokens are gone.")
    return redirect("integrations:connect", pk=pk)


# --- steps 2 to 5 ---------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def direction(request: HttpRequest, pk: int) -> HttpResponse:
    integration = owned_integration(request, pk)
    if blocked := _needs_connections(request, integration):
        return blocked
    form = forms.DirectionForm(_posted(request), integration=integration)
    if request.method == "POST" and form.is_valid():
        problems = steps.save_direction(integration, form.cleaned_data["direction"], request.user)
        _report(request, integration, problems, "Direction saved.")
        return _after_save(integration, "direction")
    return render(
        request, "integrations/step_direction.html", _context(integration, "direction", form=form)
    )


@require_http_methods(["GET", "POST"])
def data_exchange(request: HttpRequest, pk: int) -> HttpResponse:
    integration = owned_integration(request, pk)
    if blocked := _needs_connections(request, integration):
        return blocked
    cat = _catalog(request, integration)
    data = request.POST if request.method == "POST" else None
    form = forms.DataExchangeForm(data, integration=integration, catalog=cat)
    formset = mapping_forms.mapping_formset(integration, cat, data)
    rules = mapping_forms.SystemRulesForm(data, integration=integration)
    if request.method == "POST" and form.is_valid() & formset.is_valid() & rules.is_valid():
        exchange = form.data_exchange()
        exchange.pairs = formset.pairs()
        exchange.system_rules = rules.rules()
        problems = steps.save_data_exchange(integration, exchange, request.user)
        _report(request, integration, problems, "Data exchange saved.")
        return _after_save(integration, "data")
    return render(
        request,
        "integrations/step_data.html",
        _context(integration, "data", **_data_context(integration, form, formset, rules)),
    )


def _data_context(integration: Integration, form, formset, rules=None) -> dict:
    return {
        "data_form": form,
        "formset": formset,
        "system_mappings": integration.field_mappings.filter(is_system=True),
        "system_rules_form": rules or mapping_forms.SystemRulesForm(integration=integration),
    }


@require_http_methods(["GET", "POST"])
def constants(request: HttpRequest, pk: int) -> HttpResponse:
    integration = owned_integration(request, pk)
    if blocked := _needs_connections(request, integration):
        return blocked
    cat = _catalog(request, integration)
    form = forms.ConstantsForm(_posted(request), integration=integration, catalog=cat)
    if request.method == "POST" and form.is_valid():
        problems = steps.save_constants(integration, form.constants(), request.user)
        _report(request, integration, problems, "Constants saved.")
        return _after_save(integration, "constants")
    return render(
        request,
        "integrations/step_constants.html",
        _context(integration, "constants", constants_form=form),
    )


@require_http_methods(["GET", "POST"])
def automations(request: HttpRequest, pk: int) -> HttpResponse:
    integration = owned_integration(request, pk)
    if blocked := _needs_connections(request, integration):
        return blocked
    if not integration.sends_to_pipedrive:
        messages.info(request, "Automations work only when data flows to Pipedrive.")
        return _after_save(integration, "automations")
    if request.method == "POST":
        return _after_save(integration, "automations")
    return render(
        request, "integrations/step_automations.html", _context(integration, "automations")
    )


# --- step 6: launch; step 7: transfer -------------------------------------------------------


@require_http_methods(["GET", "POST"])
def launch(request: HttpRequest, pk: int) -> HttpResponse:
    integration = owned_integration(request, pk)
    if blocked := _needs_connections(request, integration):
        return blocked
    if integration.launched_at and request.method == "GET" and "launched" not in request.GET:
        return redirect("integrations:settings", pk=pk)
    problems = settings_problems(integration)
    if request.method == "POST" and not integration.launched_at:
        problems = services.launch(integration, request.user)
        if not problems:
            messages.success(request, "Launched: the integration is Active.")
            return redirect(reverse("integrations:launch", args=[pk]) + "?launched=1")
        messages.error(request, "The integration could not launch: fix the problems below.")
    context = _context(
        integration,
        "launch",
        problems=problems,
        problems_by_section=problems_by_section(problems),
        system_mappings=integration.field_mappings.filter(is_system=True),
        **_review_context(integration),
    )
    return render(request, "integrations/step_launch.html", context)


def _review_context(integration: Integration) -> dict:
    automations = []
    if integration.sends_to_pipedrive:
        automations = [b for b in automation_services.scenario_blocks(integration) if b.rows]
    return {
        "automation_blocks": automations,
        "custom_mappings": integration.field_mappings.filter(is_system=False),
        "list_selections": integration.list_selections.all(),
        "constant_rows": integration.constants.filter(side__in=receiving_sides(integration)),
    }


@require_http_methods(["GET", "POST"])
def transfer(request: HttpRequest, pk: int) -> HttpResponse:
    integration = owned_integration(request, pk)
    if not integration.launched_at:
        messages.warning(request, "Launch the integration before transferring data.")
        return redirect("integrations:launch", pk=pk)
    form = status_forms.TransferForm(_posted(request), integration=integration)
    if request.method == "POST" and form.is_valid():
        token = form.cleaned_data["submit_token"]
        if token and (sent := integration.runs.filter(idempotency_key=token).first()):
            return _show_run(sent)  # the same submit again: its run's page
        try:
            run = runs.start_transfer(
                integration,
                form.cleaned_data["direction"],
                form.cleaned_data["source_app"],
                form.cleaned_data["dry_run"],
                request.user,
                idempotency_key=token,
            )
        except runs.TransferUnavailable as exc:
            if running := _running_transfer(integration):
                return _already_running(request, running)
            form.add_error(None, str(exc))
        else:
            if token and run.idempotency_key != token:
                return _already_running(request, run)
            return _show_run(run)
    context = _context(integration, "transfer", form=form, senders=_senders())
    return render(request, "integrations/step_transfer.html", context)


def _running_transfer(integration: Integration) -> SyncRun | None:
    return integration.runs.filter(dry_run=False, status__in=SyncRun.ACTIVE).first()


def _already_running(request: HttpRequest, run: SyncRun) -> HttpResponse:
    messages.info(request, f"Transfer #{run.pk} is already running: here is its progress.")
    return _show_run(run)


def _show_run(run: SyncRun) -> HttpResponse:
    return redirect("integrations:transfer_run", pk=run.integration_id, run_pk=run.pk)


def _senders() -> dict[str, str]:
    return {d: status_forms.sender_of(d) for d in SyncRun.Direction.values}


def transfer_run(request: HttpRequest, pk: int, run_pk: int) -> HttpResponse:
    integration = owned_integration(request, pk)
    run = get_object_or_404(SyncRun, pk=run_pk, integration=integration)
    return render(
        request,
        "integrations/transfer_run.html",
        _context(integration, "transfer", run=run),
    )


# --- settings page --------------------------------------------------------------------------


def settings_page(request: HttpRequest, pk: int) -> HttpResponse:
    integration = owned_integration(request, pk)
    if not integration.launched_at:
        return redirect("integrations:detail", pk=pk)
    connections.ensure_legacy_paused(integration)
    cat = Catalog.for_integration(integration)
    problems = settings_problems(integration)
    context = _context(
        integration,
        "settings",
        catalog_refreshed_at=cat.refreshed_at,
        problems=problems,
        problems_by_section=problems_by_section(problems),
        problem_fields=problem_fields(problems),
        status_form=status_forms.StatusForm(initial={"status": integration.status}),
        snovio_form=forms.SnovioConnectForm(),
        direction_form=forms.DirectionForm(integration=integration),
        constants_form=forms.ConstantsForm(integration=integration, catalog=cat),
        status_changes=integration.status_changes.select_related("changed_by")[:20],
        # A preview is not a transfer: "Last transfer" is the last one that wrote.
        latest_run=integration.runs.filter(dry_run=False).first(),
        queue=queue.summary(integration),
        rule_form=mapping_forms.ConflictRulesForm(
            initial={
                "realtime_rule": integration.realtime_rule,
                "conflict_rule": integration.conflict_rule,
            }
        ),
        **_data_context(
            integration,
            forms.DataExchangeForm(integration=integration, catalog=cat),
            mapping_forms.mapping_formset(integration, cat),
        ),
        **_review_context(integration),
    )
    return render(request, "integrations/settings.html", context)


@require_POST
def change_status(request: HttpRequest, pk: int) -> HttpResponse:
    integration = owned_integration(request, pk)
    form = status_forms.StatusForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose Active or Paused.")
    elif integration.status == Integration.Status.SYNCING:
        messages.error(request, "A transfer is running; the status changes when it ends.")
    elif form.cleaned_data["status"] == Integration.Status.PAUSED:
        if services.pause(integration, request.user):
            messages.success(request, "Paused. Changes are held until you switch back to Active.")
    else:
        problems = services.resume(integration, request.user)
        if problems:
            messages.error(
                request,
                f"Could not resume: {len(problems)} problem(s), marked in red below.",
            )
        elif integration.status == Integration.Status.ACTIVE:
            messages.success(request, "Active: real-time sync is running.")
    return redirect("integrations:settings", pk=pk)


@require_POST
def refresh(request: HttpRequest, pk: int) -> HttpResponse:
    integration = owned_integration(request, pk)
    result, problems = services.refresh(integration, request.user)
    for provider, error in result.errors.items():
        plain = plain_errors.explain(provider, error)
        label = Provider(provider).label
        messages.error(request, f"Could not reload from {label}: {plain.message} {plain.fix}")
    if result.changed:
        messages.success(request, "Refreshed. " + "; ".join(result.lines()) + ".")
    elif not result.errors:
        messages.success(request, "Refreshed. Nothing changed since the last refresh.")
    if problems:
        messages.warning(request, f"{len(problems)} setting(s) need attention, marked in red.")
    if target := safe_next(request):
        return redirect(target)
    if integration.launched_at:
        return redirect("integrations:settings", pk=pk)
    return redirect("integrations:data", pk=pk)


# --- delete ---------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def delete(request: HttpRequest, pk: int) -> HttpResponse:
    """A confirmation page; its POST deletes the integration and its webhooks."""
    integration = owned_integration(request, pk)
    if request.method == "POST":
        name = f"{integration.name} #{integration.pk}"
        try:
            services.delete(integration, request.user)
        except services.DeleteRefused as exc:
            messages.error(request, str(exc))
            return redirect("integrations:delete", pk=pk)
        messages.success(
            request, f"{name} is deleted; its webhooks in Pipedrive and Snov.io are removed."
        )
        return redirect("integrations:list")
    return render(request, "integrations/delete.html", {"integration": integration})
