"""A chain held in memory with the contracts' round rules, for the chain-free mirror.

:class:`MemoryChain` keeps what PeerRegistry and RoundManager keep that decides a round —
membership, stake, reputation, the reject streak — and applies their rules to it, in the
contracts' own arithmetic (fixed-point reputation, token base units, the parameters of a
:class:`~bdfl.chain.deploy.ProtocolParams`: the same object a deployment is made from, e.g.
``bdfl.experiment.setup.protocol_params(cfg)``):

* the round seed: ``keccak(previous seed, XOR of the beacon secrets opened, round)``
  (:func:`bdfl.chain.protocol.round_seed`);
* the committee draw (``PeerRegistry._drawCommittee``): attempt ``a`` draws the word
  ``keccak(seed, a)``; the member at ``word mod pool`` is taken when its reputation is at
  least ``rep_threshold``, it is off probation and ``(word >> 128) mod min_stake`` is below
  its stake (accepted with probability min(stake, min_stake) / min_stake: reputation is a
  floor, it buys no seats), at most ``committee_size x 16`` attempts;
* the audit seats of each update (:func:`bdfl.chain.protocol.audit_seats`);
* the outcome (``quorum`` revealed votes; accepts above ``approve_percent``: approved, or
  probation when the submitter was not eligible at submission; rejects above
  ``reject_percent``: rejected; else undecided);
* settlement, in the contracts' order: first the seats — each gains ``rep_gain_vote`` per
  vote with the outcome and loses ``rep_loss_vote`` per vote against it or assigned update
  left unvoted, a seat that never revealed loses ``rep_loss_no_reveal`` plus that — then the
  member sweep, member by member in registry order: it books the member's update of the round
  (an approval gains ``rep_gain_update`` and resets the reject streak; a rejection counts in
  the streak and, from the ``slash_after_rejections``-th in a row, loses ``rep_loss_update``
  and ``slash_amount`` of stake, before that loses reputation only down to ``rep_threshold``),
  then a member with no stake left becomes inactive, one that did not submit loses
  ``rep_loss_absence`` and becomes inactive after ``max_missed_rounds`` in a row; reputation
  stays in [0, REP_MAX] after every step.

Not kept: token balances, rewards, leaving and withdrawing, phase deadlines and the
commitments of votes (a vote is given to :meth:`MemoryChain.reveal` directly). Beacon
commitments are not checked. ``tests/peer/test_memory_chain.py`` drives it beside the
deployed contracts on a devnet and compares draws, assignments, outcomes and settlement.

Each round is written into a :class:`~bdfl.peer.view.MemoryChainView` (``view``), which is
what the peers' round engines read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from eth_abi import encode
from eth_utils import keccak

from bdfl.chain.deploy import ProtocolParams
from bdfl.chain.protocol import DRAW_ATTEMPTS_PER_SEAT, Outcome, Status, Submission, audit_seats, beacon_xor, round_seed
from bdfl.errors import BDFLError
from bdfl.peer.view import REP_SCALE, MemoryChainView

ZERO32 = bytes(32)


class Revert(BDFLError):
    """An action the contracts would revert, with the custom error's ``name``."""

    def __init__(self, name: str) -> None:
        super().__init__(f"the contracts would revert with {name}")
        self.name = name


class Phase(IntEnum):
    SUBMIT = 0
    VOTE = 1  # committee drawn; votes are revealed (commit and reveal in one step here)


@dataclass
class Member:
    """What the registry keeps of a peer (reputation fixed point, stake in base units)."""

    status: Status = Status.NONE
    known: bool = False
    reputation: int = 0
    stake: int = 0
    reject_streak: int = 0
    missed: int = 0
    join_round: int = 0
    last_submit: int = 0  # round + 1 of the latest submission
    probation_until: int = 0
    endpoint: str = ""


@dataclass
class _Update:
    peer: str
    update_hash: bytes
    num_samples: int
    eligible: bool
    votes: dict[int, bool] = field(default_factory=dict)  # seat -> accept
    outcome: Outcome = Outcome.PENDING


@dataclass
class _Seat:
    auditor: str
    revealed: bool = False
    agree: int = 0
    disagree: int = 0
    abstain: int = 0


def draw_word(seed: bytes, attempt: int) -> int:
    """``Sortition.drawWord``: ``uint256(keccak256(abi.encode(seed, attempt)))``."""
    return int.from_bytes(keccak(encode(["bytes32", "uint256"], [seed, attempt])), "big")


class MemoryChain:
    """The contracts' round rules over state held in memory (module docstring)."""

    def __init__(self, params: ProtocolParams, genesis_seed: bytes = ZERO32, view: MemoryChainView | None = None) -> None:
        self.p = params
        self.view = view if view is not None else MemoryChainView()
        self.peers: dict[str, Member] = {}
        self.members: list[str] = []  # the registry's member order (swap-and-pop removal)
        self.round = 0
        self.last_seed = genesis_seed
        self._beacons: dict[str, int] = {}  # member -> the round its beacon commitment opens in
        self._new_round()

    def _new_round(self) -> None:
        self.phase = Phase.SUBMIT
        self.updates: list[_Update] = []
        self.seats: list[_Seat] = []
        self.committee: list[str] = []
        self.seed = ZERO32
        self.pool = 0
        self.beacon = ZERO32

    # -- membership ----------------------------------------------------------------
    def member(self, peer: str) -> Member:
        return self.peers.setdefault(peer, Member())

    def join(self, peer: str, amount: int, endpoint: str = "") -> None:
        """``PeerRegistry.join``: a fresh identity gets ``rep_initial``, pays the entry fee
        out of ``amount`` and, joining after round 0, sits ``probation_rounds`` out."""
        m = self.member(peer)
        if m.status != Status.NONE:
            raise Revert("AlreadyMember")
        if amount < self.p.min_stake:
            raise Revert("StakeTooLow")
        fee = 0
        if not m.known:
            m.known = True
            m.reputation = self.p.rep_initial
            fee = self.p.entry_fee
            if self.round != 0 and self.p.probation_rounds:
                m.probation_until = self.round + self.p.probation_rounds
        m.status, m.missed, m.join_round, m.endpoint = Status.ACTIVE, 0, self.round, endpoint
        m.stake += amount - fee
        self.members.append(peer)
        self.view.endpoints[peer] = endpoint
        self._publish_states()

    def eligible(self, peer: str) -> bool:
        """A member with reputation >= ``rep_threshold``, off probation."""
        m = self.member(peer)
        return m.status in (Status.ACTIVE, Status.EXITING) and m.reputation >= self.p.rep_threshold and self.round >= m.probation_until

    def active(self) -> list[str]:
        """The members in registry order."""
        return list(self.members)

    # -- submit ----------------------------------------------------------------------
    def submit(self, peer: str, update_hash: bytes, num_samples: int, beacon: tuple[bytes, bytes] | None = None) -> int:
        """``RoundManager.submitUpdate``; returns the update's index. ``beacon``: the (reveal,
        commitment) the submission carries (None: no beacon, nothing opens). The last member's
        submission draws the committee (:meth:`close_submissions`)."""
        if self.phase != Phase.SUBMIT:
            raise Revert("WrongPhase")
        if update_hash == ZERO32:
            raise Revert("EmptyHash")
        if any(u.peer == peer for u in self.updates):
            raise Revert("AlreadySubmitted")
        if any(u.update_hash == update_hash for u in self.updates):
            raise Revert("DuplicateHash")
        m = self.member(peer)
        if m.status not in (Status.ACTIVE, Status.EXITING):
            raise Revert("NotActiveMember")
        if not self.updates:
            self.pool = len(self.members)
        if beacon is not None:
            if self._beacons.get(peer) == self.round:
                self.beacon = beacon_xor(self.beacon, beacon[0])
            self._beacons[peer] = self.round + 1
        m.last_submit = self.round + 1
        eligible = m.reputation >= self.p.rep_threshold and self.round >= m.probation_until
        self.updates.append(_Update(peer, bytes(update_hash), min(int(num_samples), self.p.max_samples), eligible))
        self._publish_submissions()
        if len(self.updates) >= len(self.members):
            self.close_submissions()
        return len(self.updates) - 1

    def close_submissions(self) -> list[str]:
        """The submit phase ends (every member submitted, or its deadline passed): the round
        seed and the committee. Returns the committee."""
        if self.phase != Phase.SUBMIT:
            raise Revert("WrongPhase")
        self.seed = round_seed(self.last_seed, self.beacon, self.round)
        self.last_seed = self.seed
        self.committee = self.draw_committee(self.seed, self.p.committee_size, self.pool)
        self.seats = [_Seat(a) for a in self.committee]
        self.phase = Phase.VOTE
        v = self.view
        v.seeds[self.round] = self.seed
        v.committees[self.round] = list(self.committee)
        v.assigned[self.round] = {a: self.assignments(a) for a in self.committee}
        return list(self.committee)

    def draw_committee(self, seed: bytes, k: int, pool: int | None = None) -> list[str]:
        """``PeerRegistry.drawCommitteeAmong(seed, k, pool)`` (module docstring)."""
        n = len(self.members) if pool is None else min(pool, len(self.members))
        chosen: list[str] = []
        if n == 0:
            return chosen
        for attempt in range(k * DRAW_ATTEMPTS_PER_SEAT):
            if len(chosen) >= k:
                break
            w = draw_word(seed, attempt)
            cand = self.members[w % n]
            m = self.member(cand)
            if self._draw_reputation(cand) < self.p.rep_threshold or (w >> 128) % self.p.min_stake >= m.stake or m.probation_until > self.round:
                continue
            if cand not in chosen:
                chosen.append(cand)
        return chosen

    def _draw_reputation(self, peer: str) -> int:
        """The reputation the draw holds ``peer`` to ``rep_threshold`` with (the registry's)."""
        return self.member(peer).reputation

    # -- votes -----------------------------------------------------------------------
    def audit_seats(self, u: int) -> list[int]:
        """The committee seats that audit update ``u`` of the current round."""
        own = self.committee.index(self.updates[u].peer) if self.updates[u].peer in self.committee else None
        return audit_seats(self.seed, u, len(self.committee), self.p.auditors_per_update, own)

    def assignments(self, auditor: str) -> list[int]:
        """The updates ``auditor`` audits in the current round (``assignmentsOf``)."""
        if auditor not in self.committee:
            return []
        seat = self.committee.index(auditor)
        return [u for u in range(len(self.updates)) if seat in self.audit_seats(u)]

    def reveal(self, auditor: str, indices: list[int], accept: list[bool]) -> None:
        """``RoundManager.revealVotes`` (without the commitment): one vote per assigned update."""
        if self.phase != Phase.VOTE:
            raise Revert("WrongPhase")
        if auditor not in self.committee:
            raise Revert("NotInCommittee")
        s = self.committee.index(auditor)
        if self.seats[s].revealed:
            raise Revert("AlreadyRevealed")
        if len(indices) != len(accept):
            raise Revert("LengthMismatch")
        if len(set(indices)) != len(indices):
            raise Revert("DuplicateVote")
        for u in indices:
            if u >= len(self.updates):
                raise Revert("IndexOutOfRange")
            if self.updates[u].peer == auditor:
                raise Revert("OwnUpdate")
            if s not in self.audit_seats(u):
                raise Revert("NotAssigned")
        self.seats[s].revealed = True
        for u, a in zip(indices, accept):
            self.updates[u].votes[s] = bool(a)
        self._publish_submissions()

    def outcome_of(self, u: int) -> Outcome:
        """The outcome the votes of update ``u`` give (module docstring)."""
        up = self.updates[u]
        acc = sum(up.votes.values())
        votes = len(up.votes)
        if votes >= self.p.quorum:
            if 100 * acc > votes * self.p.approve_percent:
                return Outcome.APPROVED if up.eligible else Outcome.PROBATION
            if 100 * (votes - acc) > votes * self.p.reject_percent:
                return Outcome.REJECTED
        return Outcome.UNDECIDED

    # -- finalize --------------------------------------------------------------------
    def finalize(self) -> list[Outcome]:
        """Close the round: outcomes, settlement, the sweep (module docstring); then the next
        round starts. Returns the outcomes in update order."""
        if self.phase == Phase.SUBMIT:
            self.close_submissions()
        rnd = self.round
        for u, up in enumerate(self.updates):
            up.outcome = out = self.outcome_of(u)
            majority = None if out == Outcome.UNDECIDED else out != Outcome.REJECTED
            for s in self.audit_seats(u):
                seat = self.seats[s]
                if not seat.revealed or s not in up.votes:
                    seat.abstain += 1
                elif majority is not None:
                    if up.votes[s] == majority:
                        seat.agree += 1
                    else:
                        seat.disagree += 1
        self._settle_seats()
        self._sweep(rnd)
        self._publish_submissions()
        outcomes = [up.outcome for up in self.updates]
        self.round += 1
        self._new_round()
        self._publish_states()
        return outcomes

    def _settle_seats(self) -> None:
        """``RoundManager._settleSeat`` for every seat, in seat order: its reputation moves by
        :meth:`_seat_delta`."""
        for seat in self.seats:
            self._adjust(self.member(seat.auditor), self._seat_delta(seat))

    def _seat_delta(self, seat: _Seat) -> int:
        """A seat's reputation change for its votes (module docstring, settlement)."""
        if not seat.revealed:
            return -(self.p.rep_loss_no_reveal + seat.abstain * self.p.rep_loss_vote)
        return seat.agree * self.p.rep_gain_vote - (seat.disagree + seat.abstain) * self.p.rep_loss_vote

    def _adjust(self, m: Member, delta: int) -> None:
        m.reputation = max(0, min(REP_SCALE, m.reputation + delta))

    def _book(self, peer: str) -> None:
        """The sweep books ``peer``'s update of the round closing (after the seats' settlement)."""
        up = next(u for u in self.updates if u.peer == peer)
        m = self.member(peer)
        if up.outcome in (Outcome.APPROVED, Outcome.PROBATION):
            m.reject_streak = 0
            self._adjust(m, self.p.rep_gain_update)
        elif up.outcome == Outcome.REJECTED:
            self._reject(m)

    def _reject(self, m: Member) -> None:
        m.reject_streak = min(m.reject_streak + 1, 2**16 - 1)
        if m.reject_streak >= self.p.slash_after_rejections:
            self._adjust(m, -self.p.rep_loss_update)
            m.stake -= min(self.p.slash_amount, m.stake)
        else:
            floor = min(m.reputation, self.p.rep_threshold)
            self._adjust(m, -min(self.p.rep_loss_update, m.reputation - floor))

    def _remove(self, peer: str) -> None:
        i = self.members.index(peer)
        last = self.members.pop()
        if last != peer:
            self.members[i] = last

    def _sweep(self, rnd: int) -> None:
        i = 0
        while i < len(self.members):
            a = self.members[i]
            m = self.member(a)
            if m.last_submit == rnd + 1:
                self._book(a)
            if m.stake == 0:
                self._remove(a)
                m.status = Status.INACTIVE
                continue
            if m.last_submit == rnd + 1:
                m.missed = 0
            elif m.join_round < rnd:
                m.missed += 1
                self._adjust(m, -self.p.rep_loss_absence)
                if m.missed >= self.p.max_missed_rounds:
                    self._remove(a)
                    m.status = Status.INACTIVE
                    continue
            i += 1

    # -- the view the round engines read -------------------------------------------------
    def reputation(self, peer: str) -> float:
        return self.member(peer).reputation / REP_SCALE

    def _publish_submissions(self) -> None:
        subs = []
        for u, up in enumerate(self.updates):
            voted = sum(1 << s for s in up.votes)
            accepted = sum(1 << s for s, a in up.votes.items() if a)
            acc = bin(accepted).count("1")
            subs.append(Submission(u, up.peer, up.num_samples, up.eligible, up.outcome, up.update_hash, voted, accepted,
                                   acc, len(up.votes) - acc))
        self.view.subs[self.round] = subs

    def _publish_states(self) -> None:
        self.view.reputation = {a: m.reputation / REP_SCALE for a, m in self.peers.items() if m.known}
        self.view.inactive = {a for a, m in self.peers.items() if m.status != Status.ACTIVE}
