"""Typed Python access to the protocol contracts for one peer (or the runner).

:class:`ProtocolClient` wraps every transaction a peer or the experiment runner sends
and every view it reads. Transactions go through a :class:`~bdfl.chain.txsender.TxSender`
(local nonce, local signing); each method takes ``wait``: ``True`` returns the receipt,
``False`` returns the transaction hash at once, so a runner can send the same phase's
transactions for many peers and then collect them with ``TxSender.wait_all``.

Reverts surface as :class:`~bdfl.chain.txsender.TxReverted` whose ``error_name`` is the
contract's custom error (``AlreadySubmitted``, ``NotAssigned``, ``DeadlinePassed``, ...).

Pure helpers (no chain access) compute what the contracts compute, so a peer can check
them off-chain: :func:`vote_commitment`, :func:`audit_seats`, :func:`round_seed`.

Committee seed (docs/protocol.md, "Randomness"): each submission reveals the beacon secret
the member committed to with its previous submission and commits to the next one;
:func:`beacon_secret` derives a member's secret for a round from its private key, so a
restarted peer recomputes it and nobody without the key can predict it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from eth_abi import encode
from eth_account.messages import encode_defunct
from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes
from web3.exceptions import BadFunctionCallOutput, ContractLogicError
from web3.logs import DISCARD

from bdfl.chain import fastabi
from bdfl.chain.deploy import Deployment, ProtocolParams
from bdfl.chain.txsender import TxSender
from bdfl.errors import BDFLError

#: Most items one finalize transaction may process (RoundManager.MAX_FINALIZE_ITEMS).
MAX_FINALIZE_ITEMS = 200
#: Per-transaction gas cap of EIP-7825 (post-Fusaka Ethereum, Hardhat): no transaction of the
#: protocol asks for more.
TX_GAS_CAP = 2**24
#: Gas a finalize batch aims to stay under: the cap with a 4.7M margin.
FINALIZE_GAS_TARGET = 12_000_000
#: Gas limit of a finalize transaction (the target plus headroom, under the cap).
FINALIZE_GAS_LIMIT = min(TX_GAS_CAP, FINALIZE_GAS_TARGET + 2_000_000)
#: Gas budget of one finalize item: a fixed part plus a part per auditor of an update. Full
#: batches measure 35-45k per item at m = 3 before issue 23's vote words and sweep bookings,
#: 19-23k after (N = 100-1000, experiments/results/gas_table.md, per stage); the budget
#: leaves room for the worst items: a member booked with a slash (a burn) and removed, a
#: seat's reward, an update whose m auditors' vote words are all cold. Per auditor: since the
#: finalize batch keeps the agreement counts and each seat's vote word in memory ({Tally} in
#: RoundManager.sol, written once per batch), an auditor of an update costs at most one cold
#: vote-word read (2.1k) and its loop (< 0.5k): 4k, not the 12k of a cold abstention write per
#: auditor that it was sized for before (docs/results/gas.md, issue 23 default policy).
FINALIZE_ITEM_GAS = 45_000
FINALIZE_ITEM_GAS_PER_AUDITOR = 4_000


def finalize_batch_size(auditors_per_update: int) -> int:
    """Items per finalize transaction, sized by gas: a batch of this many worst-case items
    stays under FINALIZE_GAS_TARGET, i.e. under the EIP-7825 cap with margin, for any m
    (155 items at the library's default m = 8, the MAX_FINALIZE_ITEMS cap of 200 at m = 3)."""
    per_item = FINALIZE_ITEM_GAS + FINALIZE_ITEM_GAS_PER_AUDITOR * auditors_per_update
    return max(1, min(MAX_FINALIZE_ITEMS, FINALIZE_GAS_TARGET // per_item))


#: Default finalize batch for the default parameters.
FINALIZE_BATCH = finalize_batch_size(3)
#: Rounds whose per-index data the RoundManager keeps (``RoundManager.ROUNDS_KEPT``): older
#: rounds' submissions are read from their events (:meth:`ProtocolClient.submissions`).
ROUNDS_KEPT = 4
#: Widest block range one ``eth_getLogs`` call asks for.
LOG_CHUNK = 2_000
#: Committee draw: attempts per seat (PeerRegistry.DRAW_ATTEMPTS_PER_SEAT).
DRAW_ATTEMPTS_PER_SEAT = 16


#: Gas limit of a submission besides the committee draw it may trigger (:func:`draw_gas_bound`):
#: any submission may be a round's last one, which draws the committee, so every one carries both.
SUBMIT_GAS_BASE = 300_000


def draw_gas_bound(committee_size: int) -> int:
    """Upper bound on the gas of the committee draw (up to four cold SLOADs + a keccak per
    attempt: member, reputation, stake, probation; storage of each seat). The transaction that ends the Submit phase pays for the draw, and
    its cost depends on the seed, which a gas estimate made before the other submissions
    landed does not know, so such transactions get this much headroom."""
    return committee_size * (DRAW_ATTEMPTS_PER_SEAT * 9_000 + 50_000) + 100_000


#: ``RoundManager.MAX_PROBES``: table slots the duplicate-hash check of a submission may probe.
DUP_MAX_PROBES = 8

#: Gas a submission gets on top of its estimate for the duplicate-hash table. The estimate sees
#: the table as it stands; submissions mined before ours (honest ones, or an attacker who saw
#: ours pending and grinds hashes onto its probe sequence) can push our hash down the sequence
#: and into the overflow: up to DUP_MAX_PROBES more cold reads (2.1k each, plus the loop) and a
#: fresh slot (22.1k) where the estimate rewrote a used one (2.9k). Unused gas is not charged.
DUP_TABLE_GAS_HEADROOM = DUP_MAX_PROBES * 2_600 + 22_100

#: Gas limit of ``commitVotes`` (measured: at most 59k; one storage slot and an event).
COMMIT_GAS = 120_000
#: Gas limit of a ``join`` sent without an estimate (the experiment workers' and
#: experiments/gas_table.py's set-up; measured: 146k-197k with a loopback endpoint URL, plus
#: ~330k since issue 23: a join warms the member's round slots, RoundManager.warmMember, up to
#: ~420k at K = 64; a longer URL costs ~22k per extra 32 bytes).
JOIN_GAS = 1_000_000


def reveal_gas_bound(votes: int, words: int | None = None) -> int:
    """Gas limit of a ``revealVotes`` with ``votes`` votes whose update indices fall in
    ``words`` distinct 128-index words (``u >> 7``; default: one word per vote, the worst
    case). Since issue 23 a reveal writes the auditor's own vote words (2 bits per update,
    one storage word per 128 update indices it voted in; fresh slots) instead of one slot of
    every update it votes on: measured ~2.1k per vote plus 22.1k per word (0.44M for the
    largest reveal at N = 1000, 94 votes in 8 words). The bound allows 4k per vote and 25k
    per word: at N = 10,000 with K = 32 (~940 votes, 79 words) 5.9M, a third of the EIP-7825
    cap. A fixed bound instead of ``eth_estimateGas`` saves a round trip per vote
    transaction; unused gas is not charged, and a reverting reveal is still decoded (by
    replaying it, see ``TxSender``). Capped at the per-transaction cap."""
    v = max(0, votes)
    w = v if words is None else max(0, words)
    return min(150_000 + 4_000 * v + 25_000 * w, TX_GAS_CAP)


#: Most submissions :meth:`ProtocolClient.approved_updates` reads with one ``approvedUpdates``
#: view call (≈ 5.2k gas each, under a node's 30M ``eth_call`` gas with room to spare).
APPROVED_VIEW_MAX = 4_000


class Phase(IntEnum):
    SUBMIT = 0
    COMMIT = 1
    REVEAL = 2
    FINALIZE = 3
    CLOSED = 4


class Outcome(IntEnum):
    PENDING = 0
    APPROVED = 1
    REJECTED = 2
    UNDECIDED = 3
    PROBATION = 4


class Status(IntEnum):
    NONE = 0
    ACTIVE = 1
    EXITING = 2
    INACTIVE = 3
    LEFT = 4


@dataclass(frozen=True)
class RoundInfo:
    round: int
    phase: Phase
    deadline: int
    num_submissions: int
    committee_size: int
    commits: int
    reveals: int
    stage: int
    cursor: int
    approved_count: int
    pool: int  # members the committee is drawn from (the member count at the first submission)
    seed: bytes
    beacon: bytes  # XOR of the beacon secrets revealed in the round
    minted: int  # reward tokens minted in the round
    beacon_reveals: int


@dataclass(frozen=True)
class Submission:
    index: int
    peer: str
    num_samples: int
    eligible: bool
    outcome: Outcome
    update_hash: bytes
    voted_mask: int
    accept_mask: int
    accepts: int
    rejects: int


@dataclass(frozen=True)
class SeatInfo:
    commitment: bytes
    revealed: bool
    agree: int
    disagree: int
    abstain: int


@dataclass(frozen=True)
class PeerInfo:
    address: str
    status: Status
    known: bool
    missed_rounds: int
    reputation: int
    join_round: int
    last_submit_round: int  # round + 1 of the latest submission, 0 = never
    index: int
    reject_streak: int = 0  # the peer's updates rejected in a row (slashed from slash_after_rejections on)
    submit_index: int = 0  # index of its update in round last_submit_round - 1 (booked by the round's sweep)


@dataclass(frozen=True)
class Solvency:
    balance: int
    total_staked: int
    total_claimable: int

    @property
    def liabilities(self) -> int:
        return self.total_staked + self.total_claimable

    @property
    def margin(self) -> int:
        return self.balance - self.liabilities

    @property
    def solvent(self) -> bool:
        return self.margin >= 0


# ----------------------------------------------------------------------- pure helpers


@dataclass(frozen=True)
class TrainerBooking:
    """How the member sweep booked one trainer of a round (see :func:`trainer_bookings`)."""

    index: int
    peer: str
    outcome: Outcome
    reward: int  # tokens credited for the update (0 unless approved and within the budget)


def trainer_bookings(events: Sequence[dict[str, Any]], round_: int, update_reward: int) -> list[TrainerBooking]:
    """Every trainer booking of ``round_``, recovered from decoded events
    (:meth:`ProtocolClient.events`, chain order). Since issue 23 the sweep books an accepted
    update (Approved or Probation: ``+repGainUpdate`` clamped at REP_MAX, the streak reset,
    the reward credited) without ReputationChanged / RewardCredited events; the booking
    follows from ``UpdateSubmitted`` (index -> trainer), ``OutcomesRecorded`` (the outcome
    nibbles) and, for an update whose reward the budget or the cap cut (nibble bit 3), the
    trainer's ``RewardCapped`` of the update stage (before the round's first
    ``AuditorSettled``). A rejected update still emits ``RejectionCounted`` (and
    ``ReputationChanged`` / ``StakeSlashed``) when booked."""
    peers: dict[int, str] = {}
    nibbles: dict[int, int] = {}
    capped: dict[str, int] = {}
    seats_started = False
    for e in events:
        a = e["args"]
        if int(a.get("round", -1)) != round_:
            continue
        name = e["event"]
        if name == "UpdateSubmitted":
            peers[int(a["index"])] = str(a["peer"])
        elif name == "OutcomesRecorded":
            word, packed = int(a["word"]), int(a["nibbles"])
            for j in range(64):
                if (packed >> (4 * j)) & 15:
                    nibbles[64 * word + j] = (packed >> (4 * j)) & 15
        elif name == "AuditorSettled":
            seats_started = True
        elif name == "RewardCapped" and not seats_started and int(a["wanted"]) == update_reward:
            capped.setdefault(str(a["peer"]), int(a["granted"]))
    out = []
    for u in sorted(peers):
        nib = nibbles.get(u, 0)
        outcome = Outcome(nib & 7)
        reward = 0
        if outcome == Outcome.APPROVED:
            reward = capped.get(peers[u], 0) if nib & 8 else update_reward
        out.append(TrainerBooking(u, peers[u], outcome, reward))
    return out


def vote_commitment(
    round_: int,
    auditor: str,
    update_idx: Sequence[int],
    accept: Sequence[bool],
    salt: bytes,
    *,
    chain_id: int,
    contract: str,
) -> bytes:
    """``keccak256(abi.encode(chainid, contract, round, auditor, updateIdx, accept, salt))``
    exactly as ``RoundManager.revealVotes`` recomputes it (``contract`` = the RoundManager)."""
    if len(update_idx) != len(accept):
        raise BDFLError(f"{len(update_idx)} update indices but {len(accept)} votes", fix="give one vote per index")
    salt_b = bytes(HexBytes(salt))
    if len(salt_b) != 32:
        raise BDFLError(f"the salt must be 32 bytes, got {len(salt_b)}", fix="use new_salt()")
    data = encode(
        ["uint256", "address", "uint256", "address", "uint256[]", "bool[]", "bytes32"],
        [int(chain_id), to_checksum_address(contract), int(round_), to_checksum_address(auditor),
         [int(i) for i in update_idx], [bool(a) for a in accept], salt_b],
    )
    return keccak(data)


def new_salt() -> bytes:
    """32 random bytes (``secrets``) with no zero byte, for a vote commitment (keep it until
    the reveal). No zero byte: calldata gas is 16 per byte whatever the salt, so runs that
    differ only in their random salts use identical gas."""
    while True:
        salt = secrets.token_bytes(32)
        if 0 not in salt:
            return salt


def salt_for(commitment_of: Callable[[bytes], bytes]) -> tuple[bytes, bytes]:
    """A fresh :func:`new_salt` whose commitment (``commitment_of(salt)``) has no zero byte
    either, so the commit's calldata gas is constant too; returns (salt, commitment).
    About 1.13 draws on average (0.88 of random words have no zero byte)."""
    while True:
        salt = new_salt()
        c = commitment_of(salt)
        if 0 not in c:
            return salt, c


def genesis_seed(chain_id: int, round_manager: str) -> bytes:
    """The RoundManager's initial ``lastSeed``: ``keccak256(abi.encode(chainid, address))``."""
    return keccak(encode(["uint256", "address"], [int(chain_id), to_checksum_address(round_manager)]))


def round_seed(previous_seed: bytes, beacon: bytes, round_: int) -> bytes:
    """``Sortition.roundSeed``: the committee seed of a round from the previous seed and the
    XOR of the beacon secrets revealed in the round."""
    return keccak(encode(["bytes32", "bytes32", "uint256"], [previous_seed, beacon, round_]))


def beacon_secret(private_key: bytes, chain_id: int, round_manager: str, round_: int) -> bytes:
    """The beacon secret a member reveals with its submission of ``round_``: derived from its
    private key (unpredictable without it), deterministic (a restarted peer recomputes it)."""
    return keccak(
        encode(["bytes32", "uint256", "address", "uint256", "string"],
               [bytes(private_key), int(chain_id), to_checksum_address(round_manager), int(round_), "bdfl-beacon"])
    )


#: Domain tag of ``RoundManager.submissionDigest``.
SUBMIT_TAG = keccak(b"BDFL.submitUpdate")
#: Most signed submissions one ``submitBatch`` may carry (RoundManager.MAX_SUBMIT_BATCH).
MAX_SUBMIT_BATCH = 200
#: Gas limit per entry of a relayed batch (≈ 45k measured once the rings are warm; a fresh
#: ring, table or overflow slot and the probes' headroom on top), plus the committee draw.
SUBMIT_BATCH_GAS_PER_ENTRY = 120_000


def submit_batch_size(committee_size: int) -> int:
    """Most entries a relayer puts in one ``submitBatch``: each budgeted at
    SUBMIT_BATCH_GAS_PER_ENTRY plus the committee draw's bound (the batch may end the Submit
    phase), under the 2^24 per-transaction cap (87 at K = 32), and at most MAX_SUBMIT_BATCH."""
    room = (TX_GAS_CAP - draw_gas_bound(committee_size)) // SUBMIT_BATCH_GAS_PER_ENTRY
    return max(1, min(MAX_SUBMIT_BATCH, room))


def submit_batch_gas(committee_size: int, entries: int) -> int:
    """Gas limit of a ``submitBatch`` of ``entries`` entries: SUBMIT_BATCH_GAS_PER_ENTRY each
    plus the committee draw's bound (the batch may end the Submit phase)."""
    return SUBMIT_BATCH_GAS_PER_ENTRY * entries + draw_gas_bound(committee_size)


def submission_digest(chain_id: int, round_manager: str, round_: int, update_hash: bytes, num_samples: int,
                      beacon_reveal: bytes, beacon_commit: bytes) -> bytes:
    """``RoundManager.submissionDigest``: what a member signs (as an EIP-191 personal message)
    so that a relayer may submit for it in ``submitBatch``."""
    return keccak(encode(
        ["bytes32", "uint256", "address", "uint256", "bytes32", "uint32", "bytes32", "bytes32"],
        [SUBMIT_TAG, int(chain_id), to_checksum_address(round_manager), int(round_), bytes(update_hash),
         int(num_samples), bytes(beacon_reveal), bytes(beacon_commit)],
    ))


def beacon_commitment(secret: bytes, member: str) -> bytes:
    """``Sortition.beaconCommitment``: ``keccak256(abi.encode(secret, member))``."""
    return keccak(encode(["bytes32", "address"], [bytes(secret), to_checksum_address(member)]))


def xor32(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


#: Bytes of each beacon secret the round's beacon XORs (``RoundState.beacon`` is a bytes15 in
#: the round's first slot: issue 23); the beacon is those bytes followed by zeros.
BEACON_BYTES = 15


def beacon_xor(beacon: bytes, secret: bytes) -> bytes:
    """The round beacon after ``secret`` is revealed: its first BEACON_BYTES bytes XOR-ed in,
    the other bytes staying zero (``rs.beacon ^= bytes15(reveal)``)."""
    head = bytes(x ^ y for x, y in zip(beacon[:BEACON_BYTES], secret[:BEACON_BYTES], strict=True))
    return head + bytes(32 - BEACON_BYTES)


def window_start(seed: bytes, u: int, k: int) -> int:
    return int.from_bytes(keccak(encode(["bytes32", "uint256"], [seed, u])), "big") % k


def audit_seats(seed: bytes, u: int, k: int, m: int, own: int | None) -> list[int]:
    """``Sortition.auditSeats``: committee seats that audit update ``u`` (``own`` = the
    submitter's seat or None)."""
    if k == 0:
        return []
    mm = min(m, k)
    h = window_start(seed, u, k)
    out = []
    for j in range(mm):
        s = (h + j) % k
        if own is not None and s == own:
            if mm == k:
                continue
            s = (h + mm) % k
        out.append(s)
    return out


def submissions_closed_reader(w3: Any, deployment: Deployment) -> Callable[[int], bool]:
    """``closed(r)``: whether no submission of round ``r`` can land any more (a read). True once
    the chain is past round ``r``, its phase has moved on from Submit, or the latest block is at
    its Submit deadline (``submitUpdate`` reverts from there on, ``_requireOpen``). Give it a
    ``w3`` of its own when called from another thread (an endpoint's seal,
    :class:`bdfl.net.blobserver.SubmitSeal`)."""
    rounds = deployment.contract(w3, "RoundManager")

    def closed(round_: int) -> bool:
        current = int(rounds.functions.currentRound().call())
        if round_ != current:
            return round_ < current
        phase, deadline = rounds.functions.roundInfo(round_).call()[:2]
        if Phase(phase) != Phase.SUBMIT:
            return True
        return int(w3.eth.get_block("latest")["timestamp"]) >= int(deadline)

    return closed


# ----------------------------------------------------------------------- client


class ProtocolClient:
    """One account's view of, and actions on, a :class:`Deployment`."""

    def __init__(self, w3: Any, deployment: Deployment, account: Any, sender: Any | None = None) -> None:
        self.w3 = w3
        self.deployment = deployment
        self.account = account
        self.sender = sender or TxSender(w3, account, chain_id=deployment.chain_id)
        if self.sender.address != account.address:
            raise BDFLError("the TxSender belongs to another account than the ProtocolClient")
        self.token = deployment.contract(w3, "BDFLToken")
        self.registry = deployment.contract(w3, "PeerRegistry")
        self.rounds = deployment.contract(w3, "RoundManager")
        self._events: dict[bytes, tuple[str, Any]] | None = None

    @property
    def address(self) -> str:
        return str(self.account.address)

    # -- sending ------------------------------------------------------------------
    def _tx(self, call: Any, wait: bool, gas: int | None) -> Any:
        h = self.sender.send(call, gas=gas)
        return self.sender.wait(h) if wait else h

    def approve(self, amount: int, *, wait: bool = True, gas: int | None = None) -> Any:
        """ERC-20 approve of the registry for ``amount`` token units."""
        return self._tx(self.token.functions.approve(self.registry.address, amount), wait, gas)

    def approve_and_join(self, endpoint: str, stake: int | None = None, *, wait: bool = True, gas: int | None = None) -> Any:
        """Approve (if the allowance is short; awaited) then ``join(stake, endpoint)``.
        ``stake`` defaults to the minimum stake."""
        stake = self.deployment.params.min_stake if stake is None else int(stake)
        allowance = int(self._read(self.token, "allowance", self.address, self.registry.address))
        if allowance < stake:
            self.approve(stake, wait=True)
        return self._tx(self.registry.functions.join(stake, endpoint), wait, gas)

    def join(self, endpoint: str, stake: int | None = None, *, wait: bool = True, gas: int | None = None) -> Any:
        """``join`` without approving (the allowance must already cover ``stake``)."""
        stake = self.deployment.params.min_stake if stake is None else int(stake)
        return self._tx(self.registry.functions.join(stake, endpoint), wait, gas)

    def leave(self, *, wait: bool = True, gas: int | None = None) -> Any:
        """``requestLeave``: membership ends when the current round is finalized."""
        return self._tx(self.registry.functions.requestLeave(), wait, gas)

    def withdraw(self, *, wait: bool = True, gas: int | None = None) -> Any:
        """Return the stake after the membership ended."""
        return self._tx(self.registry.functions.withdraw(), wait, gas)

    def reactivate(self, added_stake: int = 0, *, wait: bool = True, gas: int | None = None) -> Any:
        """Rejoin after being marked inactive (approve ``added_stake`` first if non-zero)."""
        if added_stake:
            allowance = int(self._read(self.token, "allowance", self.address, self.registry.address))
            if allowance < added_stake:
                self.approve(added_stake, wait=True)
        return self._tx(self.registry.functions.reactivate(added_stake), wait, gas)

    def update_endpoint(self, endpoint: str, *, wait: bool = True, gas: int | None = None) -> Any:
        return self._tx(self.registry.functions.updateEndpoint(endpoint), wait, gas)

    def claim(self, *, wait: bool = True, gas: int | None = None) -> Any:
        """Pull every credited reward to this account."""
        return self._tx(self.registry.functions.claim(), wait, gas)

    def beacon_secret(self, round_: int) -> bytes:
        """This account's beacon secret for ``round_`` (:func:`beacon_secret`)."""
        return beacon_secret(bytes(self.account.key), self.deployment.chain_id, self.deployment.round_manager, round_)

    def beacon_args(self, round_: int) -> tuple[bytes, bytes]:
        """(reveal, commit) of a submission in ``round_``: the secret for this round (ignored
        on chain unless committed) and the commitment to the next round's secret."""
        return self.beacon_secret(round_), beacon_commitment(self.beacon_secret(round_ + 1), self.address)

    def vote_commitment(self, round_: int, update_idx: Sequence[int], accept: Sequence[bool], salt: bytes) -> bytes:
        """:func:`vote_commitment` of this account on this deployment."""
        return vote_commitment(round_, self.address, update_idx, accept, salt,
                               chain_id=self.deployment.chain_id, contract=self.deployment.round_manager)

    def submit_update(
        self,
        round_: int,
        update_hash: bytes,
        num_samples: int,
        *,
        wait: bool = True,
        gas: int | None = None,
        beacon: tuple[bytes, bytes] | None = None,
    ) -> Any:
        """Post the keccak256 of this round's update bytes (``num_samples`` is capped on chain)
        with the beacon reveal and next commitment (``beacon`` overrides them: tests). Raises
        :class:`~bdfl.chain.txsender.DuplicateHashError` when another member submitted the
        same hash first in this round (front-running: re-encode with a fresh binding nonce)."""
        call = self._submit_call(round_, update_hash, num_samples, beacon)
        return self._tx(call, wait, self._submit_gas(round_, call) if gas is None else gas)

    def submit_gas(self, round_: int, update_hash: bytes, num_samples: int,
                   beacon: tuple[bytes, bytes] | None = None) -> int:
        """The gas limit :meth:`submit_update` would send with now (estimate plus headroom)."""
        return self._submit_gas(round_, self._submit_call(round_, update_hash, num_samples, beacon))

    def sign_submission(self, round_: int, update_hash: bytes, num_samples: int,
                        beacon: tuple[bytes, bytes] | None = None) -> tuple[bytes, int, bytes, bytes, bytes, bytes]:
        """This member's submission of ``round_`` signed for a relayer's :meth:`submit_batch`:
        the ``SignedSubmission`` tuple (hash, samples, reveal, commit, r, vs) with the EIP-2098
        compact signature of :func:`submission_digest`."""
        h, reveal, commit = self._submission_args(round_, update_hash, beacon)
        digest = submission_digest(self.deployment.chain_id, self.deployment.round_manager, round_, h,
                                   int(num_samples), reveal, commit)
        sig = self.account.sign_message(encode_defunct(primitive=digest))
        vs = sig.s | ((sig.v - 27) << 255)
        return h, int(num_samples), bytes(reveal), bytes(commit), sig.r.to_bytes(32, "big"), vs.to_bytes(32, "big")

    def submit_batch(self, round_: int, entries: Sequence[tuple[bytes, int, bytes, bytes, bytes, bytes]], *,
                     wait: bool = True, gas: int | None = None) -> Any:
        """Relay members' signed submissions (:meth:`sign_submission`) of ``round_`` in one
        ``submitBatch`` transaction from this account (any account may relay). Entries the
        contract refuses are skipped with a ``SubmissionSkipped`` event, not reverted."""
        k = self.deployment.params.committee_size
        most = submit_batch_size(k)
        if not 0 < len(entries) <= most:
            raise BDFLError(f"a submission batch holds 1..{most} entries at committee size {k}, got {len(entries)}")
        if gas is None:
            gas = submit_batch_gas(k, len(entries))
        return self._tx(self.rounds.functions.submitBatch(round_, list(entries)), wait, gas)

    def skipped_entries(self, receipt: Any) -> dict[int, bytes]:
        """Position in the batch -> revert data (selector and arguments) of every entry a
        :meth:`submit_batch` receipt shows the contract skipped (``SubmissionSkipped``)."""
        logs = self.rounds.events.SubmissionSkipped().process_receipt(receipt, errors=DISCARD)
        return {int(e["args"]["position"]): bytes(e["args"]["reason"]) for e in logs}

    def _submission_args(self, round_: int, update_hash: bytes,
                         beacon: tuple[bytes, bytes] | None) -> tuple[bytes, bytes, bytes]:
        """(hash, beacon reveal, next beacon commitment) of a submission, direct or signed."""
        h = bytes(HexBytes(update_hash))
        if len(h) != 32:
            raise BDFLError(f"an update hash is 32 bytes, got {len(h)}")
        reveal, commit = self.beacon_args(round_) if beacon is None else beacon
        return h, reveal, commit

    def _submit_call(self, round_: int, update_hash: bytes, num_samples: int, beacon: tuple[bytes, bytes] | None) -> Any:
        h, reveal, commit = self._submission_args(round_, update_hash, beacon)
        return self.rounds.functions.submitUpdate(round_, h, int(num_samples), reveal, commit)

    def _submit_gas(self, round_: int, call: Any) -> int:
        gas = self.sender.estimate(call) + DUP_TABLE_GAS_HEADROOM
        if self.round_info(round_).num_submissions + 1 >= self.member_count():  # this submission draws the committee
            gas += draw_gas_bound(self.deployment.params.committee_size)
        return gas

    def commit_votes(
        self,
        round_: int,
        update_idx: Sequence[int],
        accept: Sequence[bool],
        salt: bytes,
        *,
        wait: bool = True,
        gas: int | None = None,
    ) -> Any:
        """Commit to votes on ``update_idx`` (keep ``salt``, ``update_idx`` and ``accept``
        for :meth:`reveal_votes`)."""
        c = self.vote_commitment(round_, update_idx, accept, salt)
        return self.commit(round_, c, wait=wait, gas=COMMIT_GAS if gas is None else gas)

    def commit(self, round_: int, commitment: bytes, *, wait: bool = True, gas: int | None = None) -> Any:
        """Post a precomputed commitment."""
        return self._tx(self.rounds.functions.commitVotes(round_, bytes(HexBytes(commitment))), wait, gas)

    def reveal_votes(
        self,
        round_: int,
        update_idx: Sequence[int],
        accept: Sequence[bool],
        salt: bytes,
        *,
        wait: bool = True,
        gas: int | None = None,
    ) -> Any:
        call = self.rounds.functions.revealVotes(
            round_, [int(i) for i in update_idx], [bool(a) for a in accept], bytes(HexBytes(salt))
        )
        words = len({int(i) >> 7 for i in update_idx})
        return self._tx(call, wait, reveal_gas_bound(len(update_idx), words) if gas is None else gas)

    def advance(self, round_: int | None = None, *, wait: bool = True, gas: int | None = None) -> Any:
        """End the current phase (its deadline passed, or everyone expected acted)."""
        r = self.current_round() if round_ is None else round_
        call = self.rounds.functions.advance(r)
        if gas is None:
            gas = self.sender.estimate(call)
            if self.round_info(r).phase == Phase.SUBMIT:
                gas += draw_gas_bound(self.deployment.params.committee_size)
        return self._tx(call, wait, gas)

    def finalize_batch(self, round_: int, max_items: int | None = None, *, wait: bool = True, gas: int | None = None) -> Any:
        """One ``finalize(round, max_items)`` transaction (default: :func:`finalize_batch_size`)."""
        if max_items is None:
            max_items = finalize_batch_size(self.deployment.params.auditors_per_update)
        # the batch size keeps a batch under FINALIZE_GAS_TARGET: that bound replaces an estimate
        return self._tx(self.rounds.functions.finalize(round_, max_items), wait, FINALIZE_GAS_LIMIT if gas is None else gas)

    def finalize(self, round_: int | None = None, batch: int | None = None) -> list[Any]:
        """Call ``finalize`` in batches until the round is closed; returns the receipts.
        Bounded: at most ceil((submissions + committee + members) / batch) + 2 calls."""
        if batch is None:
            batch = finalize_batch_size(self.deployment.params.auditors_per_update)
        r = self.current_round() if round_ is None else round_
        info = self.round_info(r)
        if info.phase == Phase.CLOSED:
            return []
        if info.phase != Phase.FINALIZE:
            raise BDFLError(f"round {r} is in phase {info.phase.name}, not FINALIZE", fix="advance the round first")
        budget = (info.num_submissions + info.committee_size + self.member_count()) // batch + 3
        receipts = []
        for _ in range(budget):
            receipts.append(self.finalize_batch(r, batch))
            if self.round_info(r).phase == Phase.CLOSED:
                return receipts
        raise BDFLError(f"round {r} did not close after {budget} finalize batches of {batch}")

    # -- views: rounds -------------------------------------------------------------
    def _read(self, contract: Any, name: str, *args: Any) -> Any:
        """``contract.functions.<name>(*args).call()`` decoded with cached ABI types
        (:mod:`bdfl.chain.fastabi`: the same values, without web3's per-call normalisers);
        web3's own call when that path declines (a revert: web3 raises it decoded)."""
        out = fastabi.call(self.w3, contract, name, *args)
        return getattr(contract.functions, name)(*args).call() if out is None else out

    def current_round(self) -> int:
        return int(self._read(self.rounds, "currentRound"))

    def phase(self) -> Phase:
        return Phase(self._read(self.rounds, "phase"))

    def round_info(self, round_: int | None = None) -> RoundInfo:
        r = self.current_round() if round_ is None else round_
        t = self._read(self.rounds, "roundInfo", r)
        # RoundState order: phase, deadline, numSubmissions, committeeSize, commits, reveals,
        # beaconReveals, beacon (bytes15), stage, cursor, approvedCount, pool, minted, seed
        return RoundInfo(r, Phase(t[0]), int(t[1]), int(t[2]), int(t[3]), int(t[4]), int(t[5]), int(t[8]), int(t[9]),
                         int(t[10]), int(t[11]), bytes(t[13]), bytes(t[7]).ljust(32, b"\x00"), int(t[12]), int(t[6]))

    def committee(self, round_: int | None = None) -> list[str]:
        r = self.current_round() if round_ is None else round_
        return [str(a) for a in self._read(self.rounds, "committeeOf", r)]

    def seat_info(self, round_: int, seat: int) -> SeatInfo:
        t = self._read(self.rounds, "seatInfo", round_, seat)
        return SeatInfo(bytes(t[0]), bool(t[1]), int(t[2]), int(t[3]), int(t[4]))

    def assignments_of(self, round_: int | None = None, auditor: str | None = None) -> list[int]:
        """Update indices this account (or ``auditor``) must audit in the round."""
        r = self.current_round() if round_ is None else round_
        return [int(i) for i in self._read(self.rounds, "assignmentsOf", r, auditor or self.address)]

    def auditors_of(self, round_: int, index: int) -> list[str]:
        return [str(a) for a in self._read(self.rounds, "auditorsOf", round_, index)]

    def submission_count(self, round_: int) -> int:
        return int(self._read(self.rounds, "submissionCount", round_))

    def pruned(self, round_: int) -> bool:
        """Whether ``round_``'s per-index storage has been reused (ROUNDS_KEPT): its views
        revert ``RoundPruned`` and its submissions come from events."""
        return round_ + ROUNDS_KEPT <= self.current_round()

    def submission(self, round_: int, index: int) -> Submission:
        if self.pruned(round_):
            subs = self.submissions(round_)
            if not 0 <= index < len(subs):
                raise BDFLError(f"round {round_} has no update {index}")
            return subs[index]
        t = self._read(self.rounds, "submission", round_, index)
        return Submission(index, str(t[0]), int(t[1]), bool(t[2]), Outcome(t[3]), bytes(t[4]), int(t[5]), int(t[6]), int(t[7]), int(t[8]))

    def submissions(self, round_: int, page: int = 250) -> list[Submission]:
        """Every submission of the round, ``page`` per call; for a pruned round (older than
        ROUNDS_KEPT rounds) from its events (:meth:`submissions_from_events`)."""
        if self.pruned(round_):
            return self.submissions_from_events(round_)
        out: list[Submission] = []
        while True:
            base = len(out)
            chunk = self._read(self.rounds, "submissionsSlice", round_, base, page)
            out.extend(
                Submission(base + j, str(t[0]), int(t[1]), bool(t[2]), Outcome(t[3]), bytes(t[4]), int(t[5]), int(t[6]), int(t[7]), int(t[8]))
                for j, t in enumerate(chunk)
            )
            if len(chunk) < page:
                return out

    def assignments_of_many(self, round_: int, auditors: Sequence[str]) -> dict[str, list[int]]:
        """``assignments_of`` for many auditors in one JSON-RPC batch."""
        if not auditors:
            return {}
        fast = fastabi.call_many(self.w3, self.rounds.address, self.rounds.abi, "assignmentsOf", [(round_, a) for a in auditors])
        if fast is not None:
            return {a: [int(i) for i in r] for a, r in zip(auditors, fast, strict=True)}
        with self.w3.batch_requests() as batch:  # K <= 64 items: one request
            for a in auditors:
                batch.add(self.rounds.functions.assignmentsOf(round_, a))
            results = batch.execute()
        return {a: [int(i) for i in r] for a, r in zip(auditors, results, strict=True)}

    def submissions_from_events(self, round_: int) -> list[Submission]:
        """The submissions of ``round_`` rebuilt from its ``UpdateSubmitted`` and
        ``UpdateFinalized`` events (any round, kept or pruned). Events do not carry the seat
        masks (``voted_mask`` / ``accept_mask`` are 0) nor, except through the outcome, the
        eligibility (``eligible`` = the outcome is not ``PROBATION``)."""
        topic_round = "0x" + int(round_).to_bytes(32, "big").hex()
        rows: dict[int, dict[str, Any]] = {}
        emap = self._event_map()
        for name in ("UpdateSubmitted", "UpdateFinalized"):
            sig = next(t for t, (c, d) in emap.items() if c == "RoundManager" and d.name == name)
            logs = self.w3.eth.get_logs({"fromBlock": 0, "toBlock": "latest", "address": self.rounds.address,
                                         "topics": ["0x" + sig.hex(), topic_round]})
            for log in logs:
                args = emap[sig][1].decode(log["topics"], log["data"])
                rows.setdefault(int(args["index"]), {}).update(args)
        out = []
        for i in range(len(rows)):
            a = rows[i]
            outcome = Outcome(int(a.get("outcome", Outcome.PENDING)))
            out.append(Submission(i, str(a["peer"]), int(a["numSamples"]), outcome != Outcome.PROBATION, outcome,
                                  bytes(a["updateHash"]), 0, 0, int(a.get("accepts", 0)), int(a.get("rejects", 0))))
        return out

    def approved_updates(self, round_: int) -> list[tuple[str, bytes]]:
        """(peer, update hash) of every update approved for aggregation in a finalized round.
        Above APPROVED_VIEW_MAX submissions from the paged ``submissionsSlice`` instead of the
        one ``approvedUpdates`` call (≈ 5.2k gas per submission: past the 30M gas a node
        grants an ``eth_call`` at N ≈ 5,700; it ran out of gas at N = 10,000)."""
        if self.pruned(round_) or self.submission_count(round_) > APPROVED_VIEW_MAX:
            return [(s.peer, s.update_hash) for s in self.submissions(round_) if s.outcome == Outcome.APPROVED]
        peers, hashes = self._read(self.rounds, "approvedUpdates", round_)
        return [(str(p), bytes(h)) for p, h in zip(peers, hashes, strict=True)]

    def is_approved(self, round_: int, peer: str | None = None) -> bool:
        if self.pruned(round_):
            a = peer or self.address
            return any(s.peer == a and s.outcome == Outcome.APPROVED for s in self.submissions(round_))
        return bool(self._read(self.rounds, "isApproved", round_, peer or self.address))

    # -- views: peers ----------------------------------------------------------------
    def params(self) -> Any:
        return ProtocolParams.from_chain(self._read(self.registry, "params"))

    def reputation_of(self, peer: str | None = None) -> int:
        return int(self._read(self.registry, "reputationOf", peer or self.address))

    def eligible(self, peer: str | None = None) -> bool:
        """Reputation >= threshold, a member, and not on probation."""
        return bool(self._read(self.registry, "eligible", peer or self.address))

    def on_probation(self, peer: str | None = None) -> bool:
        """Whether ``peer`` is a fresh identity still on probation this round."""
        return bool(self._read(self.registry, "onProbation", peer or self.address))

    def probation_until(self, peer: str | None = None) -> int:
        """First round in which ``peer`` is off probation (0: never on it)."""
        return int(self._read(self.registry, "probationUntil", peer or self.address))

    def withdrawable_from(self, peer: str | None = None) -> int:
        """First round in which ``peer``, having left, may withdraw its stake."""
        return int(self._read(self.registry, "withdrawableFrom", peer or self.address))

    def policy_hash(self) -> bytes:
        """``PeerRegistry.policyHash``: the policy hash fixed at deployment (32 bytes)."""
        return bytes(self._read(self.registry, "policyHash"))

    def check_contracts(self, source: str = "deployment") -> None:
        """Raise BDFLError unless each address of the deployment answers a view of the contract it
        is listed as (a deployment file edited by hand, or from another version, may list an address
        that holds code of another contract: web3 would raise a bare revert deep in the start-up)."""
        probes = (("BDFLToken", self.token, "totalSupply"), ("PeerRegistry", self.registry, "policyHash"),
                  ("RoundManager", self.rounds, "currentRound"))
        for name, contract, view in probes:
            try:
                getattr(contract.functions, view)().call()
            except (ContractLogicError, BadFunctionCallOutput, ValueError) as exc:
                raise BDFLError(f"{source}: the {name} address {contract.address} does not answer {name}.{view}() "
                                f"({type(exc).__name__}): it holds another contract",
                                fix="use the deployment file written when these contracts were deployed, or deploy again") from None

    def peer_info(self, peer: str | None = None) -> PeerInfo:
        a = peer or self.address
        t = self._read(self.registry, "peerInfo", a)
        return PeerInfo(str(a), Status(t[0]), bool(t[1]), int(t[2]), int(t[3]), int(t[4]), int(t[5]), int(t[6]), int(t[7]), int(t[8]))

    def peer_states(self, peers: Sequence[str], page: int = 500) -> list[tuple[PeerInfo, int, int]]:
        """(record, stake, claimable) of many peers, ``page`` per call."""
        out: list[tuple[PeerInfo, int, int]] = []
        for start in range(0, len(peers), page):
            chunk = list(peers[start : start + page])
            infos, balances = self._read(self.registry, "peerStates", chunk)
            for a, t, b in zip(chunk, infos, balances, strict=True):
                info = PeerInfo(str(a), Status(t[0]), bool(t[1]), int(t[2]), int(t[3]), int(t[4]), int(t[5]), int(t[6]), int(t[7]), int(t[8]))
                out.append((info, int(b[0]), int(b[1])))
        return out

    def status_of(self, peer: str | None = None) -> Status:
        return Status(self._read(self.registry, "statusOf", peer or self.address))

    def member_count(self) -> int:
        return int(self._read(self.registry, "memberCount"))

    def members(self, page: int = 500) -> list[str]:
        """Current members (Active or Exiting), in the registry's array order, paged."""
        n = self.member_count()
        out: list[str] = []
        for start in range(0, n, page):
            out.extend(str(a) for a in self._read(self.registry, "membersSlice", start, page))
        return out

    def endpoint_of(self, peer: str) -> str:
        return str(self._read(self.registry, "endpointOf", peer))

    def endpoints_of(self, peers: Sequence[str], page: int = 500) -> dict[str, str]:
        """``endpoint_of`` for many peers, batched ``page`` per JSON-RPC request."""
        return self._batched(self.registry.functions.endpointOf, peers, str, page)

    def _batched(self, fn: Any, keys: Sequence[str], convert: Callable[[Any], Any], page: int) -> dict[str, Any]:
        """``{k: convert(fn(k).call())}`` for every key, ``page`` calls per JSON-RPC batch request."""
        out: dict[str, Any] = {}
        for start in range(0, len(keys), page):
            chunk = list(keys[start : start + page])
            fast = fastabi.call_many(self.w3, fn.address, fn.contract_abi, fn.fn_name, [(k,) for k in chunk])
            if fast is not None:
                out.update(zip(chunk, (convert(r) for r in fast), strict=True))
                continue
            with self.w3.batch_requests() as batch:
                for k in chunk:
                    batch.add(fn(k))
                out.update(zip(chunk, (convert(r) for r in batch.execute()), strict=True))
        return out

    def stake_of(self, peer: str | None = None) -> int:
        return int(self._read(self.registry, "stakeOf", peer or self.address))

    def claimable(self, peer: str | None = None) -> int:
        return int(self._read(self.registry, "claimableOf", peer or self.address))

    def token_balance(self, holder: str | None = None) -> int:
        return int(self._read(self.token, "balanceOf", holder or self.address))

    def token_balances(self, holders: Sequence[str], page: int = 500) -> dict[str, int]:
        """``token_balance`` (wallet tokens, not stake or unclaimed rewards) of many holders, batched."""
        return self._batched(self.token.functions.balanceOf, holders, int, page)

    def solvency(self) -> Solvency:
        """The registry's token balance against what it owes (stakes + unclaimed rewards)."""
        return Solvency(
            balance=self.token_balance(self.registry.address),
            total_staked=int(self._read(self.registry, "totalStaked")),
            total_claimable=int(self._read(self.registry, "totalClaimable")),
        )

    # -- events ----------------------------------------------------------------------
    def _event_map(self) -> dict[bytes, tuple[str, Any]]:
        if self._events is None:
            m: dict[bytes, tuple[str, Any]] = {}
            for name, contract in (("PeerRegistry", self.registry), ("RoundManager", self.rounds)):
                for entry in contract.abi:
                    if entry.get("type") != "event":
                        continue
                    sig = f"{entry['name']}({','.join(_abi_type(i) for i in entry['inputs'])})"
                    m[keccak(text=sig)] = (name, _EventDecoder(entry))
            self._events = m
        return self._events

    def events(self, from_block: int, to_block: int | str = "latest", chunk: int = LOG_CHUNK) -> list[dict[str, Any]]:
        """Decoded events of the registry and round manager in ``[from_block, to_block]``,
        in chain order, as JSON-ready dicts (bytes as 0x-hex). Fetched in ranges of at most
        ``chunk`` blocks."""
        end = int(self.w3.eth.block_number) if to_block == "latest" else int(to_block)
        emap = self._event_map()
        out: list[dict[str, Any]] = []
        start = int(from_block)
        while start <= end:
            stop = min(end, start + chunk - 1)
            # raw: web3's log formatters (every field of every log) cost as much as decoding what is read
            reply = self.w3.provider.make_request(
                "eth_getLogs", [{"fromBlock": hex(start), "toBlock": hex(stop), "address": [self.registry.address, self.rounds.address]}]
            )
            if "error" in reply or not isinstance(reply.get("result"), list):
                raise BDFLError(f"reading the events of blocks {start}..{stop} failed: {reply.get('error', reply)}")
            for log in reply["result"]:
                topics = [bytes.fromhex(t[2:]) for t in log["topics"]]
                entry = emap.get(topics[0]) if topics else None
                if entry is None:
                    continue
                contract_name, decoder = entry
                out.append(
                    {
                        "block": int(log["blockNumber"], 16),
                        "tx": log["transactionHash"].lower(),
                        "log_index": int(log["logIndex"], 16),
                        "contract": contract_name,
                        "event": decoder.name,
                        "args": {k: _jsonable(v) for k, v in decoder.decode(topics, bytes.fromhex(log["data"][2:])).items()},
                    }
                )
            start = stop + 1
        return out


def _abi_type(param: dict[str, Any]) -> str:
    if param["type"].startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in param["components"]) + ")" + param["type"][5:]
    return str(param["type"])


class _EventDecoder:
    """Decodes one event's logs with eth_abi directly: ~20x cheaper than web3's
    ``process_log``, which matters when a round at N = 1000 emits thousands of events.
    Values are the same as ``process_log``'s (addresses checksummed)."""

    def __init__(self, abi: dict[str, Any]) -> None:
        self.name = str(abi["name"])
        self.inputs = [(str(i["name"]), _abi_type(i), bool(i.get("indexed"))) for i in abi["inputs"]]
        self.data_types = [t for _n, t, indexed in self.inputs if not indexed]

    def decode(self, topics: Sequence[bytes], data: bytes) -> dict[str, Any]:
        from eth_abi import decode
        from eth_utils import to_checksum_address

        values = iter(decode(self.data_types, bytes(data)) if self.data_types else ())
        indexed = iter(topics[1:])
        out: dict[str, Any] = {}
        for name, typ, is_indexed in self.inputs:
            if is_indexed:
                word = bytes(next(indexed))
                # dynamic indexed values are stored as their hash: keep the 32 bytes
                dynamic = typ in ("string", "bytes") or typ.endswith("]") or typ.startswith("(")
                v = word if dynamic else decode([typ], word)[0]
            else:
                v = next(values)
            if typ == "address":
                v = to_checksum_address(v)
            elif typ == "address[]":
                v = tuple(to_checksum_address(a) for a in v)
            out[name] = v
        return out


def _jsonable(v: Any) -> Any:
    if isinstance(v, (bytes, bytearray)):
        return "0x" + bytes(v).hex()
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, bool) or v is None or isinstance(v, (str, float)):
        return v
    if isinstance(v, int):
        return int(v)
    return str(v)
