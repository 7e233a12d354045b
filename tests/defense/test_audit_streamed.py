"""Issue 23 (model size): the audit's parameter statistics and merged models are computed a block
of values at a time from the models' own dtype (float32), with float64 arithmetic on small
buffers, instead of over float64 flats of every candidate, start and move. On real audits
(digits, two rounds of training, attackers of several kinds) the detectors' scores must agree
with the float64-flat computation they replaced (kept below verbatim as the reference) and every
decision must be the same; the merged models must be the same bit for bit."""

from __future__ import annotations

import math
from dataclasses import fields

import numpy as np
import pytest

from bdfl.defense.aggregate import weighted_average
from bdfl.defense.audit import (
    AuditRule,
    ParamStats,
    _finite_and_matching,
    _halfway,
    candidate_statistics,
    class_evidence,
    evaluate_candidates,
    judge,
    merged_losses,
    relative_to_candidates,
    top_half_cosines,
    trigger_evidence,
)
from bdfl.learning.data import load_digits, make_peer_shards
from bdfl.learning.task import EvalResult, fit_client, load_task

# --------------------------------------------------------------------------- the float64 reference


def _flat(params):  # noqa: ANN001, ANN202
    return np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in params]) if len(params) else np.zeros(0)


def reference_statistics(reference_params, candidates, start_params=None, *, valid=None, min_candidates=3,  # noqa: ANN001, ANN201, C901
                         candidate_starts=None, candidate_past_moves=None):
    """bdfl.defense.audit.candidate_statistics before issue 23's streaming (float64 flats)."""
    t = _flat(reference_params)
    s = None
    own_move = math.nan
    if start_params is not None and _finite_and_matching(list(start_params), reference_params) is None:
        s = _flat(start_params)
        own_move = float(np.linalg.norm(t - s))
    base, moves, history = [], [], []
    for i, cand in enumerate(candidates):
        history.append(math.nan)
        if (valid is not None and not valid[i]) or _finite_and_matching(cand, reference_params) is not None:
            base.append(None)
            moves.append(None)
            continue
        c = _flat(cand)
        diff = c - t
        l1 = float(np.abs(diff).sum())
        base.append((float(np.linalg.norm(diff)), abs(float(diff.sum())) / l1 if l1 > 0 else 0.0))
        move = None
        if s is not None and own_move > 0:
            trainer_start = candidate_starts[i] if candidate_starts is not None and i < len(candidate_starts) else None
            if trainer_start is not None and _finite_and_matching(list(trainer_start), reference_params) is None:
                move = c - _flat(trainer_start)
                past = candidate_past_moves[i] if candidate_past_moves is not None and i < len(candidate_past_moves) else None
                if past is not None and _finite_and_matching(list(past), reference_params) is None:
                    pm = _flat(past)
                    den = float(np.linalg.norm(move) * np.linalg.norm(pm))
                    history[i] = float(move @ pm) / den if den > 0 else math.nan
            else:
                move = c - s
        moves.append(move)
    known = [m for m in moves if m is not None]
    own_dir = t - s if s is not None and own_move > 0 else None
    direction = own_dir
    if own_dir is not None and len(known) >= min_candidates:
        consensus = np.median(np.stack([*known, own_dir]), axis=0)
        if np.linalg.norm(consensus) > 0:
            direction = consensus

    def cos(move, ref, norm):  # noqa: ANN001, ANN202
        return float(move @ ref) / (norm * float(np.linalg.norm(ref))) if norm > 0 else 0.0

    # since 2026-12-07: each move against the top half of the candidates by their cosine with the
    # median consensus (their unit moves summed, its own left out; the audits hold no near-copies)
    refined: dict[int, float] = {}
    if own_dir is not None and direction is not own_dir:
        known_at = [i for i, m in enumerate(moves) if m is not None]
        M = np.stack([moves[i] for i in known_at])
        median_cos = np.array([cos(m, direction, float(np.linalg.norm(m))) for m in M])
        top_half = top_half_cosines(M @ M.T, median_cos, np.arange(len(M)), min_candidates)
        if top_half is not None:
            refined = dict(zip(known_at, top_half.tolist()))
    stats = []
    for i, (b, move, hist) in enumerate(zip(base, moves, history)):
        if b is None:
            stats.append(None)
            continue
        cosine = own_cosine = update_ratio = math.nan
        if move is not None:
            norm = float(np.linalg.norm(move))
            update_ratio = norm / own_move
            cosine = refined.get(i, cos(move, direction, norm))
            own_cosine = cos(move, own_dir, norm)
        stats.append(ParamStats(distance=b[0], shift=b[1], cosine=cosine, update_ratio=update_ratio, own_cosine=own_cosine,
                                history_cosine=hist))
    # the medians over candidates are not what this reference checks: the shared step
    return relative_to_candidates(stats, min_candidates)


def reference_merged(reference_params, cand):  # noqa: ANN001, ANN201
    """The merged model of bdfl.defense.audit.merged_losses before issue 23 (float64 copies)."""
    return [((np.asarray(t, dtype=np.float64) + np.asarray(c, dtype=np.float64)) / 2).astype(np.asarray(t).dtype)
            for t, c in zip(reference_params, cand)]


# --------------------------------------------------------------------------- real audits


@pytest.fixture(scope="module")
def audits():
    """Real audits: 12 peers on digits (Dirichlet 0.5) train two rounds from one start, each
    averaging itself and 3 neighbours in between; auditors 9, 10 and 11 each judge peers 0-8's
    updates, of which some are attacks (sign flip x4, free rider, noise, x5 boost, a NaN), with
    the trainers' round-2 starts and round-1 moves (a few of them unknown, as when a recipe
    cannot be rebuilt). The round-1 moves are float64 (as rebuilt before issue 23) or float32."""
    task = load_task("clients.digits_wide")  # 85,002 parameters: several blocks per layer
    ds = load_digits()
    n = 12
    shards = make_peer_shards(ds, n, scheme="dirichlet", alpha=0.5, seed=3, min_size=30)
    clients = [task.make_client(s.train, s.val, seed=i, hparams={"local_epochs": 2, "batch_size": 16}) for i, s in enumerate(shards)]
    w0 = task.initial_parameters(ds, seed=0)
    u1 = [fit_client(c, w0, {"round": 0}).parameters for c in clients]
    starts = [weighted_average([u1[(i + d) % n] for d in range(4)]) for i in range(n)]
    u2 = [fit_client(c, starts[i], {"round": 1}).parameters for i, c in enumerate(clients)]
    rng = np.random.default_rng(5)
    cands = list(u2[:9])
    cands[0] = [(s - 4 * (u - s)).astype(u.dtype) for u, s in zip(u2[0], starts[0])]  # sign flip, boosted
    cands[1] = [s.copy() for s in starts[1]]  # free rider: its start again
    cands[2] = [(u + 0.05 * rng.standard_normal(u.shape)).astype(u.dtype) for u in u2[2]]  # noise
    cands[3] = [(s + 5 * (u - s)).astype(u.dtype) for u, s in zip(u2[3], starts[3])]  # boosted
    cands[4] = [u.copy() for u in u2[4]]
    cands[4][0][0, 0] = np.nan  # not evaluable
    past64 = [[np.asarray(u, dtype=np.float64) - np.asarray(s, dtype=np.float64) for u, s in zip(u1[i], w0)] for i in range(9)]
    past32 = [[np.subtract(u, s) for u, s in zip(u1[i], w0)] for i in range(9)]
    cand_starts = [starts[i] if i != 6 else None for i in range(9)]
    out = []
    for a in (9, 10, 11):
        for past in (past64, past32):
            out.append((clients[a], u2[a], starts[a], cands, cand_starts, [p if i != 7 else None for i, p in enumerate(past)]))
    return out


def _same(a: float, b: float, rtol: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b or math.isclose(a, b, rel_tol=rtol, abs_tol=rtol)


@pytest.mark.parametrize("block", [None, 1000, 7])
def test_streamed_statistics_match_the_float64_flats(audits, block: int | None) -> None:
    """Every statistic of every candidate agrees with the float64-flat computation to 1e-9
    (summation order only; with float32 round-1 moves the history cosine to 1e-6), invalid
    candidates are None in both, and moves without a known start are measured alike."""
    kw = {} if block is None else {"block": block}
    for i, (client, ref, start, cands, cand_starts, past) in enumerate(audits):
        valid = [_finite_and_matching(c, ref) is None for c in cands]
        want = reference_statistics(ref, cands, start, valid=valid, candidate_starts=cand_starts, candidate_past_moves=past)
        got = candidate_statistics(ref, cands, start, valid=valid, candidate_starts=cand_starts, candidate_past_moves=past, **kw)
        assert [g is None for g in got] == [w is None for w in want] == [not v for v in valid]
        for g, w in zip(got, want):
            if g is None:
                continue
            for f in fields(ParamStats):
                tol = 1e-6 if (f.name == "history_cosine" and i % 2) else 1e-9
                assert _same(getattr(g, f.name), getattr(w, f.name), tol), (f.name, getattr(g, f.name), getattr(w, f.name))
        assert sum(math.isfinite(g.history_cosine) for g in got if g is not None) >= 5
        assert any(math.isnan(g.history_cosine) and math.isfinite(g.cosine) for g in got if g is not None)


def test_streamed_statistics_without_start_or_candidates() -> None:
    """No own start: distances and shifts only; a start equal to the trained model: no moves;
    no valid candidate: all None (as the float64 flats gave)."""
    rng = np.random.default_rng(0)
    ref = [rng.standard_normal((30, 7)).astype(np.float32), rng.standard_normal(7).astype(np.float32)]
    cands = [[(a + rng.standard_normal(a.shape) * 0.1).astype(np.float32) for a in ref] for _ in range(5)]
    for start in (None, [a.copy() for a in ref]):
        want = reference_statistics(ref, cands, start)
        got = candidate_statistics(ref, cands, start, block=16)
        for g, w in zip(got, want):
            assert all(_same(getattr(g, f.name), getattr(w, f.name), 1e-9) for f in fields(ParamStats))
            assert math.isnan(g.cosine) and math.isnan(g.update_ratio)
    assert candidate_statistics(ref, cands, ref, valid=[False] * 5) == [None] * 5


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_halfway_is_the_float64_merge_bit_for_bit(dtype: type) -> None:
    """(own + candidate) / 2 streamed: the same values, in the reference's dtype, as over float64
    copies, also at the float32 range's edge (where a float32 sum would overflow) and for tiny values."""
    rng = np.random.default_rng(1)
    big = np.finfo(np.float32).max if dtype is np.float32 else 1e300
    t = [(rng.standard_normal((50, 3)) * 1e3).astype(dtype), np.array([big, -big, 1e-40, 3], dtype=dtype) if dtype is not np.int64
         else np.array([7, -9, 1, 3], dtype=dtype)]
    c = [(rng.standard_normal((50, 3)) * 1e3).astype(dtype), np.array([big, -big, 3e-40, 4], dtype=dtype) if dtype is not np.int64
         else np.array([8, -2, 0, 4], dtype=dtype)]
    for block in (1, 7, 1 << 14):
        got, want = _halfway(t, c, block=block), reference_merged(t, c)
        assert all(g.dtype == w.dtype and g.shape == w.shape and np.array_equal(g, w) for g, w in zip(got, want))
    assert np.isfinite(_halfway(t, c)[1][:2]).all() if dtype is not np.int64 else True


def test_real_audits_decide_the_same_as_the_float64_path(audits) -> None:
    """The whole rule on real audits: the same verdicts (accept and failed tests) and the same
    findings (scores and calibrated bars to 1e-6) from the streamed measurements as from the
    float64 flats; the merged losses are equal. The audits reject someone (the test can fail)."""
    rule = AuditRule()
    rejected = 0
    for client, ref, start, cands, cand_starts, past in audits:
        reference, results = evaluate_candidates(client, ref, cands)
        valid = [isinstance(r, EvalResult) for r in results]
        new_stats = candidate_statistics(ref, cands, start, valid=valid, candidate_starts=cand_starts, candidate_past_moves=past)
        old_stats = reference_statistics(ref, cands, start, valid=valid, candidate_starts=cand_starts, candidate_past_moves=past)
        merged = merged_losses(client, ref, cands, valid)
        old_merged = [client.evaluate(reference_merged(ref, c), {})[0] if ok else math.nan for c, ok in zip(cands, valid)]
        assert all(_same(a, b, 0.0) for a, b in zip(merged, old_merged))
        trigger = trigger_evidence(client, ref, cands, valid, rule)
        classes = class_evidence(client, cands, valid, rule)
        new = judge(rule, reference, results, new_stats, merged, trigger, classes)
        old = judge(rule, reference, results, old_stats, old_merged, trigger, classes)
        assert [(v.accept, v.failed) for v in new] == [(v.accept, v.failed) for v in old]
        for nv, ov in zip(new, old):
            assert [f.name for f in nv.findings] == [f.name for f in ov.findings]
            for nf, of in zip(nv.findings, ov.findings):
                assert nf.failed == of.failed and _same(nf.score, of.score, 1e-6) and _same(nf.threshold, of.threshold, 1e-6)
        rejected += sum(not v.accept for v in new)
        assert not new[0].accept and not new[4].accept  # the sign flip and the NaN model
    assert rejected >= 2 * len(audits)


@pytest.mark.parametrize(("r", "n"), [(1, 5), (2, 5), (9, 1000), (18, 1000), (19, 16384), (19, 3)])
def test_block_median_equals_np_median_bit_for_bit(r: int, n: int) -> None:
    """The consensus median of one block (transposed, partitioned at the middle): np.median's
    values, for odd and even row counts, with infinities and ties."""
    from bdfl.defense.audit import _column_median

    rng = np.random.default_rng([r, n])
    rows = rng.standard_normal((r, n)) * 10.0 ** rng.integers(-6, 6, size=(r, 1))
    if n > 2:
        rows[0, 1], rows[-1, 2] = np.inf, -np.inf
        rows[:, 0] = 1.5  # a tie across every row
    kept = rows.copy()
    got = _column_median(rows, np.empty((n + 3, r + 1)), np.empty(n + 3))
    assert np.array_equal(got, np.median(rows, axis=0))
    assert np.array_equal(rows, kept)  # the block is left as it was


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_finite_check_by_sum_is_exact(dtype: type) -> None:
    """The finite check's one-pass sum: NaN and infinities are caught, and finite values whose
    sum overflows are still finite."""
    from bdfl.defense.audit import _all_finite

    big = np.finfo(dtype).max
    assert _all_finite(np.array([big, big, 1.0], dtype=dtype))  # the sum overflows; the values are finite
    assert _all_finite(np.zeros(0, dtype=dtype))
    for bad in (np.nan, np.inf, -np.inf):
        a = np.ones(1000, dtype=dtype)
        a[517] = bad
        assert not _all_finite(a)
    pair = np.array([np.inf, -np.inf], dtype=dtype)  # a NaN sum
    assert not _all_finite(pair)
