"""Modern robust aggregators (bdfl.learning.robust_aggregation): geometric median,
centered clipping with bucketing, NNM + trimmed mean; registered as defenses."""

from __future__ import annotations

import numpy as np
import pytest

from bdfl.learning.aggregation import AGGREGATORS, AggregationError, aggregate, defense_params
from bdfl.learning.robust_aggregation import centered_clipping, geometric_median, nnm, nnm_trimmed_mean


def _models(rows: np.ndarray) -> list[list[np.ndarray]]:
    return [[r[:2].astype(np.float32), r[2:].reshape(2, 2).astype(np.float32)] for r in rows]


def _flat(m: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in m])


def _honest_and_outliers(k: int = 7, f: int = 3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.vstack([1.0 + 0.1 * rng.standard_normal((k, 6)), np.full((f, 6), 50.0)])


def test_geometric_median_minimises_the_sum_of_distances() -> None:
    X = np.random.default_rng(1).standard_normal((9, 6))
    gm = _flat(geometric_median(_models(X)))
    cost = lambda z: np.linalg.norm(X - z, axis=1).sum()  # noqa: E731
    rng = np.random.default_rng(2)
    assert all(cost(gm) <= cost(gm + 1e-3 * rng.standard_normal(6)) + 1e-9 for _ in range(50))
    assert cost(gm) < cost(X.mean(0))
    # collinear points: the middle one
    line = np.outer([0.0, 1.0, 2.0, 10.0, 11.0], np.ones(6))
    assert np.allclose(_flat(geometric_median(_models(line))), 2.0, atol=1e-3)


@pytest.mark.parametrize("rule", ["geometric_median", "centered_clipping", "nnm_trimmed_mean"])
def test_rules_resist_outliers_that_break_the_mean(rule: str) -> None:
    X = _honest_and_outliers()
    models = _models(X)
    out = aggregate(rule, models[0], models[1:], **({"num_malicious": 3} if rule == "nnm_trimmed_mean" else {}))
    assert [a.dtype for a in out] == [np.float32, np.float32] and [a.shape for a in out] == [(2,), (2, 2)]
    assert np.abs(_flat(out) - 1.0).max() < 1.0  # the mean is at ~15.7
    assert np.abs(X.mean(0) - 1.0).min() > 10


def test_centered_clipping_clips_each_bucket_to_tau_around_the_own_model() -> None:
    X = np.vstack([np.zeros(6), np.full((3, 6), 100.0)])
    out = _flat(centered_clipping(_models(X), tau=1.0, iterations=1, bucket_size=1))
    # one step: mean of clip(x_i - 0, 1): three of norm 1, one 0
    assert np.linalg.norm(out) == pytest.approx(0.75, rel=1e-5)
    # bucketing is seeded: same seed, same result; every model counts
    X = np.random.default_rng(3).standard_normal((8, 6))
    a = centered_clipping(_models(X), bucket_size=2, seed=4)
    b = centered_clipping(_models(X), bucket_size=2, seed=4)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    with pytest.raises(AggregationError, match="bucket_size"):
        centered_clipping(_models(X), bucket_size=0)


def test_nnm_mixes_nearest_neighbours() -> None:
    X = np.outer([0.0, 1.0, 2.0, 100.0], np.ones(6))
    mixed = [_flat(m) for m in nnm(_models(X), 1)]
    assert np.allclose(mixed[0], 1.0) and np.allclose(mixed[3], (100 + 2 + 1) / 3)
    # mixed: 1, 1, 1, 34.3; trimming one a side leaves 1, 1 (a plain trimmed mean: (1 + 2) / 2)
    assert np.allclose(_flat(nnm_trimmed_mean(_models(X), 1)), 1.0)
    with pytest.raises(AggregationError, match="num_malicious"):
        nnm(_models(X), 4)


def test_registered_as_defenses() -> None:
    from bdfl.config import DefenseConfig
    from bdfl.experiment.setup import DEFENSES

    for rule in ("geometric_median", "centered_clipping", "nnm_trimmed_mean"):
        assert rule in AGGREGATORS and rule in DEFENSES and not AGGREGATORS[rule].uses_weights
    assert defense_params(DefenseConfig(name="nnm_trimmed_mean"), 3) == {"num_malicious": 3}
    assert defense_params(DefenseConfig(name="geometric_median"), 3) == {}
