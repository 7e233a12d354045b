"""Issue 23 (per-round cost at N = 100): the audit's client calls go through the optional batched
client capabilities ``evaluate_many`` / ``predict_many`` (:func:`bdfl.learning.task.evaluate_many`,
:func:`bdfl.learning.task.predict_many`; the bundled PyTorch clients offer them), and the parameter
statistics skip the validity check evaluate_candidates already made. Every measurement and verdict
must be the same, bit for bit, as the per-candidate path: a client without the capabilities (any
NumPyClient), and the statistics as computed before the change (kept below verbatim)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from bdfl.attacks.adaptive import _MemoClient
from bdfl.defense import audit as A
from bdfl.defense.aggregate import weighted_average
from bdfl.defense.audit import (
    STAT_BLOCK,
    AuditRule,
    ParamStats,
    _column_median,
    _f64,
    _finite_and_matching,
    relative_to_candidates,
)
from bdfl.learning.data import load_digits, make_peer_shards
from bdfl.learning.task import CheckedClient, TaskError, evaluate_many, fit_client, load_task, predict_many
from bdfl.types import NDArrays

# --------------------------------------------------------------------------- the per-candidate reference


def _raveled(params: Sequence[Any]) -> list[np.ndarray]:
    """bdfl.defense.audit._raveled at 518dbf1 (every array; the models here are all floating-point,
    whose measured arrays are all of them)."""
    return [np.asarray(a).reshape(-1) for a in params]


def per_candidate_statistics(
    reference_params: NDArrays,
    candidates: Sequence[Any],
    start_params: NDArrays | None = None,
    *,
    valid: Sequence[bool] | None = None,
    min_candidates: int = 3,
    candidate_starts: Sequence[NDArrays | None] | None = None,
    candidate_past_moves: Sequence[NDArrays | None] | None = None,
    block: int = STAT_BLOCK,
) -> list[ParamStats | None]:
    """bdfl.defense.audit.candidate_statistics at 518dbf1, verbatim (it checks every candidate's
    validity itself), with the top-half consensus (2026-12-07) added the library's way."""
    ref = _raveled(reference_params)
    start = None
    if start_params is not None and _finite_and_matching(list(start_params), reference_params) is None:
        start = _raveled(start_params)
    idx = [i for i, cand in enumerate(candidates)
           if (valid is None or valid[i]) and _finite_and_matching(cand, reference_params) is None]
    cand = {i: _raveled(candidates[i]) for i in idx}
    trainer: dict[int, list[np.ndarray]] = {}
    past: dict[int, list[np.ndarray]] = {}
    if start is not None:
        for i in idx:
            ts = candidate_starts[i] if candidate_starts is not None and i < len(candidate_starts) else None
            if ts is not None and _finite_and_matching(list(ts), reference_params) is None:
                trainer[i] = _raveled(ts)
                pm = candidate_past_moves[i] if candidate_past_moves is not None and i < len(candidate_past_moves) else None
                if pm is not None and _finite_and_matching(list(pm), reference_params) is None:
                    past[i] = _raveled(pm)
    m = len(idx)
    movers = m if start is not None else 0  # every valid candidate moves when the own start is known
    median = movers >= min_candidates
    # sums over blocks: |diff|^2, sum(diff), sum|diff| per candidate; |move|^2, move . consensus,
    # move . own move, move . past, |past|^2 per mover; |own move|^2, |consensus|^2
    sq, total, l1 = np.zeros(m), np.zeros(m), np.zeros(m)
    msq, dcons, down, dpast, psq = np.zeros(m), np.zeros(m), np.zeros(m), np.zeros(m), np.zeros(m)
    own_sq = cons_sq = 0.0
    gram = np.zeros((movers, movers))
    width = min(block, max((len(a) for a in ref), default=0)) or 1
    T, S, O, D, P = (np.empty(width) for _ in range(5))
    rows = np.empty((movers + 1, width))  # the movers' moves and the own move of one block
    part, M = np.empty((width, movers + 1)), np.empty(width)  # the median's scratch and result
    for li, size in enumerate(len(a) for a in ref):
        for a in range(0, size, block):
            b = min(a + block, size)
            n = b - a
            t = _f64(T[:n], ref[li][a:b])
            if start is not None:
                own = np.subtract(t, _f64(S[:n], start[li][a:b]), out=O[:n])
                own_sq += float(own @ own)
            d = D[:n]
            for k, i in enumerate(idx):
                c = cand[i][li][a:b]
                np.subtract(c, t, out=d, dtype=np.float64, casting="unsafe")
                sq[k] += float(d @ d)
                total[k] += float(d.sum())
                l1[k] += float(np.abs(d, out=d).sum())
                if start is None:
                    continue
                mv = rows[k, :n]
                if i in trainer:
                    np.subtract(c, trainer[i][li][a:b], out=mv, dtype=np.float64, casting="unsafe")
                    if i in past:
                        p = _f64(P[:n], past[i][li][a:b])
                        dpast[k] += float(mv @ p)
                        psq[k] += float(p @ p)
                else:
                    np.subtract(c, S[:n], out=mv, dtype=np.float64, casting="unsafe")
                msq[k] += float(mv @ mv)
                down[k] += float(mv @ O[:n])
            if median:
                rows[movers, :n] = O[:n]
                cons = _column_median(rows[:, :n], part, M)  # each column's median: its own
                cons_sq += float(cons @ cons)
                for k in range(movers):
                    dcons[k] += float(rows[k, :n] @ cons)
                gram += rows[:movers, :n] @ rows[:movers, :n].T  # since 2026-12-07: the top-half consensus
    sq, total, l1, msq, dcons, down, dpast, psq = (x.tolist() for x in (sq, total, l1, msq, dcons, down, dpast, psq))
    own_move = math.sqrt(own_sq) if start is not None else math.nan
    moved = start is not None and own_move > 0
    use_consensus = moved and median and math.sqrt(cons_sq) > 0
    dir_norm = math.sqrt(cons_sq) if use_consensus else own_move
    refined = None  # since 2026-12-07 (the case has no near-copies: each candidate its own group)
    if use_consensus:
        median_cos = [dcons[k] / (math.sqrt(msq[k]) * dir_norm) if msq[k] > 0 else 0.0 for k in range(movers)]
        refined = A.top_half_cosines(gram, np.array(median_cos), np.arange(movers), min_candidates)
    stats: list[ParamStats | None] = [None] * len(candidates)
    for k, i in enumerate(idx):
        cosine = own_cosine = update_ratio = hist = math.nan
        if moved:
            norm = math.sqrt(msq[k])
            update_ratio = norm / own_move
            dot = dcons[k] if use_consensus else down[k]
            cosine = dot / (norm * dir_norm) if norm > 0 else 0.0
            if refined is not None:
                cosine = float(refined[k])
            own_cosine = down[k] / (norm * own_move) if norm > 0 else 0.0
            if i in past:
                den = norm * math.sqrt(psq[k])
                hist = dpast[k] / den if den > 0 else math.nan
        stats[i] = ParamStats(distance=math.sqrt(sq[k]), shift=abs(total[k]) / l1[k] if l1[k] > 0 else 0.0, cosine=cosine,
                              update_ratio=update_ratio, own_cosine=own_cosine, history_cosine=hist)
    return relative_to_candidates(stats, min_candidates)



class PlainClient:
    """A client without ``evaluate_many`` / ``predict_many`` (as any NumPyClient): the audit calls
    it once per model, as before. Records every call."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls: list[tuple[str, int]] = []

    def get_parameters(self, config: dict[str, Any]) -> NDArrays:
        return self.client.get_parameters(config)

    def evaluate(self, parameters: NDArrays, config: dict[str, Any]) -> Any:
        self.calls.append(("evaluate", len(parameters)))
        return self.client.evaluate(parameters, config)

    def predict(self, parameters: NDArrays, X: np.ndarray) -> np.ndarray:
        self.calls.append(("predict", len(X)))
        return self.client.predict(parameters, X)

    def audit_inputs(self) -> np.ndarray:
        return self.client.audit_inputs()

    def audit_data(self) -> tuple[np.ndarray, np.ndarray]:
        return self.client.audit_data()


class CountingClient(PlainClient):
    """A :class:`PlainClient` that also offers the batched calls (through the wrapped TorchClient)."""

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.batches: list[tuple[str, int]] = []

    def evaluate_many(self, parameter_sets: Sequence[NDArrays], config: dict[str, Any]) -> Any:
        self.batches.append(("evaluate_many", len(parameter_sets)))
        return self.client.evaluate_many(parameter_sets, config)

    def predict_many(self, parameter_sets: Sequence[NDArrays], inputs: Sequence[np.ndarray]) -> Any:
        self.batches.append(("predict_many", len(parameter_sets)))
        return self.client.predict_many(parameter_sets, inputs)


@pytest.fixture(scope="module")
def case():
    """Real audits: 14 peers on digits (IID) train two rounds from one start, each averaging
    itself and 4 neighbours in between; peer 13 audits peers 0-12, of which some are attacks
    (sign flip x4, free rider, noise) and some are not evaluable: a NaN, an infinity, a missing
    array, an array of another shape, an overflowing model (non-finite loss). Trainer starts
    and round-1 moves are known for most candidates (one start and one move unknown, one move
    with an infinity)."""
    task = load_task("clients.digits")
    ds = load_digits()
    n = 14
    shards = make_peer_shards(ds, n, scheme="iid", seed=4)
    clients = [task.make_client(s.train, s.val, seed=i, hparams={"local_epochs": 1, "batch_size": 16}) for i, s in enumerate(shards)]
    w0 = task.initial_parameters(ds, seed=0)
    u1 = [fit_client(c, w0, {"round": 0}).parameters for c in clients]
    starts = [weighted_average([u1[(i + d) % n] for d in range(5)]) for i in range(n)]
    u2 = [fit_client(c, starts[i], {"round": 1}).parameters for i, c in enumerate(clients)]
    rng = np.random.default_rng(7)
    m = n - 1
    cands: list[Any] = [list(u) for u in u2[:m]]
    cands[0] = [(s - 4 * (u - s)).astype(u.dtype) for u, s in zip(u2[0], starts[0])]  # sign flip, boosted
    cands[1] = [s.copy() for s in starts[1]]  # free rider
    cands[2] = [(u + 0.05 * rng.standard_normal(u.shape)).astype(u.dtype) for u in u2[2]]  # noise
    cands[3] = [u.copy() for u in u2[3]]
    cands[3][0][0, 0] = np.nan
    cands[4] = [u.copy() for u in u2[4]]
    cands[4][2][1, 1] = np.inf
    cands[5] = list(u2[5][:-1])  # an array short
    cands[6] = [u2[6][0], u2[6][1], u2[6][2][:, :5], u2[6][3]]  # another shape
    cands[7] = [(u * np.float32(1e36)).astype(np.float32) for u in u2[7]]  # finite, but its loss is not
    past = [[np.subtract(u, s) for u, s in zip(u1[i], w0)] for i in range(m)]
    past[9] = None
    past[10] = [p.copy() for p in past[10]]
    past[10][1][0] = np.inf
    cand_starts = [starts[i] if i != 11 else None for i in range(m)]
    me = n - 1
    return {"client": clients[me], "reference": u2[me], "start": starts[me], "candidates": cands,
            "starts": cand_starts, "past": past}


def _audit(client: Any, c: dict[str, Any], rule: AuditRule | None = None) -> list[A.AuditVerdict]:
    return A.audit_updates(client, c["reference"], c["candidates"], rule or AuditRule(), start_params=c["start"],
                           candidate_starts=c["starts"], candidate_past_moves=c["past"])


def _same(a: Any, b: Any) -> bool:
    """Equal, NaN equal to NaN (repr compares every float exactly, nan as 'nan')."""
    return repr(a) == repr(b)


# --------------------------------------------------------------------------- the client capabilities


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_torch_client_batched_calls_equal_one_call_per_model(model: str) -> None:
    task = load_task("clients.digits")
    ds = load_digits()
    s = make_peer_shards(ds, 6, scheme="iid", seed=1)[0]
    client = task.make_client(s.train, s.val, seed=0, hparams={"model": model}).client  # the TorchClient itself
    rng = np.random.default_rng(0)
    p0 = client.get_parameters({})
    sets = [[(a + 0.3 * rng.standard_normal(a.shape)).astype(a.dtype) for a in p0] for _ in range(5)]
    X1, X2 = ds.X_test[:37], ds.X_test[37:40]
    batched = client.evaluate_many(sets, {})
    one_by_one = [client.evaluate(p, {}) for p in sets]
    assert _same(batched, one_by_one)
    # float64 arrays (cast by torch, not copied by NumPy) and read-only arrays (decoded bytes)
    sets64 = [[a.astype(np.float64) for a in p] for p in sets]
    readonly = [[np.frombuffer(a.tobytes(), dtype=a.dtype).reshape(a.shape) for a in p] for p in sets]
    assert _same(client.evaluate_many(sets64, {}), [client.evaluate(p, {}) for p in sets64])
    assert _same(client.evaluate_many(readonly, {}), one_by_one)
    labels = client.predict_many(sets, [X1, X2])
    for got, p in zip(labels, sets):
        assert len(got) == 2
        np.testing.assert_array_equal(got[0], client.predict(p, X1))
        np.testing.assert_array_equal(got[1], client.predict(p, X2))
        assert got[0].dtype == client.predict(p, X1).dtype
    # the model is left loaded with the last set, as a loop of evaluate calls leaves it
    client.evaluate_many(sets, {})
    for a, b in zip(client.get_parameters({}), sets[-1]):
        np.testing.assert_array_equal(a, b)
    assert client.evaluate_many([], {}) == [] and client.predict_many([], [X1]) == []
    with pytest.raises(Exception, match="parameter arrays"):
        client.evaluate_many([sets[0][:-1]], {})


def test_checked_client_sends_its_config_with_and_without_the_inner_capability() -> None:
    seen: list[dict[str, Any]] = []

    class Inner:
        def evaluate(self, parameters, config):  # noqa: ANN001, ANN202
            seen.append(dict(config))
            return float(parameters[0].sum()), 3, {"accuracy": 0.5}

    class InnerMany(Inner):
        def evaluate_many(self, parameter_sets, config):  # noqa: ANN001, ANN202
            return [self.evaluate(p, config) for p in parameter_sets]

    sets = [[np.full(2, i, dtype=np.float32)] for i in range(3)]
    for inner in (Inner(), InnerMany()):
        seen.clear()
        client = CheckedClient(inner, task="t", config={"lr": 0.1})
        client.server_round = 4
        out = evaluate_many(client, sets)
        assert [r.loss for r in out] == [0.0, 2.0, 4.0] and all(r.num_examples == 3 and r.accuracy == 0.5 for r in out)
        assert seen == [{"lr": 0.1, "server_round": 4}] * 3


def test_malformed_batched_answers_raise() -> None:
    class Short:
        def evaluate(self, parameters, config):  # noqa: ANN001, ANN202
            return 0.0, 1, {}

        def evaluate_many(self, parameter_sets, config):  # noqa: ANN001, ANN202
            return [(0.0, 1, {})]

        def predict(self, parameters, X):  # noqa: ANN001, ANN202
            return np.zeros(len(X), dtype=np.int64)

        def predict_many(self, parameter_sets, inputs):  # noqa: ANN001, ANN202
            return [[np.zeros(1)] for _ in parameter_sets]  # one array, two inputs asked

    sets = [[np.zeros(2)], [np.ones(2)]]
    with pytest.raises(TaskError, match="evaluate_many must return one"):
        evaluate_many(Short(), sets)
    with pytest.raises(TaskError, match="predict_many must return"):
        predict_many(Short(), sets, [np.zeros((1, 2)), np.zeros((2, 2))])


def test_memo_client_keeps_the_per_model_path() -> None:
    """The adaptive attack's memo wraps evaluate / predict: the batched calls of the client it
    wraps must not bypass it."""
    memo = _MemoClient(CountingClient(PlainClient(None)))
    assert not callable(getattr(memo, "evaluate_many", None))
    assert not callable(getattr(memo, "predict_many", None))


# --------------------------------------------------------------------------- the audit, both paths


def test_audit_batched_equals_per_candidate_path(case) -> None:
    fast = CountingClient(case["client"])
    slow = PlainClient(case["client"])
    v_fast, v_slow = _audit(fast, case), _audit(slow, case)
    assert _same(v_fast, v_slow)
    assert not fast.calls  # every model went through the batched calls
    assert [name for name, _ in fast.batches] == ["evaluate_many", "evaluate_many", "predict_many", "predict_many"]
    reasons = [v.reason for v in v_fast]
    assert reasons[3] == reasons[4] == "parameters contain NaN or Inf"
    assert "parameter count" in reasons[5] and "array shape" in reasons[6]
    assert reasons[7] == "evaluation loss is not finite"
    assert [v.failed for v in v_fast[3:8]] == [("invalid",)] * 5
    assert not v_fast[0].accept  # the boosted sign flip
    assert sum(v.accept for v in v_fast) >= 5  # the honest ones mostly pass


def test_per_candidate_path_calls_in_the_same_order(case) -> None:
    """A client without the capabilities is called as before: the reference, then each valid
    candidate (evaluate); each merged model; the trigger scan's reference and candidates; the
    per-class predictions."""
    slow = PlainClient(case["client"])
    _audit(slow, case)
    valid = 13 - 4  # NaN, Inf, short, shape: not evaluated; the overflowing one is evaluated (non-finite loss)
    evaluable = valid - 1
    n_val = len(case["client"].y_val)
    n_audit = len(case["client"].audit_data()[1])
    assert slow.calls[: 1 + valid] == [("evaluate", 4)] * (1 + valid)
    assert slow.calls[1 + valid : 1 + valid + evaluable] == [("evaluate", 4)] * evaluable
    rest = slow.calls[1 + valid + evaluable :]
    assert [c[0] for c in rest] == ["predict"] * (1 + evaluable + evaluable)
    assert all(n == n_audit for _, n in rest[1 + evaluable :]) and n_val > 0


def test_measurements_equal_per_candidate_path(case) -> None:
    fast, slow = CountingClient(case["client"]), PlainClient(case["client"])
    ref_f, res_f = A.evaluate_candidates(fast, case["reference"], case["candidates"])
    ref_s, res_s = A.evaluate_candidates(slow, case["reference"], case["candidates"])
    assert _same((ref_f, res_f), (ref_s, res_s))
    valid = [isinstance(r, A.EvalResult) for r in res_f]
    assert _same(A.merged_losses(fast, case["reference"], case["candidates"], valid),
                 A.merged_losses(slow, case["reference"], case["candidates"], valid))
    rule = AuditRule()
    assert _same(A.trigger_evidence(fast, case["reference"], case["candidates"], valid, rule),
                 A.trigger_evidence(slow, case["reference"], case["candidates"], valid, rule))
    assert _same(A.class_evidence(fast, case["candidates"], valid, rule), A.class_evidence(slow, case["candidates"], valid, rule))


def test_merged_losses_in_several_batches(case, monkeypatch) -> None:
    fast = CountingClient(case["client"])
    valid = [isinstance(r, A.EvalResult) for r in A.evaluate_candidates(fast, case["reference"], case["candidates"])[1]]
    whole = A.merged_losses(fast, case["reference"], case["candidates"], valid)
    model_bytes = sum(a.nbytes for a in case["reference"])
    monkeypatch.setattr(A, "BATCH_BYTES", 3 * model_bytes)  # three merged models per batch
    fast.batches.clear()
    assert _same(A.merged_losses(fast, case["reference"], case["candidates"], valid), whole)
    assert [n for _, n in fast.batches] == [3, 3, 2]  # 8 valid candidates
    assert sum(valid) == 8


def test_no_valid_candidate_and_no_candidate(case) -> None:
    bad = [case["candidates"][3], case["candidates"][5]]
    for client in (CountingClient(case["client"]), PlainClient(case["client"])):
        v = A.audit_updates(client, case["reference"], bad, AuditRule(), start_params=case["start"])
        assert [x.failed for x in v] == [("invalid",), ("invalid",)]
        assert A.audit_updates(client, case["reference"], [], AuditRule(), start_params=case["start"]) == []


# --------------------------------------------------------------------------- the statistics


@pytest.mark.parametrize("block", [STAT_BLOCK, 1000, 7])
def test_statistics_equal_the_per_candidate_loop_bit_for_bit(case, block: int) -> None:
    """Also with ``checked=True`` (validity from evaluate_candidates, not checked again)."""
    c = case
    kw = dict(candidate_starts=c["starts"], candidate_past_moves=c["past"], block=block)
    for start in (c["start"], None):
        got = A.candidate_statistics(c["reference"], c["candidates"], start, **kw)
        want = per_candidate_statistics(c["reference"], c["candidates"], start, **kw)
        assert _same(got, want)
        assert sum(x is not None for x in got) == 9  # NaN, Inf, short, shape excluded
    valid = [isinstance(r, A.EvalResult) for r in A.evaluate_candidates(c["client"], c["reference"], c["candidates"])[1]]
    got = A.candidate_statistics(c["reference"], c["candidates"], c["start"], valid=valid, checked=True, **kw)
    assert _same(got, per_candidate_statistics(c["reference"], c["candidates"], c["start"], valid=valid, **kw))
    assert got[7] is None  # valid=False (its loss is not finite) leaves it out either way


def test_statistics_with_few_candidates_and_no_median(case) -> None:
    c = case
    for k in (0, 1, 2, 3):
        cands = c["candidates"][8 : 8 + k]
        for start in (c["start"], None):
            got = A.candidate_statistics(c["reference"], cands, start, candidate_starts=c["starts"][8 : 8 + k],
                                         candidate_past_moves=c["past"][8 : 8 + k])
            want = per_candidate_statistics(c["reference"], cands, start, candidate_starts=c["starts"][8 : 8 + k],
                                            candidate_past_moves=c["past"][8 : 8 + k])
            assert _same(got, want)
