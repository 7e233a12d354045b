"""Issue 23 (model size): the audit's consensus move is a column median taken a block of columns
at a time (bdfl.defense.audit._column_median); it must equal the whole-stack median exactly."""

from __future__ import annotations

import numpy as np
import pytest

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
