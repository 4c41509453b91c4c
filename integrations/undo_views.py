"""Undo pages: preview the undo of a transfer or of one record's change, undo it, see it."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from integrations.models import Integration, SyncEvent, SyncRun, Undo
from integrations.pages import owned_integration
from integrations.sync import undo as undo_service


@require_POST
def undo_transfer(request: HttpRequest, pk: int, run_pk: int) -> HttpResponse:
    integration = owned_integration(request, pk)
    run = get_object_or_404(SyncRun, pk=run_pk, integration=integration)
    return _start(request, integration, run=run)


@require_POST
def undo_event(request: HttpRequest, pk: int, event_pk: int) -> HttpResponse:
    integration = owned_integration(request, pk)
    event = get_object_or_404(SyncEvent, pk=event_pk, integration=integration)
    return _start(request, integration, event=event)


def _start(request: HttpRequest, integration: Integration, **target) -> HttpResponse:
    """Preview (`preview=1`) or undo. An undo already started for this target is resumed if
    it did not finish, and shown; a finished one is not done again (409 with the reason)."""
    dry_run = request.POST.get("preview") == "1"
    existing = Undo.objects.filter(dry_run=False, **target).first()
    if existing is not None and not dry_run and undo_service.resumable(existing):
        undo_service.resume(existing)
        return redirect("integrations:undo", integration.pk, existing.pk)
    try:
        undo = undo_service.start_undo(integration, dry_run=dry_run, user=request.user, **target)
    except undo_service.UndoRefused as exc:
        context = {"integration": integration, "refused": str(exc), "undo": existing}
        return render(request, "integrations/undo.html", context, status=409)
    return redirect("integrations:undo", integration.pk, undo.pk)


@require_GET
def undo_page(request: HttpRequest, pk: int, undo_pk: int) -> HttpResponse:
    integration = owned_integration(request, pk)
    undo = get_object_or_404(Undo, pk=undo_pk, integration=integration)
    done = Undo.objects.filter(dry_run=False, run=undo.run, event=undo.event).first()
    context = {
        "integration": integration,
        "undo": undo,
        "source": undo.run or (undo.event.run if undo.event else None),
        "events": undo.events.order_by("pk")[:500] if not undo.dry_run else [],
        "real_undo": done,
        "can_undo": undo.dry_run and undo.status == SyncRun.Status.DONE and done is None,
        "can_resume": done is not None and undo_service.resumable(done),
    }
    return render(request, "integrations/undo.html", context)
