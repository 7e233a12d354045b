"""The auditor's accept/reject rule: the detectors of :mod:`bdfl.defense.detectors`, composed.

An auditor judges the candidate models (other peers' published parameters) assigned to it
with what it has: its **own** model at the start of the round (``start_params``), its own
model after this round's local training (``reference_params``), its **own** validation split
(through ``client.evaluate``, the same call for any ``NumPyClient``), its own inputs (for the
trigger family, when the client offers ``predict`` and ``audit_inputs``), all its labelled
data (per-class accuracies, when the client offers ``predict`` and ``audit_data``) and the
candidates' parameters. It measures (:func:`evaluate_candidates`, :func:`candidate_statistics`,
:func:`merged_losses`, :func:`trigger_evidence`, :func:`class_evidence`) and hands the measurements to every enabled
detector; a candidate is **rejected when its failures corroborate each other**
(:func:`rejecting`: two detectors fail it, or the ``joint`` test, which combines three
measurements, fails it, or one detector fails it by ``corroboration`` times its own bar or
more, or fails it while the joint score is at least ``1 / corroboration`` of its bar; counting
by evidence family, ``AuditRule.by_family``, was measured and not adopted), and,
before that, when it is **invalid** (NaN/Inf, other array count or shapes than
the auditor's model). A lone detector failing just past its bar is not enough: under non-IID
data honest candidates far out on one measurement are common (issue 22: on Seattle weather
80 % of the honest reject votes came from one detector alone), attackers are out on several.

No detector has a fixed threshold: each is calibrated in every audit from the candidates'
spread and the auditor's own data (:mod:`bdfl.defense.detectors.calibration`), so one policy
serves tasks of different kinds and sizes; each detector's only setting is ``k`` (in those
spreads) in its table ``[defense.detectors.<name>]`` (:class:`bdfl.config.DetectorsConfig`).
The median-based thresholds need at least ``min_candidates`` evaluable candidates and assume
fewer than half of them are bad. docs/learning.md section 4 has the measurements and limits.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from bdfl.config import DEFENSE_RANGES, DETECTORS, DetectorsConfig, check_defense_setting, defense_value, from_dict
from bdfl.defense.aggregate import difference_gram, gram_sq, measured_arrays
from bdfl.defense.detectors import REGISTRY, ClassEvidence, Evidence, Finding, TriggerEvidence, build_detectors, run_detectors
from bdfl.defense.detectors import trigger as trigger_detector
from bdfl.defense.detectors.calibration import copy_groups, small_sample_factor
from bdfl.errors import BDFLError
from bdfl.learning.task import EvalResult, evaluate_client, evaluate_many, predict_many
from bdfl.types import NDArrays

__all__ = [
    "AuditRule",
    "AuditVerdict",
    "ParamStats",
    "ReferenceNotFinite",
    "audit_seed",
    "audit_updates",
    "claimed_steps",
    "candidate_statistics",
    "class_evidence",
    "evaluate_candidates",
    "evidence",
    "failed_families",
    "judge",
    "merged_losses",
    "observe_audits",
    "rejecting",
    "rejudge",
    "trigger_evidence",
]


class ReferenceNotFinite(FloatingPointError):
    """The auditor's own model has a non-finite loss on its validation data: its local training
    diverged this round (a learning rate too large for its shard, an overflow), so there is no
    reference to judge others against. Deliberately not a :class:`~bdfl.errors.BDFLError`: the
    peer engine (:meth:`bdfl.peer.engine.PeerEngine.isolated`) takes it as this peer's client
    failure for the round, so the peer sits that audit out (no vote) and goes on, and only
    ``MAX_CLIENT_FAILURES`` rounds in a row stop it. Raised as a BDFLError it stopped the peer,
    and with it a whole simulated run, at the first diverged honest auditor (MNIST, seed 12,
    round 16: docs/results/robustness.md, "Client drift")."""


@dataclass(frozen=True)
class AuditRule:
    """The accept/reject rule: which detectors run, with which ``k`` (``[defense.detectors]``).

    ``by_family`` (default False: every detector counts as its own measurement, the rule of
    ``c896489``): True counts corroboration by evidence family (:func:`rejecting`). Measured and not
    adopted (issue 22, docs/results/robustness.md "Evidence families (engineer F2)": on MNIST it
    removed 1-8 honest reject votes a run and cost colluding label flippers' votes, 308 -> 296 of
    798, caught mostly by accuracy + balanced accuracy). Not a config setting: for offline
    comparison, experiments/audit_rule_eval.py."""

    detectors: DetectorsConfig = field(default_factory=DetectorsConfig)
    by_family: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.detectors, DetectorsConfig):
            raise BDFLError(f"audit rule: detectors must be a DetectorsConfig, got {type(self.detectors).__name__}")
        # the one place the ranges live: bdfl.config
        for name in DEFENSE_RANGES:
            if name.startswith("detectors."):
                check_defense_setting(name, defense_value(self, name))

    @property
    def min_candidates(self) -> int:
        return self.detectors.min_candidates

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> AuditRule:
        """The rule of a ``[defense.detectors]`` table given as a dict (validated like a config)."""
        return cls(from_dict({"defense": {"detectors": values}}).defense.detectors)

    @classmethod
    def from_defense(cls, defense: Any) -> AuditRule:
        """The rule a validated ``[defense]`` table describes (its ``detectors``)."""
        return cls(getattr(defense, "detectors", DetectorsConfig()))

    def with_detector(self, name: str, **changes: Any) -> AuditRule:
        """This rule with detector ``name``'s table changed (``enabled=False``, ``k=3``, ...)."""
        return replace(self, detectors=replace(self.detectors, **{name: replace(getattr(self.detectors, name), **changes)}))

    @classmethod
    def only(cls, *names: str) -> AuditRule:
        """The default rule with only detectors ``names`` enabled (none: every candidate that is
        valid passes)."""
        base = DetectorsConfig()
        unknown = sorted(set(names) - set(DETECTORS))
        if unknown:
            raise BDFLError(f"audit rule: unknown detector(s) {', '.join(unknown)}", fix=f"detectors: {', '.join(DETECTORS)}")
        return cls(replace(base, **{n: replace(getattr(base, n), enabled=n in names) for n in DETECTORS}))

    def enabled(self, name: str) -> bool:
        return bool(getattr(self.detectors, name).enabled)


@dataclass(frozen=True)
class ParamStats:
    """Parameter-space statistics of one candidate, relative to the auditor's models.

    distance: ||candidate - trained||; distance_ratio: that over the median distance of
    the auditor's candidates (NaN with fewer than ``min_candidates``).
    cosine: cos(move, direction): the candidate's move (from its trainer's rebuilt start, else from the
        auditor's start) with the consensus or own move (NaN without a start model or own move);
    cosine_gap: median cosine of the candidates minus this one; median_cosine: that median.
    own_cosine / own_cosine_gap: the same with the auditor's own move.
    shift: |sum(candidate - trained)| / sum(|candidate - trained|) (0 when identical).
    update_ratio: ||candidate - start|| / ||trained - start|| (NaN without start or own move).
    history_cosine: cos(move, the same trainer's earlier move) (NaN unless both its start of this
        round and that earlier move were rebuilt).
    copy_of: the index of the earlier candidate this one is a near-copy of (-1: none;
        :func:`bdfl.defense.detectors.calibration.copy_groups`): it is left out of the calibration.
    """

    distance: float
    shift: float
    cosine: float = math.nan
    update_ratio: float = math.nan
    distance_ratio: float = math.nan
    cosine_gap: float = math.nan
    median_cosine: float = math.nan
    own_cosine: float = math.nan
    own_cosine_gap: float = math.nan
    history_cosine: float = math.nan
    copy_of: int = -1


@dataclass(frozen=True)
class AuditVerdict:
    """One auditor's judgement of one candidate.

    ``failed`` names the detectors that rejected it (or ``("invalid",)``); ``findings`` every
    detector's score and calibrated threshold (:class:`bdfl.defense.detectors.Finding`);
    ``accuracy`` / ``loss`` the candidate's on the auditor's validation data and
    ``reference_*`` its own model's (NaN where not computed); ``stats`` the parameter
    statistics (None when not computed).
    """

    accept: bool
    reason: str
    failed: tuple[str, ...] = ()
    findings: tuple[Finding, ...] = ()
    accuracy: float = math.nan
    loss: float = math.nan
    reference_accuracy: float = math.nan
    reference_loss: float = math.nan
    stats: ParamStats | None = None

    def finding(self, name: str) -> Finding | None:
        """The finding of detector ``name`` (None when it did not judge this candidate)."""
        return next((f for f in self.findings if f.name == name), None)


def _all_finite(a: np.ndarray) -> bool:
    """``np.all(np.isfinite(a))``: a finite sum proves it in one read-only pass (a NaN or an
    infinity would make the sum NaN or infinite); only a sum that is not finite (finite values
    can overflow it) is checked element by element."""
    with np.errstate(over="ignore", invalid="ignore"):
        return _all_finite_quiet(a)


def _all_finite_quiet(a: np.ndarray) -> bool:
    """:func:`_all_finite` inside the caller's ``np.errstate(over="ignore", invalid="ignore")``."""
    return bool(np.isfinite(a.sum()) or np.all(np.isfinite(a)))


#: dtype -> (inexact, numeric or bool): np.issubdtype's answers, asked once per dtype
_DTYPE_KINDS: dict[np.dtype, tuple[bool, bool]] = {}


def _dtype_kind(dtype: np.dtype) -> tuple[bool, bool]:
    kind = _DTYPE_KINDS.get(dtype)
    if kind is None:
        kind = _DTYPE_KINDS[dtype] = (bool(np.issubdtype(dtype, np.inexact)),
                                      bool(np.issubdtype(dtype, np.number) or dtype == np.bool_))
    return kind


def _finite_and_matching(candidate: Any, reference: NDArrays) -> str | None:
    if not isinstance(candidate, (list, tuple)) or len(candidate) != len(reference):
        return "parameter count differs from the auditor's model"
    with np.errstate(over="ignore", invalid="ignore"):  # _all_finite's sums, one context per model
        for a, b in zip(candidate, reference):
            a = np.asarray(a)
            if a.shape != np.shape(b):
                return f"array shape {a.shape} differs from the auditor's {np.shape(b)}"
            inexact, numeric = _dtype_kind(a.dtype)
            if inexact and not _all_finite_quiet(a):
                return "parameters contain NaN or Inf"
            if not numeric:
                return f"non-numeric parameter dtype {a.dtype}"
    return None


def _checked(res: EvalResult) -> EvalResult:
    if res.num_examples <= 0:
        raise BDFLError(
            "the auditor's client evaluated on 0 validation samples",
            fix="give every peer a non-empty validation split (val_fraction > 0)",
        )
    return res


def _eval(client: Any, params: NDArrays) -> EvalResult:
    return _checked(evaluate_client(client, params))


def _eval_many(client: Any, parameter_sets: Sequence[NDArrays]) -> list[EvalResult]:
    """:func:`_eval` of each set, in order, in one :func:`bdfl.learning.task.evaluate_many` (one
    client call where the client offers ``evaluate_many``, else one ``evaluate`` per set)."""
    return [_checked(r) for r in evaluate_many(client, parameter_sets)]


#: bytes of new parameter sets (the merged models) handed to one ``evaluate_many``: all of an
#: audit's at the digits model's size, a few at a time at 11M parameters
BATCH_BYTES = 256 << 20


def _model_bytes(params: Sequence[Any]) -> int:
    return sum(np.asarray(a).nbytes for a in params)


def evaluate_candidates(
    client: Any, reference_params: NDArrays, candidates: Sequence[NDArrays]
) -> tuple[EvalResult, list[EvalResult | str]]:
    """Evaluate the reference and every candidate on the auditor's validation data.

    Returns (reference result, per-candidate result or the reason it was not evaluated). The
    reference and the valid candidates are evaluated in that order in one
    :func:`bdfl.learning.task.evaluate_many` (the same results as one ``evaluate`` each).
    """
    problems = [_finite_and_matching(cand, reference_params) for cand in candidates]
    ref, *evaluated = _eval_many(client, [reference_params, *(list(c) for c, p in zip(candidates, problems) if p is None)])
    results = iter(evaluated)
    out: list[EvalResult | str] = []
    for problem in problems:
        if problem is not None:
            out.append(problem)
            continue
        res = next(results)
        out.append(res if math.isfinite(res.loss) else "evaluation loss is not finite")
    return ref, out


def _raveled(params: Sequence[Any], measured: Sequence[int]) -> list[np.ndarray]:
    """The arrays ``measured`` of ``params`` (:func:`bdfl.defense.aggregate.measured_arrays`), each as
    a 1-D view (no copy for contiguous arrays; dtype kept)."""
    return [np.asarray(params[i]).reshape(-1) for i in measured]


#: columns per block of the streamed statistics: every pass over a model reads its own dtype
#: (float32) once, and the float64 arithmetic runs on (m + 4) x 16,384-value buffers that stay in
#: cache, instead of 88 MB float64 flats of every candidate, start and move at 11M parameters
STAT_BLOCK = 1 << 14


def _f64(dst: np.ndarray, src: np.ndarray) -> np.ndarray:
    """``src`` cast into the float64 buffer ``dst`` (the values ``np.asarray(src, np.float64)`` has)."""
    np.copyto(dst, src, casting="unsafe")
    return dst


def _column_median(rows: np.ndarray, scratch: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``np.median(rows, axis=0)`` of an (r, n) block, the same values: the block is copied
    transposed into ``scratch`` (>= n x r) and partitioned along its contiguous axis at the
    middle (4x faster than np.median's strided partition of 19 x 16,384 values); with r even,
    the mean of the two middle values as np.median takes it, ``(lower + upper) / 2``, the lower
    being the largest of the partition's lower half. ``out`` (>= n): where the median goes."""
    r, n = rows.shape
    p = scratch[:n, :r]
    p[...] = rows.T
    h = r // 2
    p.partition(h, axis=1)
    if r % 2:
        np.copyto(out[:n], p[:, h])
        return out[:n]
    return np.divide(np.add(p[:, :h].max(axis=1), p[:, h], out=out[:n]), 2, out=out[:n])


def near_copies(ref: list[np.ndarray], cand: list[list[np.ndarray]], block: int = STAT_BLOCK) -> np.ndarray:
    """For each candidate (raveled arrays matching ``ref``'s), the index in ``cand`` of the candidate
    it counts as (:func:`bdfl.defense.detectors.calibration.copy_groups` over the candidates and the
    auditor's trained model ``ref``, last, so that it leads no group)."""
    G = difference_gram(ref, cand, block)
    if G is None:  # the caller checked every candidate against ref
        raise ValueError("near_copies: a candidate's arrays do not match the auditor's model")
    sq = np.zeros((len(cand) + 1, len(cand) + 1))  # the candidates, then the auditor's model (at 0)
    sq[:-1, :-1] = gram_sq(G)
    sq[:-1, -1] = sq[-1, :-1] = np.diag(G)
    return copy_groups(sq)[:-1]


def candidate_statistics(
    reference_params: NDArrays,
    candidates: Sequence[Any],
    start_params: NDArrays | None = None,
    *,
    valid: Sequence[bool] | None = None,
    min_candidates: int = 3,
    candidate_starts: Sequence[NDArrays | None] | None = None,
    candidate_past_moves: Sequence[NDArrays | None] | None = None,
    block: int = STAT_BLOCK,
    checked: bool = False,
) -> list[ParamStats | None]:
    """Parameter-space statistics of every candidate (None for an invalid one).

    ``valid[i]`` False (or a candidate whose arrays do not match the reference) gives
    None; medians are taken over the valid candidates only. ``candidate_starts[i]``: where
    candidate i's trainer started the round, when the auditor knows it; its move is then
    ``candidate - candidate_starts[i]`` instead of ``candidate - start_params``. The cosine
    is taken with the coordinate-wise median of the candidates' moves and the auditor's own
    (the consensus move; the own move when fewer than ``min_candidates`` moves are known); near-copies
    of one model (:func:`near_copies`) count once in that median and get ``copy_of`` set.
    ``candidate_past_moves[i]``: candidate i's trainer's move in an earlier round (its update
    then minus its start then); with a known start it gives ``history_cosine``.
    ``checked``: ``valid[i]`` True already means candidate i matches the reference and is
    finite (as :func:`evaluate_candidates`'s results say), so it is not checked again.

    Computed in float64 as over whole float64 flats, but streamed ``block`` values at a time
    (issue 23): each difference, the consensus median and every product are the same float64
    values; only the order in which the sums and dot products add up their terms differs
    (relative differences of ~1e-15, tests/defense/test_audit_streamed.py).
    """
    measured = measured_arrays(reference_params)  # counters (BatchNorm's) are not measured
    ref = _raveled(reference_params, measured)
    start = None
    if start_params is not None and _finite_and_matching(list(start_params), reference_params) is None:
        start = _raveled(start_params, measured)
    idx = [i for i, cand in enumerate(candidates)
           if (valid is None or valid[i]) and (checked and valid is not None or _finite_and_matching(cand, reference_params) is None)]
    cand = {i: _raveled(candidates[i], measured) for i in idx}
    trainer: dict[int, list[np.ndarray]] = {}
    past: dict[int, list[np.ndarray]] = {}
    if start is not None:
        for i in idx:
            ts = candidate_starts[i] if candidate_starts is not None and i < len(candidate_starts) else None
            if ts is not None and _finite_and_matching(list(ts), reference_params) is None:
                trainer[i] = _raveled(ts, measured)
                pm = candidate_past_moves[i] if candidate_past_moves is not None and i < len(candidate_past_moves) else None
                if pm is not None and _finite_and_matching(list(pm), reference_params) is None:
                    past[i] = _raveled(pm, measured)
    m = len(idx)
    group = near_copies(ref, [cand[i] for i in idx], block) if m >= 2 else np.arange(m)
    counted = np.flatnonzero(group == np.arange(m))  # one candidate per group of near-copies
    movers = m if start is not None else 0  # every valid candidate moves when the own start is known
    median = len(counted) >= min_candidates and movers > 0
    voters = np.append(counted, movers) if movers else counted  # the median's rows: one per group, and the own move
    # sums over blocks: |diff|^2, sum(diff), sum|diff| per candidate; |move|^2, move . consensus,
    # move . own move, move . past, |past|^2 per mover; |own move|^2, |consensus|^2
    sq, total, l1 = np.zeros(m), np.zeros(m), np.zeros(m)
    msq, dcons, down, dpast, psq = np.zeros(m), np.zeros(m), np.zeros(m), np.zeros(m), np.zeros(m)
    own_sq = cons_sq = 0.0
    # the movers' moves' dot products, for the top-half consensus: only when the audit is large
    # enough for it (top_half_cosines; +40 % of the median's cost per block at 18 candidates)
    gram = np.zeros((movers, movers)) if median and math.ceil(len(counted) / 2) >= 2 * min_candidates else None
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
                cons = _column_median(rows[:, :n] if len(voters) == movers + 1 else rows[voters, :n], part, M)
                cons_sq += float(cons @ cons)
                for k in range(movers):
                    dcons[k] += float(rows[k, :n] @ cons)
                if gram is not None:
                    gram += rows[:movers, :n] @ rows[:movers, :n].T
    sq, total, l1, msq, dcons, down, dpast, psq = (x.tolist() for x in (sq, total, l1, msq, dcons, down, dpast, psq))
    own_move = math.sqrt(own_sq) if start is not None else math.nan
    moved = start is not None and own_move > 0
    use_consensus = moved and median and math.sqrt(cons_sq) > 0
    dir_norm = math.sqrt(cons_sq) if use_consensus else own_move
    # each mover's cosine with the consensus move (the own move without one); in a large audit
    # the top-half consensus's instead (top_half_cosines)
    dots = dcons if use_consensus else down
    cosines = [dots[k] / (math.sqrt(msq[k]) * dir_norm) if msq[k] > 0 else 0.0 for k in range(movers)] if moved else []
    if use_consensus and gram is not None:
        refined = top_half_cosines(gram, np.array(cosines), group, min_candidates)
        if refined is not None:
            cosines = refined.tolist()
    stats: list[ParamStats | None] = [None] * len(candidates)
    for k, i in enumerate(idx):
        cosine = own_cosine = update_ratio = hist = math.nan
        if moved:
            norm = math.sqrt(msq[k])
            update_ratio = norm / own_move
            cosine = cosines[k]
            own_cosine = down[k] / (norm * own_move) if norm > 0 else 0.0
            if i in past:
                den = norm * math.sqrt(psq[k])
                hist = dpast[k] / den if den > 0 else math.nan
        stats[i] = ParamStats(distance=math.sqrt(sq[k]), shift=abs(total[k]) / l1[k] if l1[k] > 0 else 0.0, cosine=cosine,
                              update_ratio=update_ratio, own_cosine=own_cosine, history_cosine=hist,
                              copy_of=-1 if group[k] == k else idx[int(group[k])])
    return relative_to_candidates(stats, min_candidates)


def top_half_cosines(gram: np.ndarray, median_cosines: np.ndarray, group: np.ndarray, min_candidates: int) -> np.ndarray | None:
    """Each move's cosine with the **top-half consensus**: the sum of the unit moves of the half of
    the candidates whose cosine with the coordinate-wise median consensus is highest, the move's
    own group of near-copies left out. None when that half has fewer than ``2 x min_candidates``
    moves (the median consensus stands then).

    ``gram``: the moves' dot products (m x m); ``median_cosines``: each move's cosine with the
    median consensus; ``group[k]``: the candidate move k counts as (:func:`near_copies`; one
    candidate per group is eligible for the half, so copies cannot fill it).

    Why (issue 22, sign flip at seed 401): a coordinate-wise median of noisy honest moves and 30 %
    reversed ones is shrunk towards zero coordinate by coordinate, so it points only loosely where
    the honest moves go (honest cosines with it: median 0.35); the half of the candidates that agree
    with it most holds attackers only where they agree with the median more than honest moves do,
    which reversed or far moves do not, and its mean direction averages the honest noise away (a
    coalition that does agree fills the half and steers it: a named lever,
    experiments/top_half_steering.py). In a clean audit the median of all moves is the steadier of the two (a median
    of m moves is about as noisy as a mean of 0.64 m; the half, one move left out, is a mean of
    m / 2 - 1), so a small audit keeps the median: below ``2 x min_candidates`` moves in the half
    (6 by default: 11 candidates or more) a boosted sign flip among 8 candidates passed against
    the half (tests/defense/test_audit_batched.py). A resolution, not a tuning knob: the default
    committee gives each auditor about 18 candidates at 20 peers. Measured in the mirror and in
    runs (docs/results/robustness.md, "The top-half consensus")."""
    n = np.sqrt(np.maximum(np.diag(gram), 0.0))
    reps = [k for k in range(len(n)) if group[k] == k and n[k] > 0]
    half = math.ceil(len(reps) / 2)
    if half < 2 * min_candidates:
        return None
    top = sorted(reps, key=lambda k: (-median_cosines[k], k))[:half]
    safe = np.where(n > 0, n, 1.0)
    unit = gram / np.outer(safe, safe)  # unit moves' dot products
    row = unit[:, top].sum(axis=1)  # u_k . the sum of the top half's unit moves
    total = float(unit[np.ix_(top, top)].sum())  # |that sum|^2
    out = np.zeros(len(n))
    for k in range(len(n)):
        g = int(group[k])
        dot, sq = row[k], total
        if g in top:  # leave the move's own group out of its reference
            dot -= unit[k, g]
            sq -= 2 * row[g] - unit[g, g]
        # a reference that (nearly) cancels out has no direction; rounding must not leave [-1, 1]
        out[k] = min(1.0, max(-1.0, dot / math.sqrt(sq))) if n[k] > 0 and sq > 1e-9 else 0.0
    return out


def relative_to_candidates(stats: list[ParamStats | None], min_candidates: int) -> list[ParamStats | None]:
    """Each candidate's distance ratio and cosine gaps against the medians over the audit's
    candidates (left unset with fewer than ``min_candidates`` usable ones)."""
    good = [x for x in stats if x is not None]
    if len(good) < min_candidates:
        return stats
    med_dist = float(np.median([x.distance for x in good]))
    cosines = [x.cosine for x in good if math.isfinite(x.cosine)]
    own_cosines = [x.own_cosine for x in good if math.isfinite(x.own_cosine)]
    med_cos = float(np.median(cosines)) if len(cosines) >= min_candidates else math.nan
    med_own = float(np.median(own_cosines)) if len(own_cosines) >= min_candidates else math.nan
    out: list[ParamStats | None] = []
    for x in stats:
        if x is None:
            out.append(None)
            continue
        ratio = x.distance / med_dist if med_dist > 0 else (math.inf if x.distance > 0 else 1.0)
        gap = med_cos - x.cosine if math.isfinite(med_cos) and math.isfinite(x.cosine) else math.nan
        own_gap = med_own - x.own_cosine if math.isfinite(med_own) and math.isfinite(x.own_cosine) else math.nan
        out.append(replace(x, distance_ratio=ratio, cosine_gap=gap, median_cosine=med_cos, own_cosine_gap=own_gap))
    return out


def _halfway(reference: NDArrays, candidate: Sequence[Any], block: int = STAT_BLOCK) -> NDArrays:
    """``(reference + candidate) / 2`` in the reference's dtypes, with the float64 sum and
    halving of ``((float64(t) + float64(c)) / 2).astype(t.dtype)`` (the same values bit for bit),
    ``block`` values at a time: no float64 copy of either model (issue 23)."""
    out: NDArrays = []
    buf = np.empty(min(block, max((np.size(t) for t in reference), default=0)) or 1)
    for t, c in zip(reference, candidate):
        t = np.asarray(t)
        res = np.empty(t.shape, dtype=t.dtype)
        flat, tf, cf = res.reshape(-1), t.reshape(-1), np.asarray(c).reshape(-1)
        for a in range(0, len(flat), block):
            b = min(a + block, len(flat))
            h = np.add(tf[a:b], cf[a:b], out=buf[: b - a], dtype=np.float64, casting="unsafe")
            np.copyto(flat[a:b], np.divide(h, 2, out=h), casting="unsafe")
        out.append(res)
    return out


def merged_losses(
    client: Any, reference_params: NDArrays, candidates: Sequence[Any], valid: Sequence[bool]
) -> list[float]:
    """Loss on the auditor's validation data of ``(reference + candidate) / 2`` for every
    valid candidate (NaN for the others): what averaging the candidate into the auditor's
    model would do to the auditor's own data."""
    todo = [cand for cand, ok in zip(candidates, valid) if ok]
    # evaluated a batch at a time (:func:`bdfl.learning.task.evaluate_many`), at most BATCH_BYTES of
    # merged models held at once
    per = max(1, BATCH_BYTES // max(1, _model_bytes(reference_params)))
    losses: list[float] = []
    for a in range(0, len(todo), per):
        losses += [r.loss for r in _eval_many(client, [_halfway(reference_params, c) for c in todo[a:a + per]])]
    found = iter(losses)
    out = []
    for ok in valid:
        if not ok:
            out.append(math.nan)
            continue
        loss = next(found)
        out.append(loss if math.isfinite(loss) else math.inf)
    return out


def audit_seed(reference_params: NDArrays) -> int:
    """The seed of one audit's trigger family: a hash of the auditor's trained model. Each
    auditor draws other stamps in each round, and nobody knows them before that model exists."""
    h = hashlib.blake2b(digest_size=8)
    for a in reference_params:
        h.update(np.ascontiguousarray(a).tobytes())
    return int.from_bytes(h.digest(), "big")


def trigger_evidence(
    client: Any, reference_params: NDArrays, candidates: Sequence[Any], valid: Sequence[bool], rule: AuditRule,
    seed: int | None = None,
) -> TriggerEvidence | None:
    """Flip shares of the auditor's model and the valid candidates on the auditor's inputs
    stamped with a trigger family drawn from ``seed`` (default :func:`audit_seed`); None when
    the trigger detector is off or the client cannot be scanned (no ``predict`` /
    ``audit_inputs``, or inputs that are not images)."""
    cfg = rule.detectors.trigger
    if not cfg.enabled or not (callable(getattr(client, "predict", None)) and callable(getattr(client, "audit_inputs", None))):
        return None
    X = np.asarray(client.audit_inputs())
    if X.ndim < 3 or len(X) == 0:
        return None
    rng = np.random.default_rng(audit_seed(reference_params) if seed is None else seed)
    X = X[rng.permutation(len(X))[: cfg.inputs]]
    family = trigger_detector.trigger_family(X.shape[-2], X.shape[-1], float(X.min()), float(X.max()), cfg.patterns, rng)
    sets = [reference_params, *(c for c, ok in zip(candidates, valid) if ok)]
    return trigger_detector.scan(_PredictAll(client, sets), X, reference_params, candidates, valid, family)


class _PredictAll:
    """The ``predict(params, X)`` that :func:`trigger_detector.scan` calls for the auditor's model
    and each valid candidate, on one input array: its first call predicts every one of ``sets``
    on that array in one :func:`bdfl.learning.task.predict_many` (one client call where the
    client offers ``predict_many``, else one ``predict`` per set, in the order scan asks);
    the later calls read those labels. Any other call is a plain ``client.predict``."""

    def __init__(self, client: Any, sets: Sequence[Any]) -> None:
        self.client, self.sets = client, list(sets)
        self.X: np.ndarray | None = None
        self.labels: dict[int, np.ndarray] = {}

    def __call__(self, params: Any, X: np.ndarray) -> np.ndarray:
        if self.X is None:
            self.X = X
            self.labels = {id(p): out[0] for p, out in zip(self.sets, predict_many(self.client, self.sets, [X]))}
        if X is self.X and id(params) in self.labels:
            return self.labels[id(params)]
        return np.asarray(self.client.predict(list(params), X))


def class_evidence(client: Any, candidates: Sequence[Any], valid: Sequence[bool], rule: AuditRule) -> ClassEvidence | None:
    """Per-class accuracies of the valid candidates on all the auditor's labelled data
    (``client.audit_data()``: its validation split and training shard, predicted with
    ``client.predict``), for the balanced-accuracy detector; None when that detector is off
    or the client offers no ``predict`` / ``audit_data``."""
    if not rule.enabled("balanced_accuracy") or not (
            callable(getattr(client, "predict", None)) and callable(getattr(client, "audit_data", None))):
        return None
    X, y = client.audit_data()
    y = np.asarray(y).ravel()
    if len(y) == 0:
        return None
    classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    labels = iter(predict_many(client, [c for c, ok in zip(candidates, valid) if ok], [X]))
    out: list[np.ndarray | None] = []
    for ok in valid:
        if not ok:
            out.append(None)
            continue
        correct = (next(labels)[0].ravel() == y).astype(np.float64)
        out.append(np.bincount(inverse, weights=correct, minlength=len(classes)) / counts)
    return ClassEvidence(counts=counts, accuracy=tuple(out))


def evidence(
    reference: EvalResult,
    results: Sequence[EvalResult | str],
    stats: Sequence[ParamStats | None] | None = None,
    merged: Sequence[float] | None = None,
    trigger: TriggerEvidence | None = None,
    classes: ClassEvidence | None = None,
    steps: Sequence[float] | None = None,
) -> Evidence:
    """The detectors' input from the auditor's measurements (see :func:`judge`)."""
    m = len(results)
    for what, seq in (("parameter statistics", stats), ("merged losses", merged), ("step claims", steps)):
        if seq is not None and len(seq) != m:
            raise BDFLError(f"audit: {len(seq)} {what} for {m} candidates")
    if trigger is not None and len(trigger.candidates) != m:
        raise BDFLError(f"audit: {len(trigger.candidates)} trigger scans for {m} candidates")
    if classes is not None and len(classes.accuracy) != m:
        raise BDFLError(f"audit: {len(classes.accuracy)} per-class measurements for {m} candidates")
    valid = [isinstance(r, EvalResult) for r in results]
    counted = [s is None or s.copy_of < 0 for s in stats] if stats is not None else [True] * m

    def stat(name: str) -> list[float]:
        if stats is None:
            return [math.nan] * m
        return [getattr(s, name) if s is not None else math.nan for s in stats]

    return Evidence(
        valid=np.asarray(valid),
        n_val=int(reference.num_examples),
        own_accuracy=float(reference.accuracy),
        own_loss=float(reference.loss),
        accuracy=[r.accuracy if isinstance(r, EvalResult) else math.nan for r in results],
        loss=[r.loss if isinstance(r, EvalResult) else math.nan for r in results],
        distance=stat("distance"),
        shift=stat("shift"),
        cosine=stat("cosine"),
        own_cosine=stat("own_cosine"),
        update_ratio=stat("update_ratio"),
        history_cosine=stat("history_cosine"),
        merged_loss=list(merged) if merged is not None else [math.nan] * m,
        steps=[float(x) for x in steps] if steps is not None else [math.nan] * m,
        trigger=trigger,
        classes=classes,
        counted=np.asarray(counted, dtype=bool),
    )


def combined(name: str) -> bool:
    """Whether detector ``name``'s score already combines several measurements (its failure
    corroborates itself: ``joint``); read from the registry, so a plugin's detector counts too."""
    cls = REGISTRY.get(name)
    return bool(cls is not None and cls.combined)


def family(name: str) -> str:
    """Detector ``name``'s evidence family (:data:`bdfl.defense.detectors.EVIDENCE_FAMILIES`; a
    detector that names none, or is not registered, is a family of its own)."""
    cls = REGISTRY.get(name)
    return (cls.evidence_family if cls is not None else "") or name


def failed_families(findings: Sequence[Finding], by_family: bool = True) -> dict[str, float]:
    """The failed findings grouped by evidence family (:func:`family`; ``by_family`` False: each
    detector its own): family -> its strongest excess (:attr:`Finding.excess`)."""
    out: dict[str, float] = {}
    for f in findings:
        if f.failed:
            key = family(f.name) if by_family else f.name
            out[key] = max(out.get(key, -math.inf), f.excess)
    return out


def rejecting(findings: Sequence[Finding], corroboration: float, by_family: bool = False) -> tuple[Finding, ...]:
    """The failed findings that reject a candidate (empty: it is accepted). Every failed finding
    counts when two or more **independent measurements** failed, when a combined detector
    (:func:`combined`, ``joint``) failed, or when one measurement failed alone and is
    **corroborated**: it lies at least ``corroboration`` (c) times its own bar out
    (:attr:`Finding.excess`, in z; a failure without a z counts as far out), or the combined
    score, which did not fail, is at least ``1 / c`` of its bar (a second, weaker line of evidence
    from the other measurements). A single measurement failing by less, with the combined score
    low, is an honest outlier as often as not and is let through. ``c <= 1``: any failure rejects
    (the rule before issue 22).

    A measurement is an evidence family (:func:`family`) when ``by_family``: failures of detectors
    that read the same evidence (accuracy, balanced accuracy, loss and merged loss are all the
    candidate's loss on the auditor's samples) count as one measurement, at its strongest excess.
    Why: c = sqrt(2) is the equal-evidence factor of two **independent** Gaussian tails; four
    views of one loss fail together on a non-IID candidate and are not two lines of evidence.
    ``by_family`` False (the default): every detector is its own measurement (the rule of
    ``c896489``); measured against by-family counting and kept (AuditRule's docstring)."""
    failed = tuple(f for f in findings if f.failed)
    if corroboration <= 1 or any(combined(f.name) for f in failed):
        return failed
    families = failed_families(failed, by_family)
    if len(families) >= 2 or any(e >= corroboration for e in families.values()):
        return failed
    if failed and any(combined(f.name) and f.excess >= 1 / corroboration for f in findings):
        return failed
    return ()


def audit_corroboration(corroboration: float, candidates: int) -> float:
    """The corroboration a lone failure needs in an audit of ``candidates`` evaluable candidates:
    ``max(1, c / w)`` with ``w`` the bars' small-sample widening
    (:func:`.calibration.small_sample_factor`). A lone finding must lie ``c`` times past the bar
    that unlimited candidates would set; a bar already widened ``w`` times for few candidates holds
    it ``w`` times past, so only the rest is asked. Compounding the two (``c x w``: 4.9 at three
    candidates) left a small committee unable to reject a lone sign flip: measured in
    tests/e2e/test_run.py's 8-peer run, a sign flipper approved in 3 of 4 rounds."""
    if corroboration <= 1:
        return corroboration
    return max(1.0, corroboration / small_sample_factor(candidates))


def _lone(findings: Sequence[Finding]) -> str:
    """The verdict reason of a candidate accepted in spite of a lone failure (or lone failures of
    one evidence family)."""
    failed = [f for f in findings if f.failed]
    f = max(failed, key=lambda f: f.excess)
    if len(failed) == 1:
        return f"passed: {f.name} alone, {f.excess:.2f}x its bar, not corroborated ({f.detail})"
    names = " + ".join(g.name for g in failed)
    return (f"passed: {names}, one measurement ({family(f.name)}), {f.excess:.2f}x its bar at most, "
            f"not corroborated ({f.detail})")


def judge(
    rule: AuditRule,
    reference: EvalResult,
    results: Sequence[EvalResult | str],
    stats: Sequence[ParamStats | None] | None = None,
    merged: Sequence[float] | None = None,
    trigger: TriggerEvidence | None = None,
    classes: ClassEvidence | None = None,
    steps: Sequence[float] | None = None,
) -> list[AuditVerdict]:
    """Apply ``rule`` to already-computed measurements: the evaluation results
    (:func:`evaluate_candidates`), and when given the parameter statistics
    (:func:`candidate_statistics`), the merged losses (:func:`merged_losses`; NaN for invalid
    candidates), the trigger evidence (:func:`trigger_evidence`) and the per-class accuracies
    (:func:`class_evidence`), and each candidate's claimed local steps (:func:`claimed_steps`;
    for the no-work test). A detector whose measurement is missing does not judge."""
    if not math.isfinite(reference.loss):
        # either cause is the auditor's own: its fit diverged, or its client's evaluate returned NaN / inf
        # for a finite model (an outside probe's client did; the message blamed training alone)
        raise ReferenceNotFinite(f"the auditor's own model has a non-finite loss ({reference.loss}) on its validation "
                                 "data (its training diverged this round, or its client's evaluate returns a non-finite "
                                 "loss): it cannot judge others against it")
    ev = evidence(reference, results, stats, merged, trigger, classes, steps)
    per = run_detectors(build_detectors(rule.detectors), ev)
    corroboration = audit_corroboration(rule.detectors.corroboration, int(np.sum(ev.sample)))
    verdicts = []
    for i, r in enumerate(results):
        st = stats[i] if stats is not None else None
        if not isinstance(r, EvalResult):
            verdicts.append(AuditVerdict(False, r, ("invalid",), (), math.nan, math.nan, reference.accuracy,
                                         reference.loss, st))
            continue
        failures = rejecting(per[i], corroboration, rule.by_family)
        verdicts.append(AuditVerdict(
            accept=not failures,
            reason="; ".join(f.detail for f in failures) if failures else (
                _lone(per[i]) if any(f.failed for f in per[i]) else "passed every test"),
            failed=tuple(f.name for f in failures),
            findings=tuple(per[i]),
            accuracy=r.accuracy,
            loss=r.loss,
            reference_accuracy=reference.accuracy,
            reference_loss=reference.loss,
            stats=st,
        ))
    observer = _audit_observer.get()
    if observer is not None:  # offline re-judging (observe_audits)
        observer(ev, verdicts)
    return verdicts


def audit_updates(
    client: Any,
    reference_params: NDArrays,
    candidates: Sequence[NDArrays],
    rule: AuditRule | None = None,
    *,
    start_params: NDArrays | None = None,
    candidate_starts: Sequence[NDArrays | None] | None = None,
    candidate_past_moves: Sequence[NDArrays | None] | None = None,
    candidate_steps: Sequence[float] | None = None,
    seed: int | None = None,
) -> list[AuditVerdict]:
    """Judge every candidate model with ``rule``.

    ``reference_params``: the auditor's own model after this round's local training;
    ``start_params`` (optional): its model at the start of the round, before training —
    without it the direction and no-work detectors do not judge. ``candidate_starts``
    (optional, one entry or None per candidate): the candidates' trainers' starts of the
    round, rebuilt from the chain (:func:`bdfl.peer.sources.start_recipes`); the direction and
    no-work detectors then measure a candidate's own move. ``candidate_past_moves`` (optional,
    likewise): each trainer's move in an earlier round (:class:`bdfl.peer.sources.MoveHistory`),
    for the consistency detector. ``candidate_steps`` (optional, NaN where unknown): the local
    steps each trainer claims (:func:`claimed_steps`), for the no-work detector's small-shard
    credit. ``seed``: the trigger family's (default: :func:`audit_seed`).
    Returns one :class:`AuditVerdict` per candidate, in order; invalid candidates are rejected.
    """
    rule = rule or AuditRule()
    reference, results = evaluate_candidates(client, reference_params, candidates)
    valid = [isinstance(r, EvalResult) for r in results]
    stats = candidate_statistics(
        reference_params, candidates, start_params, valid=valid, min_candidates=rule.min_candidates,
        candidate_starts=candidate_starts, candidate_past_moves=candidate_past_moves, checked=True,
    )
    merged = merged_losses(client, reference_params, candidates, valid) if rule.enabled("merge") else None
    trigger = trigger_evidence(client, reference_params, candidates, valid, rule, seed)
    return judge(rule, reference, results, stats, merged, trigger, class_evidence(client, candidates, valid, rule),
                 candidate_steps)


def claimed_steps(num_samples: int | None, batch_size: int | None) -> float:
    """The local steps an epoch that a trainer's claimed sample count implies: ``ceil(n /
    batch_size)`` (epochs are the same for every peer and cancel in the no-work test); NaN when
    either is unknown or the claim is 0 (a trainer that claims no samples claims no work, and
    gets no small-shard credit)."""
    if not num_samples or not batch_size or num_samples < 0 or batch_size <= 0:
        return math.nan
    return float(math.ceil(num_samples / batch_size))


# -- offline re-judging (experiments/audit_rule_eval.py) -------------------------------------

#: set by :func:`observe_audits`: called by every :func:`judge` with its measurements and verdicts
_audit_observer: ContextVar[Callable[[Evidence, list[AuditVerdict]], None] | None] = ContextVar("audit_observer", default=None)


@contextmanager
def observe_audits(observer: Callable[[Evidence, list[AuditVerdict]], None]) -> Iterator[None]:
    """While active, every :func:`judge` (so every :func:`audit_updates`, every peer's audit)
    hands ``observer`` the audit's measurements (:class:`Evidence`) and its verdicts, so that
    the same audit can be judged again under other rules (:func:`rejudge`)."""
    token = _audit_observer.set(observer)
    try:
        yield
    finally:
        _audit_observer.reset(token)


def rejudge(rule: AuditRule, ev: Evidence) -> list[tuple[str, ...]]:
    """The detectors of ``rule`` that fail each candidate of an audit already measured
    (``ev``, from :func:`observe_audits`); ``("invalid",)`` for a candidate that was not
    evaluable; empty: accepted. A detector whose measurement the audit did not take (e.g. the
    merged loss when the auditing rule had ``merge`` off) does not judge."""
    per = run_detectors(build_detectors(rule.detectors), ev)
    corroboration = audit_corroboration(rule.detectors.corroboration, int(np.sum(ev.sample)))
    return [tuple(f.name for f in rejecting(fs, corroboration, rule.by_family)) if ok else ("invalid",)
            for ok, fs in zip(ev.valid, per)]
