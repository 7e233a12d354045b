"""The audit's detectors: one module per test, each returning a score and a threshold.

An auditor measures what it can about the candidates it judges (:class:`Evidence`: their
accuracy and loss on its validation data, their parameter-space statistics, their behaviour
on stamped inputs) and every enabled detector turns that into one :class:`Finding` per
candidate: a score, the threshold it was held to in this audit, and whether it failed. The
audit rule (:class:`bdfl.defense.audit.AuditRule`) rejects a candidate when its failed
findings corroborate each other (:func:`bdfl.defense.audit.rejecting`: two of them, the
combined ``joint`` one, or one alone ``corroboration`` times its bar out; each detector names its
evidence family, :data:`EVIDENCE_FAMILIES`, for the by-family counting that was measured and not adopted).

Thresholds are **calibrated from the audit itself** (:mod:`.calibration`): a robust centre
(a median of the candidates, or the auditor's own model) plus or minus ``k`` spreads, the
spread being the larger of the candidates' spread on the good side of the median
(:func:`.calibration.good_side_spread`; Qn for the right-skewed shift and trigger scores) and
the sampling error of the auditor's own data. The only setting of a detector is its ``k`` (and ``enabled``), in its own config table
``[defense.detectors.<name>]`` (:class:`bdfl.config.DetectorsConfig`, validated there).

Detectors (module: what fails):

* ``accuracy`` (:mod:`.quality`): accuracy far below both the auditor's own and the median;
* ``loss`` (:mod:`.loss`): loss far above both;
* ``distance`` (:mod:`.distance`): distance to the auditor's model far above the median;
* ``direction`` (:mod:`.direction`): the move points away from the consensus move;
* ``shift`` (:mod:`.shift`): the candidate sits on one side of the auditor's model;
* ``no_work`` (:mod:`.no_work`): the move is far shorter than the others';
* ``consistency`` (:mod:`.consistency`): the move reverses the same trainer's earlier move;
* ``merge`` (:mod:`.merge`): averaging it into the auditor's model raises the loss far above the median;
* ``trigger`` (:mod:`.trigger`): a stamp from a per-audit random trigger family flips inputs to one class;
* ``balanced_accuracy`` (:mod:`.balanced`): the class-balanced accuracy on all the auditor's
  labelled data (validation split and training shard) far below the median candidate's.

This package uses NumPy and the config only, so any layer can compose it.
"""

from __future__ import annotations

from typing import Any

from bdfl.config import PLUGIN_DETECTOR_KEYS, DetectorConfig, DetectorsConfig
from bdfl.defense.detectors.balanced import BalancedAccuracyDetector
from bdfl.defense.detectors.base import EVIDENCE_FAMILIES, ClassEvidence, Detector, Evidence, Finding, TriggerEvidence
from bdfl.defense.detectors.consistency import ConsistencyDetector
from bdfl.defense.detectors.direction import DirectionDetector
from bdfl.defense.detectors.distance import DistanceDetector
from bdfl.defense.detectors.joint import JointDetector
from bdfl.defense.detectors.loss import LossDetector
from bdfl.defense.detectors.merge import MergeDetector
from bdfl.defense.detectors.no_work import NoWorkDetector
from bdfl.defense.detectors.quality import AccuracyDetector
from bdfl.defense.detectors.shift import ShiftDetector
from bdfl.defense.detectors.trigger import TriggerDetector
from bdfl.errors import BDFLError, ConfigError
from bdfl.plugins import register_class

__all__ = ["DETECTOR_NAMES", "EVIDENCE_FAMILIES", "REGISTRY", "ClassEvidence", "Detector", "Evidence", "Finding", "TriggerEvidence", "build_detectors",
           "describe", "plugin_detector_class", "register", "run_detectors"]


#: Every detector class by name.
REGISTRY: dict[str, type[Detector]] = {c.name: c for c in (
    DistanceDetector, DirectionDetector, ShiftDetector, NoWorkDetector, ConsistencyDetector,
    MergeDetector, TriggerDetector, AccuracyDetector, LossDetector, BalancedAccuracyDetector, JointDetector)}


#: The detectors, in the order their findings are reported.
DETECTOR_NAMES: tuple[str, ...] = ("distance", "direction", "shift", "no_work", "consistency", "merge", "trigger",
                                   "accuracy", "loss", "balanced_accuracy", "joint")


def register(cls: type[Detector]) -> type[Detector]:
    """Class decorator: add a plugin's detector (a :class:`Detector` subclass with a ``name``) to
    :data:`REGISTRY`. It runs where a config names it: ``[defense.detectors.plugins.<name>]``
    (``enabled``, ``k``; docs/extending.md)."""
    family = getattr(cls, "evidence_family", "")
    if family and family not in EVIDENCE_FAMILIES:
        raise TypeError(f"register: detector {getattr(cls, 'name', cls)!r} names evidence family {family!r}, not one of "
                        f"{', '.join(EVIDENCE_FAMILIES)} ('' : a family of its own)")
    return register_class(REGISTRY, cls, Detector, "detector")


def plugin_detector_class(name: str) -> type[Detector]:
    """The plugin detector registered as ``name``; ConfigError naming the registered ones."""
    cls = REGISTRY.get(name)
    if cls is None or name in DETECTOR_NAMES:
        plugins = sorted(set(REGISTRY) - set(DETECTOR_NAMES))
        raise ConfigError(f"defense.detectors.plugins.{name}", f"no detector '{name}' is registered",
                          ", ".join(plugins) or "none: a plugin registers one (bdfl.defense.detectors.register)",
                          fix="list the module that registers it in plugins (bdfl run --plugin MODULE)")
    return cls


def build_detectors(config: DetectorsConfig) -> list[Detector]:
    """The enabled detectors of a ``[defense.detectors]`` table: the built-in ones in
    :data:`DETECTOR_NAMES` order, then the plugins' it names (``plugins``), in its order."""
    built = [REGISTRY[name](getattr(config, name), config.min_candidates)
             for name in DETECTOR_NAMES if getattr(config, name).enabled]
    for name, table in config.plugins.items():
        settings = DetectorConfig(**{**PLUGIN_DETECTOR_KEYS, **table})
        if settings.enabled:
            built.append(plugin_detector_class(name)(settings, config.min_candidates))
    return built


def run_detectors(detectors: list[Detector], ev: Evidence) -> list[list[Finding]]:
    """Per candidate, the findings of every detector that judged it. A detector that raises, or
    returns other than one Finding or None per candidate, stops the audit with an error naming
    it (a plugin's was blamed on the task's evaluate, or judged some candidates silently)."""
    n = len(ev.valid)
    out: list[list[Finding]] = [[] for _ in range(n)]
    for det in detectors:
        try:
            found = list(det.judge(ev))
        except BDFLError:
            raise
        except Exception as exc:
            # a plugin's own code, or one of the library's (then a bug, or evidence a task reported out of range)
            builtin = type(det).__module__.startswith(__name__ + ".")
            raise BDFLError(f"{'built-in ' if builtin else ''}detector '{det.name}' raised {type(exc).__name__}: {exc}",
                            fix="please report it with the run's config.toml and run.log; the scores it judged come from "
                                "the task's evaluate / predict" if builtin else "fix the detector's judge (docs/extending.md)") from exc
        if len(found) != n or not all(f is None or isinstance(f, Finding) for f in found):
            raise BDFLError(f"detector '{det.name}' returned {len(found)} entries for {n} candidates",
                            fix="judge returns one Finding (or None: not judged) per candidate, in order")
        for i, f in enumerate(found):
            if f is not None and ev.valid[i]:
                out[i].append(f)
    return out


def describe(findings: list[Finding]) -> dict[str, Any]:
    """``{name: {"score", "threshold", "failed"}}`` of a candidate's findings (for logs)."""
    return {f.name: {"score": f.score, "threshold": f.threshold, "failed": f.failed} for f in findings}
