"""The no-work detector: move length relative to the candidates' median move."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bdfl.config import DetectorConfig
from bdfl.defense.detectors import Evidence
from bdfl.defense.audit import claimed_steps
from bdfl.defense.detectors.no_work import NoWorkDetector, step_credit


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


def _ev_steps(r: list[float], steps: list[float]) -> Evidence:
    return Evidence(valid=np.ones(len(r), bool), n_val=50, own_accuracy=0.5, own_loss=0.5, update_ratio=r, steps=steps)


# honest moves that agree closely (a tight bar), and a last candidate a third as long
CLOSE = [1.0, 1.05, 0.95, 1.02, 0.98, 1.04, 0.97, 1.01]


def test_a_small_shard_claiming_fewer_steps_is_credited() -> None:
    det = NoWorkDetector(DetectorConfig(k=4.0))
    r = [*CLOSE, 0.35]
    assert det.judge(_ev(r))[-1].failed  # without the claims: a third of the others' move fails
    # its trainer claims 2 batches an epoch against the others' 6: a concave move of 2 steps is
    # at least a third of one of 6, so 0.35 is an honest length
    f = det.judge(_ev_steps(r, [6.0] * 8 + [2.0]))
    assert not f[-1].failed and f[-1].score == pytest.approx(0.35 * 3 / np.exp(np.median(np.log(CLOSE + [1.05]))), rel=1e-9)
    assert "2 steps claimed, the median 6" in f[-1].detail


def test_understating_the_claim_buys_at_most_the_median_steps() -> None:
    det = NoWorkDetector(DetectorConfig(k=4.0))
    steps = [6.0] * 8 + [1.0]  # the attacker claims one sample: one step
    # a re-published start (no move) fails whatever it claims
    assert det.judge(_ev_steps([*CLOSE, 0.0], steps))[-1].failed
    # a token move (a twentieth of the others') fails too: the credit is at most 6x
    assert det.judge(_ev_steps([*CLOSE, 0.05], steps))[-1].failed
    # a claim of 0 samples (as a free-rider's) is no claim: no credit
    assert det.judge(_ev_steps([*CLOSE, 0.35], [6.0] * 8 + [math.nan]))[-1].failed


def test_claiming_more_steps_than_the_median_changes_nothing() -> None:
    det = NoWorkDetector(DetectorConfig(k=4.0))
    r = [*CLOSE, 0.9]
    plain = det.judge(_ev(r))
    big = det.judge(_ev_steps(r, [6.0] * 8 + [600.0]))  # no credit, no penalty for a large shard
    assert [(f.score, f.threshold, f.failed) for f in plain] == [(f.score, f.threshold, f.failed) for f in big]


def test_near_copies_claiming_large_shards_do_not_raise_the_credit() -> None:
    # colluders re-submit one model six times, each copy claiming 60 steps: counted all, they
    # would lift the median claim from 6 to 33 and the last candidate's credit from 3x to 16x
    det = NoWorkDetector(DetectorConfig(k=4.0))
    r = [*CLOSE[:5], *[1.0] * 6, 0.1]
    steps = [6.0] * 5 + [60.0] * 6 + [2.0]
    counted = [True] * 6 + [False] * 5 + [True]  # the copies count once (Evidence.counted)
    ev = Evidence(valid=np.ones(12, bool), n_val=50, own_accuracy=0.5, own_loss=0.5, update_ratio=r, steps=steps,
                  counted=counted)
    assert step_credit(ev)[1] == 6.0 and step_credit(ev)[0][-1] == 3.0
    assert det.judge(ev)[-1].failed
    assert step_credit(_ev_steps(r, steps))[1] == 33.0


@pytest.mark.parametrize(("n", "batch", "steps"), [(9, 10, 1.0), (10, 10, 1.0), (56, 10, 6.0), (0, 10, math.nan),
                                                   (None, 10, math.nan), (56, None, math.nan)])
def test_claimed_steps(n: int | None, batch: int | None, steps: float) -> None:
    got = claimed_steps(n, batch)
    assert got == steps or (math.isnan(got) and math.isnan(steps))
