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
    return engine.isolated(rnd, "fit", engine.peer.train, rnd, config, momentum=momentum(engine))


def momentum(engine: PeerEngine) -> float:
    """The quasi-global momentum ``engine``'s peer applies now: ``overlay.momentum`` unless the
    overlay is the complete graph (:func:`bdfl.learning.mixing.momentum_in_effect`)."""
    overlay_cfg = getattr(engine.cfg, "overlay", None)
    beta = float(getattr(overlay_cfg, "momentum", 0.0) or 0.0)
    return momentum_in_effect(beta, engine.memory.tracker.overlay)
