"""A returning peer's quasi-global momentum (bdfl.peer.rejoin.resume_momentum,
bdfl.peer.stages.aggregate.velocity_plan; docs/learning.md "Quasi-global momentum"):

* for each of the resync's sources, the start it was judged from in that round: the recipe
  the round state recorded (what auditors rebuild), else rebuilt from the round before; a
  source that did not submit then has none; nothing when the resync did not come from the
  last closed round or from round 0;
* with real encoded updates: each source's move is its update less the weighted average of
  its recipe's models that verify (its own update of the round before must), the velocity
  their weighted mean, and the first update back carries ``beta * velocity``; with no source
  verified it carries no velocity (as before); no rejection is recorded.
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
from bdfl.peer.sources import MoveHistory, StartSource, sources_of
from tests.learning.test_momentum_mixing import StepClient
from tests.peer.test_aggregation_plan import ADDRS, ME, NB, SAMPLES, FakeChain, _peer


class RoundChain(FakeChain):
    """Approvals differ per round (``approved_in``: round -> approved addresses, else all),
    members may not submit (``absent_in``), and each round's update hashes are its own."""

    def __init__(self, approved_in: dict[int, set[str]], absent_in: dict[int, set[str]] | None = None) -> None:
        super().__init__(set(ADDRS))
        self.approved_in = approved_in
        self.absent_in = absent_in or {}

    def submissions(self, rnd: int) -> list[Submission]:
        approved = self.approved_in.get(rnd, set(ADDRS))
        return [Submission(i, a, SAMPLES[a], True, Outcome.APPROVED if a in approved else Outcome.REJECTED,
                           bytes([16 * rnd + i + 1]) * 32, 0b11111, 0b11111 if a in approved else 0,
                           5 if a in approved else 0, 0 if a in approved else 5)
                for i, a in enumerate(ADDRS) if a not in self.absent_in.get(rnd, set())]


def _hash_of(rnd: int, addr: str) -> str:
    return "0x" + (bytes([16 * rnd + ADDRS.index(addr) + 1]) * 32).hex()


def test_velocity_plan_gives_each_source_the_start_it_was_judged_from() -> None:
    # round 2: NB[1]'s update rejected (its own update still starts its recipe: what a trainer
    # started from is the protocol's start), NB[0]'s approved
    e = _peer("bdfl", "reputation", set(), chain=RoundChain({2: set(ADDRS) - {NB[1]}}))
    source, tiers = stages.aggregate.resync_plan(e, 3)
    assert source == 3 and [c.peer for c in tiers[0]] == NB
    plan, others = stages.aggregate.velocity_plan(e, 3, source, tiers[0])
    assert [cand for cand, _recipe in plan] == tiers[0]  # each source's update of round 3, weight unchanged
    rule2 = e.memory.rule(e.view.closed(2))
    overlay = e.memory.tracker.overlay
    for cand, recipe in plan:
        assert recipe[0].peer == cand.peer and recipe[0].hash == _hash_of(2, cand.peer)  # its own update first
        assert [c.peer for c in recipe[1:]] == sources_of(rule2, overlay, cand.peer)  # then its approved sources
        assert all(c.hash == _hash_of(2, c.peer) and c.url == e.view.endpoint_of(c.peer) for c in recipe)
        assert [c.weight for c in recipe] == [pytest.approx(rule2.weight(c.peer)) for c in recipe]
    # the second tier: the next overlay.degree (2) usable updates of round 3 by weight, not its own
    rule3 = e.memory.rule(e.view.closed(3))
    rest = sorted((a for a in ADDRS if a not in (*NB, ME)), key=lambda a: (-rule3.weight(a), a))[:2]
    assert [cand.peer for cand, _r in others] == rest and all(r[0].peer == c.peer for c, r in others)
    # none: a resync from an older round (the last closed one had nothing usable), no sources,
    # or a resync from round 0 (there is no round before it)
    assert stages.aggregate.velocity_plan(e, 3, 2, tiers[0]) == []
    assert stages.aggregate.velocity_plan(e, 3, 3, []) == []
    e0 = _peer("bdfl", "reputation", set(), chain=RoundChain({}))
    source0, tiers0 = stages.aggregate.resync_plan(e0, 0)
    assert source0 == 0 and tiers0[0] and stages.aggregate.velocity_plan(e0, 0, 0, tiers0[0]) == []


def test_velocity_plan_prefers_the_recorded_recipe_and_skips_a_source_without_one() -> None:
    # NB[1] did not submit in round 2: it has no start recipe for round 3, so no move to count
    e = _peer("bdfl", "reputation", set(), chain=RoundChain({}, absent_in={2: {NB[1]}}))
    source, tiers = stages.aggregate.resync_plan(e, 3)
    assert [c.peer for c in tiers[0]] == NB
    assert [cand.peer for cand, _r in stages.aggregate.velocity_plan(e, 3, source, tiers[0])[0]] == [NB[0]]
    # the round state recorded NB[0]'s move of round 3 when it closed (what its auditors
    # rebuilt): that recipe, not one rebuilt on today's overlay
    e.memory.moves = MoveHistory(5)
    recorded = [StartSource(NB[0], _hash_of(2, NB[0]), 0.4), StartSource(ADDRS[5], _hash_of(2, ADDRS[5]), 0.6)]
    e.memory.moves.record(3, e.view.closed(3).submissions, {NB[0]: recorded})
    (cand, recipe), = stages.aggregate.velocity_plan(e, 3, source, tiers[0])[0]
    assert cand.peer == NB[0] and [(c.peer, c.hash, c.weight) for c in recipe] == [(x.peer, x.hash, x.weight) for x in recorded]


def test_velocity_plan_builds_the_fallback_tier_only_when_the_first_yields_no_move(monkeypatch: pytest.MonkeyPatch) -> None:
    # every source's move of round 3 recorded when it closed: the first tier needs no rebuilt
    # recipe; the fallback (other trainers, nothing recorded) would rebuild round 2's recipes
    e = _peer("bdfl", "reputation", set(), chain=RoundChain({}))
    source, tiers = stages.aggregate.resync_plan(e, 3)
    e.memory.moves = MoveHistory(5)
    e.memory.moves.record(3, e.view.closed(3).submissions,
                          {p: [StartSource(p, _hash_of(2, p), 1.0), StartSource(ADDRS[5], _hash_of(2, ADDRS[5]), 1.0)] for p in NB})
    eager = list(stages.aggregate.velocity_plan(e, 3, source, tiers[0]))  # both tiers, read in full
    assert [c.peer for c, _r in eager[0]] == NB and eager[1] and all(c.peer not in NB for c, _r in eager[1])

    calls = {"candidates": 0, "start_recipes": 0}

    def counted(name: str) -> None:
        real = getattr(stages.aggregate, name)

        def wrapper(*args: object, **kwargs: object) -> object:
            calls[name] += 1
            return real(*args, **kwargs)
        monkeypatch.setattr(stages.aggregate, name, wrapper)
    counted("candidates")
    counted("start_recipes")
    tried: list[object] = []
    verified: list[str] = []

    def resume_from(_peer: object, rnd: int, moves: list, _fetch: object) -> list[str]:
        assert rnd == 3
        tried.append(moves)
        return [cand.peer for cand, _r in moves if cand.peer in verified]
    monkeypatch.setattr("bdfl.peer.rejoin._resume_from", resume_from)

    # the first tier verifies: the fallback is never built (no candidates, no rebuilt recipes)
    verified[:] = [NB[0]]
    plan = stages.aggregate.velocity_plan(e, 3, source, tiers[0])
    assert resume_momentum(None, 3, plan, lambda wanted: {}) == [NB[0]]
    assert tried == [eager[0]] and calls == {"candidates": 0, "start_recipes": 0}

    # nothing of the first verifies: the fallback is built then, once, as the eager plan built it
    verified[:] = [c.peer for c, _r in eager[1]][:1]
    tried.clear()
    plan = stages.aggregate.velocity_plan(e, 3, source, tiers[0])
    assert calls == {"candidates": 0, "start_recipes": 0}
    assert resume_momentum(None, 3, plan, lambda wanted: {}) == verified
    assert tried == eager and calls == {"candidates": 1, "start_recipes": 1}
    assert plan[1] is plan[-1] and list(plan) == eager and calls == {"candidates": 1, "start_recipes": 1}


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


def _returning_peer() -> tuple[Peer, list[Candidate], dict[str, bytes]]:
    """A peer resynced from round 3's approved updates A (1.0, weight 0.75) and B (4.0, 0.25): 1.75."""
    peer = Peer(index=0, address="0x" + "11" * 20, client=StepClient(), endpoint=None, settings=PeerSettings())
    a3, b3 = encode_ndarrays(_model(1.0)), encode_ndarrays(_model(4.0))
    now = [_cand("A", a3, 0.75), _cand("B", b3, 0.25)]
    blobs = {now[0].hash: a3, now[1].hash: b3}
    assert resync_model(peer, 3, now, blobs) == ["A", "B"]
    assert np.allclose(peer.params[0], 1.75)
    return peer, now, blobs


def _src(peer: str, value: float, weight: float, blobs: dict[str, bytes]) -> Candidate:
    data = encode_ndarrays(_model(value))
    cand = _cand(peer, data, weight)
    blobs[cand.hash] = data
    return cand


def _moves(blobs: dict[str, bytes], now: list[Candidate]) -> list[tuple[Candidate, list[Candidate]]]:
    """A's start of round 3: own update of round 2 0.4 and X's 0.8, equal weights (0.6; move 1.0
    - 0.6 = 0.4); B's: its own 3.0 (move 4.0 - 3.0 = 1.0). Velocity 0.75 * 0.4 + 0.25 * 1.0 = 0.55."""
    return [(now[0], [_src("A", 0.4, 1.0, blobs), _src("X", 0.8, 1.0, blobs)]), (now[1], [_src("B", 3.0, 2.0, blobs)])]


def test_first_update_back_carries_the_sources_mean_move() -> None:
    peer, now, blobs = _returning_peer()
    moves = _moves(blobs, now)
    served = Served(blobs)
    rejections = len(peer.rejections)
    assert resume_momentum(peer, 3, [moves], served.fetch_many) == ["A", "B"]
    assert sorted(served.asked) == sorted({(c.url, c.hash) for cand, recipe in moves for c in (cand, *recipe)})
    assert len(peer.rejections) == rejections  # nothing was used or voted on: no rejection recorded
    peer.train(4, momentum=0.5)  # 1.75 + 1 (fit) + 0.5 * 0.55
    assert peer.trained[0].dtype == np.float32 and np.allclose(peer.trained[0], 1.75 + 1 + 0.5 * 0.55)
    assert peer.trained[1].tolist() == [5]  # a counter is not extrapolated
    # and it continues from its own rounds afterwards: start 3.025 after aggregating alone, previous 1.75
    peer.aggregate(4, [], {})
    peer.train(5, momentum=0.5)
    assert np.allclose(peer.trained[0], 3.025 + 1 + 0.5 * (3.025 - 1.75))


def test_a_start_is_what_verifies_and_a_source_needs_its_own_update() -> None:
    # X's update of round 2 cannot be fetched (its trainer crashed): A's start is its own 0.4
    # alone, as its aggregate was; velocity 0.75 * 0.6 + 0.25 * 1.0 = 0.7
    peer, now, blobs = _returning_peer()
    moves = _moves(blobs, now)
    del blobs[moves[0][1][1].hash]
    assert resume_momentum(peer, 3, [moves], Served(blobs).fetch_many) == ["A", "B"]
    peer.train(4, momentum=0.5)
    assert np.allclose(peer.trained[0], 1.75 + 1 + 0.5 * 0.7)
    # A's own update of round 2 does not match its hash: A is left out, B's move alone
    peer, now, blobs = _returning_peer()
    moves = _moves(blobs, now)
    own = moves[0][1][0].hash
    blobs[own] = bytes([blobs[own][0] ^ 0xFF]) + blobs[own][1:]
    assert resume_momentum(peer, 3, [moves], Served(blobs).fetch_many) == ["B"]
    peer.train(4, momentum=0.5)
    assert np.allclose(peer.trained[0], 1.75 + 1 + 0.5 * 1.0)


def test_the_second_tier_counts_only_when_the_first_yields_no_move() -> None:
    peer, now, blobs = _returning_peer()
    moves = _moves(blobs, now)
    other = [(_src("Y", 5.0, 1.0, blobs), [_src("Y", 4.0, 1.0, blobs)])]  # Y's move: 1.0
    served = Served(blobs)
    assert resume_momentum(peer, 3, [moves, other], served.fetch_many) == ["A", "B"]
    assert all(h != other[0][0].hash for _u, h in served.asked)  # the second tier was not fetched
    peer, now, blobs = _returning_peer()
    other = [(_src("Y", 5.0, 1.0, blobs), [_src("Y", 4.0, 1.0, blobs)])]
    assert resume_momentum(peer, 3, [[], other], Served(blobs).fetch_many) == ["Y"]  # say every source is a newcomer
    peer.train(4, momentum=0.5)
    assert np.allclose(peer.trained[0], 1.75 + 1 + 0.5 * 1.0)


def test_no_velocity_when_no_source_verifies() -> None:
    peer, now, blobs = _returning_peer()
    moves = _moves(blobs, now)
    for _cand_, recipe in moves:
        del blobs[recipe[0].hash]  # no source's own update of round 2 can be fetched
    assert resume_momentum(peer, 3, [moves], Served(blobs).fetch_many) == []
    assert resume_momentum(peer, 3, [], Served(blobs).fetch_many) == []
    assert peer.last_start is None and peer.last_aggregate is None
    peer.train(4, momentum=0.5)
    assert np.allclose(peer.trained[0], 2.75)  # the fit alone, as before this rebuild existed


def test_a_model_replaced_after_the_rebuild_gets_no_velocity() -> None:
    for replaced in (True, False):
        peer, now, blobs = _returning_peer()
        assert resume_momentum(peer, 3, [_moves(blobs, now)], Served(blobs).fetch_many) == ["A", "B"]
        if replaced:
            peer.params = _model(9.0)  # not the resynced model any more: its velocity does not apply
            peer.train(4, momentum=0.5)
            assert np.allclose(peer.trained[0], 10.0)
        else:  # nor in another round than the one after the resync
            peer.train(5, momentum=0.5)
            assert np.allclose(peer.trained[0], 2.75)


def test_velocity_is_not_applied_with_momentum_off() -> None:
    peer, now, blobs = _returning_peer()
    assert resume_momentum(peer, 3, [_moves(blobs, now)], Served(blobs).fetch_many) == ["A", "B"]
    peer.train(4, momentum=0.0)
    assert np.allclose(peer.trained[0], 2.75)


def test_a_saved_own_model_gets_the_same_velocity() -> None:
    """``bdfl peer`` restarted after aggregating round 3 (its saved model, 2.0: not a resync
    model) and before training: its previous start is 2.0 less the sources' mean move."""
    peer, now, blobs = _returning_peer()
    peer.params = _model(2.0)
    assert resume_momentum(peer, 3, [_moves(blobs, now)], Served(blobs).fetch_many) == ["A", "B"]
    assert np.allclose(peer.params[0], 2.0)  # its own model is kept
    peer.train(4, momentum=0.5)  # 2 + 1 + 0.5 * 0.55
    assert np.allclose(peer.trained[0], 3.0 + 0.5 * 0.55) and peer.trained[1].tolist() == [5]
