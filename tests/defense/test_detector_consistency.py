"""The consistency detector: a move that reverses its trainer's earlier accepted move."""

from __future__ import annotations

import math

import numpy as np

from bdfl.config import DetectorConfig
from bdfl.defense.detectors import Evidence
from bdfl.defense.detectors.consistency import ConsistencyDetector


def _ev(c: list[float]) -> Evidence:
    return Evidence(valid=np.ones(len(c), bool), n_val=50, own_accuracy=0.5, own_loss=0.5, history_cosine=c)


def test_a_reversal_fails_a_wandering_honest_peer_passes() -> None:
    det = ConsistencyDetector(DetectorConfig(k=4.0))
    f = det.judge(_ev([0.9, 0.85, 0.95, 0.8, 0.2, -0.8, math.nan]))
    assert [x.failed if x else None for x in f] == [False, False, False, False, False, True, None]
    assert f[0].threshold <= 0  # only a reversal can fail


def test_with_few_histories_the_floor_alone() -> None:
    det = ConsistencyDetector(DetectorConfig(k=4.0))
    f = det.judge(_ev([-0.9, -0.1, math.nan, math.nan]))
    assert f[0].failed and not f[1].failed and -0.9 < f[0].threshold <= -0.2
