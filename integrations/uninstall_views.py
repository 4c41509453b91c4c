"""The Pipedrive callback URL: the OAuth redirect (GET, a signed-in user) and the app
uninstall notice (DELETE, from Pipedrive's OAuth server) share it, as Pipedrive allows one
callback URL per app."""

from __future__ import annotations

import json

from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from integrations import uninstall, views
from integrations.pipedrive import oauth


@csrf_exempt
@login_not_required
def pipedrive_callback(request: HttpRequest) -> HttpResponse:
    if request.method == "DELETE":
        return app_uninstalled(request)
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    if request.method != "GET":
        return HttpResponse(status=405, headers={"Allow": "GET, DELETE"})
    return views.pipedrive_callback(request)


def app_uninstalled(request: HttpRequest) -> HttpResponse:
    if not oauth.is_pipedrive_itself(request.headers.get("Authorization", "")):
        response = JsonResponse({"error": "client credentials required"}, status=401)
        response["WWW-Authenticate"] = 'Basic realm="SyncBridge"'
        return response
    try:
        event = uninstall.Uninstall.from_body(json.loads(request.body or b"null"))
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        return JsonResponse({"error": f"not an uninstall notice: {exc}"}, status=400)
    return JsonResponse({"ok": True, "disconnected": uninstall.app_uninstalled(event)})
