"""Stage 6, reveal: the votes committed in this round, taken out of the round state."""

from __future__ import annotations

from bdfl.peer.engine import PeerEngine
from bdfl.peer.round_state import Votes


def reveal(engine: PeerEngine, rnd: int) -> Votes | None:
    """The votes to reveal for round ``rnd`` (None when this peer committed none)."""
    return engine.state.votes.pop(rnd, None)
