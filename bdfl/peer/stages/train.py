"""Stage 1, train: fit the local model from the peer's current parameters."""

from __future__ import annotations

from typing import Any

from bdfl.learning.mixing import momentum_in_effect
from bdfl.peer.engine import ClientFailure, PeerEngine


def train(engine: PeerEngine, rnd: int, config: dict[str, Any] | None = None) -> dict[str, Any] | ClientFailure:
    """:meth:`bdfl.peer.node.Peer.train` under the client-failure rule
    (:meth:`PeerEngine.isolated`): the fit's figures, or the failure (no update this round).
    With ``overlay.momentum`` > 0 on an overlay that is not the complete graph, the update
    carries the peer's quasi-global momentum (:mod:`bdfl.learning.mixing`)."""
    overlay_cfg = getattr(engine.cfg, "overlay", None)
    beta = float(getattr(overlay_cfg, "momentum", 0.0) or 0.0)
    if beta > 0:
        beta = momentum_in_effect(beta, engine.memory.tracker.overlay)
    return engine.isolated(rnd, "fit", engine.peer.train, rnd, config, momentum=beta)
