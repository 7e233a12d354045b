"""The merge detector: the loss of (own + candidate) / 2, relative to the candidates' median."""

from __future__ import annotations

import math

import numpy as np

from bdfl.config import DetectorConfig
from bdfl.defense.detectors import Evidence
from bdfl.defense.detectors.merge import MergeDetector


def _ev(merged: list[float], n: int) -> Evidence:
    return Evidence(valid=np.ones(len(merged), bool), n_val=n, own_accuracy=0.5, own_loss=0.3, merged_loss=merged)


def test_calibration_and_verdicts() -> None:
    det = MergeDetector(DetectorConfig(k=4.0))
    merged = [0.30, 0.35, 0.40, 0.45, 0.38, 0.42, 0.36, 0.41, 0.9, 6.0, math.inf]
    f = det.judge(_ev(merged, n=100))
    assert [x.failed for x in f] == [False] * 9 + [True, True]  # 0.9: an honest outlier
    assert det.threshold(_ev([0.4] * 5, n=9)) > det.threshold(_ev([0.4] * 5, n=400))  # fewer samples: wider
    # fewer than min_candidates merged losses: no median, no judgement
    assert det.judge(_ev([0.1, 9.0], n=100)) == [None, None]
