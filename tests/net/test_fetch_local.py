"""Issue 23 (model size): a simulation worker's fetcher takes its own peers' updates from their
endpoints' bytes (BlobHost.served, Fetcher(local=...)) instead of an HTTP copy of each, with the
same hash check, and falls back to HTTP wherever the local bytes are not exactly the committed ones."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bdfl.net.blobserver import BlobHost
from bdfl.net.fetch import FetchError, Fetcher
from bdfl.net.serialization import HashedBytes, hash_hex, update_hash

MB = 1024 * 1024


@pytest.fixture
def host() -> Iterator[BlobHost]:
    with BlobHost() as h:
        h.add_endpoint(max_blob_bytes=0, serve_routes=True)
        yield h


def _fetcher(host: BlobHost, **kw: object) -> Fetcher:
    return Fetcher(max_bytes=MB, timeout=5.0, retries=0, loop=host.loop_thread, local=host.served, **kw)  # type: ignore[arg-type]


def test_a_co_hosted_update_is_the_endpoints_own_bytes_without_a_request(host: BlobHost) -> None:
    ep = host.add_endpoint(route="00001", max_blob_bytes=MB)
    data = HashedBytes.of(b"an update" * 1000)
    h = ep.publish(data)
    f = _fetcher(host, cache_bytes=64 * MB, cache_updates=4)
    got = f.fetch_many([(ep.url, h)])
    assert got[h] is data  # no copy
    assert (f.local_bodies, f.local_bytes, f.bytes_received, f.bodies_fetched, ep.bytes_sent) == (1, len(data), 0, 0, 0)
    assert f.fetch_many([(ep.url, h)])[h] is data  # kept in the fetch cache: the same object
    assert f.cache_hits == 1 and (f.local_bodies, f.local_bytes) == (1, len(data))  # a cache hit moves nothing


def test_plain_bytes_are_hashed_and_unknown_urls_go_over_http(host: BlobHost) -> None:
    ep = host.add_endpoint(route="00002", max_blob_bytes=MB)
    h = ep.publish(b"plain bytes" * 100)  # not HashedBytes: hashed when taken
    f = _fetcher(host)
    got = f.fetch_many([(ep.url + "/", h)])[h]
    assert isinstance(got, HashedBytes) and hash_hex(update_hash(bytes(got))) == h
    assert f.local_bodies == 1
    other = BlobHost()  # an endpoint of another process (host): fetched over HTTP
    try:
        remote = other.add_endpoint(max_blob_bytes=MB)
        rh = remote.publish(b"remote" * 100)
        assert f.fetch_many([(remote.url, rh)])[rh] == b"remote" * 100
        assert f.local_bodies == 1 and f.bodies_fetched == 1
        # bytes read = over HTTP + in process, each counted once, apart
        assert (f.local_bytes, f.bytes_received) == (len(b"plain bytes" * 100), len(b"remote" * 100))
    finally:
        other.close()


def test_corrupted_local_bytes_are_refused_as_over_http(host: BlobHost) -> None:
    """Bytes held under a hash they do not have (corruption in memory) are never taken: the
    request goes over HTTP, where the endpoint serves the same wrong bytes and the hash check fails."""
    ep = host.add_endpoint(route="00003", max_blob_bytes=MB)
    good = b"genuine update" * 100
    h = ep.publish(good)
    ep._blobs[h] = b"Genuine update" * 100  # noqa: SLF001 - simulate corruption behind the endpoint
    f = _fetcher(host)
    got = f.fetch_many([(ep.url, h)])[h]
    assert isinstance(got, FetchError) and got.reason == "hash_mismatch"
    assert (f.local_bodies, f.local_bytes) == (0, 0)


@pytest.mark.parametrize("fault", ["corrupt", "error"])
def test_an_endpoint_with_a_fault_is_fetched_over_http(host: BlobHost, fault: str) -> None:
    ep = host.add_endpoint(route="00004", max_blob_bytes=MB)
    h = ep.publish(b"x" * 4096)
    ep.set_fault(fault)
    got = _fetcher(host).fetch_many([(ep.url, h)])[h]
    assert isinstance(got, FetchError) and got.reason == {"corrupt": "hash_mismatch", "error": "http_status"}[fault]


def test_closed_unpublished_and_oversized(host: BlobHost) -> None:
    ep = host.add_endpoint(route="00005", max_blob_bytes=MB)
    h = ep.publish(b"y" * 4096)
    f = _fetcher(host)
    ep.unpublish(h)
    got = f.fetch_many([(ep.url, h)])[h]
    assert isinstance(got, FetchError) and got.reason == "not_found"
    h2 = ep.publish(b"z" * 4096)
    ep.close()  # a stopped peer: its bytes are not served any more, locally either
    assert host.served(ep.url, h2) is None and ep.url not in host._by_url  # noqa: SLF001 - nor held by the URL index
    got = f.fetch_many([(ep.url, h2)])[h2]
    assert isinstance(got, FetchError) and got.reason in ("connection", "not_found")
    big = host.add_endpoint(route="00006", max_blob_bytes=4 * MB)
    hb = big.publish(b"b" * (2 * MB))
    got = f.fetch_many([(big.url, hb)])[hb]  # over the fetcher's max_bytes: refused as over HTTP
    assert isinstance(got, FetchError) and got.reason == "too_large"
    assert (f.local_bodies, f.local_bytes) == (0, 0)
