"""Near-copies count once (issue 22: Mimic with a little noise at 45 %): the scale
(:func:`typical_distance`), the grouping (:func:`copy_groups`), the audit that calibrates on one
value per group and the aggregation that weighs a group once (:func:`merge_copies`)."""

from __future__ import annotations

import numpy as np
import pytest

import bdfl.defense.audit as audit
from bdfl.defense.aggregate import difference_gram, merge_copies, weighted_average
from bdfl.defense.audit import AuditRule, candidate_statistics, judge
from bdfl.defense.detectors.calibration import NEAR_COPY, copy_groups, typical_distance
from bdfl.learning.task import EvalResult

DIM = 400


def _sq(points: np.ndarray) -> np.ndarray:
    sq = np.sum(points**2, axis=1)
    return np.maximum(sq[:, None] + sq[None, :] - 2 * points @ points.T, 0.0)


def _dist(points: np.ndarray) -> np.ndarray:
    return np.sqrt(_sq(points))


def _honest(n: int, rng: np.random.Generator) -> np.ndarray:
    """Models trained on different data: a shared move plus each one's own (unit-scale) part."""
    return np.ones(DIM) / np.sqrt(DIM) + rng.standard_normal((n, DIM)) / np.sqrt(DIM)


def test_typical_distance_resists_far_models_and_a_cluster_of_half() -> None:
    rng = np.random.default_rng(0)
    honest = _honest(11, rng)
    base = typical_distance(_dist(honest))
    assert base == pytest.approx(np.sqrt(2), rel=0.15)  # two unit-scale parts apart
    far = np.vstack([honest, 50 + rng.standard_normal((9, DIM))])  # 45 % far off
    assert typical_distance(_dist(far)) < 1.5 * base
    # 9 copies of honest[0] with 1 % noise: with the copied model the cluster is half of the 20 models
    copies = honest[0] + 0.01 * rng.standard_normal((9, DIM)) / np.sqrt(DIM)
    assert typical_distance(_dist(np.vstack([honest, copies]))) > 0.7 * base


def test_copy_groups_groups_near_copies_and_no_honest_pair() -> None:
    rng = np.random.default_rng(1)
    honest = _honest(11, rng)
    copies = honest[3] + 0.01 * rng.standard_normal((9, DIM)) / np.sqrt(DIM)
    group = copy_groups(_sq(np.vstack([honest, copies])))
    assert group[:11].tolist() == list(range(11))  # every honest model its own
    assert group[11:].tolist() == [3] * 9  # the copies count as the model they copy
    assert copy_groups(_sq(honest)).tolist() == list(range(11))
    exact = np.vstack([honest, honest[5], honest[5]])
    assert copy_groups(_sq(exact))[11:].tolist() == [5, 5]


def test_a_chain_of_colluders_cannot_merge_honest_models() -> None:
    """Colluders placed on the line between two honest models, each within the bar of the next:
    single linkage would join the two honest models through them; complete linkage does not."""
    rng = np.random.default_rng(2)
    honest = _honest(12, rng)
    a, b = honest[0], honest[1]
    bar = NEAR_COPY * typical_distance(_dist(honest))
    steps = int(np.ceil(np.linalg.norm(b - a) / (0.9 * bar)))
    chain = np.array([a + (b - a) * t for t in np.linspace(0, 1, steps + 1)[1:-1]])
    group = copy_groups(_sq(np.vstack([honest, chain])))
    assert group[0] != group[1] and group[0] == 0 and group[1] == 1
    assert len(set(group[:12].tolist())) == 12  # no two honest models grouped
    # the chain between the two in index order too (b is tested after the links that reach it:
    # above, b comes before any link, so single linkage would pass there as well)
    stacked = np.vstack([a[None], chain, b[None], honest[2:]])
    group = copy_groups(_sq(stacked))
    ib = 1 + len(chain)
    honest_at = [0, ib, *range(ib + 1, len(stacked))]
    assert group[0] == 0 and group[ib] == ib
    assert len({int(group[i]) for i in honest_at}) == len(honest_at)


def _audit(honest: np.ndarray, copies: np.ndarray, trained: np.ndarray) -> list[audit.AuditVerdict]:
    start = [np.zeros(DIM)]
    cands = [[v] for v in np.vstack([honest, copies])]
    stats = candidate_statistics([trained], cands, start)
    same = EvalResult(loss=0.5, num_examples=200, accuracy=0.8, metrics={})  # the data say nothing here
    return judge(AuditRule(), same, [same] * len(cands), stats)


def test_a_cluster_just_under_half_does_not_make_honest_models_outliers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The attacker who knows the audit's statistics: nine copies of one honest model, each with
    its own 1 % noise (so not identical), among ten other honest candidates. Counted each, they
    make the spreads their own width and the honest candidates fail; counted once, they do not."""
    rng = np.random.default_rng(3)
    honest = _honest(11, rng)
    trained, honest = honest[0], honest[1:]
    copies = honest[0] + 0.01 * rng.standard_normal((9, DIM)) / np.sqrt(DIM)
    verdicts = _audit(honest, copies, trained)
    assert [v.stats.copy_of for v in verdicts[10:]] == [0] * 9
    assert all(v.accept for v in verdicts[:10])
    monkeypatch.setattr(audit, "near_copies", lambda ref, cand, block=0: np.arange(len(cand)))
    counted_each = _audit(honest, copies, trained)
    assert sum(not v.accept for v in counted_each[:10]) >= 3


def test_merge_copies_weighs_a_group_of_near_copies_once() -> None:
    rng = np.random.default_rng(4)
    honest = _honest(6, rng)
    own, others = honest[0], honest[1:]
    copies = others[0] + 0.01 * rng.standard_normal((4, DIM)) / np.sqrt(DIM)
    models = [[v.astype(np.float32)] for v in [own, *others, *copies]]
    weights = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 0.5, 0.5, 0.5]
    kept, w = merge_copies(models, weights)
    assert len(kept) == 6 and kept[0] is models[0] and kept[1] is models[1]
    assert w == [1.0, 2.0, 1.0, 1.0, 1.0, 1.0]  # the group's largest weight
    # honest models alone: nothing merged, the same average as before
    alone, w_alone = merge_copies(models[:6], weights[:6])
    assert len(alone) == 6 and w_alone == weights[:6]
    np.testing.assert_array_equal(weighted_average(alone, w_alone)[0], weighted_average(models[:6], weights[:6])[0])


def test_three_models_are_enough_to_find_near_copies() -> None:
    """The smallest federation's aggregation: the peer's own model and two near-copies of one other
    model (three models, the least copy_groups judges) keep two models, the copy counted once."""
    rng = np.random.default_rng(5)
    own = rng.standard_normal(DIM)
    x = own + rng.standard_normal(DIM)  # about sqrt(DIM) away from own
    near = x + 1e-4 * rng.standard_normal(DIM)
    models, weights = merge_copies([[own], [x], [near]], [1.0, 0.5, 0.7])
    assert len(models) == 2 and np.array_equal(models[0][0], own) and np.array_equal(models[1][0], x)
    assert weights == [1.0, 0.7]  # the group's largest weight


def test_near_copies_do_not_narrow_the_bars_of_the_auditors_data_tests() -> None:
    """Nine noisy copies of one honest candidate among ten honest ones whose accuracy and loss on
    the auditor's data vary as honest ones do: the loss and shift bars are calibrated on the
    sample with the copies counted once (Evidence.values), so no honest candidate fails. Counted
    each, the copies' identical scores make the spreads theirs and honest ones fail."""
    rng = np.random.default_rng(7)
    nh, nc = 10, 9
    h = np.ones(DIM) / np.sqrt(DIM) + rng.standard_normal((nh + 1, DIM)) / np.sqrt(DIM)
    trained, honest = h[0], h[1:]
    copies = honest[0] + 0.01 * rng.standard_normal((nc, DIM)) / np.sqrt(DIM)
    cands = [[v] for v in np.vstack([honest, copies])]
    acc = list(0.8 + 0.03 * rng.standard_normal(nh))
    loss = list(0.5 * np.exp(0.15 * rng.standard_normal(nh)))
    acc += [acc[0] + 1e-4 * rng.standard_normal() for _ in range(nc)]
    loss += [loss[0] * (1 + 1e-4 * rng.standard_normal()) for _ in range(nc)]
    results = [EvalResult(loss=lo, num_examples=2000, accuracy=a, metrics={}) for a, lo in zip(acc, loss)]
    stats = candidate_statistics([trained], cands, [np.zeros(DIM)])
    reference = EvalResult(loss=0.5, num_examples=2000, accuracy=0.8, metrics={})
    verdicts = judge(AuditRule(), reference, results, stats)
    assert all(v.accept for v in verdicts[:nh]), [v.failed for v in verdicts[:nh]]


def test_the_small_sample_widening_counts_near_copies_once() -> None:
    """k_for: the bar's widening for few candidates uses the calibration sample (six valid
    candidates, three of them near-copies: m = 3), not the valid count."""
    from bdfl.config import DetectorConfig
    from bdfl.defense.detectors import Evidence
    from bdfl.defense.detectors.calibration import small_sample_factor
    from bdfl.defense.detectors.direction import DirectionDetector

    ev = Evidence(valid=np.ones(6, bool), counted=np.array([1, 1, 1, 0, 0, 0], bool))
    assert DirectionDetector(DetectorConfig(k=3.0)).k_for(ev) == pytest.approx(3.0 * small_sample_factor(3))


def _typical_distance_row_by_row(dist: np.ndarray) -> float:
    """typical_distance as first written: each row's median in turn."""
    n = dist.shape[0]
    off = dist[~np.eye(n, dtype=bool)].reshape(n, n - 1)
    rows = [float(np.median(r[np.isfinite(r)])) for r in off if np.isfinite(r).any()]
    return float(np.median(rows)) if rows else float("nan")


def test_the_fast_paths_give_the_values_of_the_plain_loops() -> None:
    """typical_distance's one-call median and difference_gram's one subtraction per block (for
    merge_copies in every rebuilt start and aggregation: ~17 % of a worker's time at N = 100) give
    the values of the loops they replace, to the last bit: with ties, odd and even sizes, infinite
    distances, mixed dtypes and an empty array."""
    rng = np.random.default_rng(3)
    for n in range(2, 14):
        pts = rng.normal(size=(n, 4))
        pts[n // 2:] = np.round(pts[n // 2:], 1)  # ties
        d = _dist(pts)
        assert typical_distance(d) == _typical_distance_row_by_row(d)
        d[0, 1] = d[1, 0] = np.inf  # the slow path, unchanged
        assert np.array_equal(typical_distance(d), _typical_distance_row_by_row(d), equal_nan=True)
    for trial in range(20):
        models = [[rng.normal(size=(7, 5)).astype(np.float32), rng.normal(size=5).astype(np.float32)] for _ in range(6)]
        if trial % 2:
            models[3] = [a.astype(np.float64) for a in models[3]]  # a model in another dtype: the per-model loop
        G = difference_gram(models[0], models, block=16)
        flat = np.stack([np.concatenate([a.ravel().astype(np.float64) for a in m]) for m in models])
        X = flat - flat[0]
        expected = np.zeros((6, 6))
        for lo in range(0, 40, 16):  # blocks of 16 over the arrays laid end to end (35 + 5 values), in order
            hi = min(lo + 16, 40)
            expected += X[:, lo:hi] @ X[:, lo:hi].T
        assert np.array_equal(G, expected)
        assert np.array_equal(difference_gram(models[0], models), X @ X.T)  # one block: one product
    # an empty array (a model with a 0-size buffer) adds nothing and breaks no block
    models = [[np.full(3, float(i), np.float32), np.zeros(0, np.float32), np.full(2, -float(i), np.float32)] for i in range(3)]
    flat = np.stack([np.concatenate([a.ravel().astype(np.float64) for a in m]) for m in models])
    X = flat - flat[0]
    for block in (1, 2, 3, 16):
        assert np.array_equal(difference_gram(models[0], models, block=block), X @ X.T)
    avg = weighted_average(models, [1.0, 1.0, 2.0])
    assert [a.shape for a in avg] == [(3,), (0,), (2,)] and np.allclose(avg[0], 1.25) and np.allclose(avg[2], -1.25)


def _copy_groups_pairwise(sq_dist: np.ndarray, share: float = NEAR_COPY) -> np.ndarray:
    """The rule as first written, one pair test at a time (row j, column g): the reference the
    vectorised :func:`copy_groups` must agree with exactly."""
    near = np.sqrt(np.maximum(np.asarray(sq_dist, dtype=np.float64), 0.0)).tolist()
    n = len(near)
    bar = share * typical_distance(np.array(near)) if n >= 3 else np.nan
    out = np.arange(n)
    if not np.isfinite(bar):  # fewer than 3 models, or no typical distance: every model its own
        return out
    assigned = [False] * n
    for i in range(n):
        if assigned[i]:
            continue
        group = [i]
        for j in range(i + 1, n):
            if not assigned[j] and all(near[j][g] <= bar for g in group):
                group.append(j)
        for j in group:
            out[j] = i
            assigned[j] = True
    return out


@pytest.mark.parametrize("seed", range(12))
def test_copy_groups_agrees_with_the_pair_by_pair_rule(seed: int) -> None:
    """Clusters of near-copies, chains of models each close to the next, an asymmetric matrix (a
    Gram's rounding) and unknown (NaN) distances: the same groups as the pair-by-pair loop."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 60))
    honest = _honest(n, rng)
    k = int(rng.integers(0, n // 2 + 1))  # a cluster of near-copies of one model
    honest[:k] = honest[0] + rng.standard_normal((k, DIM)) * 10 ** rng.uniform(-4, -0.5) / np.sqrt(DIM)
    chain = int(rng.integers(0, n // 3 + 1))  # each one step from the one before
    for c in range(1, chain):
        honest[-c - 1] = honest[-c] + rng.standard_normal(DIM) * 0.2 / np.sqrt(DIM)
    sq = _sq(rng.permutation(honest))
    sq = sq * (1 + rng.uniform(-1e-6, 1e-6, sq.shape))  # not exactly symmetric
    if seed % 3 == 0:
        sq[rng.integers(n), rng.integers(n)] = np.nan
    share = [NEAR_COPY, 0.5, 1.0][seed % 3]
    np.testing.assert_array_equal(copy_groups(sq, share), _copy_groups_pairwise(sq, share))
    assert (copy_groups(sq, share) <= np.arange(n)).all()
