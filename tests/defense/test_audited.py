"""BDFL's audited strategy: reputation weights, the clear-approval filter, the weighted average."""

from __future__ import annotations

import numpy as np
import pytest

from bdfl import config
from bdfl.config import DefenseConfig
from bdfl.defense import strategy_of
from bdfl.defense.aggregate import AggregationError, merge_copies
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


def test_copies_count_once() -> None:
    """Mimic (Karimireddy et al.): attackers send copies of one honest model to over-represent
    its data. Copies merge into their first occurrence with the group's largest weight; a model
    that differs in one value is not a copy."""
    rng = np.random.default_rng(0)
    honest = [model(rng) for _ in range(6)]
    extreme = model(rng, center=5.0)
    own = honest[0]
    once = Audited().combine(own, [*honest[1:], extreme], [1.0] * 7)
    mimicked = Audited().combine(own, [*honest[1:], extreme, *[[a.copy() for a in extreme] for _ in range(7)]],
                                 [1.0] * 7 + [0.4] * 7)
    assert all(np.array_equal(a, b) for a, b in zip(once, mimicked))  # seven copies changed nothing
    plain = stack([*honest, *[extreme] * 8], 0).mean(axis=0)
    assert not np.allclose(mimicked[0], plain, atol=0.1)  # what they would have done counted as models
    # the largest weight of a group is kept; the first member's position too (own model first)
    models_, w = merge_copies([own, honest[1], [a.copy() for a in own]], [0.5, 1.0, 2.0])
    assert len(models_) == 2 and models_[0] is own and w == [2.0, 1.0]
    nudged = [a.copy() for a in extreme]
    nudged[0].reshape(-1)[-1] += 1e-3  # one value changed: a different model, left to the audit
    assert len(merge_copies([extreme, nudged])[0]) == 2
    assert merge_copies([extreme, [a.copy() for a in extreme]])[1] is None  # no weights in, none out


def test_copies_that_share_the_sampled_values_but_differ_are_kept() -> None:
    """The fingerprint samples a few values per array; equality decides."""
    a = [np.zeros(1000, dtype=np.float32)]
    b = [np.zeros(1000, dtype=np.float32)]
    b[0][1] = 1.0  # not a sampled position (stride 62)
    models, _ = merge_copies([a, b])
    assert len(models) == 2
    with pytest.raises(AggregationError, match="weights for"):
        merge_copies([a, b], [1.0])
