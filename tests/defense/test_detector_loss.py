"""The loss detector: loss ratios, calibrated from the candidates' log-loss spread and 1/sqrt(n)."""

from __future__ import annotations

import numpy as np

from bdfl.config import DetectorConfig
from bdfl.defense.detectors import Evidence
from bdfl.defense.detectors.loss import LossDetector


def _ev(loss: list[float], own: float, n: int) -> Evidence:
    return Evidence(valid=np.ones(len(loss), bool), n_val=n, own_accuracy=0.5, own_loss=own, loss=loss)


def test_the_bar_widens_with_fewer_validation_samples() -> None:
    det = LossDetector(DetectorConfig(k=4.0))
    bars = [det.threshold(_ev([0.5] * 16, 0.5, n)) for n in (400, 100, 10)]
    assert bars == sorted(bars) and bars[0] < 0.5 * 1.3 and bars[-1] > 0.5 * 3


def test_an_honest_outlier_passes_and_a_blown_up_model_fails() -> None:
    det = LossDetector(DetectorConfig(k=4.0))
    losses = [0.4, 0.6, 0.5, 1.4, 0.45, 40.0]  # 1.4: an honest model that does not know this auditor's classes
    f = det.judge(_ev(losses, own=0.5, n=80))
    assert [x.failed for x in f] == [False, False, False, False, False, True]
    assert f[5].threshold < 40 and "calibrated bar" in f[5].detail
