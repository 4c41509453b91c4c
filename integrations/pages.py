"""What every page about an integration needs: only the user's own, and a safe way back.

The one home of these two checks for the views of both apps.
"""

from __future__ import annotations

from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from django.utils.http import url_has_allowed_host_and_scheme

from integrations.models import Integration


def owned_integration(request: HttpRequest, pk: int) -> Integration:
    """The user's own integration; anyone else's is a 404 (no hint that it exists)."""
    queryset = Integration.objects.select_related("pipedrive", "snovio")
    return get_object_or_404(queryset, pk=pk, owner=request.user)


def safe_next(request: HttpRequest) -> str:
    """The request's `next` address when it stays on this site, else "" (no open redirect)."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return ""
