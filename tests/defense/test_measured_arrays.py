"""Counters are not measured: parameter-space statistics (the audit's distances and directions,
near-copies, the replay sketch) leave out integer arrays next to floating ones, such as
BatchNorm's ``num_batches_tracked``. A clean run of a BatchNorm task had 40.9 % of its honest
updates rejected as ``republished`` while the counter counted (digits, 20 peers, seed 301)."""

from __future__ import annotations

import numpy as np

from bdfl.defense.aggregate import _difference_sq, difference_gram, measured_arrays, merge_copies
from bdfl.defense.audit import candidate_statistics
from bdfl.peer.republished import NEAR_REPUBLISHED, EarlierModels


def bn_model(w: np.ndarray, counter: int) -> list[np.ndarray]:
    """A BatchNorm-like state: weights, running statistics, the 0-d int64 batch counter, more weights."""
    return [w[:6].reshape(2, 3).astype(np.float32), w[6:8].astype(np.float32), np.array(counter, dtype=np.int64),
            w[8:].astype(np.float32)]


def test_measured_arrays_are_the_floating_ones_or_all() -> None:
    assert measured_arrays(bn_model(np.zeros(10), 3)) == [0, 1, 3]
    assert measured_arrays([np.zeros(3, np.int8), np.zeros(2, np.int8)]) == [0, 1]  # a quantized model: its weights
    assert measured_arrays([np.zeros(2, np.float64), np.zeros(1, np.bool_)]) == [0]


def test_distances_do_not_see_the_counter() -> None:
    rng = np.random.default_rng(0)
    w = rng.standard_normal(10)
    a, b = bn_model(w, 10), bn_model(w + 0.01, 14)
    G = difference_gram(a, [a, b])
    assert G is not None and np.sqrt(G[1, 1]) < 0.05  # the counter's 4 would be 16 in the square
    assert np.sqrt(_difference_sq([a, b])[0, 1]) < 0.05
    # an integer-only model still has its distances
    q = [np.array([1, 2, 3], np.int8)]
    assert _difference_sq([q, [np.array([1, 2, 5], np.int8)]])[0, 1] == 4.0
    # three near-copies with different counters still count once
    models = [bn_model(w + 1e-4 * k, 10 + k) for k in range(3)] + [bn_model(rng.standard_normal(10), 10) for _ in range(3)]
    kept, _ = merge_copies(models)
    assert len(kept) == 4


def test_the_audit_measures_moves_without_the_counter() -> None:
    """Two candidates with the same learned move and different step counts (2 and 6 batches) move
    alike and lie alike; with the counter their move lengths differed by a factor of ~3."""
    rng = np.random.default_rng(1)
    start = rng.standard_normal(10)
    ref = bn_model(start + 0.05 * rng.standard_normal(10), 104)
    moves = [0.05 * rng.standard_normal(10) for _ in range(5)]
    cands = [bn_model(start + m, 100 + steps) for m, steps in zip(moves, (2, 6, 4, 4, 4))]
    plain = [[a for k, a in enumerate(c) if k != 2] for c in cands]
    stats = candidate_statistics(ref, cands, bn_model(start, 100))
    base = candidate_statistics([a for k, a in enumerate(ref) if k != 2], plain, [a for k, a in enumerate(bn_model(start, 100)) if k != 2])
    for s, b in zip(stats, base):
        assert s is not None and b is not None
        assert s.update_ratio == b.update_ratio and s.distance == b.distance and s.cosine == b.cosine


def test_an_honest_batchnorm_update_is_not_taken_for_a_republished_one() -> None:
    """The case the clean run met: another trainer's earlier model carries the same batch count as the
    candidate (more steps a round earlier), so with the counter in the sketch the candidate lay far
    nearer to it than to its own start."""
    rng = np.random.default_rng(2)
    w0 = rng.standard_normal(10)
    earlier = bn_model(w0 + 0.05 * rng.standard_normal(10), 12)  # another trainer, round r - 1
    start = bn_model(w0, 10)
    cand = bn_model(w0 + 0.05 * rng.standard_normal(10), 12)  # 2 steps from the start
    models = EarlierModels(seed=3)
    models.add("0x01", earlier, author="0xother")
    assert models.near_share(cand, start, "0xme") > NEAR_REPUBLISHED


def test_a_free_rider_that_bumps_the_counter_is_still_caught() -> None:
    """The attacker who knows counters are not measured: it re-publishes another trainer's earlier
    model with its own batch count; the learned values are the copy's, so it lies at 0 of its move."""
    rng = np.random.default_rng(4)
    w0 = rng.standard_normal(10)
    earlier = bn_model(w0 + 0.05 * rng.standard_normal(10), 12)
    models = EarlierModels(seed=3)
    models.add("0x01", earlier, author="0xother")
    copy = [a.copy() for a in earlier]
    copy[2] = np.array(14, dtype=np.int64)
    assert not models.holds(copy)  # not the same bytes
    assert models.near_share(copy, bn_model(w0, 10), "0xfreerider") < NEAR_REPUBLISHED
    assert models.holds([a.copy() for a in earlier])  # the exact copy, counter and all
