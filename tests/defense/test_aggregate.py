"""The pure functions of bdfl.defense.aggregate against hand-computed / NumPy references
(each rule's own function is also tested beside its strategy: test_<strategy>.py)."""

from __future__ import annotations

import numpy as np
import pytest

from bdfl.defense.aggregate import AggregationError, check_models, flatten, pairwise_sq, weighted_average
from tests.defense.helpers import model, stack


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
    ms = [model(rng) for _ in range(6)]
    w = rng.uniform(0.1, 5, size=6)
    out = weighted_average(ms, w)
    for i in range(2):
        ref = np.tensordot(w / w.sum(), stack(ms, i), axes=1)
        assert np.allclose(out[i], ref, atol=1e-6)


def test_weighted_average_errors_and_no_mutation() -> None:
    rng = np.random.default_rng(1)
    a, b = model(rng), model(rng)
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


def test_check_models_flatten_and_pairwise_distances() -> None:
    with pytest.raises(AggregationError, match="model 1 has 1 arrays"):
        check_models([[np.zeros(2), np.zeros(1)], [np.zeros(2)]])
    m = [np.array([1.0, 2.0]), np.array([[3.0]])]
    assert np.array_equal(flatten(m), [1.0, 2.0, 3.0]) and flatten([]).size == 0
    X = np.random.default_rng(2).standard_normal((5, 4))
    brute = np.array([[np.sum((x - y) ** 2) for y in X] for x in X])
    assert np.allclose(pairwise_sq(X), brute) and (pairwise_sq(X) >= 0).all()


def test_library_edge_cases_an_outside_probe_found() -> None:
    """Used as a library: Krum picked the model holding NaN (its NaN score won Flower's argmin);
    a model of other dtypes was cast silently to model 0's; a bool mean of 1/3 came back True;
    make_strategy named a valid parameter as unknown beside a wrong one."""
    from bdfl.defense import make_strategy
    from bdfl.defense.aggregate import krum

    rng = np.random.default_rng(0)
    models = [[rng.standard_normal(4).astype(np.float32)] for _ in range(5)]
    models[3][0][1] = np.nan
    for f in (0, 1):
        assert np.isfinite(krum(models, f)[0]).all()
    with pytest.raises(AggregationError, match="every model holds NaN"):
        krum([models[3]], 0)
    with pytest.raises(AggregationError, match="model 1 array 0 has dtype float64, model 0 has float32"):
        check_models([models[0], [models[1][0].astype(np.float64)]])
    bools = [[np.array([True, False])], [np.array([False, False])], [np.array([True, True])]]
    assert weighted_average(bools)[0].tolist() == [True, False]
    with pytest.raises(AggregationError) as err:
        make_strategy("multikrum", num_malicious=0, keep=0)
    with pytest.raises(AggregationError, match=r"defense.bdfl.clip_k.*out of range"):  # at construction, not at the first aggregation
        make_strategy("bdfl", clip="band", clip_k=-1)
    assert "no parameter 'keep'" in str(err.value) and "'num_malicious'" not in str(err.value).split("has no parameter")[1].split("(")[0]
