"""Centered clipping around the own model: each step moves at most tau; bucketing is seeded."""

from __future__ import annotations

import numpy as np
import pytest

from bdfl.config import CenteredClippingConfig, DefenseConfig
from bdfl.defense import strategy_of
from bdfl.defense.aggregate import AggregationError, centered_clipping
from bdfl.defense.centered_clipping import CenteredClipping
from tests.defense.helpers import flat, honest_and_outliers, models


def test_each_bucket_is_clipped_to_tau_around_the_own_model() -> None:
    X = np.vstack([np.zeros(6), np.full((3, 6), 100.0)])
    out = flat(centered_clipping(models(X), tau=1.0, iterations=1, bucket_size=1))
    # one step: mean of clip(x_i - 0, 1): three of norm 1, one 0
    assert np.linalg.norm(out) == pytest.approx(0.75, rel=1e-5)


@pytest.mark.parametrize("at", [50.0, 1e6])
def test_the_result_stays_within_iterations_times_tau_of_the_own_model(at: float) -> None:
    """The clipping bound: however far the others are, v moves at most tau per iteration."""
    X = honest_and_outliers(5, 5, at=at)
    for tau, iterations in ((0.5, 1), (0.5, 3), (2.0, 2)):
        out = flat(CenteredClipping(bucket_size=2, iterations=iterations, tau=tau).aggregate(models(X)))
        assert np.linalg.norm(out - X[0].astype(np.float32)) <= iterations * tau * (1 + 1e-5)


def test_bucketing_is_seeded_and_settings_come_from_its_own_table() -> None:
    X = np.random.default_rng(3).standard_normal((8, 6))
    a = centered_clipping(models(X), bucket_size=2, seed=4)
    b = centered_clipping(models(X), bucket_size=2, seed=4)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    with pytest.raises(AggregationError, match="bucket_size"):
        centered_clipping(models(X), bucket_size=0)
    with pytest.raises(AggregationError, match="bucket_size"):
        CenteredClipping(bucket_size=0)
    cfg = DefenseConfig(name="centered_clipping", centered_clipping=CenteredClippingConfig(bucket_size=1, iterations=5, tau=0.5))
    assert strategy_of(cfg) == CenteredClipping(bucket_size=1, iterations=5, tau=0.5)
    assert strategy_of(DefenseConfig(name="centered_clipping")).tau is None  # 0: the median distance


def _is_mean(n: int, draws: int, **kw) -> int:
    rng = np.random.default_rng(11)
    same = 0
    for seed in range(draws):
        X = rng.standard_normal((n, 50)).astype(np.float32)  # 50 values: distances concentrate as a model's do
        out = centered_clipping([[x] for x in X], seed=seed, **kw)[0]
        same += np.allclose(out, X.mean(axis=0), atol=1e-5)
    return same


def test_without_outliers_it_is_the_mean_with_an_outlier_it_clips() -> None:
    """The documented property (docstring, docs/learning.md): tau 0 (the median distance), honest-like
    models, 2 or more iterations: every bucket is inside the radius after the first step, so the result
    is the mean of the bucket means: FedAvg with equal buckets (4 models in buckets of 2, or no
    bucketing), not with a lone last bucket (5 and 9 models) nor after one unbucketed step; one model far out is
    clipped, at 4 models too."""
    assert _is_mean(4, 50) == 50
    assert _is_mean(5, 50, bucket_size=1) == 50 and _is_mean(9, 50, bucket_size=1) == 50
    assert _is_mean(5, 50) == 0 and _is_mean(9, 50) == 0
    assert _is_mean(4, 50, bucket_size=1, iterations=1) == 0  # one step from the own model clips
    X = np.random.default_rng(5).standard_normal((4, 50)).astype(np.float32)
    X[3] += 100.0
    out = centered_clipping([[x] for x in X], seed=0)[0]
    assert np.linalg.norm(out - X.mean(axis=0)) > 10  # the mean moves 25 per coordinate, CC far less
    assert np.linalg.norm(out - X[0]) <= 3 * np.median(np.linalg.norm(X - X[0], axis=1)) * (1 + 1e-5)
