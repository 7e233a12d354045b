"""A peer's ``reference`` (its model before this round's training) shares the arrays of
``params`` instead of copying them (one model per peer less: bdfl/peer/node.py), and still holds
the pre-training values whatever the client does to its live model or to the arrays it fits."""

from __future__ import annotations

from typing import Any

import numpy as np

from bdfl.peer.node import Peer, PeerSettings


class AliasingClient:
    """A client that hands out its live arrays and trains them in place (a NumPyClient pattern:
    ``get_parameters`` returning ``tensor.numpy()`` views), writing also into what it is given."""

    def __init__(self) -> None:
        self.live = [np.zeros(4, dtype=np.float32), np.ones(2, dtype=np.float32)]

    def get_parameters(self, config: dict[str, Any]) -> list[np.ndarray]:
        return self.live

    def fit(self, parameters: list[np.ndarray], config: dict[str, Any]) -> tuple[list[np.ndarray], int, dict[str, Any]]:
        for p in parameters:
            p += 1.0  # in place: what it was given
        for a in self.live:
            a -= 5.0  # in place: its own live arrays
        return [p + 0.5 for p in parameters], 10, {}


def test_reference_keeps_the_pre_training_values_without_a_copy() -> None:
    client = AliasingClient()
    peer = Peer(index=0, address="0x" + "11" * 20, client=client, endpoint=None, settings=PeerSettings())
    assert all(p is not a for p, a in zip(peer.params, client.live))  # never the client's live arrays
    before = [p.copy() for p in peer.params]
    peer.train(0)
    assert all(r is p for r, p in zip(peer.reference, peer.params))  # shared, not copied
    assert all(np.array_equal(r, b) for r, b in zip(peer.reference, before))
    assert all(np.array_equal(t, b + 1.5) for t, b in zip(peer.trained, before))
    # the next round's params are new arrays (aggregation replaces them): the old reference stays
    old = peer.reference
    peer.params = [t.copy() for t in peer.trained]
    peer.train(1)
    assert all(np.array_equal(r, b) for r, b in zip(old, before))
    assert all(np.array_equal(r, b + 1.5) for r, b in zip(peer.reference, before))
