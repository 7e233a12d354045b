"""Issue 23 (model size): a peer keeps the neighbours' models it aggregated only when an attack
will read them (``AttackContext.received``); an honest peer would otherwise hold degree x model
bytes between rounds: N x degree models in all (7 GB at 11M parameters, N = 20, degree 8)."""

from __future__ import annotations

import numpy as np

from bdfl.attacks import make_attack
from bdfl.net.serialization import Binding, encode_ndarrays, hash_hex, update_hash
from bdfl.peer.node import Candidate
from tests.peer.auditors import CHAIN, RM, digits_auditor

ADDR = [f"0x{i:040x}" for i in range(1, 5)]


def _aggregate(attack: object | None) -> tuple[list[list[np.ndarray]], list[list[np.ndarray]]]:
    peer, trained = digits_auditor(4, ADDR[0], domain=(CHAIN, RM), attack=attack)
    blobs = [encode_ndarrays(m, binding=Binding(CHAIN, RM, 3, a)) for m, a in zip(trained[1:], ADDR[1:])]
    cands = [Candidate(i, a, hash_hex(update_hash(b)), "http://x") for i, (a, b) in enumerate(zip(ADDR[1:], blobs))]
    assert peer.aggregate(3, cands, {c.hash: b for c, b in zip(cands, blobs)})["aggregated"] == 3
    return peer.received_last, trained[1:]


def test_an_honest_peer_keeps_no_neighbour_models_after_aggregating() -> None:
    received, _ = _aggregate(None)
    assert received == []


def test_an_attacker_keeps_what_it_received_for_its_attack() -> None:
    received, models = _aggregate(make_attack("sign_flip"))
    assert len(received) == 3
    assert all(np.array_equal(a, b) for got, want in zip(received, models) for a, b in zip(got, want))
