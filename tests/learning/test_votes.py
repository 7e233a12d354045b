"""Dissenting committee seats and the votes the clear-approval filter counts (bdfl.learning.votes)."""

from __future__ import annotations

import pytest

from bdfl.defense.audited import clear_approval
from bdfl.learning.votes import SeatVotes, counted_votes, dissent_shares, dissenting_seats

ALL = 0b1111  # four seats vote on every update


def _round(colluder_rejects_honest: bool) -> list[SeatVotes]:
    """Six honest updates approved 4-0 (3-1 when seat 3 colludes), two attackers' rejected 0-4
    (1-3: the colluder accepts them); seat 2 rejects honest update 0 on its own."""
    ups = []
    for u in range(6):
        accept = ALL & ~(0b1000 if colluder_rejects_honest else 0) & ~(0b0100 if u == 0 else 0)
        ups.append(SeatVotes(ALL, accept, True))
    for _ in range(2):
        ups.append(SeatVotes(ALL, 0b1000 if colluder_rejects_honest else 0, False))
    return ups


def test_dissent_shares_match_the_contracts_agreement_count() -> None:
    shares = dissent_shares(_round(True))
    assert shares == {0: 0.0, 1: 0.0, 2: pytest.approx(1 / 8), 3: 1.0}
    assert dissent_shares(_round(False))[3] == 0.0


def test_undecided_updates_and_unvoted_seats_are_neutral() -> None:
    ups = [SeatVotes(0b011, 0b001, None), SeatVotes(0b001, 0b001, True), SeatVotes(0b101, 0b100, True)]
    # seat 1 voted only on the undecided update; seat 2 agreed once; seat 0 agreed once, disagreed once
    assert dissent_shares(ups) == {0: 0.5, 2: 0.0}


def test_dissenting_seats_is_a_strict_limit() -> None:
    ups = _round(True)
    assert dissenting_seats(ups, 0.5) == 0b1000
    assert dissenting_seats(ups, 1.0) == 0  # 1 = count every vote
    assert dissenting_seats(ups, 0.125) == 0b1000  # seat 2's 1/8 is not above 1/8
    assert dissenting_seats(ups, 0.1) == 0b1100
    with pytest.raises(ValueError, match="dissent limit"):
        dissenting_seats(ups, 1.5)


def test_bad_masks_are_refused() -> None:
    with pytest.raises(ValueError, match="vote masks"):
        dissent_shares([SeatVotes(0b01, 0b10, True)])  # an accept from a seat that did not vote


def test_counted_votes_leave_out_the_excluded_seats() -> None:
    assert counted_votes(ALL, 0b0111, 0) == (3, 1)
    assert counted_votes(ALL, 0b0111, 0b1000) == (3, 0)
    assert counted_votes(ALL, 0b0111, 0b0001) == (2, 1)
    assert counted_votes(0b0011, 0b0001, 0b1100) == (1, 1)  # excluded seats that did not vote change nothing


def test_a_colluders_vetoes_stop_counting_but_an_honest_reject_still_does() -> None:
    """Under max_reject_share = 0 the colluding seat's reject keeps every honest update out;
    leaving out seats above a 0.5 dissent share lets them in again, except update 0, which an
    honest seat (dissent 1/8) rejected."""
    ups = _round(True)
    clear = lambda excluded: [clear_approval(*counted_votes(u.voted_mask, u.accept_mask, excluded), 0.0) for u in ups[:6]]
    assert clear(0) == [False] * 6
    assert clear(dissenting_seats(ups, 0.5)) == [False] + [True] * 5
