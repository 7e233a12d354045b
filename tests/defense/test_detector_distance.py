"""The distance detector: log distances to the auditor's model, median + k MAD."""

from __future__ import annotations

import numpy as np

from bdfl.config import DetectorConfig
from bdfl.defense.detectors import Evidence
from bdfl.defense.detectors.distance import DistanceDetector


def _ev(d: list[float]) -> Evidence:
    return Evidence(valid=np.ones(len(d), bool), n_val=50, own_accuracy=0.5, own_loss=0.5, distance=d)


def test_spread_calibrates_the_bar() -> None:
    det = DistanceDetector(DetectorConfig(k=4.0))
    tight = det.judge(_ev([1.0, 1.02, 0.98, 1.01, 0.99, 1.03, 0.97, 1.0, 2.5]))
    assert tight[-1].failed and tight[-1].threshold < 2.0  # candidates agree: 2.5x is out
    loose = det.judge(_ev([0.5, 1.0, 2.0, 1.5, 0.7, 2.5]))  # honest shards of very different sizes
    assert not any(x.failed for x in loose) and loose[0].threshold > 3


def test_a_boosted_update_fails() -> None:
    det = DistanceDetector(DetectorConfig(k=4.0))
    f = det.judge(_ev([1.0, 1.3, 0.8, 1.1, 0.9, 10.0]))
    assert [x.failed for x in f] == [False] * 5 + [True]
    assert DistanceDetector(DetectorConfig(k=4.0)).judge(_ev([1.0, 2.0])) == [None, None]  # too few candidates
