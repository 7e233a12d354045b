"""Coordinate-wise trimmed mean: scipy's trim_mean; resists up to floor(beta n) outliers a side."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from bdfl.config import ConfigError, from_dict
from bdfl.defense import strategy_of
from bdfl.defense.aggregate import AggregationError, trimmed_mean
from bdfl.defense.trimmed_mean import TrimmedMean
from tests.defense.helpers import flat, honest_and_outliers, model, models, stack


def test_trimmed_mean_matches_scipy() -> None:
    rng = np.random.default_rng(4)
    ms = [model(rng) for _ in range(7)]
    tm = trimmed_mean(ms, 0.2)
    for i in range(2):
        assert np.allclose(tm[i], stats.trim_mean(stack(ms, i), 0.2, axis=0), atol=1e-6)
    assert np.allclose(TrimmedMean(beta=0.3).aggregate(ms)[0], stats.trim_mean(stack(ms, 0), 0.3, axis=0), atol=1e-6)


def test_trimmed_mean_resists_as_many_outliers_as_it_cuts() -> None:
    X = honest_and_outliers(8, 2)  # n = 10: beta 0.2 cuts 2 a side
    assert np.abs(flat(TrimmedMean(beta=0.2).aggregate(models(X))) - 1.0).max() < 0.5
    # beta 0.1 cuts one a side: the second outlier gets in
    assert np.abs(flat(TrimmedMean(beta=0.1).aggregate(models(X))) - 1.0).min() > 4


def test_beta_is_checked_and_comes_from_its_own_table() -> None:
    with pytest.raises(AggregationError, match="beta"):
        trimmed_mean([model(np.random.default_rng(0))], 0.5)
    with pytest.raises(AggregationError, match="beta"):
        TrimmedMean(beta=-0.1)
    cfg = from_dict({"defense": {"name": "trimmed_mean", "trimmed_mean": {"beta": 0.3}}})
    assert strategy_of(cfg.defense) == TrimmedMean(beta=0.3)
    with pytest.raises(ConfigError) as info:
        from_dict({"defense": {"trimmed_mean": {"beta": 0.5}}})
    assert info.value.field == "defense.trimmed_mean.beta" and "[0, 0.5)" in str(info.value)
    with pytest.raises(ConfigError) as info:  # the old key names its successor
        from_dict({"defense": {"trimmed_beta": 0.1}})
    assert info.value.field == "defense.trimmed_beta" and "defense.trimmed_mean.beta" in str(info.value)
