"""experiments/no_work_steps_whatif.py: re-judging no_work with move lengths per local step (a what-if)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments"))

import no_work_steps_whatif as whatif  # noqa: E402

from bdfl.defense.detectors.base import Evidence  # noqa: E402


def _audit(ratios: list[float]) -> dict:
    m = len(ratios)
    return {"ev": Evidence(valid=np.ones(m, bool), update_ratio=np.array(ratios)), "kinds": np.array(["honest"] * m),
            "trainers": list(range(m))}


def test_a_small_shards_short_move_fails_as_is_and_passes_per_step() -> None:
    """Seven peers of 6 batches an epoch and one of 1: its move, 0.35 of the median, fails the
    library's test; per sqrt(step) it is 0.86 of the median and passes. A zero move fails both ways."""
    others = [0.8, 0.9, 0.95, 1.0, 1.05, 1.1, 1.2]
    steps = np.array([30.0] * 7 + [5.0])
    audits = [_audit(others + [0.35])]
    assert whatif.no_work_failures(audits, steps, 0.0)["honest"] == [1, 8]
    assert whatif.no_work_failures(audits, steps, 0.5)["honest"] == [0, 8]
    assert whatif.no_work_failures([_audit(others + [0.0])], steps, 0.5)["honest"] == [1, 8]


def test_slope_recovers_the_exponent_of_synthetic_moves() -> None:
    rng = np.random.default_rng(0)
    steps = np.array([5.0, 10, 20, 30, 40, 60, 80, 100])
    audits = [_audit(list(steps ** 0.5 * np.exp(rng.normal(0, 0.01, steps.size)))) for _ in range(5)]
    assert abs(whatif.length_slope(audits, steps) - 0.5) < 0.02
