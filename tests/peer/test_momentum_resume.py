"""A returning peer's quasi-global momentum (bdfl.peer.rejoin.resume_momentum,
bdfl.peer.stages.aggregate.velocity_plan; docs/learning.md "Quasi-global momentum"):

* the earlier model is the resync's choice made one round earlier (same overlay, same tier,
  that round's approvals and weights), and nothing when the resync did not come from the
  last closed round, from round 0, or from no tier;
* with real encoded updates: only hash-checked, strictly decoded updates are averaged (by
  weight), the first update back carries ``beta * (resync(r) - resync(r - 1))``, and with no
  verifiable earlier update it carries no velocity (as before), without recording rejections.
"""

from __future__ import annotations

from collections.abc import Mapping
import numpy as np
import pytest

from bdfl.chain.protocol import Outcome, Submission
from bdfl.errors import BDFLError
from bdfl.net.serialization import encode_ndarrays, hash_hex, update_hash
from bdfl.peer import stages
from bdfl.peer.node import Candidate, Peer, PeerSettings
from bdfl.peer.rejoin import resume_momentum, resync_model
from tests.learning.test_momentum_mixing import StepClient
from tests.peer.test_aggregation_plan import ADDRS, FAR, ME, NB, REP, SAMPLES, FakeChain, _peer


class RoundChain(FakeChain):
    """Approvals differ per round (``approved_in``: round -> approved addresses, else all),
    and each round's update hashes are its own."""

    def __init__(self, approved_in: dict[int, set[str]]) -> None:
        super().__init__(set(ADDRS))
        self.approved_in = approved_in

    def submissions(self, rnd: int) -> list[Submission]:
        approved = self.approved_in.get(rnd, set(ADDRS))
        return [Submission(i, a, SAMPLES[a], True, Outcome.APPROVED if a in approved else Outcome.REJECTED,
                           bytes([16 * rnd + i + 1]) * 32, 0b11111, 0b11111 if a in approved else 0,
                           5 if a in approved else 0, 0 if a in approved else 5)
                for i, a in enumerate(ADDRS)]


def _hash_of(rnd: int, addr: str) -> str:
    return "0x" + (bytes([16 * rnd + ADDRS.index(addr) + 1]) * 32).hex()


def test_velocity_plan_is_the_resync_choice_one_round_earlier() -> None:
    # round 3: every update approved; round 2: NB[1]'s rejected, so the min_sources top-up
    # brings the nearest approved peer at distance 2, as a peer aggregating round 2 would have
    e = _peer("bdfl", "reputation", set(), chain=RoundChain({2: set(ADDRS) - {NB[1]}}))
    source, tiers = stages.aggregate.resync_plan(e, 3)
    assert source == 3 and [c.peer for c in tiers[0]] == NB
    before = stages.aggregate.velocity_plan(e, 3, source, 0)
    assert [c.peer for c in before] == [NB[0], FAR[0]]
    assert [c.hash for c in before] == [_hash_of(2, NB[0]), _hash_of(2, FAR[0])]  # round 2's updates
    assert {c.peer: c.weight for c in before} == {a: pytest.approx(REP[a]) for a in (NB[0], FAR[0])}
    # the fallback tier of round 2: the heaviest usable updates other than the first tier's
    fallback = stages.aggregate.velocity_plan(e, 3, source, 1)
    want = sorted((a for a in set(ADDRS) - {ME, NB[1], NB[0], FAR[0]}), key=lambda a: (-REP[a], a))[:2]
    assert [c.peer for c in fallback] == want and all(c.hash == _hash_of(2, c.peer) for c in fallback)
    # no velocity: a resync from an older round (the last closed one had nothing usable), from
    # no tier, or from round 0 (there is no round before it)
    assert stages.aggregate.velocity_plan(e, 3, 2, 0) == []
    assert stages.aggregate.velocity_plan(e, 3, 3, -1) == []
    e0 = _peer("bdfl", "reputation", set(), chain=RoundChain({}))
    assert stages.aggregate.resync_plan(e0, 0)[0] == 0 and stages.aggregate.velocity_plan(e0, 0, 0, 0) == []


def test_velocity_plan_is_empty_when_the_earlier_round_had_no_usable_update() -> None:
    e = _peer("bdfl", "reputation", set(), chain=RoundChain({2: set()}))
    source, tiers = stages.aggregate.resync_plan(e, 3)
    assert source == 3 and tiers[0]
    assert stages.aggregate.velocity_plan(e, 3, source, 0) == []


# -------------------------------------------------------------- with real updates

def _model(value: float) -> list[np.ndarray]:
    return [np.full(3, value, dtype=np.float32), np.array([5], dtype=np.int64)]


def _cand(peer: str, data: bytes, weight: float) -> Candidate:
    return Candidate(index=0, peer=peer, hash=hash_hex(update_hash(data)), url=f"http://{peer}", weight=weight)


class Served:
    """What the neighbours' endpoints serve: hash -> bytes (or the error a fetch gets)."""

    def __init__(self, blobs: Mapping[str, bytes | Exception]) -> None:
        self.blobs = dict(blobs)
        self.asked: list[tuple[str, str]] = []

    def fetch_many(self, wanted: list[tuple[str, str]]) -> dict[str, bytes | Exception]:
        self.asked.extend(wanted)
        return {h: self.blobs.get(h, BDFLError("fetch failed: connection")) for _u, h in wanted}


def _returning_peer() -> tuple[Peer, list[Candidate]]:
    """A peer resynced from round 3's approved updates A (1.0, weight 0.75) and B (4.0, 0.25): 1.75."""
    peer = Peer(index=0, address="0x" + "11" * 20, client=StepClient(), endpoint=None, settings=PeerSettings())
    a3, b3 = encode_ndarrays(_model(1.0)), encode_ndarrays(_model(4.0))
    now = [_cand("A", a3, 0.75), _cand("B", b3, 0.25)]
    assert resync_model(peer, 3, now, {now[0].hash: a3, now[1].hash: b3}) == ["A", "B"]
    assert np.allclose(peer.params[0], 1.75)
    return peer, now


def test_first_update_back_carries_the_rebuilt_velocity() -> None:
    peer, _now = _returning_peer()
    a2, b2, c2 = encode_ndarrays(_model(0.5)), encode_ndarrays(_model(2.0)), encode_ndarrays(_model(50.0))
    before = [_cand("A", a2, 0.75), _cand("B", b2, 0.25), _cand("C", c2, 1.0), _cand("D", encode_ndarrays(_model(80.0)), 1.0)]
    served = Served({before[0].hash: a2, before[1].hash: b2,
                     before[2].hash: bytes([c2[0] ^ 0xFF]) + c2[1:]})  # C's bytes do not match its hash; D is down
    rejections = len(peer.rejections)
    assert resume_momentum(peer, 3, before, served.fetch_many) == ["A", "B"]
    assert sorted(served.asked) == sorted((c.url, c.hash) for c in before)
    assert len(peer.rejections) == rejections  # nothing was used or voted on: no rejection recorded
    # previous start 0.75 * 0.5 + 0.25 * 2 = 0.875; round 4: 1.75 + 1 (fit) + 0.5 * (1.75 - 0.875)
    peer.train(4, momentum=0.5)
    assert peer.trained[0].dtype == np.float32 and np.allclose(peer.trained[0], 1.75 + 1 + 0.5 * 0.875)
    assert peer.trained[1].tolist() == [5]  # a counter is not extrapolated
    # and it continues from its own rounds afterwards: start 3.1875 after aggregating alone, previous 1.75
    peer.aggregate(4, [], {})
    peer.train(5, momentum=0.5)
    assert np.allclose(peer.trained[0], 3.1875 + 1 + 0.5 * (3.1875 - 1.75))


def test_no_velocity_when_no_earlier_update_verifies() -> None:
    peer, _now = _returning_peer()
    a2 = encode_ndarrays(_model(0.5))
    before = [_cand("A", a2, 0.75)]
    assert resume_momentum(peer, 3, before, Served({before[0].hash: a2[:-1] + bytes([a2[-1] ^ 0xFF])}).fetch_many) == []
    assert resume_momentum(peer, 3, [], Served({}).fetch_many) == []
    assert peer.last_start is None and peer.last_aggregate is None
    peer.train(4, momentum=0.5)
    assert np.allclose(peer.trained[0], 2.75)  # the fit alone, as before this rebuild existed


def test_a_model_replaced_after_the_rebuild_gets_no_velocity() -> None:
    peer, _now = _returning_peer()
    a2 = encode_ndarrays(_model(0.5))
    before = [_cand("A", a2, 1.0)]
    assert resume_momentum(peer, 3, before, Served({before[0].hash: a2}).fetch_many) == ["A"]
    peer.params = _model(9.0)  # not the resynced model any more: its velocity does not apply
    peer.train(4, momentum=0.5)
    assert np.allclose(peer.trained[0], 10.0)
    # nor in another round than the one after the resync
    peer, _now = _returning_peer()
    assert resume_momentum(peer, 3, before, Served({before[0].hash: a2}).fetch_many) == ["A"]
    peer.train(5, momentum=0.5)
    assert np.allclose(peer.trained[0], 2.75)


def test_velocity_is_not_applied_with_momentum_off() -> None:
    peer, _now = _returning_peer()
    a2 = encode_ndarrays(_model(0.5))
    before = [_cand("A", a2, 1.0)]
    assert resume_momentum(peer, 3, before, Served({before[0].hash: a2}).fetch_many) == ["A"]
    peer.train(4, momentum=0.0)
    assert np.allclose(peer.trained[0], 2.75)


def test_a_saved_own_model_gets_the_velocity_of_the_two_resync_models() -> None:
    """``bdfl peer`` restarted after aggregating round 3 (its saved model, 2.0: not a resync
    model) and before training: the velocity resync(3) - resync(2) is rebuilt from both rounds'
    verified updates, so its previous start is 2.0 less it."""
    peer = Peer(index=0, address="0x" + "11" * 20, client=StepClient(), endpoint=None, settings=PeerSettings())
    peer.params = _model(2.0)
    a3, b3, a2, b2 = (encode_ndarrays(_model(v)) for v in (1.0, 4.0, 0.5, 2.0))
    now = [_cand("A", a3, 0.75), _cand("B", b3, 0.25)]  # resync(3) = 1.75
    before = [_cand("A", a2, 0.75), _cand("B", b2, 0.25)]  # resync(2) = 0.875
    served = Served({c.hash: d for c, d in zip([*now, *before], [a3, b3, a2, b2])})
    assert resume_momentum(peer, 3, before, served.fetch_many, resynced_from=now) == ["A", "B"]
    assert np.allclose(peer.params[0], 2.0)  # its own model is kept
    peer.train(4, momentum=0.5)  # 2 + 1 + 0.5 * (1.75 - 0.875)
    assert np.allclose(peer.trained[0], 3.0 + 0.5 * 0.875) and peer.trained[1].tolist() == [5]
    # with no verifiable update of round 3, no velocity
    peer = Peer(index=0, address="0x" + "11" * 20, client=StepClient(), endpoint=None, settings=PeerSettings())
    peer.params = _model(2.0)
    served.blobs.pop(now[0].hash), served.blobs.pop(now[1].hash)
    assert resume_momentum(peer, 3, before, served.fetch_many, resynced_from=now) == []
    peer.train(4, momentum=0.5)
    assert np.allclose(peer.trained[0], 3.0)
