"""The accuracy detector (bdfl.defense.detectors.quality): calibrated from the candidates'
spread and the binomial error of the auditor's validation split."""

from __future__ import annotations

import numpy as np
import pytest

from bdfl.config import DetectorConfig
from bdfl.defense.detectors import Evidence
from bdfl.defense.detectors.calibration import accuracy_se
from bdfl.defense.detectors.quality import AccuracyDetector


def _ev(acc: list[float], own: float, n: int) -> Evidence:
    return Evidence(valid=np.ones(len(acc), bool), n_val=n, own_accuracy=own, own_loss=0.5, accuracy=acc)


def test_the_bar_widens_with_fewer_validation_samples() -> None:
    det = AccuracyDetector(DetectorConfig(k=4.0))
    acc = [0.8] * 16  # candidates that agree exactly: only the sampling error is left
    bars = [det.threshold(_ev(acc, 0.8, n)) for n in (400, 100, 25, 5)]
    assert bars == sorted(bars, reverse=True) and bars[0] > 0.6 and bars[-1] < 0.0
    assert accuracy_se(0.8, 5) > 2 * accuracy_se(0.8, 100)
    assert accuracy_se(1.0, 4) > 0  # a perfect score on a few samples still has a bar


def test_an_honest_outlier_passes_and_a_garbage_model_fails() -> None:
    det = AccuracyDetector(DetectorConfig(k=3.0))
    # non-IID: honest candidates differ a lot on this auditor's classes
    acc = [0.9, 0.8, 0.7, 0.85, 0.6, 0.82, 0.75, 0.78, 0.88, 0.72, 0.05]
    f = det.judge(_ev(acc, own=0.8, n=60))
    assert [x.failed for x in f] == [False] * 10 + [True]
    assert f[4].score == pytest.approx(0.6) and 0.05 < f[4].threshold < 0.6
    # the same values from 4 candidates: the bar itself is uncertain, so it is wider
    assert det.threshold(_ev(acc[:3] + acc[-1:], own=0.8, n=60)) < f[4].threshold
    # a single auditor with 5 validation samples cannot tell 0.2 from 0.8: nothing fails
    assert not any(x.failed for x in det.judge(_ev([0.8, 0.8, 0.2, 0.8], own=0.8, n=5)))
    # with 200 samples and agreeing candidates it can
    agreeing = [0.8, 0.81, 0.79, 0.8, 0.82, 0.78, 0.8, 0.81]
    assert [x.failed for x in det.judge(_ev([*agreeing, 0.2], own=0.8, n=200))] == [False] * 8 + [True]


def test_without_an_accuracy_metric_it_does_not_judge() -> None:
    det = AccuracyDetector(DetectorConfig())
    assert det.judge(_ev([0.5, 0.5, 0.5], own=float("nan"), n=50)) == [None, None, None]
