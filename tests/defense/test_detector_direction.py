"""The direction detector: cosines with the consensus and own moves, median - k MAD, both needed."""

from __future__ import annotations

import numpy as np

from bdfl.config import DetectorConfig
from bdfl.defense.detectors import Evidence
from bdfl.defense.detectors.direction import DirectionDetector


def _ev(cos: list[float], own: list[float]) -> Evidence:
    return Evidence(valid=np.ones(len(cos), bool), n_val=50, own_accuracy=0.5, own_loss=0.5, cosine=cos, own_cosine=own)


def test_a_reversed_move_fails_and_an_honest_outlier_passes() -> None:
    det = DirectionDetector(DetectorConfig(k=4.0))
    cos = [0.6, 0.55, 0.7, 0.65, 0.5, 0.62, 0.58, 0.66, 0.3, -0.6]  # 0.3: an honest peer with other classes
    f = det.judge(_ev(cos, cos))
    assert [x.failed for x in f] == [False] * 9 + [True]


def test_late_in_training_wide_spread_makes_it_lenient() -> None:
    det = DirectionDetector(DetectorConfig(k=4.0))
    cos = [0.1, -0.05, 0.25, 0.0, 0.15, -0.2]  # moves no longer agree: nothing to deviate from
    assert not any(x.failed for x in det.judge(_ev(cos, cos)))


def test_the_own_move_must_disagree_too() -> None:
    """A consensus steered by attackers cannot make a candidate that agrees with the auditor's own move fail."""
    det = DirectionDetector(DetectorConfig(k=4.0))
    cos = [0.6, 0.55, 0.7, 0.65, -0.6]
    own = [0.6, 0.55, 0.7, 0.65, 0.62]
    assert not det.judge(_ev(cos, own))[-1].failed
