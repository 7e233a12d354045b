"""Where a trainer's round started, as its auditors rebuild it: the recipe (own update first,
then the updates it may aggregate, with their weights) follows the aggregation rule exactly,
and the rebuilt model is the weighted average of hash-checked bytes."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from bdfl.chain.protocol import Outcome
from bdfl.config import from_dict
from bdfl.defense import make_strategy
from bdfl.defense.audited import Audited
from bdfl.net.serialization import encode_ndarrays, hash_hex, update_hash
from bdfl.peer.node import Peer, PeerSettings
from bdfl.peer.overlay_tracker import OverlayTracker
from bdfl.peer.sources import MoveHistory, PastMove, StartSource, aggregation_rule, sources_of, start_model, start_recipes
from tests.experiment.test_aggregation_inputs import ADDRS, _subs, _worker

N = len(ADDRS)


def _overlay(members: list[str] = ADDRS) -> Any:
    return OverlayTracker("expander", 4).update(members, b"\x07" * 32)


def _rule(subs: list[Any], **defense: Any) -> Any:
    defense = {"bdfl": {"max_reject_share": 1.0, "dissent_limit": 1.0}, **defense}  # every approved update
    cfg = from_dict({"peers": N, "overlay": {"degree": 4, "min_sources": 2}, "defense": defense})
    return aggregation_rule(cfg, subs, {a: 0.3 + 0.05 * i for i, a in enumerate(ADDRS)})


def test_a_recipe_is_the_own_update_then_the_aggregation_sources() -> None:
    g = _overlay()
    subs = _subs(rejected={1, 2, 3})
    rule = _rule(subs)
    recipes = start_recipes(rule, g, subs)
    assert sorted(recipes) == sorted(ADDRS)  # every submitter that is a member (rejected ones too)
    for s in subs:
        recipe = recipes[s.peer]
        assert recipe[0] == StartSource(s.peer, "0x" + s.update_hash.hex(), pytest.approx(0.3 + 0.05 * s.index))
        assert [x.peer for x in recipe[1:]] == sources_of(rule, g, s.peer)
        assert all(x.peer in rule.usable and x.hash == rule.usable[x.peer] for x in recipe[1:])
        assert [x.weight for x in recipe] == [rule.weight(x.peer) for x in recipe]


def test_recipes_match_what_the_simulated_peers_aggregate() -> None:
    """Each simulated peer's aggregation plan (its inputs and own weight); the recipes the round
    memory keeps for the next round's auditors are exactly those, own update first."""
    o = _worker(overlay={"degree": 4, "min_sources": 2})
    subs = _subs(rejected={0, 5}, contested={7})
    inputs, own = o._inputs(3, subs)
    assert o.memory.recipes is not None and o.memory.recipes[0] == 4
    kept = o.memory.recipes[1]
    for s in subs:
        recipe = kept[s.peer]
        assert recipe[0].hash == "0x" + s.update_hash.hex() and recipe[0].weight == own[s.peer]
        assert [(x.peer, x.hash, x.weight) for x in recipe[1:]] == [(c["peer"], c["hash"], c["weight"]) for c in inputs[s.peer]]


def test_no_recipes_when_switched_off_or_under_a_baseline() -> None:
    for overrides in ({"defense": {"rebuild_starts": False}}, {"defense": {"name": "fedavg"}}):
        o = _worker(**overrides)
        o._inputs(0, _subs(rejected=set()))
        assert o.memory.recipes is None


def test_a_peer_outside_the_overlay_has_no_recipe() -> None:
    subs = _subs(rejected=set())
    recipes = start_recipes(_rule(subs), _overlay(ADDRS[1:]), subs)
    assert ADDRS[0] not in recipes and len(recipes) == N - 1
    assert start_recipes(_rule(subs), None, subs) == {}


def test_start_model_is_the_weighted_average_or_none() -> None:
    a = [np.array([1.0, 2.0], dtype=np.float32)]
    b = [np.array([3.0, 6.0], dtype=np.float32)]
    recipe = [StartSource("A", "0xa", 1.0), StartSource("B", "0xb", 3.0)]
    got = start_model(recipe, {"0xa": a, "0xb": b})
    assert got is not None and got[0].dtype == np.float32
    np.testing.assert_array_equal(got[0], make_strategy("bdfl").combine(a, [b], [1.0, 3.0])[0])
    np.testing.assert_allclose(got[0], [2.5, 5.0])
    assert start_model(recipe, {"0xa": a}) is None  # a model missing
    assert start_model([StartSource("A", "0xa", 0.0)], {"0xa": a}) is None  # weights sum to zero
    assert start_model([], {}) is None


def _peer_and_blobs(values: dict[str, float]) -> tuple[Peer, dict[str, bytes], dict[str, str]]:
    """A peer with a 3-parameter model, and for each name a constant model's bytes and hash."""
    client = SimpleNamespace(get_parameters=lambda _config: [np.zeros(3, dtype=np.float32)])
    peer = Peer(index=0, address="0x" + "11" * 20, client=client, endpoint=None, settings=PeerSettings())
    blobs = {k: encode_ndarrays([np.full(3, v, dtype=np.float32)]) for k, v in values.items()}
    return peer, blobs, {k: hash_hex(update_hash(b)) for k, b in blobs.items()}


def test_peer_rebuilds_starts_from_hash_checked_bytes_only() -> None:
    peer, blobs, h = _peer_and_blobs({"x": 1.0, "y": 3.0, "z": 5.0})
    recipes = {
        "T1": [StartSource("T1", h["x"], 1.0), StartSource("N", h["y"], 1.0)],
        "T2": [StartSource("T2", h["z"], 1.0), StartSource("N", h["y"], 1.0)],
        "T3": [StartSource("T3", h["x"], 1.0)],
    }
    fetched: dict[str, Any] = {h["x"]: blobs["x"], h["y"]: blobs["y"], h["z"]: blobs["x"]}  # z's bytes are wrong
    starts = peer.rebuild_starts(recipes, fetched, 2)
    assert sorted(starts) == ["T1", "T3"]  # T2's recipe has a model that does not match its hash
    np.testing.assert_allclose(starts["T1"][0], [2.0, 2.0, 2.0])
    np.testing.assert_allclose(starts["T3"][0], [1.0, 1.0, 1.0])
    assert peer.rejections == []  # a recipe model that fails is not a vote or an input: nothing recorded


def test_move_history_finds_the_latest_not_rejected_move_within_the_window() -> None:
    """A trainer's earlier move is its update of a round with the recipe it started that round
    from; a rejected update is skipped (an attacker keeps being compared with its last
    accepted move), a round without a recipe gives none, and moves older than the window expire."""
    recipes = {a: [StartSource(a, f"0xstart{i}", 1.0)] for i, a in enumerate(ADDRS)}
    h = MoveHistory(window=2)
    h.record(1, _subs(rejected=set()), None)  # the first round: no recipes, no moves
    assert h.latest(ADDRS[0], 2) is None
    h.record(2, _subs(rejected=set()), recipes)
    h.record(3, _subs(rejected={0}), recipes)
    got = h.latest(ADDRS[0], 4)  # rejected in round 3: its round-2 move
    assert got == PastMove(2, "0x" + (bytes([0]) * 32).hex(), recipes[ADDRS[0]])
    assert h.latest(ADDRS[1], 4).round == 3
    assert h.latest(ADDRS[0], 5) is None  # round 2 is more than 2 rounds before round 5
    assert h.latest(ADDRS[1], 5).round == 3
    assert h.latest(ADDRS[1], 3).round == 2  # only rounds before the asked one
    h.record(4, _subs(rejected=set()), {ADDRS[1]: recipes[ADDRS[1]]})  # ADDRS[0] had no recipe in round 4
    assert h.latest(ADDRS[0], 5) is None and h.latest(ADDRS[1], 5).round == 4
    off = MoveHistory(window=0)
    off.record(2, _subs(rejected=set()), recipes)
    assert off.latest(ADDRS[1], 3) is None
    with pytest.raises(ValueError):
        MoveHistory(window=-1)


def test_round_memory_hands_auditors_each_trainers_earlier_move() -> None:
    """The round memory records each closed round with the recipes its trainers started from,
    so round 5's auditors get round 4's update and round-4 start recipe of each trainer."""
    o = _worker(overlay={"degree": 4, "min_sources": 2})
    o._inputs(3, _subs(rejected=set()))
    started = o.memory.recipes[1]
    o._inputs(4, _subs(rejected={2}))
    assert o.memory.moves.latest(ADDRS[0], 5) == PastMove(4, "0x" + (bytes([0]) * 32).hex(), started[ADDRS[0]])
    assert o.memory.moves.latest(ADDRS[2], 5) is None  # rejected in round 4; round 3 had no recipes here
    off = _worker(defense={"consistency_window": 0})
    off._inputs(3, _subs(rejected=set()))
    off._inputs(4, _subs(rejected=set()))
    assert off.memory.moves.latest(ADDRS[0], 5) is None


def test_peer_rebuilds_earlier_moves_from_hash_checked_bytes_only() -> None:
    peer, blobs, h = _peer_and_blobs({"s1": 1.0, "s2": 3.0, "u": 4.0})
    past = {
        "T1": PastMove(3, h["u"], [StartSource("T1", h["s1"], 1.0), StartSource("N", h["s2"], 1.0)]),
        "T2": PastMove(3, "0x" + "ab" * 32, [StartSource("T2", h["s1"], 1.0)]),  # its update's bytes are missing
        "T3": PastMove(3, h["u"], [StartSource("T3", "0x" + "cd" * 32, 1.0)]),  # its start cannot be rebuilt
    }
    fetched: dict[str, Any] = dict(zip(h.values(), blobs.values()))
    fetched["0x" + "cd" * 32] = blobs["s1"]  # bytes that do not match the hash
    moves = peer.rebuild_past_moves(past, fetched)
    assert sorted(moves) == ["T1"]
    np.testing.assert_allclose(moves["T1"][0], [2.0, 2.0, 2.0])  # 4 - (1 + 3) / 2


def test_the_rebuilt_start_merges_copies_as_the_trainer_did() -> None:
    """Mimic's copies count once in a trainer's aggregation (bdfl.defense.audited); the start an
    auditor rebuilds from the same recipe must too, or every honest trainer with a copier among
    its sources would be judged from the wrong start."""
    rng = np.random.default_rng(3)
    own, honest, copied = ([rng.normal(size=(3, 2)).astype(np.float32)] for _ in range(3))
    models = {"0xa": own, "0xb": honest, "0xc": copied, "0xd": [a.copy() for a in copied], "0xe": [a.copy() for a in copied]}
    recipe = [StartSource("p0", "0xa", 0.5), StartSource("p1", "0xb", 0.9),
              StartSource("p2", "0xc", 0.6), StartSource("p3", "0xd", 0.3), StartSource("p4", "0xe", 0.7)]
    rebuilt = start_model(recipe, models)
    trained = Audited().combine(own, [honest, models["0xc"], models["0xd"], models["0xe"]], [0.5, 0.9, 0.6, 0.3, 0.7])
    assert rebuilt is not None and all(np.array_equal(a, b) for a, b in zip(rebuilt, trained))
    want = (0.5 * own[0].astype(np.float64) + 0.9 * honest[0] + 0.7 * copied[0]) / 2.1  # the copies once, at their largest weight
    assert np.allclose(rebuilt[0], want, atol=1e-6)
