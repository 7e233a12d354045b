"""Issue 23 (model size): the audit's consensus move is a column median taken a block of columns
at a time (bdfl.defense.audit._column_median), and the weighted average streams one layer at a
time (bdfl.defense.aggregate); both must equal what they replaced exactly."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.server.strategy.aggregate import aggregate as flower_aggregate

from bdfl.defense.aggregate import _restore_dtypes, weighted_average
from bdfl.defense.audit import _column_median


@pytest.mark.parametrize(("n", "k", "block"), [(1, 1, 4), (10, 3, 4), (1000, 4, 1000), (1001, 9, 100), (70_000, 19, 1 << 16)])
def test_blockwise_median_equals_the_stacked_median_bit_for_bit(n: int, k: int, block: int) -> None:
    rng = np.random.default_rng([n, k])
    rows = [rng.standard_normal(n) * 10.0 ** rng.integers(-6, 6) for _ in range(k)]
    if n > 5:
        rows[0][3] = np.nan  # a NaN makes its own column NaN, as np.median does
        rows[-1][5] = np.inf
    kept = [r.copy() for r in rows]
    want = np.median(np.stack(rows), axis=0)
    got = _column_median(rows, block=block)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert np.array_equal(got, want, equal_nan=True)
    assert all(np.array_equal(r, c, equal_nan=True) for r, c in zip(rows, kept))  # inputs untouched


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
