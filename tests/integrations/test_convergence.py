"""Two-way real time converges, whatever the order things happen in (seeded random histories).

`make test` runs CONVERGENCE_SCENARIOS scenarios (200 by default); `make soak` runs 5,000.
A failing seed is printed with its history; `CONVERGENCE_SEED=<seed>` replays it alone.
"""

from __future__ import annotations

import os

import pytest

from tests.integrations.convergence import point_settings_at_the_sandbox, run_scenario

pytestmark = pytest.mark.django_db

SCENARIOS = int(os.environ.get("CONVERGENCE_SCENARIOS", "200"))
FIRST_SEED = int(os.environ.get("CONVERGENCE_FIRST_SEED", "0"))


def seeds() -> list[int]:
    if os.environ.get("CONVERGENCE_SEED"):
        return [int(os.environ["CONVERGENCE_SEED"])]
    return list(range(FIRST_SEED, FIRST_SEED + SCENARIOS))


def test_both_sides_converge_on_the_latest_edit_in_random_histories(user, settings, capsys):
    point_settings_at_the_sandbox(settings)
    failures = []
    totals: dict[str, int] = {}
    for seed in seeds():
        result = run_scenario(seed, user)
        for name, count in result.stats.items():
            totals[name] = totals.get(name, 0) + count
        if result.violations:
            failures.append(result)
    with capsys.disabled():
        print(
            f"\nconvergence: scenarios={len(seeds())} violations="
            f"{sum(len(r.violations) for r in failures)} failing_seeds="
            f"{[r.seed for r in failures]} "
            + " ".join(f"{name}={count}" for name, count in sorted(totals.items()))
        )
    if failures:
        first = failures[0]
        report = "\n".join(first.violations) + "\nhistory:\n" + "\n".join(first.history)
        pytest.fail(
            f"seed {first.seed} broke convergence (replay: CONVERGENCE_SEED={first.seed}):\n"
            + report
        )
