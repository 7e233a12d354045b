"""The detectors' common interface: :class:`Finding`, :class:`Evidence`, :class:`Detector`."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from bdfl.config import DetectorConfig
from bdfl.defense.detectors.calibration import safe_log, small_sample_factor

__all__ = ["EVIDENCE_FAMILIES", "ClassEvidence", "Detector", "Evidence", "Finding", "TriggerEvidence", "enough"]


@dataclass(frozen=True)
class Finding:
    """One detector's judgement of one candidate: ``score`` held to ``threshold``
    (``failed`` says in which direction it lost); ``z``: how many of the detector's spreads the
    score lies from its centre towards the bad side; ``z_bar``: the ``z`` of the threshold in
    this audit (``failed`` is about ``z > z_bar``; NaN: the detector does not say);
    ``detail`` a human-readable line."""

    name: str
    score: float
    threshold: float
    failed: bool
    detail: str = ""
    z: float = math.nan
    z_bar: float = math.nan

    @property
    def excess(self) -> float:
        """``z / z_bar``: how many times its own bar out the score lies (above 1: failed);
        ``inf`` for a failed finding whose ``z`` or ``z_bar`` is unknown or not positive
        (it counts as far out), ``nan`` for a passed one without them."""
        if math.isfinite(self.z) and math.isfinite(self.z_bar) and self.z_bar > 0:
            return self.z / self.z_bar
        return math.inf if self.failed else math.nan


@dataclass(frozen=True)
class TriggerEvidence:
    """Flip shares on stamped inputs (:mod:`.trigger`): ``own`` (P patterns x C classes) of the
    auditor's model, ``candidates[i]`` of candidate i (None: not scanned), on ``n_inputs`` inputs."""

    own: np.ndarray
    candidates: tuple[np.ndarray | None, ...]
    n_inputs: int


@dataclass(frozen=True)
class ClassEvidence:
    """Per-class accuracies on **all** of the auditor's labelled data (validation split and
    training shard: no candidate was trained on either), for :mod:`.balanced`. ``counts[c]``:
    the auditor's samples of its ``c``-th class (only classes it holds); ``accuracy[i]``:
    candidate i's accuracy on each of those classes (None: not measured)."""

    counts: np.ndarray
    accuracy: tuple[np.ndarray | None, ...]


def _nan(m: int) -> np.ndarray:
    return np.full(m, math.nan)


@dataclass
class Evidence:
    """What an auditor measured in one audit, one entry per candidate (NaN where not measured;
    ``valid[i]`` False: candidate i was not evaluable and no detector judges it).

    ``n_val``: the auditor's validation samples; ``own_*``: its own trained model's scores.
    ``distance`` / ``shift``: to the auditor's trained model; ``cosine`` / ``own_cosine``: of
    the candidate's move with the consensus / the auditor's own move; ``update_ratio``: the
    move's length over the auditor's own; ``history_cosine``: with its trainer's earlier move;
    ``merged_loss``: loss of (own + candidate) / 2; ``steps``: the local steps (batches an epoch)
    the candidate's trainer claims on chain with its sample count (NaN: not claimed or not known;
    :mod:`.no_work`); ``trigger``: flip shares on stamped inputs;
    ``classes``: per-class accuracies on all the auditor's labelled data. ``counted[i]`` False:
    candidate i is a near-copy of an earlier candidate (:func:`.calibration.copy_groups`) and is
    left out of the sample the bars are calibrated on (it is still judged); empty: all count.
    """

    valid: np.ndarray
    n_val: int = 0
    own_accuracy: float = math.nan
    own_loss: float = math.nan
    accuracy: np.ndarray = field(default_factory=lambda: np.zeros(0))
    loss: np.ndarray = field(default_factory=lambda: np.zeros(0))
    distance: np.ndarray = field(default_factory=lambda: np.zeros(0))
    shift: np.ndarray = field(default_factory=lambda: np.zeros(0))
    cosine: np.ndarray = field(default_factory=lambda: np.zeros(0))
    own_cosine: np.ndarray = field(default_factory=lambda: np.zeros(0))
    update_ratio: np.ndarray = field(default_factory=lambda: np.zeros(0))
    history_cosine: np.ndarray = field(default_factory=lambda: np.zeros(0))
    merged_loss: np.ndarray = field(default_factory=lambda: np.zeros(0))
    steps: np.ndarray = field(default_factory=lambda: np.zeros(0))
    trigger: TriggerEvidence | None = None
    classes: ClassEvidence | None = None
    counted: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))

    def __post_init__(self) -> None:
        self.valid = np.asarray(self.valid, dtype=bool)
        m = len(self.valid)
        counted = np.asarray(self.counted, dtype=bool)
        if counted.size == 0:
            counted = np.ones(m, dtype=bool)
        if counted.shape != (m,):
            raise ValueError(f"evidence counted: {counted.shape} for {m} candidates")
        self.counted = counted
        for name in ("accuracy", "loss", "distance", "shift", "cosine", "own_cosine", "update_ratio",
                     "history_cosine", "merged_loss", "steps"):
            value = np.asarray(getattr(self, name), dtype=np.float64)
            if value.size == 0:
                value = _nan(m)
            if value.shape != (m,):
                raise ValueError(f"evidence {name}: {value.shape} for {m} candidates")
            setattr(self, name, value)

    @property
    def sample(self) -> np.ndarray:
        """Which candidates the bars are calibrated on: the valid ones, near-copies counted once."""
        return self.valid & self.counted

    def valid_values(self, name: str) -> np.ndarray:
        """``name``'s entries of the valid candidates (NaN for the others): what is judged."""
        return np.where(self.valid, getattr(self, name), math.nan)

    def values(self, name: str) -> np.ndarray:
        """``name``'s entries of the calibration :attr:`sample` (NaN for the others): what the
        detectors take medians and spreads of; each judges every valid candidate's own entry."""
        return np.where(self.sample, getattr(self, name), math.nan)


#: The evidence families (:attr:`Detector.evidence_family`): what a detector's score is a
#: measurement **of**. Detectors of one family read the same evidence and fail together, so their
#: failures are one measurement when the audit asks for corroboration
#: (:func:`bdfl.defense.audit.rejecting`):
#:
#: * ``auditor_data``: the candidate's (or, for ``merge``, the candidate averaged into the
#:   auditor's model) predictions on the auditor's own labelled samples, i.e. its loss there
#:   (``accuracy``, ``loss``, ``balanced_accuracy``, ``merge``). A candidate whose data differs from
#:   the auditor's (non-IID) is worse on all four at once: one fact, not four;
#: * ``trigger``: predictions on the auditor's inputs **stamped** by the audit's trigger family
#:   (flip shares relative to the clean predictions: not the clean loss);
#: * parameter space, one family per measurement: ``distance`` (log distance to the auditor's
#:   trained model), ``direction`` (cosine of the move with the consensus move), ``shift``
#:   (coherent sign of candidate minus the auditor's model, scale-free), ``move_length``
#:   (``no_work``: the move's length against the other moves'), ``history`` (``consistency``: cosine
#:   with the trainer's own earlier move);
#: * ``joint``: the combined test (own cosine, consensus cosine, distance), its own corroboration.
EVIDENCE_FAMILIES: tuple[str, ...] = ("auditor_data", "trigger", "distance", "direction", "shift", "move_length",
                                      "history", "joint")


class Detector(ABC):
    """One audit test. Subclasses set ``name``, ``evidence_family`` (one of
    :data:`EVIDENCE_FAMILIES`: what the score measures; failures within a family count once) and
    implement :meth:`judge`; ``combined``: the score combines several measurements, so its failure
    needs no corroboration (:func:`bdfl.defense.audit.rejecting`)."""

    name: ClassVar[str]
    evidence_family: ClassVar[str] = ""  # a detector that does not say counts as a family of its own
    combined: ClassVar[bool] = False

    def __init__(self, config: DetectorConfig, min_candidates: int = 3) -> None:
        self.k = float(config.k)
        self.config = config
        self.min_candidates = min_candidates

    @abstractmethod
    def judge(self, ev: Evidence) -> list[Finding | None]:
        """One finding per candidate (None where this detector cannot judge it)."""

    def k_for(self, ev: Evidence) -> float:
        """``k`` widened for the audit's number of evaluable candidates ``m``
        (:func:`.calibration.small_sample_factor`): a bar estimated from few candidates is
        uncertain itself, so it is a prediction bound, not a quantile. ``m`` counts near-copies once.
        A known limit (an outside probe, 2026-12-06): below ``min_candidates`` the bar is the own
        model's, widened the same way, so at ``m = 2`` (x16.7) it is lenient: a sign-flipped model
        passed beside one honest candidate. Not widening there rejected honest non-IID candidates
        instead (tests/peer/test_availability_and_copies.py), and no ``k`` told the two apart: with
        two candidates the audit has nothing to calibrate on (docs/learning.md, section 4)."""
        return self.k * small_sample_factor(int(np.sum(ev.sample)))

    def finding(self, score: float, threshold: float, failed: bool, detail: str, z: float = math.nan,
                z_bar: float = math.nan) -> Finding:
        return Finding(self.name, float(score), float(threshold), bool(failed), detail, float(z), float(z_bar))


class LogLossDetector(Detector):
    """A loss compared on a log scale (a loss ratio, dimensionless): a candidate fails above
    ``exp(centre + k_eff x spread)``, with (centre, spread) in log units from
    :meth:`calibrate`. Subclasses set ``score`` (the :class:`Evidence` array judged) and
    ``label`` (how a finding names it); ``nan_fails``: a NaN score fails (a loss the
    candidate produced) rather than leaves the candidate unjudged (no such score)."""

    score: ClassVar[str]
    label: ClassVar[str]
    nan_fails: ClassVar[bool] = True

    @abstractmethod
    def calibrate(self, ev: Evidence) -> tuple[float, float]:
        """(centre, spread) of the log scores in this audit (NaN: not judged)."""

    def _bar(self, ev: Evidence, centre: float, spread: float) -> float:
        return float(math.exp(centre + self.k_for(ev) * spread))

    def threshold(self, ev: Evidence) -> float:
        """The score above which a candidate fails in this audit (NaN: not judged)."""
        return self._bar(ev, *self.calibrate(ev))

    def judge(self, ev: Evidence) -> list[Finding | None]:
        centre, spread = self.calibrate(ev)
        bar = self._bar(ev, centre, spread)
        if not math.isfinite(bar):
            return [None] * len(ev.valid)
        k = self.k_for(ev)
        out: list[Finding | None] = []
        for x in getattr(ev, self.score):
            if math.isnan(x) and not self.nan_fails:
                out.append(None)
                continue
            failed = not x <= bar
            out.append(self.finding(x, bar, failed, f"{self.label} {x:.3f} {'>' if failed else '<='} calibrated bar {bar:.3f}",
                                    (float(safe_log(x)) - centre) / spread, k))
        return out


def enough(values: np.ndarray, min_candidates: int) -> bool:
    """Whether at least ``min_candidates`` of ``values`` are finite (a median says something)."""
    return int(np.isfinite(values).sum()) >= min_candidates
