"""The no-work detector: move length relative to the candidates' median move."""

from __future__ import annotations

import numpy as np

from bdfl.config import DetectorConfig
from bdfl.defense.detectors import Evidence
from bdfl.defense.detectors.no_work import NoWorkDetector


def _ev(r: list[float]) -> Evidence:
    return Evidence(valid=np.ones(len(r), bool), n_val=50, own_accuracy=0.5, own_loss=0.5, update_ratio=r)


def test_a_free_rider_fails_a_small_shard_passes() -> None:
    det = NoWorkDetector(DetectorConfig(k=4.0))
    # a peer with 16 samples takes a tenth of the steps of one with 160: short, honest moves
    ratios = [1.0, 0.8, 1.3, 0.25, 2.0, 0.6, 0.0, 0.001]
    f = det.judge(_ev(ratios))
    assert [x.failed for x in f] == [False] * 6 + [True, True]


def test_agreeing_candidates_tighten_the_bar() -> None:
    det = NoWorkDetector(DetectorConfig(k=4.0))
    tight = det.judge(_ev([1.0, 1.02, 0.98, 1.01, 0.3]))
    loose = det.judge(_ev([1.0, 0.3, 3.0, 0.5, 0.1]))
    assert tight[-1].failed and not loose[-1].failed and tight[0].threshold > loose[0].threshold
