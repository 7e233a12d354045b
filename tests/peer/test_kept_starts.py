"""Issue 23 (model size): the trainers' starts one round's audit rebuilt are kept for the next
round's earlier moves (bdfl.peer.decode_cache.KeptStarts) instead of being rebuilt, only where
the move's recipe is exactly the one they were rebuilt from, read-only while held, the latest
round only; the moves come out bit for bit as rebuilt ones, and the updates stay hash-checked."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from bdfl.net.serialization import encode_ndarrays, hash_hex, update_hash
from bdfl.peer.decode_cache import DecodeCache, KeptStarts
from bdfl.peer.node import Peer, PeerSettings
from bdfl.peer.sources import PastMove, StartSource
from bdfl.peer.stages.audit import rebuild

SHAPES = [(7, 5), (5,), (3, 4)]


def _model(seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(np.float32) for s in SHAPES]


def _peer() -> Peer:
    client = SimpleNamespace(get_parameters=lambda _config: [np.zeros(s, dtype=np.float32) for s in SHAPES])
    peer = Peer(index=0, address="0x" + "11" * 20, client=client, endpoint=None, settings=PeerSettings())
    peer.decode_cache = DecodeCache()  # as in a worker: shared read-only decodes
    return peer


@pytest.fixture
def world() -> dict[str, Any]:
    """Round 3's updates of trainers T0..T3 (the starts of round 4 average them), their round-4
    updates, and each trainer's round-4 recipe (own round-3 update first, then two others)."""
    r3 = {f"T{i}": encode_ndarrays(_model(i)) for i in range(4)}
    r4 = {f"T{i}": encode_ndarrays(_model(10 + i)) for i in range(4)}
    h3 = {t: hash_hex(update_hash(b)) for t, b in r3.items()}
    h4 = {t: hash_hex(update_hash(b)) for t, b in r4.items()}
    recipes = {t: [StartSource(t, h3[t], 0.5 + 0.1 * i)] + [StartSource(o, h3[o], 0.3 + 0.2 * j)
                                                              for j, o in enumerate(x for x in h3 if x != t) if j < 2]
               for i, t in enumerate(h3)}
    fetched = {**{h3[t]: b for t, b in r3.items()}, **{h4[t]: b for t, b in r4.items()}}
    past = {t: PastMove(4, h4[t], recipes[t]) for t in h4}
    return {"recipes": recipes, "fetched": fetched, "past": past, "h4": h4}


def test_take_hands_over_only_the_same_recipes_start_once(world: dict[str, Any]) -> None:
    peer, recipes = _peer(), world["recipes"]
    starts = peer.rebuild_starts(recipes, world["fetched"], 3)
    kept = KeptStarts()
    kept.keep(4, recipes, starts)
    assert len(kept) == 4
    for a in starts["T0"]:  # read-only while held: no peer can change what the next round reads
        with pytest.raises(ValueError):
            a[...] = 0
    other_weight = [StartSource(s.peer, s.hash, s.weight + 1e-12) for s in recipes["T1"]]
    reordered = list(reversed(recipes["T2"]))
    assert kept.take("T1", 4, other_weight) is None  # a different weight: not the same average
    assert kept.take("T2", 4, reordered) is None  # another order: not the same sums
    assert kept.take("T3", 5, recipes["T3"]) is None  # another round
    got = kept.take("T0", 4, recipes["T0"])
    assert got is not None and all(x is y for x, y in zip(got, starts["T0"]))
    assert kept.take("T0", 4, recipes["T0"]) is None  # handed over once: the caller owns it
    assert (kept.hits, kept.misses) == (1, 4)
    # case does not matter in addresses and hashes (the chain's spelling varies)
    kept.keep(4, recipes, starts)
    upper = [StartSource(s.peer.upper(), s.hash.upper().replace("0X", "0x"), s.weight) for s in recipes["T3"]]
    assert kept.take("T3", 4, upper) is not None


def test_keep_holds_the_latest_round_only(world: dict[str, Any]) -> None:
    peer, recipes = _peer(), world["recipes"]
    starts = peer.rebuild_starts(recipes, world["fetched"], 3)
    kept = KeptStarts()
    kept.keep(4, recipes, starts)
    kept.keep(5, {"T0": recipes["T0"]}, {"T0": starts["T0"], "T9": starts["T1"]})  # T9: no recipe, not kept
    assert len(kept) == 1 and kept.round == 5
    assert kept.take("T1", 4, recipes["T1"]) is None  # round 4's were dropped
    kept.clear()
    assert len(kept) == 0 and kept.take("T0", 5, recipes["T0"]) is None


def test_moves_from_kept_starts_are_bit_identical_and_reuse_their_memory(world: dict[str, Any]) -> None:
    peer, recipes, fetched, past = _peer(), world["recipes"], world["fetched"], world["past"]
    expected = _peer().rebuild_past_moves(past, fetched)  # rebuilt from scratch
    kept = KeptStarts()
    kept.keep(4, recipes, peer.rebuild_starts(recipes, fetched, 3))
    held = {t: [a.__array_interface__["data"][0] for a in kept._entries[t][1]] for t in recipes}  # noqa: SLF001
    starts, moves, _earlier = rebuild(peer, 5, {}, past, fetched, kept)
    assert starts == {} and sorted(moves) == sorted(expected) == ["T0", "T1", "T2", "T3"]
    for t in expected:
        for m, e in zip(moves[t], expected[t]):
            assert m.dtype == e.dtype and m.tobytes() == e.tobytes()  # the same bits
        assert [a.__array_interface__["data"][0] for a in moves[t]] == held[t]  # computed into the kept starts
    assert kept.hits == 4 and len(kept) == 0


def test_a_kept_start_never_skips_the_updates_hash_check(world: dict[str, Any]) -> None:
    """The start is kept, but the move's update bytes are checked as always: wrong bytes under
    the committed hash give no move, and nothing is taken from a recipe that differs."""
    peer, recipes, fetched, past = _peer(), world["recipes"], dict(world["fetched"]), world["past"]
    kept = KeptStarts()
    kept.keep(4, recipes, peer.rebuild_starts(recipes, fetched, 3))
    bad = bytearray(fetched[world["h4"]["T1"]])
    bad[-1] ^= 0x01  # one flipped bit in the body
    fetched[world["h4"]["T1"]] = bytes(bad)
    changed = {**past, "T2": PastMove(4, past["T2"].hash, [StartSource("T2", past["T2"].start[0].hash, 9.0)])}
    _starts, moves, _earlier = rebuild(peer, 5, {}, changed, fetched, kept)
    assert "T1" not in moves  # corrupted update: no move, kept start or not
    expected = _peer().rebuild_past_moves({"T2": changed["T2"]}, world["fetched"])["T2"]
    assert all(m.tobytes() == e.tobytes() for m, e in zip(moves["T2"], expected))  # rebuilt from its own recipe
    assert kept.hits == 3 and kept.misses == 1  # T0, T1 (its start), T3 taken; T2 missed
