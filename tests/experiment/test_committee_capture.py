"""experiments/committee_capture.py: exact coalition-capture probabilities, checked against brute
force and against a simulation of the real seat assignment (``Sortition.auditSeats``)."""

from __future__ import annotations

import itertools
import math
import random
from pathlib import Path

import pytest

from bdfl.chain.protocol import audit_seats
from bdfl.config import load_config
from tests.experiment.scripts import experiment_script

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cc():
    with experiment_script("committee_capture") as mod:
        yield mod


@pytest.mark.parametrize("population,marked,draws", [(7, 3, 4), (9, 4, 8), (6, 0, 3), (5, 5, 2)])
def test_hypergeometric_pmf_matches_enumeration(cc, population, marked, draws):
    counts = [0] * (draws + 1)
    for chosen in itertools.combinations(range(population), draws):
        counts[sum(i < marked for i in chosen)] += 1
    total = sum(counts)
    assert cc.hypergeom_pmf(population, marked, draws) == pytest.approx([c / total for c in counts], abs=1e-12)


def test_hypergeometric_rejects_impossible_draws(cc):
    with pytest.raises(ValueError, match="not defined"):
        cc.hypergeom_pmf(5, 6, 2)


@pytest.mark.parametrize("colluders,outcome", [(0, "approved"), (3, "approved"), (4, "undecided"), (5, "undecided"),
                                               (6, "rejected"), (8, "rejected")])
def test_outcome_follows_the_contracts_thresholds(cc, colluders, outcome):
    # RoundManager._decide with approvePercent 50, rejectPercent 66, 8 votes: approve needs 5 accepts
    # (500 > 400), reject needs 6 rejects (600 > 528); a 4-4 split or 5 rejects is Undecided
    assert cc.update_outcome(8, colluders) == outcome


def test_below_quorum_nothing_is_decided(cc):
    assert cc.update_outcome(3, 0, quorum=5) == "undecided"


def test_no_coalition_no_capture(cc):
    c = cc.capture(20, 0, 9, 8)
    assert (c.majority, c.undecided, c.rejected, c.stall_round) == (0.0, 0.0, 0.0, 0.0)


def test_capture_grows_with_the_coalition_and_shrinks_with_the_committee(cc):
    small, large = cc.capture(50, 15, 9, 8), cc.capture(50, 22, 9, 8)
    assert large.undecided + large.rejected > small.undecided + small.rejected
    assert cc.capture(50, 15, 21, 20).stall_round < small.stall_round
    assert small.over(6) == pytest.approx(1 - (1 - small.stall_round) ** 6)


def test_undecided_share_matches_a_simulation_of_the_seat_assignment(cc):
    """Uniform committee draws, seats in draw order, each honest non-member's auditors from
    ``audit_seats`` (the contract's window): the share of honest updates left undecided and
    rejected agrees with the exact sums."""
    rng = random.Random(7)
    peers, attackers, k, m, trials = 50, 15, 9, 8, 4000
    undecided = rejected = updates = 0
    for t in range(trials):
        committee = rng.sample(range(peers), k)  # draw order = seat order; ids < attackers collude
        seed = t.to_bytes(32, "big")
        outsider = next(i for i in range(attackers, peers) if i not in committee)
        for u in range(3):
            seats = audit_seats(seed, u + 3 * outsider, k, m, None)
            colluders = sum(committee[s] < attackers for s in seats)
            outcome = cc.update_outcome(len(seats), colluders)
            undecided += outcome == "undecided"
            rejected += outcome == "rejected"
            updates += 1
    exact = cc.capture(peers, attackers, k, m)
    se = math.sqrt(exact.undecided * (1 - exact.undecided) / trials)  # updates of one trial share a committee
    assert undecided / updates == pytest.approx(exact.undecided, abs=4 * se)
    assert rejected / updates == pytest.approx(exact.rejected, abs=0.01)


def test_cli_prints_the_table_and_refuses_bad_values(cc, capsys):
    assert cc.main(["--peers", "50", "--fraction", "0.3", "--committee", "9"]) == 0
    out = capsys.readouterr().out
    assert "| 50 | 15 (30%) | 9 / 8 | 0.077 | 17.0% |" in out
    with pytest.raises(SystemExit):
        cc.main(["--fraction", "1.2"])
    with pytest.raises(SystemExit):
        cc.main(["--committee", "9", "--auditors", "9"])


@pytest.mark.parametrize("peers", [30, 50, 100, 1000])
def test_the_library_committee_leaves_fewer_rounds_to_a_lucky_coalition(cc, peers):
    """Adversary: 30 % colluders who stall every honest update where they hold half of its m
    auditors. With the committee the library derives for ``peers`` (bdfl.config.COMMITTEE_SHARE:
    two updates share fewer than m / 2 auditors on average), a round with half the honest updates
    stalled is at most a third as likely as with the fixed 9 seats, and a majority of the seats
    at most half as likely; an update's own odds (binomial in m) do not change."""
    cfg = load_config(ROOT / "experiments" / "configs" / "default.toml", {"peers": peers})
    p, colluders = cfg.protocol, round(0.3 * peers)
    assert p.committee_size > 2 * p.auditors_per_update or p.committee_size == -(-9 * peers // 20)  # the overlap bound, or the share
    derived = cc.capture(peers, colluders, p.committee_size, p.auditors_per_update, p.approve_percent, p.reject_percent)
    fixed = cc.capture(peers, colluders, 9, p.auditors_per_update, p.approve_percent, p.reject_percent)
    assert fixed.stall_round > 0.2
    assert derived.stall_round < fixed.stall_round / 2.5 and derived.majority < fixed.majority / 2
    assert derived.undecided == pytest.approx(fixed.undecided, rel=1e-9)
