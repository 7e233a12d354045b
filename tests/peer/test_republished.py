"""The replay check by content (:mod:`bdfl.peer.republished`): an update whose arrays are a
model of an earlier round that the auditor decoded (a trainer's start recipe, an earlier move)
is rejected as ``republished``. The hash check alone misses it: a free-rider re-encodes the
model it received under its own binding (its address, this round): new bytes, a new hash."""

from __future__ import annotations

import numpy as np

from bdfl.net.serialization import Binding, encode_ndarrays, hash_hex, update_hash
from bdfl.peer import stages
from bdfl.peer.node import Candidate
from bdfl.peer.republished import EarlierModels
from bdfl.peer.sources import StartSource
from tests.peer.auditors import CHAIN, RM, digits_auditor

ADDR = [f"0x{i:040x}" for i in range(1, 8)]  # auditor ADDR[0]; trainers ADDR[1..6]


def _bytes(model: list[np.ndarray], rnd: int, who: str) -> bytes:
    return encode_ndarrays(model, binding=Binding(CHAIN, RM, rnd, who))


def _cand(i: int, who: str, data: bytes) -> Candidate:
    return Candidate(index=i, peer=who, hash=hash_hex(update_hash(data)), url="http://x")


def test_a_received_model_republished_under_a_new_binding_is_rejected() -> None:
    peer, trained = digits_auditor(6, ADDR[0], domain=(CHAIN, RM))
    # round 2: ADDR[1] and ADDR[2] submitted trained[1] and trained[2]; ADDR[6]'s start recipe is both
    old = {a: _bytes(m, 2, a) for a, m in ((ADDR[1], trained[1]), (ADDR[2], trained[2]))}
    recipe = [StartSource(a, hash_hex(update_hash(b)), 0.5) for a, b in old.items()]
    # round 3: ADDR[6] re-publishes ADDR[2]'s round-2 model as its own; the others trained
    models = [trained[3], trained[4], trained[5], trained[2]]
    blobs = [_bytes(m, 3, a) for m, a in zip(models, ADDR[3:7])]
    cands = [_cand(i, a, b) for i, (a, b) in enumerate(zip(ADDR[3:7], blobs))]
    assert cands[-1].hash not in {s.hash for s in recipe}  # new bytes, new hash: the hash check passes it
    fetched = {c.hash: b for c, b in zip(cands, blobs)} | {s.hash: old[s.peer] for s in recipe}
    rebuilt = stages.audit.rebuild(peer, 3, {ADDR[6]: recipe}, {}, fetched)
    assert len(rebuilt.earlier) == 2
    _, votes = peer.audit(3, cands, fetched, starts=rebuilt.starts, earlier_models=rebuilt.earlier)
    assert votes == [True, True, True, False]
    assert peer.rejections[-1].peer == ADDR[6] and peer.rejections[-1].reason == "republished"
    # one value changed is another model: the audit's tests judge it, not this check
    tweaked = [a.copy() for a in trained[2]]
    tweaked[0].flat[0] += 1e-3
    blob = _bytes(tweaked, 3, ADDR[6])
    before = len(peer.rejections)
    peer.audit(3, [*cands[:3], _cand(3, ADDR[6], blob)], {**fetched, _cand(3, ADDR[6], blob).hash: blob},
               starts=rebuilt.starts, earlier_models=rebuilt.earlier)
    assert all(r.reason != "republished" for r in peer.rejections[before:])


def test_the_digest_reads_every_value() -> None:
    """The sampled key alone would match a model that differs off its samples; the digest does not."""
    a = [np.zeros((1000,), np.float32), np.ones((3, 3), np.float32)]
    b = [x.copy() for x in a]
    b[0][1] = 1.0  # between two sampled values (every 15th)
    index = EarlierModels()
    index.add("0x01", a)
    assert index.holds([x.copy() for x in a]) and not index.holds(b)
    assert not index.holds([a[0].astype(np.float64), a[1]])  # the same values in another dtype are another encoding
    index.add("0x01", b)  # a hash already added is not read again
    assert len(index) == 1 and not index.holds(b)
