"""Aggregation rules against hand-computed / NumPy references."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from bdfl.learning.aggregation import (
    AGGREGATORS,
    AggregationError,
    aggregate,
    coordinate_median,
    krum,
    krum_scores,
    trimmed_mean,
    validate_aggregator,
    weighted_average,
)


def _model(rng: np.random.Generator, center: float = 0.0, scale: float = 1.0) -> list[np.ndarray]:
    return [
        (center + scale * rng.standard_normal((3, 4))).astype(np.float32),
        (center + scale * rng.standard_normal(5)).astype(np.float32),
    ]


def _stack(models: list[list[np.ndarray]], i: int) -> np.ndarray:
    return np.stack([m[i].astype(np.float64) for m in models])


def test_weighted_average_matches_hand_computation() -> None:
    a = [np.array([1.0, 2.0], np.float32), np.array([[0.0]], np.float32)]
    b = [np.array([3.0, 6.0], np.float32), np.array([[4.0]], np.float32)]
    out = weighted_average([a, b], [1.0, 3.0])
    assert np.allclose(out[0], [2.5, 5.0]) and np.allclose(out[1], [[3.0]])
    assert out[0].dtype == np.float32 and out[1].shape == (1, 1)
    # None = uniform; weights need not sum to 1
    assert np.allclose(weighted_average([a, b])[0], [2.0, 4.0])
    assert np.allclose(weighted_average([a, b], [10, 10])[0], [2.0, 4.0])
    # zero weight drops a model
    assert np.allclose(weighted_average([a, b], [0.0, 2.0])[0], b[0])


def test_weighted_average_random_vs_numpy() -> None:
    rng = np.random.default_rng(0)
    models = [_model(rng) for _ in range(6)]
    w = rng.uniform(0.1, 5, size=6)
    out = weighted_average(models, w)
    for i in range(2):
        ref = np.tensordot(w / w.sum(), _stack(models, i), axes=1)
        assert np.allclose(out[i], ref, atol=1e-6)


def test_weighted_average_errors_and_no_mutation() -> None:
    rng = np.random.default_rng(1)
    a, b = _model(rng), _model(rng)
    a_copy = [x.copy() for x in a]
    weighted_average([a, b], [1, 2])
    assert all(np.array_equal(x, y) for x, y in zip(a, a_copy))
    with pytest.raises(AggregationError, match=">= 0"):
        weighted_average([a, b], [1, -1])
    with pytest.raises(AggregationError, match="sum to zero"):
        weighted_average([a, b], [0, 0])
    with pytest.raises(AggregationError, match="2 weights for 1 models"):
        weighted_average([a], [1, 1])
    with pytest.raises(AggregationError, match="shape"):
        weighted_average([a, [a[0], np.zeros(6, np.float32)]])
    with pytest.raises(AggregationError, match="empty"):
        weighted_average([])


def test_integer_layers_stay_integer() -> None:
    a = [np.array([1.0]), np.array([2], np.int64)]
    b = [np.array([2.0]), np.array([5], np.int64)]
    out = weighted_average([a, b])
    assert out[1].dtype == np.int64 and out[1][0] in (3, 4)


def test_krum_picks_the_non_outlier() -> None:
    rng = np.random.default_rng(2)
    honest = [_model(rng, 0.0, 0.1) for _ in range(5)]
    outliers = [_model(rng, 10.0, 0.1), _model(rng, -8.0, 3.0)]
    models = honest[:2] + outliers + honest[2:]
    chosen = krum(models, num_malicious=2)
    matches = [k for k, m in enumerate(models) if all(np.array_equal(x, y) for x, y in zip(chosen, m))]
    assert len(matches) == 1 and matches[0] not in (2, 3)
    # the chosen one has the smallest brute-force Krum score
    flat = [np.concatenate([a.ravel().astype(np.float64) for a in m]) for m in models]
    k = len(models) - 2 - 2
    brute = [sorted(float(np.sum((f - g) ** 2)) for j, g in enumerate(flat) if j != i)[:k] for i, f in enumerate(flat)]
    brute_scores = np.array([sum(s) for s in brute])
    assert np.allclose(krum_scores(models, 2), brute_scores, rtol=1e-6)
    assert matches[0] == int(np.argmin(brute_scores))


def test_multikrum_averages_the_best() -> None:
    rng = np.random.default_rng(3)
    honest = [_model(rng, 0.0, 0.1) for _ in range(4)]
    models = honest + [_model(rng, 50.0, 0.1)]
    out = krum(models, num_malicious=1, multi_k=4)
    for i in range(2):
        assert np.allclose(out[i], _stack(honest, i).mean(axis=0), atol=1e-6)
    with pytest.raises(AggregationError, match="multi_k"):
        krum(models, 1, multi_k=9)


def test_coordinate_median_and_trimmed_mean_vs_references() -> None:
    rng = np.random.default_rng(4)
    models = [_model(rng) for _ in range(7)]
    med = coordinate_median(models)
    tm = trimmed_mean(models, 0.2)
    for i in range(2):
        assert np.allclose(med[i], np.median(_stack(models, i), axis=0), atol=1e-6)
        assert np.allclose(tm[i], stats.trim_mean(_stack(models, i), 0.2, axis=0), atol=1e-6)
    # robust to one huge outlier
    evil = [[np.full_like(a, 1e6) for a in models[0]]]
    med2 = coordinate_median(models[:6] + evil)
    assert np.abs(med2[0]).max() < 10
    assert np.abs(trimmed_mean(models[:6] + evil, 0.2)[0]).max() < 10
    with pytest.raises(AggregationError, match="beta"):
        trimmed_mean(models, 0.5)


def test_aggregate_dispatch() -> None:
    rng = np.random.default_rng(5)
    own = _model(rng)
    others = [_model(rng) for _ in range(4)]
    out = aggregate("bdfl", own, others, [2.0, 1.0, 1.0, 1.0, 1.0])
    for i in range(2):
        ref = (2 * own[i].astype(np.float64) + _stack(others, i).sum(axis=0)) / 6
        assert np.allclose(out[i], ref, atol=1e-6)
    fed = aggregate("fedavg", own, others)
    assert np.allclose(fed[0], _stack([own, *others], 0).mean(axis=0), atol=1e-6)
    med = aggregate("median", own, others)
    assert np.allclose(med[1], np.median(_stack([own, *others], 1), axis=0), atol=1e-6)
    kr = aggregate("krum", own, others, num_malicious=1)
    assert any(all(np.array_equal(x, y) for x, y in zip(kr, m)) for m in [own, *others])
    mk = aggregate("multikrum", own, others, num_malicious=1)  # keeps n - f = 4 of 5
    assert mk[0].shape == own[0].shape
    tm = aggregate("trimmed_mean", own, others, beta=0.2)
    assert np.allclose(tm[0], stats.trim_mean(_stack([own, *others], 0), 0.2, axis=0), atol=1e-6)


def test_aggregate_without_others_copies_own() -> None:
    own = [np.arange(3.0)]
    for method in AGGREGATORS:
        out = aggregate(method, own, [])
        assert np.array_equal(out[0], own[0]) and out[0] is not own[0]


def test_aggregate_errors() -> None:
    own = [np.zeros(2)]
    with pytest.raises(AggregationError, match="unknown aggregation method 'avg'") as info:
        aggregate("avg", own, [own])
    assert "fedavg" in info.value.fix and "krum" in info.value.fix
    with pytest.raises(AggregationError, match="no parameter 'beta'"):
        aggregate("krum", own, [own], beta=0.1)
    with pytest.raises(AggregationError, match="own model first"):
        aggregate("bdfl", own, [own], [1.0])
    with pytest.raises(AggregationError, match="does not take weights"):
        aggregate("median", own, [own], [1.0, 1.0])
    with pytest.raises(AggregationError, match="num_malicious"):
        validate_aggregator("krum", {"num_malicious": -1})
    assert validate_aggregator("trimmed_mean") == {"beta": 0.1}
    assert set(AGGREGATORS) == {"bdfl", "fedavg", "krum", "multikrum", "median", "trimmed_mean",
                                "geometric_median", "centered_clipping", "nnm_trimmed_mean"}


def test_update_weight_by_reputation_and_capped_samples() -> None:
    from bdfl.learning.aggregation import update_weight

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
    from bdfl.learning.aggregation import clear_approval

    assert clear_approval(8, 0, 0.0) and clear_approval(0, 0, 0.0)  # no votes: nothing to hold against it
    assert not clear_approval(7, 1, 0.0) and clear_approval(7, 1, 1 / 8) and not clear_approval(6, 2, 1 / 8)
    assert clear_approval(5, 3, 1.0)
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(AggregationError):
            clear_approval(8, 0, bad)
    with pytest.raises(AggregationError):
        clear_approval(-1, 0)
