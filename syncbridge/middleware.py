"""Request hygiene shared by every page."""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest


class RejectNulInQuery:
    """Answer 400 to a query string with a NUL character.

    PostgreSQL cannot store or compare text containing NUL, so such a search would fail deep in
    a query. Forms already refuse NUL in posted fields; this covers GET parameters everywhere.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if any("\x00" in value for values in request.GET.lists() for value in values[1]):
            return HttpResponseBadRequest(
                "The address contains a NUL character, which no search can use.",
                content_type="text/plain",
            )
        return self.get_response(request)
