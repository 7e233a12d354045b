"""Relayed submissions (issue 23): a relayer posts members' signed submissions in
``submitBatch`` transactions from its own account, and each member checks on chain that its
own entry landed, submitting directly otherwise (:mod:`bdfl.peer.stages.submit`).

A relayer is not trusted: it can leave an entry out, delay it, or alter it (an altered entry
recovers another signer and the contract skips it). It cannot submit anything a member did
not sign, and it cannot stop a member from submitting itself before the Submit deadline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from web3.exceptions import ContractLogicError

from bdfl.chain.protocol import ProtocolClient, submit_batch_gas, submit_batch_size
from bdfl.chain.txsender import decode_revert
from bdfl.errors import BDFLError

#: One signed submission (hash, samples, beacon reveal, beacon commit, r, vs): ``sign_submission``.
SignedEntry = tuple[bytes, int, bytes, bytes, bytes, bytes]
#: Seconds before the Submit deadline at which a member stops waiting for its relayer and
#: submits directly (a standalone peer's watch: :func:`bdfl.peer.stages.submit.watch_relayed`).
RELAY_DEADLINE_MARGIN = 30


@dataclass(frozen=True)
class RelayRequest:
    """A member's signed submission handed to a relayer."""

    member: str
    entry: SignedEntry


@dataclass
class RelayBatch:
    """One ``submitBatch`` a relayer sent: its requests in batch order and the transaction."""

    requests: list[RelayRequest]
    tx_hash: Any


class Relayer:
    """Posts signed submissions in ``submitBatch`` transactions from its client's account,
    ``submit_batch_size(K)`` entries per transaction (under the 2^24 gas cap). The subclasses
    in tests/chain/test_relay_runner.py drop, alter and delay entries."""

    def __init__(self, client: ProtocolClient) -> None:
        self.client = client

    @property
    def address(self) -> str:
        return self.client.address

    def batches(self, requests: Sequence[RelayRequest]) -> list[list[RelayRequest]]:
        """The requests in order, cut into batches of at most ``submit_batch_size(K)``."""
        size = submit_batch_size(self.client.deployment.params.committee_size)
        return [list(requests[i:i + size]) for i in range(0, len(requests), size)]

    def send(self, round_: int, requests: Sequence[RelayRequest]) -> list[RelayBatch]:
        """Send every batch without waiting (in order: submission order decides update indices).

        Every batch of one call gets the same gas limit, the largest batch's (:func:`batch_gas`):
        its gas *used* does not change, but a later batch never has a smaller limit than an
        earlier one. Why: the batches are mined together (:func:`bdfl.chain.devnet.batch_mining`),
        and anvil 1.7's block builder, when a transaction does not fit in the gas left in the
        block, skips it yet still tries its sender's next one; a smaller one fits, fails the
        nonce check (its predecessor is not in the block) and is evicted from the pool without
        a trace: accepted, never mined (three 120 s receipt waits at N = 1000, one batch of 4
        entries after four full ones; tests/chain/test_relay_mining.py). With equal limits a
        batch that does not fit is followed by batches that do not fit either."""
        batches = [b for b in self.batches(requests) if b]
        gas = batch_gas(self.client, max((len(b) for b in batches), default=0))
        return [RelayBatch(b, self.client.submit_batch(round_, [r.entry for r in b], wait=False, gas=gas))
                for b in batches]

    def wait(self, batches: Sequence[RelayBatch]) -> list[Any]:
        """Each batch's full receipt (its ``SubmissionSkipped`` logs are read), or the error
        waiting raised (a batch that reverted as a whole: its members fall back)."""
        out: list[Any] = []
        for b in batches:
            try:
                out.append(self.client.sender.wait(b.tx_hash))
            except BDFLError as exc:
                out.append(exc)
        if any(isinstance(r, Exception) for r in out):
            # a batch without a receipt may have left the node's pool unmined (TxDropped: anvil
            # 1.7 evicted a smaller batch after one that did not fit in a block, before send
            # gave them equal gas limits): its nonce is then unused, and every later transaction
            # of this account would wait behind the gap. Re-read the nonce.
            self.client.sender.resync_nonce()
        return out

    def skipped(self, batch: RelayBatch, receipt: Any) -> dict[str, str]:
        """Member -> the contract's error name for each of the batch's entries it skipped."""
        return {batch.requests[pos].member: revert_name(self.client, reason)
                for pos, reason in self.client.skipped_entries(receipt).items() if 0 <= pos < len(batch.requests)}


def batch_gas(client: ProtocolClient, entries: int) -> int:
    """Gas limit of a ``submitBatch`` of ``entries`` entries at ``client``'s committee size
    (:func:`bdfl.chain.protocol.submit_batch_gas`, :meth:`ProtocolClient.submit_batch`'s default)."""
    return submit_batch_gas(client.deployment.params.committee_size, entries)


def recorded_hashes(client: ProtocolClient, round_: int) -> dict[str, bytes]:
    """Member -> update hash of every submission of ``round_`` on chain (what a member checks
    after relaying: its own entry, with the hash it signed)."""
    return {s.peer: bytes(s.update_hash) for s in client.submissions(round_)}


def chain_time(client: ProtocolClient) -> int:
    """The latest block's timestamp (what deadlines are compared with)."""
    return int(client.w3.eth.get_block("latest")["timestamp"])


def has_submitted(client: ProtocolClient, round_: int, member: str) -> bool:
    """Has ``member`` a submission in ``round_`` on chain (``submissionIndexOf`` answers)?"""
    try:
        client.rounds.functions.submissionIndexOf(round_, member).call()
    except ContractLogicError:
        return False
    return True


def revert_name(client: ProtocolClient, reason: bytes) -> str:
    """The RoundManager error name of a skipped entry's revert data (or its selector in hex)."""
    name, _args = decode_revert(client.rounds.abi, reason)
    return name or "0x" + bytes(reason[:4]).hex()
