"""Issue 23 (model size): the weighted average streams one layer at a time
(bdfl.defense.aggregate) and must equal what it replaced exactly. (The audit's consensus median,
taken a block of columns at a time, is checked with the rest of the streamed statistics in
test_audit_streamed.py.)"""

from __future__ import annotations

import numpy as np
import pytest
from flwr.server.strategy.aggregate import aggregate as flower_aggregate

from bdfl.defense.aggregate import _restore_dtypes, weighted_average


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize("k", [1, 2, 5])
def test_streamed_weighted_average_equals_flowers_bit_for_bit(dtype: type, k: int) -> None:
    """weighted_average accumulates one layer at a time (no float64 copy of every model): the
    same values as Flower's aggregate over float64 copies, which it replaced."""
    rng = np.random.default_rng([k, np.dtype(dtype).itemsize])
    models = [[(rng.standard_normal((9, 4)) * 1e3).astype(dtype), (rng.standard_normal(5) * 1e-3).astype(dtype)] for _ in range(k)]
    raw = [float(x) for x in rng.random(k) * 10]
    if k > 2:
        raw[1] = 0.0  # a zero weight is left out, as before
    w = [x / sum(raw) for x in raw]
    want = _restore_dtypes(flower_aggregate([([a.astype(np.float64) for a in m], x) for m, x in zip(models, w) if x > 0]), models[0])
    got = weighted_average(models, raw)
    assert all(a.dtype == b.dtype and np.array_equal(a, b) for a, b in zip(got, want))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize("block", [1, 3, 7, 1 << 14])
def test_blockwise_weighted_average_equals_flowers_bit_for_bit(dtype: type, block: int) -> None:
    """The average a block of values at a time, written straight into the input dtype (layers
    longer and shorter than a block, a 0-d layer): Flower's values, cast as before."""
    from bdfl.defense.aggregate import _streamed_weighted

    rng = np.random.default_rng([block, np.dtype(dtype).itemsize])
    models = [[(rng.standard_normal((9, 4)) * 1e3).astype(dtype), (rng.standard_normal(5) * 1e-3).astype(dtype),
               np.asarray(rng.standard_normal() * 50).astype(dtype)] for _ in range(4)]
    raw = [float(x) for x in rng.random(4) * 10]
    w = [x / sum(raw) for x in raw]
    want = _restore_dtypes(flower_aggregate([([a.astype(np.float64) for a in m], x) for m, x in zip(models, w)]), models[0])
    got = _streamed_weighted(models, w, block=block)
    assert all(a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b) for a, b in zip(got, want))
