"""The shift detector: coherent one-sided shift, half-normal scale from the median."""

from __future__ import annotations

import numpy as np
import pytest

from bdfl.config import DetectorConfig
from bdfl.defense.detectors import Evidence
from bdfl.defense.detectors.calibration import qn_scale, skewed_spread
from bdfl.defense.detectors.shift import FLOOR, ShiftDetector


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


# Measured on MNIST (mirror, seed 12, 30 % ALIE, round 1, auditor 19): twelve honest shifts and
# the six ALIE copies (one model, so one score).
MNIST_HONEST = [0.12, 0.045, 0.104, 0.006, 0.183, 0.092, 0.06, 0.148, 0.159, 0.107, 0.208, 0.147]
MNIST_ALIE = 0.8667


def _bar_counting_copies(values: list[float], k_eff: float) -> float:
    """The bar before copies counted once: median and Qn over every score."""
    med = float(np.median(values))
    return med + k_eff * max(qn_scale(values), med / 0.6745, FLOOR)


def test_alie_copies_count_once() -> None:
    """Six identical ALIE copies raised the median (and median / 0.6745) by their number and
    passed under the bar; counted once they fail, and every honest shift still passes."""
    det = ShiftDetector(DetectorConfig(k=3.0))
    scores = [*MNIST_HONEST, *[MNIST_ALIE] * 6]
    ev = _ev(scores)
    f = det.judge(ev)
    assert [x.failed for x in f] == [False] * 12 + [True] * 6
    assert _bar_counting_copies(scores, det.k_for(ev)) > MNIST_ALIE > f[0].threshold


def test_clean_audit_unchanged_by_counting_distinct_values() -> None:
    """Honest models are never identical: on distinct scores the bar is the one computed over
    every score."""
    det = ShiftDetector(DetectorConfig(k=3.0))
    ev = _ev(MNIST_HONEST)
    assert det.judge(ev)[0].threshold == pytest.approx(_bar_counting_copies(MNIST_HONEST, det.k_for(ev)))


def test_adversary_who_knows_the_rule_spreads_its_copies() -> None:
    """An attacker who knows that copies count once makes them distinct (a jitter of 1e-4 on the
    shift costs it nothing). Then the bar is the one counting every score: the change closes the
    copies' free ride and nothing more (docs/learning.md, issue 22 MNIST). What still holds: the
    bar cannot rise above the median of the scores plus k half-normal scales of that median, and
    with 30 % spread copies here the honest bar moves by less than 1.6x the honest scale."""
    det = ShiftDetector(DetectorConfig(k=3.0))
    spread_copies = [MNIST_ALIE + 1e-4 * i for i in range(6)]
    ev = _ev([*MNIST_HONEST, *spread_copies])
    f = det.judge(ev)
    assert not any(x.failed for x in f)  # the limit, stated: they pass
    assert f[0].threshold == pytest.approx(_bar_counting_copies([*MNIST_HONEST, *spread_copies], det.k_for(ev)))
    med_h, sp_h = skewed_spread(MNIST_HONEST)
    med_a, sp_a = skewed_spread([*MNIST_HONEST, *spread_copies])
    assert med_a - med_h < 1.6 * sp_h and sp_a < 1.6 * sp_h
