"""Stage 1, train: fit the local model from the peer's current parameters."""

from __future__ import annotations

from typing import Any

from bdfl.peer.engine import ClientFailure, PeerEngine


def train(engine: PeerEngine, rnd: int, config: dict[str, Any] | None = None) -> dict[str, Any] | ClientFailure:
    """:meth:`bdfl.peer.node.Peer.train` under the client-failure rule
    (:meth:`PeerEngine.isolated`): the fit's figures, or the failure (no update this round)."""
    return engine.isolated(rnd, "fit", engine.peer.train, rnd, config)
