"""The shift detector: coherent one-sided shift, half-normal scale from the median."""

from __future__ import annotations

import numpy as np

from bdfl.config import DetectorConfig
from bdfl.defense.detectors import Evidence
from bdfl.defense.detectors.calibration import skewed_spread
from bdfl.defense.detectors.shift import ShiftDetector


def _ev(s: list[float]) -> Evidence:
    return Evidence(valid=np.ones(len(s), bool), n_val=50, own_accuracy=0.5, own_loss=0.5, shift=s)


def test_alie_fails_an_honest_tail_value_passes() -> None:
    det = ShiftDetector(DetectorConfig(k=3.0))
    # measured on digits (auditor 6, round 2): honest shifts, heavy-tailed; ALIE 0.645
    honest = [0.175, 0.084, 0.033, 0.005, 0.047, 0.017, 0.022, 0.033]
    f = det.judge(_ev([*honest, 0.645]))
    assert [x.failed for x in f] == [False] * 8 + [True]
    # the MAD alone would have failed the honest 0.175
    med, mad_spread = float(np.median(honest)), 1.4826 * float(np.median(np.abs(np.subtract(honest, np.median(honest)))))
    assert med + 3 * mad_spread < 0.175 < f[0].threshold
    assert skewed_spread(honest)[1] > mad_spread


def test_an_outlier_auditor_stands_down_by_itself() -> None:
    """When the auditor's own model is the outlier every candidate sits on one side of it: the
    median rises with them and no honest candidate fails."""
    det = ShiftDetector(DetectorConfig(k=3.0))
    assert not any(x.failed for x in det.judge(_ev([0.7, 0.75, 0.8, 0.72, 0.78, 0.69])))
