"""Coordinate-wise median: NumPy's median; resists a minority of planted outliers, not a majority."""

from __future__ import annotations

import numpy as np

from bdfl.defense.aggregate import coordinate_median
from bdfl.defense.median import Median
from tests.defense.helpers import flat, honest_and_outliers, model, models, stack


def test_median_matches_numpy() -> None:
    rng = np.random.default_rng(4)
    ms = [model(rng) for _ in range(7)]
    med = coordinate_median(ms)
    for i in range(2):
        assert np.allclose(med[i], np.median(stack(ms, i), axis=0), atol=1e-6)
    even = Median().aggregate(ms[:6])
    assert np.allclose(even[1], np.median(stack(ms[:6], 1), axis=0), atol=1e-6)


def test_median_resists_a_planted_minority_and_breaks_under_a_majority() -> None:
    X = honest_and_outliers(7, 3)
    assert np.abs(flat(Median().combine(models(X)[0], models(X)[1:])) - 1.0).max() < 0.5
    ms = [[np.full_like(a, 1e6) for a in model(np.random.default_rng(0))]] + [model(np.random.default_rng(k)) for k in range(6)]
    assert np.abs(coordinate_median(ms)[0]).max() < 10
    broken = flat(Median().aggregate(models(honest_and_outliers(3, 4))))
    assert np.allclose(broken, 50.0)  # 4 of 7: the outliers are the median
    assert not Median.uses_weights and not Median.audited
