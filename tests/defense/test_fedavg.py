"""FedAvg: the weighted average of every update (no audit, no robustness)."""

from __future__ import annotations

import numpy as np

from bdfl.defense import strategy_of
from bdfl.config import DefenseConfig
from bdfl.defense.fedavg import FedAvg
from tests.defense.helpers import flat, honest_and_outliers, model, models, stack


def test_fedavg_is_the_weighted_mean_own_model_first() -> None:
    rng = np.random.default_rng(5)
    own, others = model(rng), [model(rng) for _ in range(4)]
    out = FedAvg().combine(own, others, [2.0, 1.0, 1.0, 1.0, 1.0])
    for i in range(2):
        ref = (2 * own[i].astype(np.float64) + stack(others, i).sum(axis=0)) / 6
        assert np.allclose(out[i], ref, atol=1e-6)
    uniform = FedAvg().combine(own, others)
    assert np.allclose(uniform[0], stack([own, *others], 0).mean(axis=0), atol=1e-6)
    assert FedAvg.uses_weights and not FedAvg.audited
    assert strategy_of(DefenseConfig(name="fedavg"), 3) == FedAvg()


def test_one_planted_outlier_drags_fedavg_away() -> None:
    """The baseline every robust rule is measured against: one model at 50 among 7 honest
    near 1 moves the mean by ~6."""
    out = flat(FedAvg().aggregate(models(honest_and_outliers(7, 1))))
    assert np.abs(out - 1.0).min() > 5
