"""A lazy auditor inside Peer.audit: "majority" accepts every assigned update unaudited (even
bytes an honest auditor rejects); "abstain" casts no vote (empty vote vector, abstentions
recorded), which the chain records as abstentions (AuditorSettled.abstain)."""

from __future__ import annotations

from bdfl.attacks import make_attack
from bdfl.net.serialization import Binding, encode_ndarrays, hash_hex, update_hash
from bdfl.peer.node import Candidate, Peer
from tests.peer.auditors import CHAIN, RM, digits_auditor

ADDR = [f"0x{i:040x}" for i in range(1, 5)]


def _setup(attack: object) -> tuple[Peer, list[Candidate], dict[str, bytes]]:
    peer, trained = digits_auditor(3, ADDR[0], domain=(CHAIN, RM), attack=attack)
    good = encode_ndarrays(trained[1], binding=Binding(CHAIN, RM, 2, ADDR[1]))
    garbage = b"BDFLMB\x00\x01" + b"\xff" * 40  # not an update: an honest auditor rejects it
    blobs = [good, garbage]
    cands = [Candidate(index=i, peer=a, hash=hash_hex(update_hash(b)), url="http://x") for i, (a, b) in enumerate(zip(ADDR[1:], blobs))]
    return peer, cands, {c.hash: b for c, b in zip(cands, blobs)}


def test_honest_auditor_rejects_the_garbage() -> None:
    peer, cands, fetched = _setup(None)
    assert peer.audit(2, cands, fetched) == ([0, 1], [True, False])


def test_lazy_majority_accepts_everything() -> None:
    peer, cands, fetched = _setup(make_attack("lazy_auditor"))
    assert peer.audit(2, cands, fetched) == ([0, 1], [True, True])


def test_lazy_abstainer_casts_no_vote() -> None:
    peer, cands, fetched = _setup(make_attack("lazy_auditor", mode="abstain"))
    assert peer.audit(2, cands, fetched) == ([], [])
    assert peer.last_abstentions == [(ADDR[1], "lazy"), (ADDR[2], "lazy")]
    # on_off around it: honest votes while off
    peer, cands, fetched = _setup(make_attack("on_off", inner="lazy_auditor", inner_params={"mode": "abstain"}, on_after=5))
    assert peer.audit(2, cands, fetched) == ([0, 1], [True, False])
