"""Stage 3, submit: the update's hash on chain, and the answer to a front-run.

A copier may submit this peer's hash first (``submitUpdate`` then reverts with
``DuplicateHash``): the peer re-encodes the same arrays with a fresh binding nonce,
serves the new bytes and submits their hash once more (:func:`recover_front_run`). A
simulation worker learns of the revert from its batch's receipts, ``bdfl peer`` from its
own transaction; both call this stage, and send the transactions themselves.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

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

