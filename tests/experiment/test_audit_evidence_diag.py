"""experiments/audit_evidence_diag.py: the own-anchored consensus on synthetic moves (a coherent
45 % coalition captures the coordinate median, not the anchored consensus), and the capture of a
short mirrored run (every honest auditor's audit, with the moves the audit measured)."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def diag():  # noqa: ANN201
    sys.path.insert(0, str(ROOT / "experiments"))
    spec = importlib.util.spec_from_file_location("audit_evidence_diag", ROOT / "experiments" / "audit_evidence_diag.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _moves(rng: np.random.Generator, honest: int, attackers: int, d: int = 400) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Honest moves: a common direction plus noise three times its size per coordinate (they barely
    agree pairwise); attackers: each coordinate just past the honest extreme on the side opposite the
    honest mean (Fang's construction); the auditor's own move is one more honest move."""
    mean = rng.normal(size=d)
    H = mean + 3 * rng.normal(size=(honest, d))
    s = np.sign(H.mean(axis=0))
    lo, hi = H.min(axis=0), H.max(axis=0)
    A = np.where(s > 0, lo, hi) * (1 + rng.random((attackers, d)))
    A = np.where(s > 0, np.minimum(A, lo), np.maximum(A, hi))
    own = mean + 3 * rng.normal(size=d)
    return np.vstack([H, A]), own, np.array([False] * honest + [True] * attackers)


def test_anchored_consensus_is_not_captured_by_a_coherent_45_percent(diag) -> None:  # noqa: ANN001
    rng = np.random.default_rng(3)
    M, own, bad = _moves(rng, honest=10, attackers=8)
    unit = diag._unit
    median_consensus = unit(M) @ unit(np.median(np.vstack([M, own]), axis=0))
    anchored = diag.anchored_cosines(M, own)
    # the coordinate median is captured: the attackers agree with it better than the honest moves do
    assert np.median(median_consensus[bad]) > np.median(median_consensus[~bad])
    # the consensus anchored on the auditor's own move is the honest one: every attacker below every honest move
    assert anchored[bad].max() < 0 < anchored[~bad].min()


def test_capture_records_every_honest_audit_with_its_moves(diag) -> None:  # noqa: ANN001
    audits, per_round = diag.capture("clients.seattle_weather", "fang", 12, 0.3, 2)
    assert [r["round"] for r in per_round] == [1, 2]
    assert all(0 <= r["honest_left_out"] <= 14 and 0 <= r["attackers_on_committee"] for r in per_round)
    assert audits and {a["round"] for a in audits} == {1, 2}
    for a in audits:
        ev = a["ev"]
        assert len(a["moves"]) == len(a["kinds"]) == len(ev.valid) == len(a["failed"]) == len(a["trainers"])
        assert a["past"] == [None] * len(a["moves"])  # earlier moves only when asked for (keep_past)
        assert a["own"] is not None and set(a["kinds"]) <= {"honest", "attacker"}
        # the recorded moves are the ones the audit measured: their cosine with the own move is the evidence's
        for x, c in zip(a["moves"], ev.own_cosine):
            if x is not None and math.isfinite(c):
                assert x @ a["own"] / np.linalg.norm(x) / np.linalg.norm(a["own"]) == pytest.approx(c, abs=1e-9)
    assert any((a["kinds"] == "attacker").any() for a in audits)
    # the capture hook is removed afterwards
    import bdfl.defense.audit as audit
    assert audit.candidate_statistics is diag._statistics


def test_vote_composition_counts_what_honest_votes_alone_decide(diag) -> None:  # noqa: ANN001
    kinds = np.array(["honest", "attacker", "attacker"])
    # three honest auditors judge trainers 0 (honest), 1 and 2 (attackers) in round 1; trainer 1 is
    # rejected by two of three (honest votes alone would not approve it), trainer 2 by none
    audits = [{"round": 1, "trainers": [0, 1, 2], "kinds": kinds, "failed": f}
              for f in ([(), ("direction",), ()], [(), ("joint",), ()], [("loss",), (), ()])]
    per_round = [{"round": 1}]
    c = diag.vote_composition(audits, per_round)
    assert c["attacker"] == {"updates": 2, "rejects": 2, "votes": 6, "honest_majority_blocks": 1, "no_honest_reject": 1}
    assert c["honest"] == {"updates": 1, "rejects": 1, "votes": 3, "honest_majority_blocks": 0, "no_honest_reject": 0}
    assert c["rounds"] == [{"round": 1, "honest": (1, 3), "attacker": (2, 6)}]
    # a tie among the honest votes (half reject) is not an approval: accepts must exceed half
    audits.append({"round": 1, "trainers": [2], "kinds": kinds[2:], "failed": [("distance",)]})
    audits.append({"round": 1, "trainers": [2], "kinds": kinds[2:], "failed": [("distance",)]})
    audits.append({"round": 1, "trainers": [2], "kinds": kinds[2:], "failed": [("distance",)]})
    assert diag.vote_composition(audits, per_round)["attacker"]["honest_majority_blocks"] == 2


def test_anchored_direction_variant_fails_only_the_reversed_moves(diag) -> None:  # noqa: ANN001
    from bdfl.defense.detectors import Evidence
    rng = np.random.default_rng(5)
    cos = np.concatenate([0.5 + 0.05 * rng.normal(size=20), [-0.3, -0.4]])
    ev = Evidence(valid=np.ones(22, bool), cosine=cos)
    fails = diag.anchored_direction_fails(ev)
    assert fails[-2:].all() and not fails[:-2].any()
