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
