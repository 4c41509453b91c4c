"""`make bench`'s scale benchmark at a smoke size, so that it keeps working between runs."""

from __future__ import annotations

import pytest

from integrations.models import SyncRun
from tests.bench.test_scale import measure


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("direction", [SyncRun.Direction.TO_PIPEDRIVE, SyncRun.Direction.TO_SNOVIO])
def test_the_scale_benchmark_measures_a_small_transfer_each_way(settings, user, direction):
    figures = measure(settings, user, direction, 150, limited_seconds=0)
    off = figures["limits_off"]
    assert off["records"] == 150 and off["created"] == 150
    # One create per record plus the listings; five Pipedrive tokens per created person. To
    # Pipedrive, each new prospect's profile is also read by id: Snov.io's list rows carry
    # names and emails only (docs/specs/snovio-shapes.md).
    reads = 1 if direction == SyncRun.Direction.TO_PIPEDRIVE else 0
    assert 1.0 + reads <= off["calls_per_record"] < 1.2 + reads
    if direction == SyncRun.Direction.TO_PIPEDRIVE:
        assert 5.0 <= off["pipedrive_tokens_per_record"] < 6.0
    assert off["answered_429"] == 0
    # At most two writes per created record (issue 10), the rate limiter's included: one
    # intent before each create; each page's links and events written together after it.
    assert 0 < off["sql_writes_per_record"] <= 2, off
    by_table = off["sql_writes_per_record_by_table"]
    transfer_writes = sum(
        n for kind, n in by_table.items() if kind.endswith(("_recordlink", "_syncevent"))
    )
    assert transfer_writes <= 1.1, by_table
