"""Issue 23 (model size): each fetched update is decoded once per process and shared read-only
by the peers hosted there (bdfl.peer.decode_cache), without weakening any peer's own checks."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

from bdfl.net.serialization import Binding, encode_ndarrays, hash_hex, update_hash
from bdfl.peer import node
from bdfl.peer.decode_cache import DecodeCache
from bdfl.peer.node import Candidate, Peer, PeerSettings
from tests.peer.auditors import CHAIN, RM, digits_auditor

ADDR = [f"0x{i:040x}" for i in range(1, 8)]  # auditors ADDR[0] and ADDR[6], trainers ADDR[1..5]


def _bound(model: list[np.ndarray], rnd: int, submitter: str) -> bytes:
    return encode_ndarrays(model, binding=Binding(CHAIN, RM, rnd, submitter))


def _cand(i: int, peer: str, data: bytes) -> Candidate:
    return Candidate(index=i, peer=peer, hash=hash_hex(update_hash(data)), url="http://x", weight=1.0)


def _second(first: Peer, address: str, settings: PeerSettings | None = None) -> Peer:
    """Another auditor in the same process: same client data, own identity."""
    p = Peer(index=1, address=address, client=first.client, endpoint=None, settings=settings or PeerSettings())
    p.domain = first.domain
    p.params, p.reference, p.trained = first.params, first.reference, first.trained
    return p


def _two_sharing(first: Peer) -> tuple[Peer, Peer, DecodeCache]:
    """Two auditors of one worker process sharing one decode cache."""
    a, b = _second(first, ADDR[0]), _second(first, ADDR[6])
    cache = DecodeCache()
    a.decode_cache = b.decode_cache = cache
    return a, b, cache


@pytest.fixture(scope="module")
def setup() -> tuple[Peer, list]:
    return digits_auditor(6, ADDR[0], domain=(CHAIN, RM))


def test_two_peers_in_one_process_get_the_same_read_only_arrays(setup: tuple[Peer, list]) -> None:
    first, trained = setup
    a, b, cache = _two_sharing(first)
    blob = _bound(trained[1], 3, ADDR[1])
    cand = _cand(0, ADDR[1], blob)
    got_a = a.decode_verified(3, cand, blob)
    got_b = b.decode_verified(3, cand, blob)
    assert got_a is not None and got_b is not None
    assert all(x is y for x, y in zip(got_a, got_b))  # one decode, the same arrays
    assert (cache.decodes, cache.hits, len(cache)) == (1, 1, 1)
    assert all(np.array_equal(x, t) and x.dtype == t.dtype for x, t in zip(got_a, trained[1]))
    assert not any(x.flags.writeable for x in got_a)
    with pytest.raises(ValueError):
        got_a[0][...] = 0.0  # one peer cannot change what another one judges


def test_shared_decodes_give_the_same_votes_and_aggregates_as_private_ones(setup: tuple[Peer, list]) -> None:
    first, trained = setup
    blobs = [_bound(m, 3, a) for m, a in zip(trained[1:6], ADDR[1:6])]
    cands = [_cand(i, a, b) for i, (a, b) in enumerate(zip(ADDR[1:6], blobs))]
    fetched = {c.hash: b for c, b in zip(cands, blobs)}
    private = _second(first, ADDR[0])
    shared = [_second(first, ADDR[0]), _second(first, ADDR[6])]
    cache = DecodeCache()
    for p in shared:
        p.decode_cache = cache
    want = private.audit(3, cands, fetched)
    assert shared[0].audit(3, cands, fetched) == want and shared[1].audit(3, cands, fetched) == want
    assert cache.decodes == 5 and cache.hits == 5
    private.aggregate(3, cands, fetched)
    shared[0].aggregate(3, cands, fetched)
    assert all(np.array_equal(x, y) for x, y in zip(private.params, shared[0].params))


class _PickFirst:
    """A selection rule that returns one of its inputs as it is (not a copy)."""

    uses_weights = False

    def combine(self, own: list, others: list, weights: object) -> list:
        return others[0]


def test_a_rule_that_returns_a_shared_input_leaves_the_peer_a_writable_copy(setup: tuple[Peer, list],
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    first, trained = setup
    monkeypatch.setattr(node, "make_strategy", lambda *_a, **_k: _PickFirst())
    blob = _bound(trained[1], 3, ADDR[1])
    cand = _cand(0, ADDR[1], blob)
    k = _second(first, ADDR[6])
    k.decode_cache = cache = DecodeCache()
    k.aggregate(3, [cand], {cand.hash: blob})
    again = _second(first, ADDR[0])
    again.decode_cache = cache
    shared = again.decode_verified(3, cand, blob)
    assert shared is not None and cache.hits == 1
    assert all(x.flags.writeable and x is not y for x, y in zip(k.params, shared))
    assert all(np.array_equal(x, t) for x, t in zip(k.params, trained[1]))
    k.params[0][...] = 0.0  # the peer's own model: changing it changes no shared decode
    assert np.array_equal(shared[0], trained[1][0])


def test_tampered_bytes_are_never_served_from_the_cache(setup: tuple[Peer, list]) -> None:
    first, trained = setup
    a, b, cache = _two_sharing(first)
    blob = _bound(trained[1], 3, ADDR[1])
    cand = _cand(0, ADDR[1], blob)
    assert a.decode_verified(3, cand, blob) is not None
    tampered = bytearray(blob)
    tampered[-5] ^= 0x01  # one body byte changed in transit; the committed hash is the genuine one's
    assert b.decode_verified(3, cand, bytes(tampered)) is None
    assert b.rejections[-1].reason == "hash_mismatch"
    assert (cache.decodes, cache.hits) == (1, 0)  # refused before any lookup
    # the same (genuine) bytes submitted under another member's name: the binding is checked
    # for that submission, not answered from the first submitter's cached decode
    copied = _cand(1, ADDR[2], blob)
    assert b.decode_verified(3, copied, blob) is None
    assert b.rejections[-1].reason == "binding_mismatch"
    assert b.decode_verified(3, copied, blob) is None  # the refusal is cached too, still a refusal
    assert cache.decodes == 2 and cache.hits == 1


def test_clear_frees_the_decoded_arrays(setup: tuple[Peer, list]) -> None:
    first, trained = setup
    a = _second(first, ADDR[0])
    cache = DecodeCache()
    a.decode_cache = cache
    blob = _bound(trained[2], 3, ADDR[2])
    got = a.decode_verified(3, _cand(0, ADDR[2], blob), blob)
    assert got is not None
    refs = [weakref.ref(x) for x in got]
    del got
    gc.collect()
    assert all(r() is not None for r in refs)  # held by the cache
    cache.clear()
    gc.collect()
    assert len(cache) == 0 and all(r() is None for r in refs)


def test_the_cache_keeps_views_into_the_fetched_bytes_not_copies(setup: tuple[Peer, list]) -> None:
    """Given the bytes, the shared decode is a read-only view into them (no second copy of the
    model), bit for bit the strict decode's arrays; bytes laid out otherwise keep the copies."""
    from bdfl.net.serialization import decode_ndarrays
    from bdfl.peer.decode_cache import body_views

    first, trained = setup
    a, _b, cache = _two_sharing(first)
    blob = _bound(trained[3], 3, ADDR[3])
    got = a.decode_verified(3, _cand(0, ADDR[3], blob), blob)
    assert got is not None and cache.views == 1
    assert all(np.shares_memory(np.frombuffer(blob, np.uint8), x) for x in got)
    copies = decode_ndarrays(blob, max_bytes=len(blob))
    assert all(x.dtype == c.dtype and x.shape == c.shape and x.tobytes() == c.tobytes() for x, c in zip(got, copies))
    assert not any(x.flags.writeable for x in got)
    # not the body's layout: a trailing byte, other values, a float64 reading of float32 bytes
    assert body_views(blob + b"\0", copies) is None
    assert body_views(blob, [c + 1 for c in copies]) is None
    assert body_views(blob, [c.astype(np.float64) for c in copies]) is None
    assert body_views(b"", copies) is None
