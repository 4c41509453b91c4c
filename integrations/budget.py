"""Pipedrive's daily token budget, per company: what is spent, what is left, when to wait.

Every user and app of a Pipedrive company draws from one budget a day (UTC), each endpoint
costing its `x-token-cost` (integrations/pipedrive/token_costs.py). SyncBridge counts what it
spends and keeps the remote's own figure of what is left when an answer carries it (other apps
spend from the same budget). Bulk work (transfers, catch-ups) runs inside `background()`:
there, a client refuses to spend below the reserve (`PIPEDRIVE_BUDGET_RESERVE` of the daily
budget) and raises `RateLimited(limit=DAILY_BUDGET)`, so the scheduler defers the work to the
next day with the reason shown, and the rest of the budget stays for real-time changes and
automations. A spent budget (a 429 saying so) is raised at once by the HTTP layer, never
retried in a loop.

The counts are written in batches (every `FLUSH_CALLS` calls or `FLUSH_SECONDS`), not on
every call.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, date, datetime

import requests
from django.conf import settings
from django.db import transaction
from django.db.models import F

from integrations.http import (
    DAILY_BUDGET,
    RateLimited,
    daily_left,
    seconds_to_utc_midnight,
)
from integrations.models import TokenBudget
from integrations.pipedrive.token_costs import token_cost

FLUSH_CALLS = 50
FLUSH_SECONDS = 10.0
# What this process last heard of each company's budget: (day, left, daily limit, exhausted).
# A count written inside a transaction that is then rolled back (a transfer page that failed
# at the budget) is lost from the table, not from here.
_heard: dict[str, tuple[date, int | None, int | None, bool]] = {}
_background: ContextVar[bool] = ContextVar("budget_background", default=False)


@contextmanager
def background() -> Iterator[None]:
    """Bulk work that must leave the reserve alone (transfers, catch-ups)."""
    token = _background.set(True)
    try:
        yield
    finally:
        _background.reset(token)


def now() -> float:
    """The time budgets are counted by (one place, so tests can move to tomorrow)."""
    return time.time()


def utc_day(moment: float) -> date:
    return datetime.fromtimestamp(moment, UTC).date()


@dataclass
class Standing:
    """The budget of one company today, as the settings page shows it."""

    spent: int
    calls: int
    left: int | None
    daily_limit: int | None
    exhausted: bool
    resets_in: float

    @property
    def low(self) -> bool:
        if self.exhausted:
            return True
        reserve = _reserve(self.daily_limit)
        return self.left is not None and reserve is not None and self.left <= reserve

    @property
    def reason(self) -> str:
        hours = f"{self.resets_in / 3600:.1f} h"
        if self.exhausted or self.left == 0:
            return (
                f"Pipedrive's daily token budget is spent; work resumes at 00:00 UTC (in {hours})."
            )
        return (
            f"Pipedrive's daily token budget is low ({self.left} of {self.daily_limit} tokens "
            f"left): transfers and catch-ups wait for the reset at 00:00 UTC (in {hours}); "
            "the rest is kept for real-time changes and automations."
        )


def _reserve(daily_limit: int | None) -> int | None:
    limit = daily_limit or settings.PIPEDRIVE_DAILY_BUDGET or None
    return int(limit * settings.PIPEDRIVE_BUDGET_RESERVE) if limit else None


def standing(key: str, at: float | None = None) -> Standing:
    at = now() if at is None else at
    day = utc_day(at)
    row = TokenBudget.objects.filter(key=key, day=day).first()
    configured = settings.PIPEDRIVE_DAILY_BUDGET or None
    spent, calls, exhausted = (row.spent, row.calls, row.exhausted) if row else (0, 0, False)
    limit = (row.daily_limit if row else None) or configured
    left = row.remaining if row else None
    if left is None and limit:
        left = max(limit - spent, 0)
    heard = _heard.get(key)
    if heard and heard[0] == day:
        _, heard_left, heard_limit, heard_exhausted = heard
        limit = limit or heard_limit
        if heard_left is not None:
            left = heard_left if left is None else min(left, heard_left)
        exhausted = exhausted or heard_exhausted
    return Standing(spent, calls, left, limit, exhausted, seconds_to_utc_midnight(at))


class BudgetMeter:
    """One client's count of the budget: fed every answer, written in batches."""

    def __init__(self, key: str, clock: Callable[[], float] | None = None):
        self.key = key
        self.clock = clock or (lambda: now())
        self.pending_tokens = 0
        self.pending_calls = 0
        self.last_flush = self.clock()
        self.day = utc_day(self.last_flush)
        self.left: int | None = None
        self.daily_limit: int | None = None
        self.exhausted = False
        self.remote_figures = False
        self._loaded = False  # what the other workers counted, read at first use

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            known = standing(self.key, self.clock())
            self.left, self.daily_limit, self.exhausted = (
                known.left,
                known.daily_limit,
                known.exhausted,
            )

    def record(self, method: str, url: str, response: requests.Response) -> None:
        """Count one answer (a 429 costs nothing) and what it says of the budget."""
        self._load()
        self._roll_day()
        if response.status_code != 429:
            cost = token_cost(method, _path(url))
            self.pending_tokens += cost
            self.pending_calls += 1
            if self.left is not None:
                self.left = max(self.left - cost, 0)
        left = daily_left(response)
        if left is not None:
            self.left, self.remote_figures = left, True
        limit = response.headers.get("x-daily-ratelimit-token-limit")
        if limit and limit.isdigit():
            self.daily_limit = int(limit)
        if response.status_code == 429 and left == 0:
            self.exhausted = True
        _heard[self.key] = (self.day, self.left, self.daily_limit, self.exhausted)
        if (
            self.exhausted
            or self.pending_calls >= FLUSH_CALLS
            or self.clock() - self.last_flush >= FLUSH_SECONDS
        ):
            self.flush()

    def guard(self) -> None:
        """Inside `background()`, refuse to spend below the reserve: raise RateLimited."""
        if not _background.get():
            return
        self._load()
        self._roll_day()
        reserve = _reserve(self.daily_limit)
        low = self.left is not None and reserve is not None and self.left <= reserve
        if not (self.exhausted or low):
            return
        self.flush()
        wait = seconds_to_utc_midnight(self.clock())
        state = Standing(0, 0, self.left, self.daily_limit, self.exhausted, wait)
        raise RateLimited(
            state.reason, remote="pipedrive", status=None, retry_after=wait, limit=DAILY_BUDGET
        )

    def flush(self) -> None:
        if not (self.pending_calls or self.exhausted or self.remote_figures):
            return
        day = self.day
        with transaction.atomic():
            row, _ = TokenBudget.objects.select_for_update().get_or_create(
                key=self.key, defaults={"day": day}
            )
            if row.day < day:  # the first count of a new day starts the row afresh
                row.day, row.spent, row.calls = day, 0, 0
                row.remaining, row.exhausted = None, False
                row.save()
            if row.day == day:
                updates: dict = {
                    "spent": F("spent") + self.pending_tokens,
                    "calls": F("calls") + self.pending_calls,
                }
                if self.exhausted:
                    updates["exhausted"] = True
                if self.remote_figures:
                    updates["remaining"] = self.left
                if self.daily_limit:
                    updates["daily_limit"] = self.daily_limit
                TokenBudget.objects.filter(pk=row.pk).update(**updates)
        self.pending_tokens = self.pending_calls = 0
        self.last_flush = self.clock()

    def _roll_day(self) -> None:
        day = utc_day(self.clock())
        if day != self.day:
            self.flush()  # yesterday's count closes on yesterday's row
            self.day, self.left, self.exhausted = day, None, False
            self.remote_figures = False


def resume_time(key: str, at: float | None = None) -> float | None:
    """When bulk work may go on: the next 00:00 UTC if the budget is low, else None."""
    at = now() if at is None else at
    state = standing(key, at)
    return at + state.resets_in if state.low else None


def _path(url: str) -> str:
    rest = url.split("://", 1)[-1]
    path = "/" + rest.split("/", 1)[1] if "/" in rest else "/"
    # OAuth api_domain and the sandbox prefix ("/pipedrive") come before "/api/".
    return path[path.find("/api/") :] if "/api/" in path else path
