"""A digits auditor for the peer-side audit tests (tests/peer, tests/attacks)."""

from __future__ import annotations

from typing import Any

from bdfl.learning.data import load_digits, make_peer_shards
from bdfl.learning.task import fit_client, load_task
from bdfl.peer.node import Peer, PeerSettings
from bdfl.types import NDArrays

#: The (chain id, contract) domain the tests' update bindings name.
CHAIN, RM = 31337, "0x" + "5f" * 20


def digits_auditor(
    num_peers: int, address: str, *, domain: tuple[int, str] | None = None, attack: Any | None = None
) -> tuple[Peer, list[NDArrays]]:
    """Peer 0 of ``num_peers`` digits peers (iid shards, min 20 samples) as an auditor at
    ``address``, and every peer's model after one local epoch (batch 16) from seed 0's model;
    the auditor's params and reference are that start and its trained model is its own."""
    task = load_task("clients.digits")
    ds = load_digits()
    shards = make_peer_shards(ds, num_peers, scheme="iid", seed=0, min_size=20)
    hp = {"local_epochs": 1, "batch_size": 16}
    clients = [task.make_client(s.train, s.val, seed=i, hparams=hp) for i, s in enumerate(shards)]
    start = task.initial_parameters(ds, seed=0, hparams=hp)
    trained = [fit_client(c, start, {"round": 0}).parameters for c in clients]
    peer = Peer(index=0, address=address, client=clients[0], endpoint=None, settings=PeerSettings(), attack=attack)
    peer.domain = domain
    peer.params = start
    peer.reference, peer.trained = start, trained[0]
    return peer, trained
