"""Stage 2, publish: the update's bytes (bound to this submission), served on the endpoint."""

from __future__ import annotations

from dataclasses import dataclass

from bdfl.peer.engine import PeerEngine
from bdfl.types import NDArrays


@dataclass(frozen=True)
class Published:
    """An update served on the peer's endpoint: its keccak256 (what goes on chain), the bytes."""

    hash: str
    data: bytes
    url: str


def publish(engine: PeerEngine, rnd: int, honest_updates: list[NDArrays] | None = None,
            honest_samples: list[int] | None = None) -> Published:
    """Encode this round's update (an active attacker poisons it first, knowing
    ``honest_updates`` and the sample counts they claim, when its attack needs them) and serve it."""
    peer = engine.peer
    data = peer.make_update(rnd, honest_updates, honest_samples)
    return Published(peer.publish(rnd, data), data, peer.endpoint.url if peer.endpoint is not None else "")
