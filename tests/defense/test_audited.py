"""BDFL's audited strategy: reputation weights, the clear-approval filter, the weighted average."""

from __future__ import annotations

import numpy as np
import pytest

from bdfl import config
from bdfl.config import DefenseConfig
from bdfl.defense import strategy_of
from bdfl.defense.aggregate import AggregationError
from bdfl.defense.audited import WEIGHTINGS, Audited, clear_approval, update_weight
from tests.defense.helpers import model, stack


def test_update_weight_by_reputation_and_capped_samples() -> None:
    assert update_weight(0.5, 40) == 0.5  # reputation alone by default
    assert update_weight(0.5, 40, "reputation_samples") == 20.0
    # samples come capped from the chain; weight grows with both factors
    assert update_weight(0.8, 10, "reputation_samples") > update_weight(0.4, 10, "reputation_samples")
    assert update_weight(0.4, 20, "reputation_samples") > update_weight(0.4, 10, "reputation_samples")
    assert update_weight(0.0, 10, "reputation_samples") == 1e-6  # never zero: a model is not dropped by weight
    with pytest.raises(AggregationError, match="unknown weighting"):
        update_weight(0.5, 1, "samples")
    with pytest.raises(AggregationError, match="bad weight"):
        update_weight(float("nan"), 1)


def test_clear_approval() -> None:
    assert clear_approval(8, 0, 0.0) and clear_approval(0, 0, 0.0)  # no votes: nothing to hold against it
    assert not clear_approval(7, 1, 0.0) and clear_approval(7, 1, 1 / 8) and not clear_approval(6, 2, 1 / 8)
    assert clear_approval(5, 3, 1.0)
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(AggregationError):
            clear_approval(8, 0, bad)
    with pytest.raises(AggregationError):
        clear_approval(-1, 0)


def test_audited_averages_own_and_approved_by_reputation() -> None:
    rng = np.random.default_rng(6)
    own, approved = model(rng), [model(rng) for _ in range(3)]
    reps = [0.9, 0.5, 0.2]
    weights = [1.0, *(update_weight(r, 10) for r in reps)]
    out = Audited().combine(own, approved, weights)
    for i in range(2):
        ref = (own[i].astype(np.float64) + sum(r * a[i].astype(np.float64) for r, a in zip(reps, approved))) / (1 + sum(reps))
        assert np.allclose(out[i], ref, atol=1e-6)
    # a low-reputation outlier barely moves it
    outlier = [np.full_like(a, 100.0) for a in own]
    moved = Audited().combine(own, [outlier], [1.0, update_weight(0.0, 10)])
    assert np.abs(moved[0] - own[0]).max() < 1e-3
    assert Audited.audited and Audited.uses_weights and strategy_of(DefenseConfig()) == Audited()
    assert np.allclose(Audited().aggregate([own, *approved])[0], stack([own, *approved], 0).mean(0), atol=1e-6)


def test_config_repeats_the_weightings() -> None:
    # config.py repeats the names so that validation does not import flwr
    assert config.WEIGHTINGS == WEIGHTINGS
