"""The trigger scan's batched prediction and vectorised flip shares give exactly what one
predict per input set and a per-class loop gave (a performance change only: same votes)."""

from __future__ import annotations

import numpy as np

from bdfl.defense.detectors import trigger
from clients import digits


def _flip_shares_loop(clean: np.ndarray, stamped: np.ndarray, num_classes: int) -> np.ndarray:
    out = np.zeros((stamped.shape[0], num_classes))
    for c in range(num_classes):
        others = clean != c
        if others.any():
            out[:, c] = (stamped[:, others] == c).mean(axis=1)
    return out


def test_flip_shares_equal_the_per_class_loop_bit_for_bit() -> None:
    rng = np.random.default_rng(3)
    for _ in range(200):
        n, p, k = int(rng.integers(1, 40)), int(rng.integers(1, 20)), int(rng.integers(2, 12))
        clean = rng.integers(0, k, n)
        if rng.random() < 0.3:
            clean[:] = int(rng.integers(0, k))  # one class everywhere: its column is 0
        stamped = rng.integers(0, k, (p, n))
        got, want = trigger.flip_shares(clean, stamped, k), _flip_shares_loop(clean, stamped, k)
        assert got.shape == want.shape and np.array_equal(got, want)


def test_scan_labels_equal_two_separate_predictions() -> None:
    rng = np.random.default_rng(5)
    X = rng.random((12, 64)) * 16
    client = digits.make_client((X.astype(np.float32), rng.integers(0, 10, 12)), (X[:4].astype(np.float32), rng.integers(0, 10, 4)), seed=1)
    own = client.get_parameters({})
    cands = [[a + rng.normal(0, s, a.shape).astype(a.dtype) for a in own] for s in (0.05, 0.5, 2.0)]
    images = X.reshape(-1, 8, 8)
    family = trigger.trigger_family(8, 8, 0.0, 16.0, 16, np.random.default_rng(9))
    ev = trigger.scan(lambda p, x: client.predict(list(p), x), images, own, cands, [True, False, True], family)
    flat = np.concatenate([trigger.apply_stamp(images, s) for s in family])

    def reference(params: list[np.ndarray]) -> np.ndarray:
        return _flip_shares_loop(client.predict(params, images), client.predict(params, flat).reshape(len(family), len(images)), 10)

    assert ev is not None and np.array_equal(ev.own, reference(own)[:, : ev.own.shape[1]])
    assert ev.candidates[1] is None
    for i in (0, 2):
        assert np.array_equal(ev.candidates[i], reference(cands[i])[:, : ev.candidates[i].shape[1]])
