"""NNM + trimmed mean: nearest-neighbour mixing, then trimming f a side."""

from __future__ import annotations

import numpy as np
import pytest

from bdfl.config import DefenseConfig, NNMTrimmedMeanConfig
from bdfl.defense import strategy_of
from bdfl.defense.aggregate import AggregationError, nnm, nnm_trimmed_mean
from bdfl.defense.nnm_trimmed_mean import NNMTrimmedMean
from tests.defense.helpers import flat, honest_and_outliers, models


def test_nnm_mixes_nearest_neighbours() -> None:
    X = np.outer([0.0, 1.0, 2.0, 100.0], np.ones(6))
    mixed = [flat(m) for m in nnm(models(X), 1)]
    assert np.allclose(mixed[0], 1.0) and np.allclose(mixed[3], (100 + 2 + 1) / 3)
    # mixed: 1, 1, 1, 34.3; trimming one a side leaves 1, 1 (a plain trimmed mean: (1 + 2) / 2)
    assert np.allclose(flat(nnm_trimmed_mean(models(X), 1)), 1.0)
    with pytest.raises(AggregationError, match="num_malicious"):
        nnm(models(X), 4)


def test_resists_planted_outliers_that_break_the_mean() -> None:
    X = honest_and_outliers(7, 3)
    ms = models(X)
    out = NNMTrimmedMean(num_malicious=3).combine(ms[0], ms[1:])
    assert [a.dtype for a in out] == [np.float32, np.float32] and [a.shape for a in out] == [(2,), (2, 2)]
    assert np.abs(flat(out) - 1.0).max() < 1.0  # the mean is at ~15.7
    assert np.abs(X.mean(0) - 1.0).min() > 10
    # f larger than the candidate set allows is capped at n - 1 (a peer with few neighbours)
    small = NNMTrimmedMean(num_malicious=9).aggregate(ms[:3])
    assert np.abs(flat(small) - 1.0).max() < 1.0


def test_malicious_comes_from_its_own_table() -> None:
    assert strategy_of(DefenseConfig(name="nnm_trimmed_mean"), 3) == NNMTrimmedMean(num_malicious=3)
    cfg = DefenseConfig(name="nnm_trimmed_mean", nnm_trimmed_mean=NNMTrimmedMeanConfig(malicious=1))
    assert strategy_of(cfg, 3) == NNMTrimmedMean(num_malicious=1)
