"""Stage 3, submit: the update's hash on chain, and the answer to a front-run.

A copier may submit this peer's hash first (``submitUpdate`` then reverts with
``DuplicateHash``): the peer re-encodes the same arrays with a fresh binding nonce,
serves the new bytes and submits their hash once more (:func:`recover_front_run`). A
simulation worker learns of the revert from its batch's receipts, ``bdfl peer`` from its
own transaction; both call this stage, and send the transactions themselves.

Relayed (``chain.submission = "relayed"``, :mod:`bdfl.chain.relay`): the peer signs its
submission and a relayer posts it in a ``submitBatch``. The relayer is not trusted: the peer
checks on chain that its own entry landed while the Submit phase is open and otherwise
submits directly itself (:func:`missing_after_relay` for a simulation worker's peers,
:func:`watch_relayed` for one peer waiting up to the deadline margin).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from bdfl.chain.protocol import Phase, ProtocolClient
from bdfl.chain.relay import RELAY_DEADLINE_MARGIN, Relayer, RelayBatch, chain_time, has_submitted, recorded_hashes
from bdfl.peer.engine import PeerEngine

log = logging.getLogger("bdfl.peer")


@dataclass(frozen=True)
class FrontRun:
    """A submission re-encoded after ``DuplicateHash``: the old and the new hash, the new bytes."""

    peer: int
    address: str
    old_hash: str
    new_hash: str
    data: bytes

    def event_args(self) -> dict[str, Any]:
        return {"peer": self.peer, "address": self.address, "old_hash": self.old_hash, "new_hash": self.new_hash, "bytes": len(self.data)}


def recover_front_run(engine: PeerEngine, rnd: int) -> FrontRun:
    """Re-encode this round's update with a fresh nonce (:meth:`bdfl.peer.node.Peer.rebind_fresh`)
    and publish it; the caller submits ``new_hash`` (once: a second ``DuplicateHash`` takes
    another copier and is not retried)."""
    peer = engine.peer
    old = peer.published[rnd]
    data = peer.rebind_fresh(rnd)
    new = peer.publish(rnd, data)
    log.warning("peer %s chain round %d: submission of %s front-run (DuplicateHash: another member submitted it first); "
                "re-encoded with a fresh nonce and submitting %s", peer.address, rnd, old[:10], new[:10])
    return FrontRun(peer.index, peer.address, old, new, data)



@dataclass(frozen=True)
class Fallback:
    """A peer whose relayed submission did not land: it submits directly (``reason``: the
    contract's error for a skipped entry, or ``"not relayed"`` for one left out or late)."""

    peer: int
    address: str
    reason: str

    @property
    def front_run(self) -> bool:
        """The entry was skipped because another member had submitted its hash first."""
        return self.reason == "DuplicateHash"


def missing_after_relay(mine: Mapping[str, int], recorded: Mapping[str, bytes], skipped: Mapping[str, str]) -> list[Fallback]:
    """The peers of ``mine`` (address -> peer index) with no submission in ``recorded`` (the
    round's submissions read from the chain after the relayer's batches, member -> hash),
    each with the error the contract gave when it skipped its entry (:meth:`Relayer.skipped`), if it did."""
    out = []
    for address, index in mine.items():
        if address in recorded:
            continue
        reason = skipped.get(address)
        out.append(Fallback(index, address, "not relayed" if reason is None else reason))
    return out


def check_relayed(relayer: Relayer, round_: int, batches: list[RelayBatch], mine: Mapping[str, int]) -> list[Fallback]:
    """After a relayer sent ``batches``: wait for them, then read the round's submissions on
    chain and return every member of ``mine`` (address -> peer index) whose own submission
    is not there, each of which must now submit directly. Only the chain read decides: a
    relayer that leaves an entry out, alters it or sends it never shows here as landed."""
    skipped: dict[str, str] = {}
    for b, r in zip(batches, relayer.wait(batches), strict=True):
        if isinstance(r, Exception):  # the whole batch reverted: its members fall back
            log.warning("relayer %s: a batch of %d submissions failed: %s", relayer.address, len(b.requests), r)
            continue
        skipped.update(relayer.skipped(b, r))
    return missing_after_relay(mine, recorded_hashes(relayer.client, round_), skipped)


def watch_relayed(client: ProtocolClient, round_: int, update_hash: bytes, num_samples: int, *,
                  margin: int = RELAY_DEADLINE_MARGIN, poll: float = 1.0,
                  sleep: Callable[[float], None] = time.sleep) -> str:
    """Wait for this peer's relayed submission of ``round_`` to appear on chain; once the chain
    time reaches ``margin`` seconds before the Submit deadline without it, submit directly.
    Returns ``"relayed"`` (it landed), ``"direct"`` (submitted here) or ``"closed"`` (the
    Submit phase ended first: only when the deadline passed within one poll of the margin)."""
    while True:
        if has_submitted(client, round_, client.address):
            return "relayed"
        info = client.round_info(round_)
        now = chain_time(client)
        if info.phase != Phase.SUBMIT or now > info.deadline:
            return "closed"
        if now >= info.deadline - margin:
            log.warning("peer %s chain round %d: relayed submission not on chain %d s before the deadline: submitting directly",
                        client.address, round_, margin)
            client.submit_update(round_, update_hash, num_samples)
            return "direct"
        sleep(poll)
