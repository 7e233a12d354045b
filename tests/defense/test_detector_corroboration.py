"""Corroborated rejection (bdfl.defense.audit.rejecting, ``[defense.detectors] corroboration``):
a detector failing alone rejects only ``corroboration`` (sqrt(2)) times its own bar out, or
with the joint score at 1 / sqrt(2) of its bar; two failing detectors, or the combined ``joint``
test, reject at their bars. Includes the adversary
who knows the rule and sits just inside the widened lone bar (issue 22)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from bdfl.config import ConfigError, DetectorsConfig, from_dict
from bdfl.defense.audit import AuditRule, audit_corroboration, rejecting, rejudge
from bdfl.defense.detectors import Evidence, Finding
from bdfl.defense.detectors.calibration import EQUAL_EVIDENCE, small_sample_factor

# honest spreads measured on digits (as tests/defense/test_detector_joint.py): cosine with the
# own move 0.25 +- 0.13, with the consensus move 0.40 +- 0.08, log distance 0 +- 0.2
OWN, CONS, DIST = (0.25, 0.13), (0.40, 0.08), (0.0, 0.2)
M = 17  # honest candidates; one more is judged


def _ev(own: np.ndarray, cons: np.ndarray, dist: np.ndarray) -> Evidence:
    return Evidence(valid=np.ones(len(own), bool), own_cosine=own, cosine=cons, distance=dist)


def _audit(seed: int, own: float, cons: float, dist: float) -> Evidence:
    """``M`` honest candidates (Gaussian at the digits spreads) and a last one at (own, cons, dist)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((3, M))
    return _ev(np.append(OWN[0] + OWN[1] * z[0], own), np.append(CONS[0] + CONS[1] * z[1], cons),
               np.append(np.exp(DIST[0] + DIST[1] * z[2]), dist))


def _rule(corroboration: float) -> AuditRule:
    return AuditRule(replace(DetectorsConfig(), corroboration=corroboration))


def _largest_passing_distance(rule: AuditRule, seed: int, own: float = OWN[0], cons: float = CONS[0]) -> float:
    """The largest distance (to the auditor's model) the last candidate can have and pass ``rule``
    (bisection on the log distance: the adversary who knows the rule)."""
    lo, hi = 0.0, 5.0
    assert not rejudge(rule, _audit(seed, own, cons, 1.0))[-1]
    assert rejudge(rule, _audit(seed, own, cons, math.exp(hi)))[-1]
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if rejudge(rule, _audit(seed, own, cons, math.exp(mid)))[-1] else (mid, hi)
    return math.exp(lo)


def _lowest_passing_cosine(rule: AuditRule, seed: int) -> float:
    """The lowest cosine with the consensus move the last candidate can have and pass ``rule``
    (own cosine at the honest median, distance 1)."""
    lo, hi = -1.0, CONS[0]
    assert not rejudge(rule, _audit(seed, OWN[0], hi, 1.0))[-1] and rejudge(rule, _audit(seed, OWN[0], lo, 1.0))[-1]
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if rejudge(rule, _audit(seed, OWN[0], mid, 1.0))[-1] else (lo, mid)
    return hi


def _finding(name: str, z: float, z_bar: float = 4.0) -> Finding:
    return Finding(name, z, z_bar, z > z_bar, "", z, z_bar)


def test_the_default_is_the_equal_evidence_factor_and_validated() -> None:
    assert DetectorsConfig().corroboration == EQUAL_EVIDENCE == math.sqrt(2)
    assert from_dict({"defense": {"detectors": {"corroboration": 2.0}}}).defense.detectors.corroboration == 2.0
    with pytest.raises(ConfigError, match="defense.detectors.corroboration"):
        from_dict({"defense": {"detectors": {"corroboration": 0.5}}})


def test_rejecting_needs_two_failures_a_combined_one_or_a_far_lone_one() -> None:
    c = EQUAL_EVIDENCE
    assert rejecting([_finding("distance", 5.0), _finding("direction", 1.0)], c) == ()  # 1.25x alone: passes
    assert [f.name for f in rejecting([_finding("distance", 5.7), _finding("direction", 1.0)], c)] == ["distance"]  # 1.43x
    both = rejecting([_finding("distance", 4.1), _finding("direction", 4.1)], c)
    assert [f.name for f in both] == ["distance", "direction"]
    assert [f.name for f in rejecting([_finding("joint", 3.5, 3.0)], c)] == ["joint"]
    # a lone failure corroborated by the joint score at 1 / c of its bar or more (it did not fail)
    assert [f.name for f in rejecting([_finding("distance", 4.4), _finding("joint", 2.2, 3.0)], c)] == ["distance"]
    assert rejecting([_finding("distance", 4.4), _finding("joint", 2.0, 3.0)], c) == ()
    # a failure that states no z (e.g. a detector whose spread is 0) counts as far out
    assert [f.name for f in rejecting([Finding("trigger", 0.9, 0.5, True, "")], c)] == ["trigger"]
    # corroboration 1: the rule before issue 22, any failure rejects
    assert [f.name for f in rejecting([_finding("distance", 4.1)], 1.0)] == ["distance"]
    assert rejecting([_finding("distance", 3.9)], 1.0) == ()


def test_verdicts_say_why_a_lone_failure_passed() -> None:
    ev = _audit(0, OWN[0], CONS[0], 0.0)
    ev.distance[-1] = _largest_passing_distance(_rule(EQUAL_EVIDENCE), 0) * 0.99
    assert rejudge(AuditRule(), ev)[-1] == ()
    assert rejudge(_rule(1.0), ev)[-1] == ("distance",)


def test_adversary_just_inside_the_lone_bar_gains_the_audit_corroboration_and_no_more() -> None:
    """An attacker that knows the rule boosts its update (distance to the auditor's model) as far
    as it still passes, keeping both cosines at the honest median. What it gains over the rule
    before (any failure rejects): exactly the audit's corroboration (sqrt(2) / w = 1.24 with 19
    candidates, :func:`audit_corroboration`) times the log distance from the median (the spread is
    estimated from the audit, seeds 0-4). Bounded: past ``exp(median + sqrt(2) k_eff spread)`` it
    is rejected."""
    k_eff = 4.0 * small_sample_factor(M + 1)
    for seed in range(5):
        old = _largest_passing_distance(_rule(1.0), seed)
        new = _largest_passing_distance(AuditRule(), seed)
        med = float(np.median(_audit(seed, OWN[0], CONS[0], 1.0).distance))
        gain = math.log(new / med) / math.log(old / med)
        assert gain == pytest.approx(audit_corroboration(EQUAL_EVIDENCE, M + 1), rel=0.05)
        assert math.log(new / med) <= EQUAL_EVIDENCE * k_eff * 0.3  # bounded (spread 0.2, Qn noise)
        assert 1.5 < old / med < 3.2 and new / med < 5.0


def test_adversary_at_the_lone_bar_is_rejected_once_a_second_measurement_is_out() -> None:
    """The same boosted attacker that also turns its move away from the consensus past the
    direction bar (a sign flip, label flip, Fang: they are out on several measurements) is
    rejected at the distance the lone bar let through."""
    for seed in range(5):
        d = _largest_passing_distance(AuditRule(), seed) * 0.98
        assert rejudge(AuditRule(), _audit(seed, OWN[0], CONS[0], d))[-1] == ()
        turned = _lowest_passing_cosine(AuditRule(), seed) + 0.01  # just inside the lone direction bar
        assert rejudge(_rule(1.0), _audit(seed, OWN[0], turned, 1.0))[-1] == ("direction",)  # past its bar
        assert rejudge(AuditRule(), _audit(seed, OWN[0], turned, 1.0))[-1] == ()  # alone: passes
        assert set(rejudge(AuditRule(), _audit(seed, OWN[0], turned, d))[-1]) >= {"direction", "distance"}


def test_honest_lone_outliers_pass_and_attackers_out_everywhere_still_fail() -> None:
    """Non-IID honest candidates out on one measurement only (1.1-1.4 true honest bars out on the
    consensus cosine or on the distance; 40 cases): the rule before (any failure rejects) lets 10
    of 40 through, the corroborated rule 20 (at 19 candidates it asks 1.24 bars out of a lone
    finding, :func:`audit_corroboration`; 26 passed when it asked sqrt(2)). Attackers 6 honest spreads out on all three
    measurements fail under both (20 of 20)."""
    k_eff = 4.0 * small_sample_factor(M + 1)
    for rule, want in ((_rule(1.0), 10), (AuditRule(), 20)):
        passed = caught = 0
        for seed in range(20):
            x = 1.1 + 0.3 * (seed % 10) / 9
            passed += not rejudge(rule, _audit(seed, OWN[0], CONS[0] - x * k_eff * CONS[1], 1.0))[-1]
            passed += not rejudge(rule, _audit(seed, OWN[0], CONS[0], math.exp(x * k_eff * DIST[1])))[-1]
            caught += bool(rejudge(rule, _audit(seed, OWN[0] - 6 * OWN[1], CONS[0] - 6 * CONS[1], math.exp(6 * DIST[1])))[-1])
        assert passed == want and caught == 20


def test_corroboration_and_the_small_sample_widening_do_not_compound() -> None:
    """A bar widened w times for few candidates already holds a lone finding w times past the
    bar unlimited candidates would set: the audit asks only the rest of ``c`` (at least 1), so a
    three-candidate audit judges a lone failure as the rule before issue 22 did (a sign flipper
    in an 8-peer run otherwise passed 3 of 4 audits, tests/e2e/test_run.py), and many candidates
    approach ``c``."""
    assert audit_corroboration(EQUAL_EVIDENCE, 3) == 1.0
    assert audit_corroboration(EQUAL_EVIDENCE, 4) == 1.0
    assert 1.0 < audit_corroboration(EQUAL_EVIDENCE, 19) < audit_corroboration(EQUAL_EVIDENCE, 61) < EQUAL_EVIDENCE
    assert audit_corroboration(EQUAL_EVIDENCE, 61) == pytest.approx(EQUAL_EVIDENCE / small_sample_factor(61))
    assert audit_corroboration(1.0, 3) == 1.0  # the rule before issue 22 is unchanged
