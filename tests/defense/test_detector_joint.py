"""The joint detector (bdfl.defense.detectors.joint): the mean z over the cosine with the
auditor's own move, the cosine with the consensus move and the log distance, each calibrated
from the audit's candidates with one reweighting step (calibration.reweighted_centre_spread)."""

from __future__ import annotations

import math

import numpy as np

from bdfl.config import DetectorConfig
from bdfl.defense.audit import AuditRule, rejudge
from bdfl.defense.detectors import Evidence
from bdfl.defense.detectors.calibration import good_side_spread, reweighted_centre_spread
from bdfl.defense.detectors.joint import CAP, JointDetector

# honest spreads measured on digits (20 peers, 30 %, 6 rounds; seeds 11-13): cosine with the own
# move 0.25 +- 0.13, with the consensus move 0.40 +- 0.08, log distance 0 +- 0.2
OWN, CONS, DIST = (0.25, 0.13), (0.40, 0.08), (0.0, 0.2)


def _ev(own: np.ndarray, cons: np.ndarray, logdist: np.ndarray) -> Evidence:
    return Evidence(valid=np.ones(len(own), bool), own_cosine=own, cosine=cons, distance=np.exp(logdist))


def _honest(rng: np.random.Generator, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (OWN[0] + OWN[1] * rng.standard_normal(m), CONS[0] + CONS[1] * rng.standard_normal(m),
            DIST[0] + DIST[1] * rng.standard_normal(m))


def _with_attackers(rng: np.random.Generator, m: int, a: int, alpha: float) -> Evidence:
    """``m`` honest candidates and ``a`` attackers ``alpha`` honest spreads out on each measurement."""
    own, cons, dist = _honest(rng, m)
    jitter = 0.2 * rng.standard_normal((3, a))
    return _ev(np.concatenate([own, OWN[0] - (alpha + jitter[0]) * OWN[1]]),
               np.concatenate([cons, CONS[0] - (alpha + jitter[1]) * CONS[1]]),
               np.concatenate([dist, DIST[0] + (alpha + jitter[2]) * DIST[1]]))


def test_attackers_moderately_out_on_every_measurement_fail_only_jointly() -> None:
    """The issue-22 case: 30 % attackers 4 honest spreads out on each measurement mostly pass
    the direction and distance detectors (each bar 4 x 1.13 spreads from a median and a spread
    the attackers pull) and mostly fail the joint test (3 x 1.13 of the mean z); no honest
    candidate fails."""
    fails_joint = fails_single = honest_fail = 0
    for seed in range(20):
        ev = _with_attackers(np.random.default_rng(seed), 13, 6, 4.0)
        failed = rejudge(AuditRule(), ev)
        fails_joint += sum("joint" in f for f in failed[13:])
        fails_single += sum(bool(set(f) & {"direction", "distance"}) for f in failed[13:])
        honest_fail += sum(bool(f) for f in failed[:13])
    assert fails_joint >= 0.7 * 120 and fails_joint >= 2.5 * fails_single
    assert honest_fail <= 0.01 * 260


def test_a_measured_digits_audit_under_colluding_label_flip() -> None:
    """Seed 11, round 5, auditor 3 of the digits mirror (audit_rule_eval, label_flip_collude):
    every default detector passed the 6 flippers; the joint score ranks all 6 above every honest
    candidate, and its distance component alone puts them 5.7-7.1 spreads out. Not caught at
    the default k: what the test still misses (docs/results/robustness.md)."""
    dist = [1.181, 0.812, 0.855, 0.696, 1.193, 0.95, 0.908, 0.974, 0.814, 0.758, 0.741, 1.026,
            2.383, 2.558, 3.006, 2.791, 2.69, 2.664]
    cons = [0.389, 0.296, 0.397, 0.341, 0.319, 0.335, 0.298, 0.424, 0.297, 0.268, 0.414, 0.491,
            0.142, 0.189, 0.198, 0.267, 0.1, 0.187]
    own = [0.075, 0.239, 0.137, 0.269, 0.004, 0.196, 0.191, 0.069, 0.072, 0.219, 0.332, 0.089,
           -0.169, -0.174, -0.089, 0.005, -0.08, -0.125]
    ev = Evidence(valid=np.ones(18, bool), own_cosine=own, cosine=cons, distance=dist)
    det = JointDetector(DetectorConfig(k=3.0))
    s = det.scores(ev)
    assert s[12:].min() > s[:12].max() + 1.2
    assert min(det.components(ev)["distance"][12:]) > 5.5  # capped at CAP = 6 in the mean
    # the bar at k = 3 (3.4 here): the flippers (2.2-2.8) sit under it; at k = 2 five of six fail, no honest one
    assert not any(f.failed for f in det.judge(ev))
    low = [f.failed for f in JointDetector(DetectorConfig(k=2.0)).judge(ev)]
    assert not any(low[:12]) and sum(low[12:]) >= 5


def test_an_honest_candidate_far_out_on_one_measurement_passes() -> None:
    """Non-IID: an honest trainer whose data differs from the auditor's moves farther (8 spreads
    on the distance) but in the consensus direction; clipped and averaged, it passes."""
    rng = np.random.default_rng(3)
    own, cons, dist = _honest(rng, 16)
    dist[0] = DIST[0] + 8 * DIST[1]
    own[0], cons[0] = OWN[0], CONS[0]
    f = JointDetector(DetectorConfig(k=3.0)).judge(_ev(own, cons, dist))
    assert not f[0].failed and f[0].score < f[0].threshold


def test_one_measurement_alone_never_fails_the_joint_test() -> None:
    """Seattle weather's round 1: honest candidates 8-15 spreads out on the consensus cosine
    alone. However far out one measurement is (capped at CAP), the mean stays under the bar;
    two far-out measurements fail."""
    rng = np.random.default_rng(5)
    own, cons, dist = _honest(rng, 16)
    cons[0] = CONS[0] - 100 * CONS[1]
    own[1], cons[1] = OWN[0] - 100 * OWN[1], CONS[0] - 100 * CONS[1]
    f = JointDetector(DetectorConfig(k=2.5)).judge(_ev(own, cons, dist))
    assert not f[0].failed and f[0].score <= (CAP + 2) / 3 + 1e-9
    assert f[1].failed


def test_reweighting_takes_a_one_sided_minority_out_of_centre_and_spread() -> None:
    """Over 100 draws of 14 honest values (standard normal) and 6 bad ones 4 spreads out on
    the low side (as the flippers' distances of the measured audit above): the median is pulled
    0.57 and the good-side spread widened 1.38x; reweighted, the centre and spread are much
    closer to the honest ones. On clean values the spread shrinks by about 3 %."""
    plain, reweighted, clean = [], [], []
    for seed in range(100):
        rng = np.random.default_rng(seed)
        honest = rng.standard_normal(14)
        values = np.concatenate([honest, -4.0 + 0.2 * rng.standard_normal(6)])
        plain.append((np.median(values) - np.median(honest), good_side_spread(values, "low")))
        reweighted.append(np.subtract(reweighted_centre_spread(values, "low"), (np.median(honest), 0.0)))
        v = rng.standard_normal(20)
        clean.append((*reweighted_centre_spread(v, "high"), good_side_spread(v, "high")))
    (p_shift, p_spread), (r_shift, r_spread) = np.mean(plain, axis=0), np.mean(reweighted, axis=0)
    assert abs(r_shift) < 0.4 * abs(p_shift) and abs(r_spread - 1) < 0.4 * abs(p_spread - 1)
    c_centre, c_spread, c_plain = np.mean(clean, axis=0)
    assert abs(c_centre) < 0.1 and 0.93 * c_plain < c_spread <= c_plain
    assert all(math.isnan(x) for x in reweighted_centre_spread([1.0], "low"))


def test_the_adversary_who_knows_the_rule_must_stay_close() -> None:
    """An attacker that knows the deployed rule and the honest candidates of the audit places
    its 6 colluders as far out (``alpha`` spreads on every measurement: how much of the honest
    direction it undoes) as still passes every detector. With the joint test the largest
    passing ``alpha`` is on average at most 3/4 of what passes without it (0.51-0.87 over 8 audits)."""

    def largest_passing(rule: AuditRule, seed: int) -> float:
        lo, hi = 0.0, 8.0
        for _ in range(20):
            mid = (lo + hi) / 2
            ev = _with_attackers(np.random.default_rng(seed), 14, 6, mid)
            if any(rejudge(rule, ev)[14:]):
                hi = mid
            else:
                lo = mid
        return lo

    rule = AuditRule()
    without = rule.with_detector("joint", enabled=False)
    ratios = [largest_passing(rule, s) / largest_passing(without, s) for s in range(8)]
    assert np.mean(ratios) <= 0.75 and max(ratios) < 0.95, ratios


def test_colluders_on_the_good_side_cannot_push_honest_candidates_out() -> None:
    """30 % decoys placed at the good extreme of every measurement (copies of the consensus:
    tiny distance, high cosines) move the centre towards the good side; honest candidates
    still fail the joint test rarely (< 2 % of votes)."""
    fails = total = 0
    for seed in range(30):
        rng = np.random.default_rng(100 + seed)
        own, cons, dist = _honest(rng, 14)
        ev = _ev(np.concatenate([own, np.full(6, OWN[0] + 3 * OWN[1])]) + 1e-6 * rng.standard_normal(20),
                 np.concatenate([cons, np.full(6, CONS[0] + 3 * CONS[1])]) + 1e-6 * rng.standard_normal(20),
                 np.concatenate([dist, np.full(6, DIST[0] - 3 * DIST[1])]) + 1e-6 * rng.standard_normal(20))
        f = JointDetector(DetectorConfig(k=3.0)).judge(ev)
        fails += sum(x.failed for x in f[:14])
        total += 14
    assert fails / total < 0.02
