"""The fetcher's cache of verified bodies bounded in updates (``cache_updates``) as well as bytes:
a simulation worker keeps three rounds of N updates whatever the model's size (bdfl.net.fetch)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bdfl.net.blobserver import BlobHost, Endpoint
from bdfl.net.fetch import Fetcher, HashMismatch, memory_budget
from bdfl.net.serialization import HashedBytes

MB = 1 << 20


@pytest.fixture(scope="module")
def host() -> Iterator[BlobHost]:
    h = BlobHost()
    yield h
    h.close()


@pytest.fixture()
def ep(host: BlobHost) -> Iterator[Endpoint]:
    e = host.add_endpoint(max_blob_bytes=MB, retain=None)  # every round's updates stay served
    yield e
    e.close()


def _rounds(ep: Endpoint, f: Fetcher, peers: int, rounds: int, size: int) -> list[int]:
    """A worker's fetches over ``rounds`` rounds, as the audit and aggregate phases ask: the
    round's candidates with last round's (starts) and the round before's (earlier moves), then
    the round's updates again (aggregation). Returns the bodies received per round."""
    published: list[list[str]] = []
    per_round = []
    for r in range(rounds):
        published.append([ep.publish(bytes([r, i]) + b"w" * size) for i in range(peers)])
        before = f.bodies_fetched
        wanted = [h for back in range(3) if r - back >= 0 for h in published[r - back]]
        got = f.fetch_many([(ep.url, h) for h in wanted])
        assert all(isinstance(got[h], HashedBytes) for h in wanted), [got[h] for h in wanted if not isinstance(got[h], HashedBytes)][:2]
        f.fetch_many([(ep.url, h) for h in published[r]])
        per_round.append(f.bodies_fetched - before)
    return per_round


def test_three_rounds_of_updates_kept_whatever_their_size(ep: Endpoint) -> None:
    """Sized in updates (3 N), each body is received once, for small and large bodies alike; a
    byte size that holds two bodies receives the earlier rounds' again every round (the fixed
    128 MiB cache with 44 MB updates)."""
    peers, rounds = 5, 5
    for size in (1_000, 100_000):
        with Fetcher(max_bytes=MB, timeout=2.0, retries=0, cache_bytes=64 * MB, cache_updates=3 * peers) as f:
            assert _rounds(ep, f, peers, rounds, size) == [peers] * rounds
            assert len(f._cache) == 3 * peers
        with Fetcher(max_bytes=MB, timeout=2.0, retries=0, cache_bytes=2 * (size + 2)) as f:
            fetched = _rounds(ep, f, peers, rounds, size)
            assert all(n > peers for n in fetched) and sum(fetched[2:]) > 3 * peers * (rounds - 2), fetched
    with Fetcher(max_bytes=MB, timeout=2.0, retries=0, cache_bytes=64 * MB, cache_updates=2 * peers) as f:
        assert sum(_rounds(ep, f, peers, rounds, 1_000)[2:]) > 3 * peers  # a round short: some received again


def test_the_byte_bound_still_holds_with_an_update_count(ep: Endpoint) -> None:
    hs = [ep.publish(bytes([i]) * 1000) for i in range(4)]
    with Fetcher(max_bytes=MB, timeout=2.0, retries=0, cache_bytes=2500, cache_updates=10) as f:
        f.fetch_many([(ep.url, h) for h in hs])
        assert len(f._cache) == 2 and f._cached == 2000
    with Fetcher(max_bytes=MB, timeout=2.0, retries=0, cache_bytes=MB, cache_updates=3) as f:
        f.fetch_many([(ep.url, h) for h in hs[:3]])
        f.fetch_many([(ep.url, hs[0])])  # hs[0] used last: hs[1] goes first
        f.fetch_many([(ep.url, hs[3])])
        assert set(f._cache) == {hs[0], hs[2], hs[3]}
        assert f.fetch_many([(ep.url, h) for h in hs])[hs[1]] == bytes([1]) * 1000
        assert (f.bodies_fetched, f.cache_hits) == (5, 4)


def test_a_corrupt_body_is_not_kept_under_an_update_count(ep: Endpoint) -> None:
    """Adversary: an endpoint serving other bytes under a hash; a count-bounded cache keeps
    nothing, so the next fetch asks again."""
    data = b"honest" * 200
    h = ep.publish(data)
    ep.set_fault("corrupt")
    with Fetcher(max_bytes=MB, timeout=2.0, retries=0, cache_bytes=MB, cache_updates=100) as f:
        assert isinstance(f.fetch_many([(ep.url, h)])[h], HashMismatch)
        assert not f._cache
        ep.set_fault(None)
        assert f.fetch_many([(ep.url, h)])[h] == data and f.bodies_fetched == 1 and f.cache_hits == 0


def test_bad_cache_updates_refused_and_memory_budget() -> None:
    with pytest.raises(ValueError, match="cache_updates"):
        Fetcher(max_bytes=MB, cache_updates=-1)
    floor = 128 * MB
    assert memory_budget(0.0) == floor
    assert memory_budget(0.0, floor=5) == 5
    assert memory_budget(0.5) > memory_budget(0.25) >= floor
