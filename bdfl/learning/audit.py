"""The auditor's accept/reject rule.

An auditor judges the candidate models (other peers' published parameters) assigned to
it with what it has: its **own** model at the start of the round (``start_params``),
its own model after this round's local training (``reference_params``), its **own**
local validation split (through ``client.evaluate`` — the same call for any
``NumPyClient``) and the candidates' parameters. A candidate is **rejected when any
test fails**:

1. **validity** — NaN/Inf, a different number of arrays or different shapes than the
   auditor's model: rejected without being evaluated.
2. **magnitude** (``norm_ratio``, default 4.0) — its distance to the auditor's trained
   model is more than ``norm_ratio`` times the median distance of the candidates this
   auditor judges (noise, boosted/scaled updates). Needs ``min_candidates``.
3. **direction** (``direction_margin`` 0.2, ``direction_min_agreement`` 0.3,
   ``direction_own_margin`` 0.1) — the candidate's move points away from the others'. Its
   move is ``candidate - its trainer's start`` when the auditor knows that start
   (``candidate_starts``: ``bdfl run`` and ``bdfl peer`` rebuild it from the previous
   round's on-chain updates, :mod:`bdfl.peer.sources`), else ``candidate - start``. It
   fails when its cosine with the *consensus move* (the coordinate-wise median of the
   candidates' moves and the auditor's own) is more than ``direction_margin`` below the
   candidates' median cosine, while the candidates agree (that median >=
   ``direction_min_agreement``; late in training honest moves barely agree and the test
   stands down) and its cosine with the auditor's own move is also more than
   ``direction_own_margin`` below the median (a consensus that attackers dominate cannot
   make an honest candidate fail alone). Catches sign flipping, IPM, and label-flipped and
   backdoored moves early in training. ``direction_reference="own"``: the earlier
   single-reference test against the auditor's own move. Needs ``start_params``,
   ``min_candidates`` and an auditor that trained (a non-zero own move).
4. **coherent shift** (``shift_limit``, default 0.4) — ``|sum(c - t)| / sum(|c - t|)``
   over all coordinates, with ``t`` the auditor's trained model, exceeds ``shift_limit``:
   the candidate sits on one side of the auditor's model in almost every coordinate
   (ALIE's ``mean - z * std``; also label-flipped and backdoored models once the
   federation has learned something). Honest models differ from each other in both
   directions (measured: below 0.2 for >= 99.5 % of honest votes).
5. **no work** (``min_update``, default 0.1) — the candidate's move (as in 3) is shorter
   than ``min_update`` times the auditor's own ``||trained - start||``: the candidate is
   (almost) the model it started from (a free-rider re-publishing it). Needs ``start_params``.
6. **consistency** (``consistency_min_cosine``, default -0.3) — the candidate's move (from
   its trainer's rebuilt start) points against the same trainer's move in its latest
   earlier round that was not rejected (``candidate_past_moves``, rebuilt from the chain
   for up to ``defense.consistency_window`` rounds back, :class:`bdfl.peer.sources.MoveHistory`):
   cosine below ``consistency_min_cosine``. A peer trains on the same data every round, so
   its honest moves in consecutive rounds agree (measured in the audit mirror: median cosine
   0.8-0.95; below -0.3 for none of 11,289 honest votes under on_off, for 0.26 % under
   colluding auditors, whose vetoes leave peers restarting from their own model); an on-off attacker that turns to sign flipping reverses
   its move, and while it is rejected its last accepted move stays the reference. Needs
   both rebuilt starts; late in training, when moves of different peers no longer agree and
   the direction test stands down, this is what still sees a reversal.
7. **trigger** (``trigger_limit``, default 1 = off, 0.9 in the default experiment;
   ``trigger_size`` 2) — square stamps of ``trigger_size`` pixels at the inputs' maximum
   value, tried at every position of a grid on the auditor's own inputs, send a share of
   them to one class that is more than ``trigger_limit`` above what the auditor's own
   model and the median candidate do with the same stamp, in a class it flips at no more
   than ``trigger_spread`` (0.2) of the stamp positions (:mod:`bdfl.learning.trigger_scan`).
   Catches pixel-trigger backdoors, which keep clean accuracy and move like a skewed
   honest peer. Needs a client with ``predict`` and ``audit_inputs`` (the bundled
   ``TorchClient``); skipped otherwise. Off by default because its cost grows with the
   model and the image: two predictions on up to 64 x 128 stamped inputs per candidate
   (docs/learning.md, "Trigger scan").
8. **quality** (``margin``, ``loss_margin``) — evaluated on the auditor's validation
   data, the candidate is clearly worse than **both** the auditor's own trained model
   and the median candidate: ``acc < min(acc_own, acc_median) - margin`` or
   ``loss > max(loss_own, loss_median) + loss_margin`` (``metric`` chooses which
   count; ``reference`` which bars). Under non-IID data honest models differ a lot on
   one auditor's few classes, so these margins are wide (0.6 accuracy, 3.0 nats by
   default): this test is the safety net for garbage models, not the main detector.

Tests 2-6 only compare parameter vectors, so they work for any model the client
serialises as arrays; test 7 needs image inputs and predictions. The median-based tests
(2, 3, 6's median bar, 7) need at least ``min_candidates`` evaluable candidates and assume
fewer than half of them are bad; the own-model tests (4, 5, 6's own bar) do not. A median that attackers dominate mostly makes
the median tests *more lenient* (the bar moves towards the attackers). Two exceptions: the
magnitude test compares with the median distance, which a majority of near-identical
attackers shrinks, and the direction test's consensus move, which such a majority steers;
the direction test therefore also requires a deviation from the auditor's own move
(``direction_own_margin``). See docs/learning.md for the measured limits.

The shift and no-work tests have the auditor's own model as their only bar. When that model
is the outlier (its local training went astray), they fail nearly every candidate, and with
``defense.max_reject_share = 0`` one such auditor keeps every update it judged out of every
peer's aggregate (measured: a whole round without aggregation). So both stand down for one
audit when together they fail more than ``stand_down_share`` (0.75) of the evaluable
candidates.

Setting a test's parameter to its neutral value switches it off: ``norm_ratio = 0``,
``direction_margin = 2``, ``shift_limit = 1``, ``min_update = 0``,
``consistency_min_cosine = -1``, ``trigger_limit = 1``, ``margin = 1``, ``merge_loss_margin = 0``.

Defaults were chosen with ``experiments/audit_rule_eval.py`` (digits, 20 peers,
Dirichlet 0.5, 30 % attackers, the runner's training settings, decentralised per-peer
models): docs/learning.md has the measurements and the limits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from bdfl.config import DEFENSE_SETTINGS, check_defense_setting
from bdfl.errors import BDFLError
from bdfl.learning.task import EvalResult, evaluate_client
from bdfl.learning import trigger_scan
from bdfl.types import NDArrays

__all__ = [
    "AuditRule",
    "AuditVerdict",
    "ParamStats",
    "audit_updates",
    "candidate_statistics",
    "evaluate_candidates",
    "judge",
    "merged_losses",
    "trigger_excesses",
    "trigger_scan_settings",
]

Metric = Literal["accuracy", "loss", "accuracy_and_loss"]
Reference = Literal["own", "median", "own_or_median"]
DirectionReference = Literal["median", "own"]


@dataclass(frozen=True)
class AuditRule:
    """Configuration of the accept/reject rule (see the module docstring).

    metric: which quality tests count: "accuracy" | "loss" | "accuracy_and_loss".
    margin: accuracy tolerance of the quality test, in [0, 1] (1 = off).
    loss_margin: loss tolerance of the quality test, nats of cross-entropy added to the bar.
    reference: the quality test's bars: "own", "median", or "own_or_median".
    min_candidates: fewest evaluable candidates for the median-based tests.
    norm_ratio: magnitude test, distance to own model / median distance, > 1 (0 = off).
    direction_margin: direction test, cosine below the median cosine by more than this, in [0, 2] (2 = off).
    direction_reference: the direction test's cosine is taken with the consensus move ("median":
        coordinate-wise median of the candidates' moves and the auditor's own) or the auditor's own move.
    direction_min_agreement: the direction test runs only when the median candidate's cosine is at
        least this, in [-1, 1] (-1 = always): when moves do not agree there is no direction to deviate from.
    direction_own_margin: with "median", the candidate must also be more than this below the median
        cosine with the auditor's own move, in [-2, 2] (-2 = no such check): a consensus that attackers
        dominate (e.g. 50 % identical ALIE moves) cannot make an honest auditor reject honest moves alone.
    shift_limit: coherent-shift test, in (0, 1] (1 = off).
    min_update: no-work test, fraction of the auditor's own update norm, in [0, 1) (0 = off).
    consistency_min_cosine: consistency test, reject a move whose cosine with its trainer's latest
        not-rejected earlier move is below this, in [-1, 1] (-1 = off).
    merge_loss_margin / merge_loss_ratio: merge test, reject when the loss of the average of
        the auditor's model and the candidate exceeds the candidates' median such loss times
        (1 + merge_loss_ratio) plus merge_loss_margin nats (margin 0 = off).
    trigger_limit: trigger test, reject a candidate whose trigger excess
        (:mod:`bdfl.learning.trigger_scan`) is above this, in [0, 1] (1 = off).
    trigger_spread: only classes a stamp flips (excess above 0.5) at no more than this share of
        the stamp positions count, in (0, 1]: a trigger is local.
    trigger_size / trigger_grid / trigger_inputs: the scan's square stamp side in pixels, at
        most this many stamp offsets per image axis, at most this many of the auditor's inputs.
    stand_down_share: the tests whose only bar is the auditor's own model (shift, no work) stand
        down for one audit when together they fail more than this share of its evaluable
        candidates, in [0.5, 1] (1 = never): the auditor's own model is then the outlier.
    """

    metric: Metric = "accuracy_and_loss"
    margin: float = 0.6
    loss_margin: float = 3.0
    reference: Reference = "own_or_median"
    min_candidates: int = 3
    norm_ratio: float = 4.0
    direction_margin: float = 0.2
    direction_reference: DirectionReference = "median"
    direction_min_agreement: float = 0.3
    direction_own_margin: float = 0.1
    shift_limit: float = 0.4
    min_update: float = 0.1
    consistency_min_cosine: float = -0.3
    merge_loss_margin: float = 0.5
    merge_loss_ratio: float = 0.5
    trigger_limit: float = 1.0
    trigger_spread: float = 0.2
    stand_down_share: float = 0.75
    trigger_size: int = 2
    trigger_grid: int = 8
    trigger_inputs: int = 128

    def __post_init__(self) -> None:
        if self.metric not in ("accuracy", "loss", "accuracy_and_loss"):
            raise BDFLError(
                f"audit rule: metric must be 'accuracy', 'loss' or 'accuracy_and_loss', got {self.metric!r}"
            )
        if self.reference not in ("own", "median", "own_or_median"):
            raise BDFLError(
                f"audit rule: reference must be 'own', 'median' or 'own_or_median', got {self.reference!r}"
            )
        if isinstance(self.min_candidates, bool) or not isinstance(self.min_candidates, int) or self.min_candidates < 1:
            raise BDFLError(f"audit rule: min_candidates must be an integer >= 1, got {self.min_candidates!r}")
        # the fields a [defense] table also has (as audit_<field>) are checked against the
        # config's ranges, the one place they live (bdfl.config.check_defense_setting)
        for name in self.__dataclass_fields__:
            if f"audit_{name}" in DEFENSE_SETTINGS:
                check_defense_setting(f"audit_{name}", getattr(self, name))
        for name in ("trigger_grid", "trigger_inputs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise BDFLError(f"audit rule: {name} must be an integer >= 1, got {value!r}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> AuditRule:
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise BDFLError(
                f"audit rule: unknown field(s) {', '.join(unknown)}",
                fix=f"fields: {', '.join(cls.__dataclass_fields__)}",
            )
        return cls(**values)

    @classmethod
    def from_defense(cls, defense: Any) -> AuditRule:
        """The rule a ``[defense]`` config table describes: its ``audit_<field>`` attributes
        (``audit_margin``, ``audit_loss_margin``, ``audit_norm_ratio``, ...); a missing
        attribute keeps the default."""
        values = {}
        for name in cls.__dataclass_fields__:
            key = f"audit_{name}"
            if hasattr(defense, key):
                values[name] = getattr(defense, key)
        return cls(**values)


@dataclass(frozen=True)
class ParamStats:
    """Parameter-space statistics of one candidate, relative to the auditor's models.

    distance: ||candidate - trained||; distance_ratio: that over the median distance of
    the auditor's candidates (NaN with fewer than ``min_candidates``).
    cosine: cos(move, direction): the candidate's move (from its trainer's rebuilt start, else from the
        auditor's start) with the consensus or own move (NaN without a start model or own move);
    cosine_gap: median cosine of the candidates minus this one; median_cosine: that median.
    own_cosine / own_cosine_gap: the same with the auditor's own move (equal to the above with
        ``direction_reference="own"``).
    shift: |sum(candidate - trained)| / sum(|candidate - trained|) (0 when identical).
    update_ratio: ||candidate - start|| / ||trained - start|| (NaN without start or own move).
    history_cosine: cos(move, the same trainer's earlier move) (NaN unless both its start of this
        round and that earlier move were rebuilt).
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


@dataclass(frozen=True)
class AuditVerdict:
    """One auditor's judgement of one candidate.

    ``score`` / ``reference_score`` / ``median_score`` are accuracies (or losses for
    ``metric="loss"``); ``loss`` etc. are always the losses; ``stats`` the parameter
    statistics (None when not computed). ``failed`` names the tests that rejected it
    ("invalid", "magnitude", "direction", "shift", "no_work", "consistency", "merge", "trigger", "accuracy",
    "loss"); ``merged_loss`` the loss of the average of the auditor's model and the candidate;
    ``trigger_excess`` the candidate's trigger excess (:mod:`bdfl.learning.trigger_scan`).
    NaN where not computed.
    """

    accept: bool
    score: float
    reference_score: float
    median_score: float
    reason: str
    loss: float = math.nan
    reference_loss: float = math.nan
    median_loss: float = math.nan
    stats: ParamStats | None = None
    failed: tuple[str, ...] = ()
    merged_loss: float = math.nan
    merged_loss_median: float = math.nan
    trigger_excess: float = math.nan


def _finite_and_matching(candidate: Any, reference: NDArrays) -> str | None:
    if not isinstance(candidate, (list, tuple)) or len(candidate) != len(reference):
        return "parameter count differs from the auditor's model"
    for a, b in zip(candidate, reference):
        a = np.asarray(a)
        if a.shape != np.shape(b):
            return f"array shape {a.shape} differs from the auditor's {np.shape(b)}"
        if np.issubdtype(a.dtype, np.inexact) and not np.all(np.isfinite(a)):
            return "parameters contain NaN or Inf"
        if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
            return f"non-numeric parameter dtype {a.dtype}"
    return None


def _eval(client: Any, params: NDArrays) -> EvalResult:
    res = evaluate_client(client, params)
    if res.num_examples <= 0:
        raise BDFLError(
            "the auditor's client evaluated on 0 validation samples",
            fix="give every peer a non-empty validation split (val_fraction > 0)",
        )
    return res


def evaluate_candidates(
    client: Any, reference_params: NDArrays, candidates: Sequence[NDArrays]
) -> tuple[EvalResult, list[EvalResult | str]]:
    """Evaluate the reference and every candidate on the auditor's validation data.

    Returns (reference result, per-candidate result or the reason it was not evaluated).
    """
    ref = _eval(client, reference_params)
    out: list[EvalResult | str] = []
    for cand in candidates:
        problem = _finite_and_matching(cand, reference_params)
        if problem is not None:
            out.append(problem)
            continue
        res = _eval(client, list(cand))
        if not math.isfinite(res.loss):
            out.append("evaluation loss is not finite")
            continue
        out.append(res)
    return ref, out


def _flat(params: Sequence[Any]) -> np.ndarray:
    return np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in params]) if len(params) else np.zeros(0)


def candidate_statistics(
    reference_params: NDArrays,
    candidates: Sequence[Any],
    start_params: NDArrays | None = None,
    *,
    valid: Sequence[bool] | None = None,
    min_candidates: int = 3,
    candidate_starts: Sequence[NDArrays | None] | None = None,
    direction_reference: DirectionReference = "median",
    candidate_past_moves: Sequence[NDArrays | None] | None = None,
) -> list[ParamStats | None]:
    """Parameter-space statistics of every candidate (None for an invalid one).

    ``valid[i]`` False (or a candidate whose arrays do not match the reference) gives
    None; medians are taken over the valid candidates only. ``candidate_starts[i]``: where
    candidate i's trainer started the round, when the auditor knows it; its move is then
    ``candidate - candidate_starts[i]`` instead of ``candidate - start_params``. The cosine
    is taken with the auditor's own move (``direction_reference="own"``) or with the
    coordinate-wise median of the candidates' moves and the auditor's own (``"median"``,
    the consensus move; the own move when fewer than ``min_candidates`` moves are known).
    ``candidate_past_moves[i]``: candidate i's trainer's move in an earlier round (its update
    then minus its start then); with a known start it gives ``history_cosine``.
    """
    t = _flat(reference_params)
    s = None
    own_move = math.nan
    if start_params is not None and _finite_and_matching(list(start_params), reference_params) is None:
        s = _flat(start_params)
        own_move = float(np.linalg.norm(t - s))
    base: list[tuple[float, float] | None] = []
    moves: list[np.ndarray | None] = []
    history: list[float] = []
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
    if own_dir is not None and direction_reference == "median" and len(known) >= min_candidates:
        consensus = np.median(np.stack([*known, own_dir]), axis=0)
        if np.linalg.norm(consensus) > 0:
            direction = consensus

    def cos(move: np.ndarray, ref: np.ndarray, norm: float) -> float:
        return float(move @ ref) / (norm * float(np.linalg.norm(ref))) if norm > 0 else 0.0

    stats: list[ParamStats | None] = []
    for b, move, hist in zip(base, moves, history):
        if b is None:
            stats.append(None)
            continue
        cosine = own_cosine = update_ratio = math.nan
        if move is not None:  # a move implies the own move and a direction
            norm = float(np.linalg.norm(move))
            update_ratio = norm / own_move
            cosine = cos(move, direction, norm)
            own_cosine = cos(move, own_dir, norm)
        stats.append(ParamStats(distance=b[0], shift=b[1], cosine=cosine, update_ratio=update_ratio, own_cosine=own_cosine,
                                history_cosine=hist))
    good = [x for x in stats if x is not None]
    if len(good) >= min_candidates:
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
        stats = out
    return stats


def merged_losses(
    client: Any, reference_params: NDArrays, candidates: Sequence[Any], valid: Sequence[bool]
) -> list[float]:
    """Loss on the auditor's validation data of ``(reference + candidate) / 2`` for every
    valid candidate (NaN for the others): what averaging the candidate into the auditor's
    model would do to the auditor's own data."""
    out = []
    for cand, ok in zip(candidates, valid):
        if not ok:
            out.append(math.nan)
            continue
        merged = [
            ((np.asarray(t, dtype=np.float64) + np.asarray(c, dtype=np.float64)) / 2).astype(np.asarray(t).dtype)
            for t, c in zip(reference_params, cand)
        ]
        loss = _eval(client, merged).loss
        out.append(loss if math.isfinite(loss) else math.inf)
    return out


def trigger_scan_settings(rule: AuditRule) -> dict[str, Any] | None:
    """The settings ``rule`` scans with (the keyword arguments of
    :func:`bdfl.learning.trigger_scan.trigger_excess`), or None when its trigger test is off.
    Two rules with equal settings get equal scans."""
    if rule.trigger_limit >= 1:
        return None
    return {"size": rule.trigger_size, "grid": rule.trigger_grid, "max_inputs": rule.trigger_inputs,
            "min_candidates": rule.min_candidates, "max_spread": rule.trigger_spread}


def trigger_excesses(
    client: Any, reference_params: NDArrays, candidates: Sequence[Any], valid: Sequence[bool], rule: AuditRule
) -> list[float] | None:
    """The candidates' trigger excess with ``rule``'s scan settings (None when the trigger
    test is off; NaN for candidates or clients that cannot be scanned)."""
    settings = trigger_scan_settings(rule)
    if settings is None:
        return None
    return trigger_scan.trigger_excess(client, reference_params, candidates, valid, **settings)


def _param_failures(rule: AuditRule, st: ParamStats | None) -> list[tuple[str, str]]:
    if st is None:
        return []
    out = []
    if rule.norm_ratio > 0 and st.distance_ratio > rule.norm_ratio:
        out.append(("magnitude", f"distance {st.distance_ratio:.2f}x the median > {rule.norm_ratio:g}x"))
    if rule.direction_margin < 2 and st.cosine_gap > rule.direction_margin:
        if rule.direction_reference == "own":
            out.append(("direction", f"cosine with own move {st.cosine:.2f} is {st.cosine_gap:.2f} below the median (> {rule.direction_margin:g})"))
        elif st.median_cosine >= rule.direction_min_agreement and st.own_cosine_gap > rule.direction_own_margin:
            out.append(("direction", f"cosine with the consensus move {st.cosine:.2f} is {st.cosine_gap:.2f} below the median "
                                     f"(> {rule.direction_margin:g}), with own move {st.own_cosine_gap:.2f} below (> {rule.direction_own_margin:g})"))
    if rule.shift_limit < 1 and st.shift > rule.shift_limit:
        out.append(("shift", f"coherent shift {st.shift:.2f} > {rule.shift_limit:g}"))
    if rule.min_update > 0 and st.update_ratio < rule.min_update:
        out.append(("no_work", f"update {st.update_ratio:.3f}x own update < {rule.min_update:g}x"))
    if rule.consistency_min_cosine > -1 and st.history_cosine < rule.consistency_min_cosine:
        out.append(("consistency", f"cosine with its trainer's earlier move {st.history_cosine:.2f} < {rule.consistency_min_cosine:g}"))
    return out


# Tests whose bar is the auditor's own trained model alone: when it is the outlier (its local
# training went astray), they fail every candidate (see AuditRule.stand_down_share).
OWN_ANCHORED_TESTS = ("shift", "no_work")


def _outlier_tests(rule: AuditRule, failures: Sequence[list[tuple[str, str]]], evaluable: int) -> frozenset[str]:
    """The own-anchored tests, when together they failed more than ``rule.stand_down_share``
    of the auditor's ``evaluable`` candidates (at least ``min_candidates``): they stand down
    for this audit. Else none."""
    if rule.stand_down_share >= 1 or evaluable < rule.min_candidates:
        return frozenset()
    failing = sum(any(n in OWN_ANCHORED_TESTS for n, _ in f) for f in failures)
    return frozenset(OWN_ANCHORED_TESTS) if failing > rule.stand_down_share * evaluable else frozenset()


def judge(
    rule: AuditRule,
    reference: EvalResult,
    results: Sequence[EvalResult | str],
    stats: Sequence[ParamStats | None] | None = None,
    merged_losses: Sequence[float] | None = None,
    trigger_excess: Sequence[float] | None = None,
) -> list[AuditVerdict]:
    """Apply ``rule`` to already-computed evaluation results (see :func:`evaluate_candidates`)
    and, when given, parameter statistics (see :func:`candidate_statistics`), the losses
    of the auditor's model averaged with each candidate (see :func:`merged_losses`; NaN for
    invalid candidates) and the candidates' trigger excess (see :func:`trigger_excesses`;
    NaN where not scanned). Without them only the quality test applies."""
    needs_acc = rule.metric != "loss"
    if needs_acc and not math.isfinite(reference.accuracy):
        raise BDFLError(
            "the task's evaluate() reports no finite 'accuracy' metric, which the audit rule needs",
            fix="return {'accuracy': ...} from NumPyClient.evaluate, or use the audit metric 'loss'",
        )
    if stats is not None and len(stats) != len(results):
        raise BDFLError(f"audit: {len(stats)} parameter statistics for {len(results)} candidates")
    if merged_losses is not None and len(merged_losses) != len(results):
        raise BDFLError(f"audit: {len(merged_losses)} merged losses for {len(results)} candidates")
    if trigger_excess is not None and len(trigger_excess) != len(results):
        raise BDFLError(f"audit: {len(trigger_excess)} trigger scans for {len(results)} candidates")
    merged_med = math.nan
    if merged_losses is not None:
        finite = [x for x in merged_losses if math.isfinite(x)]
        if len(finite) >= rule.min_candidates:
            merged_med = float(np.median(finite))
    med_acc = med_loss = math.nan
    use_median = rule.reference != "own" and len(results) >= rule.min_candidates
    if use_median:
        # A candidate that could not be evaluated counts as the worst possible score.
        med_acc = float(np.median([r.accuracy if isinstance(r, EvalResult) else -math.inf for r in results]))
        med_loss = float(np.median([r.loss if isinstance(r, EvalResult) else math.inf for r in results]))
        if not (math.isfinite(med_loss) and (math.isfinite(med_acc) or not needs_acc)):
            use_median = False  # most candidates are invalid: the median says nothing
            med_acc = med_loss = math.nan
    use_own = rule.reference != "median" or not use_median
    acc_bars = ([reference.accuracy] if use_own else []) + ([med_acc] if use_median else [])
    loss_bars = ([reference.loss] if use_own else []) + ([med_loss] if use_median else [])
    # Accept when within the margin of EITHER bar: the lower accuracy bar, the higher loss bar.
    acc_bar = min(acc_bars)
    loss_bar = max(loss_bars)

    param_failures = [_param_failures(rule, stats[i] if stats is not None else None) if isinstance(r, EvalResult) else []
                      for i, r in enumerate(results)]
    quiet = _outlier_tests(rule, param_failures, sum(isinstance(r, EvalResult) for r in results))
    verdicts = []
    for i, r in enumerate(results):
        st = stats[i] if stats is not None else None
        if not isinstance(r, EvalResult):
            verdicts.append(
                AuditVerdict(False, math.nan, reference.accuracy, med_acc, r, math.nan, reference.loss, med_loss,
                             st, ("invalid",), math.nan, merged_med)
            )
            continue
        failures = [f for f in param_failures[i] if f[0] not in quiet]
        ml = merged_losses[i] if merged_losses is not None else math.nan
        if rule.merge_loss_margin > 0 and math.isfinite(merged_med) and not math.isnan(ml):
            bar = merged_med * (1 + rule.merge_loss_ratio) + rule.merge_loss_margin
            if ml > bar:
                failures.append(("merge", f"loss merged with own model {ml:.3f} > median {merged_med:.3f} x {1 + rule.merge_loss_ratio:g} + {rule.merge_loss_margin:g}"))
        te = trigger_excess[i] if trigger_excess is not None else math.nan
        if rule.trigger_limit < 1 and te > rule.trigger_limit:
            failures.append(("trigger", f"a stamped patch flips {te:.2f} more of the inputs to one class than the other models "
                                        f"(> {rule.trigger_limit:g})"))
        if needs_acc and not r.accuracy >= acc_bar - rule.margin:
            failures.append(("accuracy", f"accuracy {r.accuracy:.3f} < bar {acc_bar:.3f} - margin {rule.margin:g}"))
        if rule.metric != "accuracy" and r.loss > loss_bar + rule.loss_margin:
            failures.append(("loss", f"loss {r.loss:.3f} > bar {loss_bar:.3f} + margin {rule.loss_margin:g}"))
        if rule.metric == "loss":
            score, ref_score, med_score = r.loss, reference.loss, med_loss
        else:
            score, ref_score, med_score = r.accuracy, reference.accuracy, med_acc
        verdicts.append(
            AuditVerdict(
                accept=not failures,
                score=score,
                reference_score=ref_score,
                median_score=med_score,
                reason="; ".join(text for _, text in failures) if failures else "passed every test",
                loss=r.loss,
                reference_loss=reference.loss,
                median_loss=med_loss,
                stats=st,
                failed=tuple(name for name, _ in failures),
                merged_loss=ml,
                merged_loss_median=merged_med,
                trigger_excess=te,
            )
        )
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
) -> list[AuditVerdict]:
    """Judge every candidate model with ``rule``.

    ``reference_params``: the auditor's own model after this round's local training;
    ``start_params`` (optional): its model at the start of the round, before training —
    without it the direction and no-work tests are skipped. ``candidate_starts``
    (optional, one entry or None per candidate): the candidates' trainers' starts of the
    round, rebuilt from the chain (:func:`bdfl.peer.sources.start_recipes`); the direction
    and no-work tests then measure a candidate's own move. ``candidate_past_moves``
    (optional, likewise): each trainer's move in an earlier round
    (:class:`bdfl.peer.sources.MoveHistory`), for the consistency test. Only ``client.evaluate`` on
    the auditor's own validation data and the parameters are used. Returns one
    :class:`AuditVerdict` per candidate, in order; invalid candidates are rejected.
    """
    rule = rule or AuditRule()
    reference, results = evaluate_candidates(client, reference_params, candidates)
    valid = [isinstance(r, EvalResult) for r in results]
    stats = candidate_statistics(
        reference_params, candidates, start_params, valid=valid, min_candidates=rule.min_candidates,
        candidate_starts=candidate_starts, direction_reference=rule.direction_reference,
        candidate_past_moves=candidate_past_moves,
    )
    merged = merged_losses(client, reference_params, candidates, valid) if rule.merge_loss_margin > 0 else None
    return judge(rule, reference, results, stats, merged, trigger_excesses(client, reference_params, candidates, valid, rule))
