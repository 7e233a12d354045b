"""Evidence families in corroborated rejection (issue 22, engineer F2; bdfl.defense.audit.rejecting
with ``by_family``; measured and not adopted as the default, the option and its properties are tested): detectors that read the same evidence (accuracy, balanced accuracy, loss and
merged loss: the candidate's loss on the auditor's samples) fail together on a non-IID honest
candidate, so their failures count as one measurement, at its strongest excess; failures in two
families reject at their bars, as two detectors did before. Includes the bounded concession to
an adversary who knows the rule: out on the auditor-data family only, between 1 and c of its bars."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from bdfl.config import DetectorsConfig
from bdfl.defense.audit import AuditRule, audit_corroboration, family, failed_families, rejecting, rejudge
from bdfl.defense.detectors import DETECTOR_NAMES, EVIDENCE_FAMILIES, REGISTRY, Evidence, Finding, build_detectors, run_detectors
from bdfl.defense.detectors.calibration import EQUAL_EVIDENCE

BY_FAMILY = AuditRule(by_family=True)
EACH = AuditRule(by_family=False)  # c896489's rule: every detector its own measurement
M = 17  # honest candidates; one more is judged
N_VAL = 2000  # the auditor's validation samples (sampling errors well under the candidates' spreads)


def _finding(name: str, z: float, z_bar: float = 4.0) -> Finding:
    return Finding(name, z, z_bar, z > z_bar, "", z, z_bar)


def test_the_default_rule_counts_each_detector() -> None:
    """By-family counting was measured and not adopted (docs/results/robustness.md, engineer F2)."""
    assert not (AuditRule().by_family or AuditRule.from_dict({}).by_family or AuditRule.only("loss").by_family)
    same = [_finding("accuracy", 4.4), _finding("loss", 4.4)]
    assert [f.name for f in rejecting(same, EQUAL_EVIDENCE)] == ["accuracy", "loss"]  # the function's default too


def test_every_detector_names_a_known_evidence_family() -> None:
    """A detector added without ``evidence_family`` (or with one not documented in
    EVIDENCE_FAMILIES) fails here: the rule would otherwise count it as independent evidence."""
    families = {name: family(name) for name in DETECTOR_NAMES}
    for name in DETECTOR_NAMES:
        assert REGISTRY[name].evidence_family in EVIDENCE_FAMILIES, f"detector {name} names no known evidence family"
        assert families[name] == REGISTRY[name].evidence_family
    # what each measures: the four views of the candidate's loss on the auditor's samples are one family,
    assert {n for n, f in families.items() if f == "auditor_data"} == {"accuracy", "balanced_accuracy", "loss", "merge"}
    # every other detector is a family of its own (parameter space, the stamped inputs, the combined test)
    others = [f for n, f in families.items() if f != "auditor_data"]
    assert len(others) == len(set(others)) == len(DETECTOR_NAMES) - 4
    assert set(families.values()) == set(EVIDENCE_FAMILIES)
    assert family("not_registered") == "not_registered"  # a detector nobody registered: a family of its own


def test_failures_in_one_family_count_once_failures_in_two_families_reject() -> None:
    c = EQUAL_EVIDENCE
    same = [_finding("accuracy", 4.4), _finding("loss", 4.8), _finding("merge", 4.2), _finding("joint", 1.0, 3.0)]
    assert failed_families(same) == {"auditor_data": 1.2}
    assert rejecting(same, c, by_family=True) == ()  # one measurement, 1.2x its bar: not corroborated
    assert [f.name for f in rejecting(same, c, by_family=False)] == ["accuracy", "loss", "merge"]  # counted thrice before
    # corroborated: the family's strongest excess at c, or the joint score at 1 / c of its bar
    far = [_finding("accuracy", 4.4), _finding("loss", 5.7)]
    assert [f.name for f in rejecting(far, c, by_family=True)] == ["accuracy", "loss"]
    joint = [_finding("accuracy", 4.4), _finding("loss", 4.4), _finding("joint", 2.2, 3.0)]
    assert [f.name for f in rejecting(joint, c, by_family=True)] == ["accuracy", "loss"]
    # two families, each just past its bar: two independent measurements
    two = [_finding("accuracy", 4.1), _finding("direction", 4.1)]
    assert [f.name for f in rejecting(two, c, by_family=True)] == ["accuracy", "direction"]
    assert [f.name for f in rejecting([_finding("distance", 4.1), _finding("shift", 4.1)], c, by_family=True)] == [
        "distance", "shift"]
    # the combined test and c = 1 are as before
    assert [f.name for f in rejecting([_finding("loss", 4.1), _finding("joint", 3.5, 3.0)], c, by_family=True)] == [
        "loss", "joint"]
    assert [f.name for f in rejecting(same, 1.0, by_family=True)] == ["accuracy", "loss", "merge"]


def _audit(seed: int, excess: float, distance: float = 1.0) -> Evidence:
    """``M`` honest candidates (Gaussian: accuracy 0.90 +- 0.02, log loss and log merged loss
    log 0.3 +- 0.1, the parameter statistics at the digits spreads of test_detector_corroboration)
    and a last one that knows the rule and its audit: it sits ``excess`` times each bar of the
    auditor-data family out (accuracy, loss and merged loss; ``excess`` 0: at their centres) and at
    the honest centre in parameter space, except its ``distance`` (to the auditor's model)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((6, M))
    ev = Evidence(valid=np.ones(M + 1, bool), n_val=N_VAL, own_accuracy=0.90, own_loss=0.3,
                  accuracy=np.append(0.90 + 0.02 * z[0], 0.0), loss=np.append(np.exp(math.log(0.3) + 0.1 * z[1]), 10.0),
                  merged_loss=np.append(np.exp(math.log(0.3) + 0.1 * z[2]), 10.0),
                  own_cosine=np.append(0.25 + 0.13 * z[3], 0.25), cosine=np.append(0.40 + 0.08 * z[4], 0.40),
                  distance=np.append(np.exp(0.2 * z[5]), distance))
    # the bars hardly depend on where the last candidate sits on the bad side (medians, good-side
    # spreads): a few fixed-point steps place it at ``excess`` of the bars its own position gives
    cfg = DetectorsConfig()
    for _ in range(6):
        for name, array, sign in (("accuracy", "accuracy", -1), ("loss", "loss", 1), ("merge", "merged_loss", 1)):
            det = REGISTRY[name](getattr(cfg, name), cfg.min_candidates)
            centre, spread = det.calibrate(ev)
            at = centre + sign * excess * det.k_for(ev) * spread
            getattr(ev, array)[-1] = at if name == "accuracy" else math.exp(at)
    return ev


def _largest_passing(rule: AuditRule, seed: int, distance: float = 1.0) -> float:
    """The largest ``excess`` (times each auditor-data bar) at which the last candidate passes
    ``rule``: the adversary who knows the rule (bisection)."""
    lo, hi = 0.0, 3.0
    assert not rejudge(rule, _audit(seed, lo, distance))[-1]
    assert rejudge(rule, _audit(seed, hi, distance))[-1]
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if rejudge(rule, _audit(seed, mid, distance))[-1] else (mid, hi)
    return lo


def _findings(ev: Evidence) -> list[Finding]:
    return run_detectors(build_detectors(DetectorsConfig()), ev)[-1]


def test_adversary_out_on_the_auditor_data_family_only_passes_up_to_c_of_its_bars_and_no_further() -> None:
    """The named, bounded concession. An attacker that knows the rule degrades its predictions on
    the auditor's data (accuracy, loss and merged loss, each the same multiple of its bar) and keeps
    its parameters at the honest centre. Under the rule of c896489 it was rejected as soon as it
    crossed the bars (three detectors failed: they corroborated each other); counted by family it
    passes up to ``c`` (sqrt(2) / w = 1.24 at 18 candidates, :func:`audit_corroboration`) times each
    bar, as any single measurement does, and is rejected past that."""
    c = audit_corroboration(EQUAL_EVIDENCE, M + 1)
    for seed in range(5):
        assert _largest_passing(EACH, seed) == pytest.approx(1.0, abs=1e-6)
        assert _largest_passing(BY_FAMILY, seed) == pytest.approx(c, abs=1e-6)
        inside = _audit(seed, 0.99 * c)
        assert [f.name for f in _findings(inside) if f.failed] == ["merge", "accuracy", "loss"]
        assert rejudge(BY_FAMILY, inside)[-1] == ()  # one measurement, under c of its bars: passes
        assert set(rejudge(EACH, inside)[-1]) == {"merge", "accuracy", "loss"}  # (the rule before rejected it)
        assert set(rejudge(BY_FAMILY, _audit(seed, 1.01 * c))[-1]) == {"merge", "accuracy", "loss"}  # bounded


def test_the_same_adversary_also_out_in_parameter_space_is_rejected() -> None:
    """The attacker just inside the family's lone bar, also boosted just past the distance bar (a
    second, independent measurement, which alone would pass), is rejected: failures in two families."""
    c = audit_corroboration(EQUAL_EVIDENCE, M + 1)
    for seed in range(5):
        far = 1.0
        while not next(f for f in _findings(_audit(seed, 0.0, far)) if f.name == "distance").failed:
            far *= 1.02  # just past the distance bar
        assert rejudge(BY_FAMILY, _audit(seed, 0.0, far))[-1] == ()  # distance alone, just past its bar: passes
        assert rejudge(BY_FAMILY, _audit(seed, 0.99 * c, 1.0))[-1] == ()  # the auditor-data family alone: passes
        assert set(rejudge(BY_FAMILY, _audit(seed, 0.99 * c, far))[-1]) == {"distance", "merge", "accuracy", "loss"}
        assert _largest_passing(BY_FAMILY, seed, far) == pytest.approx(1.0, abs=1e-6)  # rejected at the family's bars


def test_by_family_changes_nothing_when_each_family_holds_one_detector() -> None:
    """Parameter-space detectors are families of their own: on audits out only in parameter
    space the two rules agree (the adversary of test_detector_corroboration is judged alike)."""
    for seed in range(5):
        for dist in (1.0, 2.0, 2.6, 3.0, 4.0):
            ev = _audit(seed, 0.0, dist)
            ev.accuracy[-1], ev.loss[-1], ev.merged_loss[-1] = 0.90, 0.3, 0.3
            assert rejudge(BY_FAMILY, ev) == rejudge(EACH, ev)
    assert replace(BY_FAMILY, detectors=DetectorsConfig()).by_family  # the rule's other settings are independent
    assert BY_FAMILY.with_detector("loss", k=5.0).by_family
