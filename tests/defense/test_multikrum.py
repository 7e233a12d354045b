"""Multi-Krum averages the best Krum scores (default: n - f of them)."""

from __future__ import annotations

import numpy as np
import pytest

from bdfl.config import DefenseConfig, MultiKrumConfig
from bdfl.defense import strategy_of
from bdfl.defense.aggregate import AggregationError, krum
from bdfl.defense.multikrum import MultiKrum
from tests.defense.helpers import model, stack


def test_multikrum_averages_the_best() -> None:
    rng = np.random.default_rng(3)
    honest = [model(rng, 0.0, 0.1) for _ in range(4)]
    ms = honest + [model(rng, 50.0, 0.1)]
    out = krum(ms, num_malicious=1, multi_k=4)
    for i in range(2):
        assert np.allclose(out[i], stack(honest, i).mean(axis=0), atol=1e-6)
    default = MultiKrum(num_malicious=1).aggregate(ms)  # keeps n - f = 4
    assert all(np.allclose(a, b) for a, b in zip(default, out))
    two = MultiKrum(num_malicious=1, multi_k=2).aggregate(ms)
    assert np.abs(two[0]).max() < 1  # two honest ones
    with pytest.raises(AggregationError, match="multi_k"):
        krum(ms, 1, multi_k=9)
    with pytest.raises(AggregationError, match="multi_k"):
        MultiKrum(multi_k=0)


def test_keep_and_malicious_come_from_its_own_table() -> None:
    cfg = DefenseConfig(name="multikrum", multikrum=MultiKrumConfig(malicious=2, keep=3))
    assert strategy_of(cfg, 5) == MultiKrum(num_malicious=2, multi_k=3)
    assert strategy_of(DefenseConfig(name="multikrum"), 5) == MultiKrum(num_malicious=5, multi_k=None)
