"""Which revealed audit votes the clear-approval filter counts.

The chain records, for every update of a round, which committee seats revealed a vote on it
(``voted_mask``) and which of those accepted (``accept_mask``), and its outcome. A seat that
votes against the outcome on most of the updates it judged is doing something other than
auditing: colluding auditors reject every honest update, which the honest majority then
approves. Under ``defense.bdfl.max_reject_share = 0`` each of those reject votes alone would keep
an honest update out of every peer's model; the contract already costs such a seat
reputation (``RoundManager._settleSeat``), but only later, while the vetoes act at once.

:func:`dissenting_seats` finds those seats from the round's own on-chain votes, so a peer
can leave them out of :func:`bdfl.defense.audited.clear_approval` (``defense.bdfl.dissent_limit``).
Pure functions over integers: the chain layer supplies the masks, this module never reads
the chain.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["SeatVotes", "counted_votes", "dissent_shares", "dissenting_seats"]


@dataclass(frozen=True)
class SeatVotes:
    """One update's revealed votes: bit ``s`` of ``voted_mask`` is set when seat ``s``
    revealed a vote on it, of ``accept_mask`` when that vote was accept; ``majority_accepts``
    is the on-chain outcome (True: approved or on probation, False: rejected, None:
    undecided, which agrees with nobody and disagrees with nobody, as in the contract)."""

    voted_mask: int
    accept_mask: int
    majority_accepts: bool | None


def _bits(mask: int) -> Iterable[int]:
    s = 0
    while mask:
        if mask & 1:
            yield s
        mask >>= 1
        s += 1


def dissent_shares(updates: Iterable[SeatVotes]) -> dict[int, float]:
    """Seat -> the share of its votes on the round's decided updates that went against the
    outcome (the contract's ``disagree / (agree + disagree)`` for that seat). Seats with no
    vote on a decided update are absent."""
    agree: dict[int, int] = {}
    disagree: dict[int, int] = {}
    for u in updates:
        if u.voted_mask < 0 or u.accept_mask < 0 or u.accept_mask & ~u.voted_mask:
            raise ValueError(f"bad vote masks: voted {u.voted_mask:#x}, accept {u.accept_mask:#x}")
        if u.majority_accepts is None:
            continue
        for s in _bits(u.voted_mask):
            accepted = bool(u.accept_mask >> s & 1)
            book = agree if accepted == u.majority_accepts else disagree
            book[s] = book.get(s, 0) + 1
    seats = set(agree) | set(disagree)
    return {s: disagree.get(s, 0) / (agree.get(s, 0) + disagree.get(s, 0)) for s in sorted(seats)}


def dissenting_seats(updates: Iterable[SeatVotes], limit: float) -> int:
    """Bit mask of the seats whose dissent share (:func:`dissent_shares`) is above ``limit``
    (in [0, 1]; 1 = none, whatever they voted)."""
    if not (0 <= limit <= 1):
        raise ValueError(f"dissent limit must lie in [0, 1], got {limit!r}")
    mask = 0
    for s, share in dissent_shares(updates).items():
        if share > limit:
            mask |= 1 << s
    return mask


def counted_votes(voted_mask: int, accept_mask: int, excluded: int) -> tuple[int, int]:
    """(accepts, rejects) of one update's revealed votes, leaving out the seats in ``excluded``."""
    voted = voted_mask & ~excluded
    accepts = bin(accept_mask & voted).count("1")
    return accepts, bin(voted).count("1") - accepts
