"""The sync history page: what happened to each record and why, paged and filtered."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from integrations.history_forms import HistoryFilterForm
from integrations.models import PendingChange, RecordLink
from integrations.pages import owned_integration
from integrations.sync import history
from integrations.sync.matching import normalise_email

PAGE_SIZE = 50


@require_GET
def history_page(request: HttpRequest, pk: int) -> HttpResponse:
    integration = owned_integration(request, pk)
    form = HistoryFilterForm(request.GET)
    form.is_valid()
    chosen = form.chosen()
    page = Paginator(history.events_for(integration, chosen), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    for event in page.object_list:
        event.outcome_label = history.outcome_label(event)
    query = normalise_email(chosen.email)
    links = RecordLink.objects.none()
    if query:
        links = RecordLink.objects.filter(integration=integration).filter(
            Q(email=query) if "@" in query else Q(email__icontains=query)
        )
    params = request.GET.copy()
    params.pop("page", None)
    context = {
        "integration": integration,
        "form": form,
        "chosen": chosen,
        "query": query,
        "page": page,
        "events": page.object_list,
        "filter_query": params.urlencode(),
        "links": links[:20],
        "held": PendingChange.objects.filter(
            integration=integration, processed_at__isnull=True
        ).count(),
        "counts": history.real_totals(integration),
        "retention_days": history.retention_days(),
    }
    return render(request, "integrations/history.html", context)
