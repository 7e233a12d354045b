"""The trigger finding states its bar's z (issue 22, F3): ``z_bar = (bar - centre) / width``, so its
:attr:`Finding.excess` is how many times its own bar out the score lies, as for every other
detector, and a lone trigger failure needs corroboration (``audit_corroboration``: c = sqrt(2)
over the small-sample widening) like any other lone failure. Includes the adversary who knows
the rule: a backdoor whose stamp flips just inside ``c x`` the bar passes when nothing else is
out (the named concession), and no further."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bdfl.defense.audit import AuditRule, audit_corroboration, rejudge
from bdfl.defense.detectors import Evidence
from bdfl.defense.detectors.base import TriggerEvidence
from bdfl.defense.detectors.calibration import EQUAL_EVIDENCE, qn_scale, share_se
from bdfl.defense.detectors.trigger import MAJORITY, TriggerDetector, trigger_scores

P, C, N = 16, 10, 64  # stamps, classes, scanned inputs (the detector's defaults)
M = 17  # honest candidates; one more is judged


def _audit(seed: int, flip: float) -> Evidence:
    """``M`` honest candidates whose stamps flip 0-6 % of the inputs to any class, and a last one
    whose two corner stamps (a trigger answers to related stamps, ``REPEAT``) flip ``flip`` of the
    inputs to class 0; the auditor's own model flips none. Only the trigger scan was measured."""
    rng = np.random.default_rng(seed)
    shares = [rng.uniform(0.0, 0.06, (P, C)) for _ in range(M + 1)]
    shares[-1][:2, 0] = flip
    trig = TriggerEvidence(own=np.zeros((P, C)), candidates=tuple(shares), n_inputs=N)
    return Evidence(valid=np.ones(M + 1, bool), trigger=trig)


def _finding(ev: Evidence):
    return TriggerDetector(AuditRule().detectors.trigger).judge(ev)[-1]


def _centre_width(ev: Evidence) -> tuple[float, float]:
    """The trigger bar's centre and width, recomputed from the scores (median; Qn spread, at least
    the binomial error of the typical share)."""
    scores, typical = trigger_scores(ev.trigger, TriggerDetector(AuditRule().detectors.trigger).min_candidates)
    return float(np.median(scores)), max(qn_scale(np.asarray(scores)), float(share_se(typical, N)))


def _largest_passing_flip(rule: AuditRule, seed: int) -> float:
    """The largest flip share of the last candidate's trigger that passes ``rule`` (bisection: the
    backdoor tuned by an attacker who knows the rule)."""
    lo, hi = 0.0, 1.0
    assert not rejudge(rule, _audit(seed, lo))[-1] and rejudge(rule, _audit(seed, hi))[-1]
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if rejudge(rule, _audit(seed, mid))[-1] else (mid, hi)
    return lo


@pytest.mark.parametrize("seed", range(5))
def test_the_trigger_excess_is_finite_and_z_over_its_bars_z(seed: int) -> None:
    for flip in (0.3, 0.55, 0.9):
        f = _finding(_audit(seed, flip))
        assert math.isfinite(f.z) and math.isfinite(f.z_bar) and f.z_bar > 0
        assert f.excess == pytest.approx(f.z / f.z_bar)
        assert f.failed == (f.excess > 1) == (f.score > f.threshold)
        centre, width = _centre_width(_audit(seed, flip))
        assert f.z == pytest.approx((f.score - centre) / width)
        assert f.z_bar == pytest.approx((f.threshold - centre) / width)  # the bar itself, in z
    assert _finding(_audit(seed, 0.9)).threshold == pytest.approx(MAJORITY)  # honest spread far below the floor


@pytest.mark.parametrize("seed", range(5))
def test_a_lone_trigger_failure_just_past_its_bar_passes_far_past_it_rejects(seed: int) -> None:
    c = audit_corroboration(EQUAL_EVIDENCE, M + 1)
    assert 1.2 < c < EQUAL_EVIDENCE
    just = _audit(seed, MAJORITY + 0.09)  # its score: about 0.05 past the bar
    f = _finding(just)
    assert f.failed and 1 < f.excess < c
    assert rejudge(AuditRule(), just)[-1] == ()  # uncorroborated: an honest outlier as often as not
    far = _audit(seed, 0.9)
    assert _finding(far).excess >= c
    assert rejudge(AuditRule(), far)[-1] == ("trigger",)
    # corroboration 1 (the rule before issue 22): a lone trigger failure rejects at its bar
    from dataclasses import replace
    before = AuditRule(replace(AuditRule().detectors, corroboration=1.0))
    assert rejudge(before, just)[-1] == ("trigger",)


def test_adversary_tuned_to_the_lone_bar_gains_c_times_the_bar_and_no_more() -> None:
    """The named concession: a backdoor whose stamps flip just inside ``c_eff x`` the trigger bar
    (measured from the audit's centre) passes an audit where nothing else is out. What it gains
    over the rule before (any failure rejects): the audit's corroboration (1.24 at 18 candidates)
    times the bar's distance from the centre, i.e. a flip share of about 0.62 instead of 0.5;
    past it, it is rejected."""
    from dataclasses import replace
    before = AuditRule(replace(AuditRule().detectors, corroboration=1.0))
    c = audit_corroboration(EQUAL_EVIDENCE, M + 1)
    for seed in range(5):
        old = _largest_passing_flip(before, seed)
        new = _largest_passing_flip(AuditRule(), seed)
        centre, _ = _centre_width(_audit(seed, new))
        at_old, at_new = _finding(_audit(seed, old)), _finding(_audit(seed, new))
        assert at_old.threshold == at_new.threshold == MAJORITY
        assert at_old.score == pytest.approx(MAJORITY, abs=1e-6)  # the rule before: rejected at the bar
        assert (at_new.score - centre) / (MAJORITY - centre) == pytest.approx(c, abs=1e-6)  # the concession
        assert at_new.score < centre + c * (MAJORITY - centre) + 1e-6 < 0.64  # bounded: a stamp whose excess
        # sends 2 in 3 inputs to its class is rejected alone
        assert rejudge(AuditRule(), _audit(seed, new + 0.01))[-1] == ("trigger",)
