"""Geometric median: minimises the sum of distances; breakdown point one half."""

from __future__ import annotations

import numpy as np
import pytest

from bdfl.config import DefenseConfig, GeometricMedianConfig
from bdfl.defense import strategy_of
from bdfl.defense.aggregate import AggregationError, geometric_median
from bdfl.defense.geometric_median import GeometricMedian
from tests.defense.helpers import flat, honest_and_outliers, models


def test_geometric_median_minimises_the_sum_of_distances() -> None:
    X = np.random.default_rng(1).standard_normal((9, 6))
    gm = flat(geometric_median(models(X)))
    cost = lambda z: np.linalg.norm(X - z, axis=1).sum()  # noqa: E731
    rng = np.random.default_rng(2)
    assert all(cost(gm) <= cost(gm + 1e-3 * rng.standard_normal(6)) + 1e-9 for _ in range(50))
    assert cost(gm) < cost(X.mean(0))
    # collinear points: the middle one
    line = np.outer([0.0, 1.0, 2.0, 10.0, 11.0], np.ones(6))
    assert np.allclose(flat(geometric_median(models(line))), 2.0, atol=1e-3)


def test_breakdown_point_is_one_half() -> None:
    """4 outliers of 9 (any distance): the result stays near the honest cluster; 5 of 9 take it."""
    for at in (50.0, 1e4):
        held = flat(GeometricMedian().aggregate(models(honest_and_outliers(5, 4, at=at))))
        assert np.abs(held - 1.0).max() < 1.0
    taken = flat(GeometricMedian().aggregate(models(honest_and_outliers(4, 5))))
    assert np.abs(taken - 50.0).max() < 1.0


def test_settings_come_from_its_own_table() -> None:
    cfg = DefenseConfig(name="geometric_median", geometric_median=GeometricMedianConfig(max_iter=5, tol=1e-3))
    assert strategy_of(cfg) == GeometricMedian(max_iter=5, tol=1e-3)
    with pytest.raises(AggregationError, match="max_iter"):
        GeometricMedian(max_iter=0)
    with pytest.raises(AggregationError, match="tol"):
        geometric_median(models(np.zeros((2, 6))), tol=0.0)
