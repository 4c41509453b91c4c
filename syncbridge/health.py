"""`/healthz`: is this installation able to do its work right now?

200 only when the database answers, the task broker answers and at least one worker cluster
has sent its heartbeat in the last few seconds (django-q2 writes a status every half second
with a 3 s lifetime); otherwise 503 with a JSON body naming what is wrong. No login: load
balancers and uptime monitors call it.
"""

from __future__ import annotations

from collections.abc import Callable

from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from django_q.brokers import get_broker
from django_q.conf import Conf
from django_q.status import Stat

# A cluster in one of these states takes tasks.
LIVE_CLUSTER_STATES = (Conf.IDLE, Conf.WORKING)


def check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return "ok"


def check_broker() -> str:
    broker = get_broker()
    if broker.ping() is False:
        raise ConnectionError(f"{broker.info()} did not answer")
    broker.queue_size()  # the ORM broker's ping is a constant: reading the queue proves it
    return "ok"


def check_worker() -> str:
    clusters = [stat for stat in Stat.get_all() if stat.status in LIVE_CLUSTER_STATES]
    if not clusters:
        raise LookupError(
            "no worker: no task cluster sent a heartbeat in the last 3 s "
            "(start one with `python manage.py qcluster`)"
        )
    return f"ok: {len(clusters)} cluster(s)"


CHECKS: dict[str, Callable[[], str]] = {
    "database": check_database,
    "broker": check_broker,
    "worker": check_worker,
}


def run_checks() -> tuple[bool, dict[str, str]]:
    """Every check's result; a failing check's message says what is wrong."""
    results: dict[str, str] = {}
    healthy = True
    for name, check in CHECKS.items():
        try:
            results[name] = check()
        except Exception as exc:  # any failure of a dependency is an answer, not a 500
            healthy = False
            results[name] = f"failing: {exc.__class__.__name__}: {exc}"
    return healthy, results


@login_not_required
@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    healthy, results = run_checks()
    body = {
        "status": "ok" if healthy else "failing",
        "checks": results,
        "failing": [name for name, result in results.items() if result.startswith("failing")],
    }
    return JsonResponse(body, status=200 if healthy else 503)
