"""The direction detector: cosine with the consensus move, median - k x the good-side spread."""

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


def test_a_30_percent_sign_flip_mixture_fails_and_the_honest_candidates_pass() -> None:
    """Measured shape (digits mirror, 30 % sign flip, 18 candidates per auditor): honest cosines
    about 0.43 +- 0.09, sign-flipped ones about -0.27. Qn over the mixture doubles the spread and
    the own-move cosine (0.14 +- 0.23) let most through when both had to fail; the good-side
    spread does not grow with the bad minority."""
    rng = np.random.default_rng(7)
    honest = list(0.43 + 0.09 * rng.standard_normal(13))
    flipped = list(-0.27 + 0.15 * rng.standard_normal(5))
    own = list(0.2 + 0.2 * rng.standard_normal(18))  # non-IID: the own move says little
    f = DirectionDetector(DetectorConfig(k=4.0)).judge(_ev(honest + flipped, own))
    assert [x.failed for x in f] == [False] * 13 + [True] * 5


def test_the_own_move_is_not_needed_to_fail() -> None:
    """A reversed move fails on the consensus alone, even when it happens to agree with the auditor's own move."""
    det = DirectionDetector(DetectorConfig(k=4.0))
    cos = [0.6, 0.55, 0.7, 0.65, 0.5, 0.62, 0.58, 0.66, -0.6]
    own = [0.6, 0.55, 0.7, 0.65, 0.5, 0.62, 0.58, 0.66, 0.62]
    assert [x.failed for x in det.judge(_ev(cos, own))] == [False] * 8 + [True]


def test_the_smallest_audit_the_rule_calibrates_is_judged() -> None:
    """Exactly ``min_candidates`` cosines are enough for a median-calibrated bar (``enough``): the
    reversed one of three fails; one fewer and the detector does not judge from the candidates."""
    det = DirectionDetector(DetectorConfig(k=3.0), min_candidates=3)
    cos = [0.4, 0.5, -0.9]
    f = det.judge(_ev(cos, cos))
    assert all(x is not None for x in f) and [x.failed for x in f] == [False, False, True]
    assert "calibrated" in f[2].detail
