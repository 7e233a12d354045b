"""An independent, pure-Python model of the on-chain protocol rules (docs/protocol.md).

It knows nothing of web3: it is written from the rules, not from the Solidity, and the
tests drive it side by side with the contracts. Every action either returns normally or
raises :class:`Revert` carrying the name of the custom error the contract must revert
with; after each action the tests compare the whole state (reputations, stakes, rewards,
statuses, member order, round phase, tallies, outcomes, solvency).

Randomness: the committee seed is keccak(previous seed, XOR of the beacon secrets revealed
with the round's submissions, round), with no block data; the model is given each member's
beacon (reveal, commit) per round (``beacon_of``: the peer's choice, like its update hash)
and recomputes seed, committee and assignments itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from eth_abi import encode
from eth_utils import keccak, to_checksum_address

REP_MAX = 10**18
DRAW_ATTEMPTS_PER_SEAT = 16
MAX_ENDPOINT_BYTES = 256
#: The endpoint rule (docs/protocol.md "Endpoints"), written as a regular expression: http or
#: https, a host name / IPv4 address or a bracketed IPv6 literal, a port, an optional path of
#: RFC 3986 path characters without '@'; no userinfo, query or fragment.
ENDPOINT_RE = re.compile(r"https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})(/[A-Za-z0-9\-._~/%!$&'()*+,;=:]*)?")


def endpoint_ok(url: str) -> bool:
    """Whether the registry accepts ``url`` as an endpoint."""
    m = ENDPOINT_RE.fullmatch(url)
    return 0 < len(url.encode()) <= MAX_ENDPOINT_BYTES and m is not None and 0 < int(m.group(2)) <= 65535
MAX_FINALIZE_ITEMS = 200

# status
NONE, ACTIVE, EXITING, INACTIVE, LEFT = range(5)
# phase
SUBMIT, COMMIT, REVEAL, FINALIZE, CLOSED = range(5)
# outcome
PENDING, APPROVED, REJECTED, UNDECIDED, PROBATION = range(5)


class Revert(Exception):
    """The contract must revert with custom error ``name``."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _h(types: list[str], values: list[Any]) -> bytes:
    return keccak(encode(types, values))


#: Set by the tests: (chain id, RoundManager address) bound into every vote commitment.
DOMAIN: dict[str, Any] = {"chain_id": 31337, "contract": "0x" + "00" * 20}


def commitment(round_: int, auditor: str, idx: list[int], accept: list[bool], salt: bytes) -> bytes:
    return _h(
        ["uint256", "address", "uint256", "address", "uint256[]", "bool[]", "bytes32"],
        [DOMAIN["chain_id"], to_checksum_address(DOMAIN["contract"]), round_, to_checksum_address(auditor),
         list(idx), list(accept), salt],
    )


@dataclass
class PeerM:
    status: int = NONE
    known: bool = False
    missed: int = 0
    rep: int = 0
    join_round: int = 0
    last_submit: int = 0  # round + 1
    stake: int = 0
    claimable: int = 0
    endpoint: str = ""
    probation_until: int = 0  # first round off probation (fresh identities joining after round 0)
    withdrawable_from: int = 0  # first round a departed peer may withdraw
    reject_streak: int = 0  # updates rejected in a row (an accepted one resets it)


@dataclass
class SubM:
    peer: str
    update_hash: bytes
    num_samples: int
    eligible: bool
    votes: dict[int, bool] = field(default_factory=dict)  # seat -> accept
    outcome: int = PENDING
    reward: int = 0  # the trainer reward granted at finalize (credited by the member sweep)


@dataclass
class SeatM:
    auditor: str
    commitment: bytes | None = None
    revealed: bool = False
    agree: int = 0
    disagree: int = 0
    abstain: int = 0


@dataclass
class RoundM:
    phase: int = SUBMIT
    expired: bool = False  # the current phase's deadline has passed
    subs: list[SubM] = field(default_factory=list)
    beacon: bytes = b"\x00" * 32  # XOR of the revealed beacon secrets
    pool: int = 0  # member count at the first submission: the draw's pool
    minted: int = 0
    seed: bytes = b"\x00" * 32
    committee: list[str] = field(default_factory=list)
    seats: list[SeatM] = field(default_factory=list)
    commits: int = 0
    reveals: int = 0
    stage: int = 0
    cursor: int = 0
    approved: int = 0


class Model:
    """State of token balance, registry and round manager under the protocol rules."""

    def __init__(self, params: Any, *, genesis_seed: bytes = b"\x00" * 32, beacon_of: Any = None,
                 mint_budget_per_round: int = 2**127, mint_cap: int = 2**255) -> None:
        """``beacon_of(member, round)`` -> (reveal, commit) the member sends with its
        submission of ``round``; ``genesis_seed`` = the RoundManager's initial lastSeed."""
        self.p = params
        self.beacon_of = beacon_of
        self.beacons: dict[str, tuple[bytes, int]] = {}  # member -> (commitment, round it opens in)
        self.mint_budget_per_round = mint_budget_per_round
        self.mint_cap = mint_cap
        self.total_minted = 0
        self.peers: dict[str, PeerM] = {}
        self.members: list[str] = []
        self.total_staked = 0
        self.total_claimable = 0
        self.balance = 0  # registry's token balance
        self.minted = 0
        self.burned = 0
        self.round = 0
        self.last_seed = genesis_seed
        self.rounds: dict[int, RoundM] = {0: RoundM()}
        self.sweep_round = -1
        self.sweep_cursor = 0

    # ------------------------------------------------------------------ helpers
    def peer(self, a: str) -> PeerM:
        return self.peers.setdefault(a, PeerM())

    @property
    def cur(self) -> RoundM:
        return self.rounds[self.round]

    def _adjust_rep(self, a: str, delta: int) -> None:
        p = self.peer(a)
        p.rep = max(0, min(REP_MAX, p.rep + delta))

    def _remove(self, a: str) -> None:
        i = self.members.index(a)
        last = self.members.pop()
        if last != a:
            self.members[i] = last

    def is_member(self, a: str) -> bool:
        return self.peer(a).status in (ACTIVE, EXITING)

    def eligible(self, a: str) -> bool:
        p = self.peer(a)
        return self.is_member(a) and p.rep >= self.p.rep_threshold and self.round >= p.probation_until

    # ------------------------------------------------------------------ membership
    def join(self, a: str, amount: int, endpoint: str) -> None:
        p = self.peer(a)
        if p.status != NONE:
            raise Revert("AlreadyMember")
        if amount < self.p.min_stake:
            raise Revert("StakeTooLow")
        if not endpoint_ok(endpoint):
            raise Revert("EndpointInvalid")
        fee = 0
        if not p.known:  # a fresh identity: entry fee burned, probation unless in round 0
            p.known = True
            p.rep = self.p.rep_initial
            fee = self.p.entry_fee
            if self.round != 0 and self.p.probation_rounds:
                p.probation_until = self.round + self.p.probation_rounds
        p.status = ACTIVE
        p.missed = 0
        p.join_round = self.round
        self._push_member(a, p)
        p.stake += amount - fee
        self.total_staked += amount - fee
        self.balance += amount - fee
        self.burned += fee
        p.endpoint = endpoint

    def update_endpoint(self, a: str, endpoint: str) -> None:
        p = self.peer(a)
        if p.status not in (ACTIVE, EXITING, INACTIVE):
            raise Revert("NotActiveMember")
        if not endpoint_ok(endpoint):
            raise Revert("EndpointInvalid")
        p.endpoint = endpoint

    def request_leave(self, a: str) -> None:
        p = self.peer(a)
        if p.status == ACTIVE:
            p.status = EXITING
        elif p.status == INACTIVE:
            p.status = LEFT
            p.withdrawable_from = self.round + self.p.unbonding_rounds
        elif p.status == EXITING:
            raise Revert("AlreadyLeaving")
        else:
            raise Revert("NotActiveMember")

    def withdraw(self, a: str) -> int:
        p = self.peer(a)
        if p.status != LEFT:
            raise Revert("NotLeft")
        if self.round < p.withdrawable_from:
            raise Revert("StillBonded")
        amount = p.stake
        p.stake = 0
        self.total_staked -= amount
        self.balance -= amount
        p.status = NONE
        return amount

    def reactivate(self, a: str, added: int) -> None:
        p = self.peer(a)
        if p.status != INACTIVE:
            raise Revert("NotInactive")
        if p.stake + added < self.p.min_stake:
            raise Revert("StakeTooLow")
        p.stake += added
        self.total_staked += added
        self.balance += added
        p.status = ACTIVE
        p.missed = 0
        p.join_round = self.round
        self._push_member(a, p)

    def _push_member(self, a: str, p: Any) -> None:
        """Append ``a`` to the members; a submission of this round was booked by the sweep that
        removed it, so it is forgotten: not booked again when the sweep meets it a second time
        (PeerRegistry._pushMember)."""
        if p.last_submit == self.round + 1:
            p.last_submit = 0
        self.members.append(a)

    def claim(self, a: str) -> int:
        p = self.peer(a)
        if p.claimable == 0:
            raise Revert("NothingToClaim")
        amount = p.claimable
        p.claimable = 0
        self.total_claimable -= amount
        self.balance -= amount
        return amount

    # ------------------------------------------------------------------ settlement
    def _settle(self, a: str, rep_delta: int, reward: int, slash: int) -> None:
        p = self.peer(a)
        if rep_delta:
            self._adjust_rep(a, rep_delta)
        s = min(slash, p.stake)
        if s:
            p.stake -= s
            self.total_staked -= s
            self.balance -= s
            self.burned += s
        if reward:
            p.claimable += reward
            self.total_claimable += reward
            self.balance += reward
            self.minted += reward

    # ------------------------------------------------------------------ rounds
    def _require_current(self, round_: int, phase: int) -> RoundM:
        if round_ != self.round:
            raise Revert("WrongRound")
        if self.cur.phase != phase:
            raise Revert("WrongPhase")
        return self.cur

    def _require_open(self, round_: int, phase: int) -> RoundM:
        r = self._require_current(round_, phase)
        if r.expired:
            raise Revert("DeadlinePassed")
        return r

    def time_passes(self) -> None:
        """Every open deadline passes (the tests jump further than any phase lasts)."""
        if self.cur.phase in (SUBMIT, COMMIT, REVEAL):
            self.cur.expired = True

    def _complete(self, r: RoundM) -> bool:
        if r.phase == SUBMIT:
            return len(r.subs) != 0 and len(r.subs) >= len(self.members)
        if r.phase == COMMIT:
            return r.commits == len(r.committee)
        if r.phase == REVEAL:
            return r.reveals == r.commits
        return False

    def submit(self, a: str, round_: int, update_hash: bytes, num_samples: int) -> int:
        r = self._require_open(round_, SUBMIT)
        reveal, commit = self.beacon_of(a, round_)
        if update_hash == b"\x00" * 32 or commit == b"\x00" * 32:
            raise Revert("EmptyHash")
        if any(s.peer == a for s in r.subs):
            raise Revert("AlreadySubmitted")
        if any(s.update_hash == update_hash for s in r.subs):
            raise Revert("DuplicateHash")
        p = self.peer(a)
        if p.status not in (ACTIVE, EXITING):
            raise Revert("NotActiveMember")
        pending = self.beacons.get(a)
        opens = pending is not None and pending[1] == round_
        if opens and _h(["bytes32", "address"], [reveal, to_checksum_address(a)])[:24] != pending[0][:24]:
            raise Revert("BeaconMismatch")
        if not r.subs:
            r.pool = len(self.members)
        if opens:
            # the beacon keeps the high 120 bits of the XOR (a bytes15 in the round's slot 0)
            r.beacon = bytes(x ^ y for x, y in zip(r.beacon[:15], reveal[:15], strict=True)) + bytes(17)
        self.beacons[a] = (commit, round_ + 1)
        p.last_submit = round_ + 1
        eligible = p.rep >= self.p.rep_threshold and round_ >= p.probation_until
        r.subs.append(SubM(a, update_hash, min(num_samples, self.p.max_samples), eligible))
        if len(r.subs) >= len(self.members):
            self._advance()
        return len(r.subs) - 1

    def submit_would_advance(self) -> bool:
        return len(self.cur.subs) + 1 >= len(self.members)

    def advance(self, round_: int) -> None:
        if round_ != self.round:
            raise Revert("WrongRound")
        r = self.cur
        if r.phase in (FINALIZE, CLOSED):
            raise Revert("WrongPhase")
        if not r.expired and not self._complete(r):
            raise Revert("PhaseNotOver")
        self._advance()

    def _advance(self) -> None:
        r = self.cur
        if r.phase == SUBMIT:
            r.seed = _h(["bytes32", "bytes32", "uint256"], [self.last_seed, r.beacon, self.round])
            self.last_seed = r.seed
            r.committee = self.draw_committee(r.seed, self.p.committee_size, r.pool)
            r.seats = [SeatM(x) for x in r.committee]
            r.phase, r.expired = COMMIT, False
            if r.committee:
                return
        if r.phase == COMMIT:
            r.phase, r.expired = REVEAL, False
            if r.commits:
                return
        if r.phase == REVEAL:
            r.phase, r.expired = FINALIZE, False

    def draw_committee(self, seed: bytes, k: int, pool: int | None = None) -> list[str]:
        """Rejection sampling over the first ``pool`` members (all by default): eligible
        (reputation >= threshold, off probation) members, each accepted with probability
        min(stake, minStake) / minStake."""
        n = len(self.members) if pool is None else min(pool, len(self.members))
        chosen: list[str] = []
        if n == 0:
            return chosen
        for attempt in range(k * DRAW_ATTEMPTS_PER_SEAT):
            if len(chosen) >= k:
                break
            w = int.from_bytes(_h(["bytes32", "uint256"], [seed, attempt]), "big")
            cand = self.members[w % n]
            if self.peer(cand).rep < self.p.rep_threshold:
                continue
            if (w >> 128) % self.p.min_stake >= self.peer(cand).stake:
                continue
            if self.peer(cand).probation_until > self.round:
                continue
            if cand not in chosen:
                chosen.append(cand)
        return chosen

    def audit_seats(self, round_: int, u: int) -> list[int]:
        """Seats auditing update u: a window of m consecutive seats (mod k) starting at
        keccak(seed, u) mod k, with the submitter's own seat replaced by the next seat
        (or dropped when the window covers all seats)."""
        r = self.rounds[round_]
        k = len(r.committee)
        if k == 0:
            return []
        mm = min(self.p.auditors_per_update, k)
        h = int.from_bytes(_h(["bytes32", "uint256"], [r.seed, u]), "big") % k
        window = [(h + j) % k for j in range(mm)]
        sub_peer = r.subs[u].peer
        own = r.committee.index(sub_peer) if sub_peer in r.committee else None
        if own is not None and own in window:
            if mm == k:
                window.remove(own)
            else:
                window[window.index(own)] = (h + mm) % k
        return window

    def assignments(self, round_: int, auditor: str) -> list[int]:
        r = self.rounds[round_]
        if auditor not in r.committee:
            return []
        seat = r.committee.index(auditor)
        return [u for u in range(len(r.subs)) if seat in self.audit_seats(round_, u)]

    def commit(self, a: str, round_: int, c: bytes) -> None:
        r = self._require_open(round_, COMMIT)
        if a not in r.committee:
            raise Revert("NotInCommittee")
        seat = r.seats[r.committee.index(a)]
        if seat.commitment is not None:
            raise Revert("AlreadyCommitted")
        if c == b"\x00" * 32:
            raise Revert("EmptyHash")
        seat.commitment = c
        r.commits += 1
        if r.commits == len(r.committee):
            self._advance()

    def reveal(self, a: str, round_: int, idx: list[int], accept: list[bool], salt: bytes) -> None:
        r = self._require_open(round_, REVEAL)
        if a not in r.committee:
            raise Revert("NotInCommittee")
        s_i = r.committee.index(a)
        seat = r.seats[s_i]
        if seat.commitment is None:
            raise Revert("NotCommitted")
        if seat.revealed:
            raise Revert("AlreadyRevealed")
        if len(idx) != len(accept):
            raise Revert("LengthMismatch")
        if commitment(round_, a, idx, accept, salt) != seat.commitment:
            raise Revert("CommitmentMismatch")
        seen: set[int] = set()
        for u in idx:  # all checks before any effect: a revert undoes everything
            if u >= len(r.subs):
                raise Revert("IndexOutOfRange")
            if r.subs[u].peer == a:
                raise Revert("OwnUpdate")
            if s_i not in self.audit_seats(round_, u):
                raise Revert("NotAssigned")
            if u in seen:
                raise Revert("DuplicateVote")
            seen.add(u)
        seat.revealed = True
        r.reveals += 1
        for u, acc in zip(idx, accept, strict=True):
            r.subs[u].votes[s_i] = acc
        if r.reveals == r.commits:
            self._advance()

    # ------------------------------------------------------------------ finalize
    def outcome_of(self, sub: SubM) -> int:
        acc = sum(1 for v in sub.votes.values() if v)
        rej = len(sub.votes) - acc
        votes = acc + rej
        if votes >= self.p.quorum:
            if 100 * acc > votes * self.p.approve_percent:
                return APPROVED if sub.eligible else PROBATION
            if 100 * rej > votes * self.p.reject_percent:
                return REJECTED
        return UNDECIDED

    def finalize(self, round_: int, max_items: int) -> bool:
        if max_items == 0 or max_items > MAX_FINALIZE_ITEMS:
            raise Revert("BadBatchSize")
        r = self._require_current(round_, FINALIZE)
        items = 0
        if r.stage == 0:
            while items < max_items and r.cursor < len(r.subs):
                self._finalize_update(round_, r.cursor)
                r.cursor += 1
                items += 1
            if r.cursor == len(r.subs):
                r.stage, r.cursor = 1, 0
        if r.stage == 1:
            while items < max_items and r.cursor < len(r.committee):
                self._settle_seat(r.cursor)
                r.cursor += 1
                items += 1
            if r.cursor == len(r.committee):
                r.stage, r.cursor = 2, 0
        if r.stage == 2 and items < max_items:
            used, done = self._sweep(round_, max_items - items)
            items += used
            if done:
                r.stage = 3
        if r.stage == 3:
            r.phase = CLOSED
            self.round += 1
            self.rounds[self.round] = RoundM()
            return True
        return False

    def _finalize_update(self, round_: int, u: int) -> None:
        """Decide update ``u`` and grant its reward (in index order, so the budget cuts the
        same updates); the trainer is booked later, by the member sweep (:meth:`_book`)."""
        r = self.cur
        sub = r.subs[u]
        sub.outcome = out = self.outcome_of(sub)
        if out == APPROVED:
            r.approved += 1
            sub.reward = self._grant(self.p.update_reward)
        majority = None if out == UNDECIDED else out in (APPROVED, PROBATION)
        for s_i in self.audit_seats(round_, u):
            seat = r.seats[s_i]
            if not seat.revealed:
                seat.abstain += 1  # assignments of a missing reveal: its penalty
                continue
            if s_i not in sub.votes:
                seat.abstain += 1
            elif majority is not None:
                if sub.votes[s_i] == majority:
                    seat.agree += 1
                else:
                    seat.disagree += 1

    def _book(self, round_: int, a: str) -> None:
        """The member sweep books trainer ``a``'s update of ``round_`` (its outcome and the
        reward granted at finalize), before its exit or inactivity is handled."""
        sub = next(s for s in self.rounds[round_].subs if s.peer == a)
        if sub.outcome in (APPROVED, PROBATION):
            self.peer(a).reject_streak = 0
            self._settle(a, self.p.rep_gain_update, sub.reward, 0)
        elif sub.outcome == REJECTED:
            self._reject(a)

    def _reject(self, a: str) -> None:
        """A rejection: slashed (and the full reputation loss) only from the C-th in a row;
        before that the loss stops at the threshold and the stake is untouched."""
        p = self.peer(a)
        p.reject_streak = min(p.reject_streak + 1, 2**16 - 1)
        if p.reject_streak >= self.p.slash_after_rejections:
            self._settle(a, -self.p.rep_loss_update, 0, self.p.slash_amount)
        else:
            floor = min(p.rep, self.p.rep_threshold)
            self._settle(a, -min(self.p.rep_loss_update, p.rep - floor), 0, 0)

    def _settle_seat(self, s_i: int) -> None:
        seat = self.cur.seats[s_i]
        if not seat.revealed:
            # more than revealing every assigned vote against the majority would cost
            self._settle(seat.auditor, -(self.p.rep_loss_no_reveal + seat.abstain * self.p.rep_loss_vote), 0, 0)
            return
        delta = seat.agree * self.p.rep_gain_vote - (seat.disagree + seat.abstain) * self.p.rep_loss_vote
        self._settle(seat.auditor, delta, self._grant(seat.agree * self.p.vote_reward), 0)

    def _grant(self, wanted: int) -> int:
        """The part of a reward within the round's minting budget and the lifetime cap."""
        r = self.cur
        granted = min(wanted, self.mint_budget_per_round - r.minted, self.mint_cap - self.total_minted)
        r.minted += granted
        self.total_minted += granted
        return granted

    def _sweep(self, round_: int, max_items: int) -> tuple[int, bool]:
        if self.sweep_round != round_:
            self.sweep_round, self.sweep_cursor = round_, 0
        used = 0
        while used < max_items and self.sweep_cursor < len(self.members):
            used += 1
            a = self.members[self.sweep_cursor]
            p = self.peer(a)
            if p.last_submit == round_ + 1:
                self._book(round_, a)
            if p.status == EXITING:
                self._remove(a)
                p.status = LEFT
                p.withdrawable_from = round_ + 1 + self.p.unbonding_rounds
                continue
            if p.stake == 0:
                self._remove(a)
                p.status = INACTIVE
                continue
            if p.last_submit == round_ + 1:
                p.missed = 0
            elif p.join_round < round_:
                p.missed += 1
                self._adjust_rep(a, -self.p.rep_loss_absence)
                if p.missed >= self.p.max_missed_rounds:
                    self._remove(a)
                    p.status = INACTIVE
                    continue
            self.sweep_cursor += 1
        return used, self.sweep_cursor >= len(self.members)

    # ------------------------------------------------------------------ derived views
    def approved_set(self, round_: int) -> list[tuple[str, bytes]]:
        return [(s.peer, s.update_hash) for s in self.rounds[round_].subs if s.outcome == APPROVED]

    def liabilities(self) -> int:
        return self.total_staked + self.total_claimable
