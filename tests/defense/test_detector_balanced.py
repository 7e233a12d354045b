"""The balanced-accuracy detector (bdfl.defense.detectors.balanced): per-class accuracies on
all the auditor's labelled data, calibrated from the candidates and the per-class counts."""

from __future__ import annotations

import numpy as np

from bdfl.config import DetectorConfig
from bdfl.defense.audit import AuditRule, class_evidence
from bdfl.defense.detectors import ClassEvidence, Evidence
from bdfl.defense.detectors.balanced import BalancedAccuracyDetector
from bdfl.defense.detectors.calibration import accuracy_se, balanced_accuracy_se


def _ev(per_class: list[list[float]], counts: list[int]) -> Evidence:
    acc = tuple(np.asarray(a, dtype=np.float64) for a in per_class)
    return Evidence(valid=np.ones(len(acc), bool), classes=ClassEvidence(np.asarray(counts), acc))


def _honest(rng: np.random.Generator, m: int, classes: int, spread: float = 0.03) -> list[list[float]]:
    """``m`` non-IID honest candidates: each good on every class, none perfect, a little apart."""
    return [list(np.clip(0.9 + spread * rng.standard_normal(classes), 0, 1)) for _ in range(m)]


def test_a_flip_of_one_rare_class_fails_that_the_overall_accuracy_hides() -> None:
    rng = np.random.default_rng(0)
    counts = [60, 50, 40, 30, 25, 12, 10, 8]  # a skewed shard: the last classes are rare
    honest = _honest(rng, 14, len(counts))
    flipped = [list(h) for h in honest[:3]]
    for f in flipped:
        f[5] = f[6] = f[7] = 0.0  # the attacker's flipped classes: rare on this auditor
    det = BalancedAccuracyDetector(DetectorConfig(k=4.0))
    findings = det.judge(_ev(honest + flipped, counts))
    assert [f.failed for f in findings] == [False] * 14 + [True] * 3
    # weighted by the auditor's counts the same damage is 30 of 235 samples, inside the overall
    # accuracy's own sampling error at the same k_eff (the accuracy detector's bar on this data)
    overall = [float(np.dot(a, counts) / sum(counts)) for a in honest + flipped]
    k_eff = det.k_for(_ev(honest + flipped, counts))
    assert np.median(overall) - max(overall[-3:]) < k_eff * accuracy_se(float(np.median(overall)), sum(counts))


def test_the_bar_follows_the_per_class_counts_and_the_candidates_spread() -> None:
    det = BalancedAccuracyDetector(DetectorConfig(k=4.0))
    agree = [[0.9] * 4] * 10
    bars = [det.threshold(_ev(agree, [n] * 4)) for n in (200, 50, 10, 2)]
    assert bars == sorted(bars, reverse=True) and bars[-1] < 0  # 2 samples a class: nothing can fail
    # one class held once widens the bar beyond the same total spread over four classes
    assert balanced_accuracy_se([0.9] * 4, [1, 33, 33, 33]) > balanced_accuracy_se([0.9] * 4, [25] * 4)
    # honest candidates that differ more (more non-IID) get a wider bar on the same data
    rng = np.random.default_rng(1)
    assert det.threshold(_ev(_honest(rng, 10, 4, 0.15), [200] * 4)) < det.threshold(_ev(_honest(rng, 10, 4, 0.01), [200] * 4))


def test_a_flipper_that_knows_the_rule_stays_under_the_bar_only_by_doing_little() -> None:
    """An adaptive flipper that sees the honest candidates and the rule flips as many of a
    class's samples as still passes: its damage is bounded by the calibrated bar."""
    rng = np.random.default_rng(2)
    counts = [30, 30, 20, 20, 10, 10]
    honest = _honest(rng, 12, len(counts))
    det = BalancedAccuracyDetector(DetectorConfig(k=4.0))
    best = 0.0
    for drop in np.linspace(0, 0.9, 91):  # damage on two classes, the rest honest
        cand = list(honest[0])
        cand[4] -= drop
        cand[5] -= drop
        if not det.judge(_ev(honest + [cand], counts))[-1].failed:
            best = drop
    centre, spread = det.calibrate(_ev(honest, counts))
    assert 0 < best < 0.9  # a full flip of the two classes fails
    # the largest passing drop costs the balanced accuracy at most about k_eff spreads
    assert best * 2 / len(counts) <= det.k_for(_ev(honest + [honest[0]], counts)) * spread * 1.2


def test_without_audit_data_or_with_too_few_candidates_it_does_not_judge() -> None:
    det = BalancedAccuracyDetector(DetectorConfig())
    assert det.judge(Evidence(valid=np.ones(3, bool))) == [None] * 3
    assert det.judge(_ev([[0.9, 0.9], [0.1, 0.1]], [50, 50])) == [None, None]  # 2 < min_candidates


class _Client:
    """Predicts with a 'model' that is a lookup table: parameters[0][x] is the label of input x."""

    def __init__(self, y: np.ndarray) -> None:
        self.X = np.arange(len(y))
        self.y = y

    def predict(self, parameters: list[np.ndarray], X: np.ndarray) -> np.ndarray:
        return np.asarray(parameters[0])[X]

    def audit_data(self) -> tuple[np.ndarray, np.ndarray]:
        return self.X, self.y


def test_class_evidence_measures_per_class_accuracy_on_all_the_data() -> None:
    y = np.array([0, 0, 0, 0, 1, 1, 2])
    client = _Client(y)
    flip_two = y.copy()
    flip_two[[4, 5]] = 2  # class 1 wrong
    ev = class_evidence(client, [[y], [flip_two], [y]], [True, True, False], AuditRule())
    assert ev is not None and list(ev.counts) == [4, 2, 1]
    assert list(ev.accuracy[0]) == [1, 1, 1] and list(ev.accuracy[1]) == [1, 0, 1] and ev.accuracy[2] is None
    assert class_evidence(client, [[y]], [True], AuditRule().with_detector("balanced_accuracy", enabled=False)) is None
    assert class_evidence(object(), [[y]], [True], AuditRule()) is None  # a client without audit_data
