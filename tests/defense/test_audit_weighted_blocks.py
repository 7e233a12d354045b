"""Issue 23 (s/round at N = 100): the weighted average behind every start rebuild of the audit
(and every aggregation) lays the models' arrays end to end and averages a block of values of
every model at a time (one gather, one multiply, one add per model), instead of two calls per
model and layer. It must give what the per-layer version of 3510275 gave, bit for bit, and
``check_models`` must accept, refuse and return what it did.

The per-layer version and the old ``check_models`` are copied below verbatim (3510275)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest
from flwr.server.strategy.aggregate import aggregate as flower_aggregate

from bdfl.defense.aggregate import AggregationError, _restore_dtypes, _streamed_weighted, check_models, weighted_average
from bdfl.types import NDArrays


# ---- 3510275, verbatim -------------------------------------------------------------------
def _old_check_models(models: Sequence[NDArrays]) -> list[NDArrays]:
    if len(models) == 0:
        raise AggregationError("cannot aggregate an empty list of models")
    first = models[0]
    for k, model in enumerate(models):
        if len(model) != len(first):
            raise AggregationError(f"model {k} has {len(model)} arrays, model 0 has {len(first)}")
        for i, (a, b) in enumerate(zip(model, first)):
            if np.shape(a) != np.shape(b):
                raise AggregationError(f"model {k} array {i} has shape {np.shape(a)}, model 0 has {np.shape(b)}")
    return [[np.asarray(a) for a in m] for m in models]


def _old_streamed_weighted(models: Sequence[NDArrays], w: Sequence[float], block: int = 1 << 14) -> NDArrays:
    kept = [(m, x) for m, x in zip(models, w) if x > 0]
    total = sum(x for _, x in kept)  # as Flower: sum(), not fsum
    out: NDArrays = []
    size = max((np.size(a) for a in models[0]), default=0) if kept else 0
    acc_buf, tmp_buf = np.empty(min(block, size) or 1), np.empty(min(block, size) or 1)
    for i in range(len(kept[0][0]) if kept else 0):
        ref = np.asarray(models[0][i])
        res = np.empty(ref.shape, dtype=ref.dtype)
        dst = res.reshape(-1)
        flats = [(np.asarray(m[i]).reshape(-1), x) for m, x in kept]
        integer = ref.dtype.kind in "iub"  # bools rounded too since an outside probe (a mean of 1/3 had cast to True)
        for a in range(0, len(dst), block):
            b = min(a + block, len(dst))
            acc, tmp = acc_buf[: b - a], tmp_buf[: b - a]
            np.multiply(flats[0][0][a:b], flats[0][1], out=acc, dtype=np.float64)
            for f, x in flats[1:]:
                np.multiply(f[a:b], x, out=tmp, dtype=np.float64)
                acc += tmp
            acc /= total
            if integer:
                np.rint(acc, out=acc)
            np.copyto(dst[a:b], acc, casting="unsafe")
        out.append(res)
    return out


def _old_weighted_average(models: Sequence[NDArrays], weights: Sequence[float]) -> NDArrays:
    models = _old_check_models(models)
    w = [float(x) for x in weights]
    total = math.fsum(w)
    return _old_streamed_weighted(models, [x / total for x in w])


# ------------------------------------------------------------------------------------------


def _same_bits(got: NDArrays, want: NDArrays) -> bool:
    """Equal dtypes, shapes and bytes (so -0.0 != 0.0 and NaN payloads count)."""
    return len(got) == len(want) and all(
        isinstance(a, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
        for a, b in zip(got, want))


def _model(rng: np.random.Generator, layout: str) -> NDArrays:
    if layout == "mlp":  # the digits MLP of the N = 100 benchmark: 4,810 values, float32
        return [(rng.standard_normal(s) * 0.3).astype(np.float32) for s in ((64, 64), (64,), (10, 64), (10,))]
    if layout == "mixed":  # several dtypes, a 0-d and an empty layer, one longer than a block
        return [(rng.standard_normal((9, 4)) * 1e3).astype(np.float32),
                np.asarray(rng.standard_normal() * 50),
                np.zeros((0, 3), dtype=np.float32),
                rng.integers(-(2**62), 2**62, size=7, dtype=np.int64),  # not exact in float64: rounds as before
                (rng.standard_normal(40) * 1e-3).astype(np.float16),
                rng.integers(0, 255, size=(3, 2), dtype=np.uint8),
                rng.integers(-50, 50, size=5, dtype=np.int32),
                rng.random(6) > 0.5,
                rng.standard_normal(33)]
    if layout == "odd":  # non-contiguous, read-only, a list, values that cancel
        base = rng.standard_normal((8, 6)).astype(np.float32)
        ro = np.frombuffer(rng.standard_normal(12).astype(np.float64).tobytes(), dtype=np.float64).reshape(3, 4)
        return [base.T, base[::2, 1:5], ro, [1.5, -2.25, float(rng.standard_normal())], np.array([1e16, -1e16, 1.0, -0.0])]
    raise AssertionError(layout)


@pytest.mark.parametrize("layout", ["mlp", "mixed", "odd"])
@pytest.mark.parametrize("k", [1, 2, 5, 25])
@pytest.mark.parametrize("block", [1, 3, 7, 64, 5000, 1 << 14])
def test_block_gathered_average_equals_per_layer_bit_for_bit(layout: str, k: int, block: int) -> None:
    rng = np.random.default_rng([k, block, len(layout)])
    models = [_model(rng, layout) for _ in range(k)]
    raw = [float(x) for x in rng.random(k) * 10]
    if k > 2:
        raw[0] = 0.0  # model 0 left out (its dtypes and shapes still shape the result)
        raw[2] = 0.0
    total = math.fsum(raw)
    w = [x / total for x in raw]
    checked_old, checked_new = _old_check_models(models), check_models(models)
    want = _old_streamed_weighted(checked_old, w, block=block)
    got = _streamed_weighted(checked_new, w, block=block)
    assert _same_bits(got, want)
    assert all(a.flags.writeable for a in got)
    assert _same_bits(weighted_average(models, raw), _old_weighted_average(models, raw))


def test_benchmark_sized_average_equals_flowers() -> None:
    """25 neighbours' MLPs (a start rebuild at N = 100, degree 24): Flower's aggregate over
    float64 copies, cast back as before."""
    rng = np.random.default_rng(23)
    models = [_model(rng, "mlp") for _ in range(25)]
    raw = [float(x) for x in rng.integers(100, 200, size=25)]
    w = [x / math.fsum(raw) for x in raw]
    want = _restore_dtypes(flower_aggregate([([a.astype(np.float64) for a in m], x) for m, x in zip(models, w)]), models[0])
    assert _same_bits(weighted_average(models, raw), want)


def test_inputs_are_not_changed_and_results_are_fresh() -> None:
    rng = np.random.default_rng(5)
    models = [_model(rng, "mixed") for _ in range(4)]
    before = [[a.copy() for a in m] for m in models]
    got = weighted_average(models, [1.0, 2.0, 3.0, 4.0])
    assert all(_same_bits(m, b) for m, b in zip(models, before))
    assert not any(np.shares_memory(g, a) for g in got for m in models for a in m)


def test_check_models_answers_as_before() -> None:
    rng = np.random.default_rng(7)
    good = [_model(rng, "odd") for _ in range(3)]
    new, old = check_models(good), _old_check_models(good)
    for m_new, m_old, m_in in zip(new, old, good):
        for a, b, src in zip(m_new, m_old, m_in):
            assert type(a) is type(b) is np.ndarray and a.dtype == b.dtype and np.array_equal(a, b)
            assert (a is src) == (b is src)  # plain arrays passed through, the rest converted
    sub = np.ma.masked_array(np.ones(3))  # an ndarray subclass: np.asarray's plain view, as before
    assert type(check_models([[sub]])[0][0]) is type(_old_check_models([[sub]])[0][0]) is np.ndarray
    bad = [
        [],
        [good[0], good[1][:-1]],
        [good[0], [*good[1][:2], np.zeros((4, 3))] + good[1][3:]],
        [good[0], [*good[1][:3], [1.0, 2.0]] + good[1][4:]],
        [[np.zeros(2)], [np.zeros((2, 1))]],
        [[np.zeros(())], [[0.0]]],
    ]
    for models in bad:
        with pytest.raises(AggregationError) as e_new:
            check_models(models)
        with pytest.raises(AggregationError) as e_old:
            _old_check_models(models)
        assert str(e_new.value) == str(e_old.value)
