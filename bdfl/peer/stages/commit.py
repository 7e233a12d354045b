"""Stage 5, commit: salt the votes; they stay in the round state until the reveal."""

from __future__ import annotations

from collections.abc import Callable

from bdfl.chain.protocol import salt_for
from bdfl.peer.engine import PeerEngine
from bdfl.peer.round_state import Votes


def commit(engine: PeerEngine, rnd: int, indices: list[int], accept: list[bool],
           commitment_of: Callable[[list[int], list[bool], bytes], bytes]) -> tuple[Votes, bytes]:
    """A random salt per vote vector (nobody derives it from the public seed), drawn so that
    salt and commitment have no zero byte (constant calldata gas: :func:`bdfl.chain.protocol.salt_for`);
    the votes are kept in ``engine.state.votes`` for the reveal. Returns (votes, commitment)."""
    salt, commitment = salt_for(lambda s: commitment_of(indices, accept, s))
    votes = Votes(list(indices), list(accept), salt)
    engine.state.votes[rnd] = votes
    return votes, commitment
