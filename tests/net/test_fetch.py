"""Blob client: hash check, retries, timeouts, size limits, batch fetching."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from bdfl.net.blobserver import BlobHost, Endpoint, LoopThread, ServerLimits
from bdfl.net.fetch import FetchError, Fetcher, HashMismatch, fetch_blob, fetch_many
from eth_hash.auto import keccak

from bdfl.net.serialization import HashedBytes, InvalidUpdate, encode_ndarrays, hash_hex, update_hash

MB = 1 << 20
QUICK = {"timeout": 2.0, "retries": 2, "max_bytes": MB}


@pytest.fixture(scope="module")
def host() -> Iterator[BlobHost]:
    with BlobHost() as h:
        yield h


@pytest.fixture()
def ep(host: BlobHost) -> Iterator[Endpoint]:
    e = host.add_endpoint(max_blob_bytes=4 * MB)
    yield e
    e.close()


@pytest.fixture(scope="module")
def fetcher() -> Iterator[Fetcher]:
    with Fetcher(max_bytes=MB, timeout=2.0, retries=2, backoff=0.01, max_backoff=0.05) as f:
        yield f


def test_fetch_blob_returns_verified_bytes(ep: Endpoint) -> None:
    data = b"update" * 500
    h = ep.publish(data)
    assert fetch_blob(ep.url, h, **QUICK) == data
    assert fetch_blob(ep.url + "/", h.upper().replace("0X", "0x"), **QUICK) == data


def test_fetched_bytes_carry_the_hash_computed_while_receiving(ep: Endpoint, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(5)
    update = encode_ndarrays([rng.standard_normal((300, 500)).astype(np.float32)])  # 600 kB: many chunks
    h = ep.publish(update)
    assert ep._blobs[h] is update  # served from the encoder's own buffer, not a copy
    with Fetcher(max_bytes=MB, timeout=2.0, retries=0) as f:
        got = f.fetch(ep.url, h)
    assert isinstance(got, HashedBytes) and got == update and hash_hex(keccak(bytes(got))) == h
    # nobody downstream (auditors, aggregators) hashes the fetched bytes again
    monkeypatch.setattr("bdfl.net.serialization.keccak", lambda _d: pytest.fail("hashed again"))
    assert hash_hex(update_hash(got)) == h


def test_bodies_in_flight_are_bounded_by_bytes(host: BlobHost, monkeypatch: pytest.MonkeyPatch) -> None:
    ep = host.add_endpoint(max_blob_bytes=4 * MB, retain=None)
    blobs = [bytes([i]) * MB for i in range(8)]
    hashes = [ep.publish(b) for b in blobs]
    active, peak, first = 0, [], []
    real = Fetcher._attempt

    async def counting(self: Fetcher, url: str, expected: bytes, timeout: float) -> bytes:
        nonlocal active
        active += 1
        peak.append(active)
        first.append(self.inflight_allowed())
        try:
            await asyncio.sleep(0.02)  # keep the body "in flight" long enough to overlap
            return await real(self, url, expected, timeout)
        finally:
            active -= 1

    monkeypatch.setattr(Fetcher, "_attempt", counting)
    try:
        with Fetcher(max_bytes=2 * MB, timeout=5.0, concurrency=64, max_inflight_bytes=2 * MB + 10) as f:
            got = f.fetch_many([(ep.url, h) for h in hashes])
            assert all(got[h] == b for h, b in zip(hashes, blobs))
            assert first[0] == 1 and max(peak) == 2  # one until the size is known, then 2 MB of bodies
            assert f.inflight_allowed() == 2
        with Fetcher(max_bytes=2 * MB, timeout=5.0, concurrency=3) as f:  # 128 MiB: the request cap decides
            peak.clear()
            f.fetch_many([(ep.url, h) for h in hashes])
            assert max(peak) == 3 and f.inflight_allowed() == 3
    finally:
        ep.close()


def test_not_found_is_final(ep: Endpoint, fetcher: Fetcher) -> None:
    with pytest.raises(FetchError) as ei:
        fetcher.fetch(ep.url, "0x" + "ab" * 32)
    assert ei.value.reason == "not_found" and ei.value.status == 404 and ei.value.attempts == 1


def test_traffic_counters_count_every_body_byte_moved(host: BlobHost) -> None:
    """bytes_received counts each attempt's body (a corrupt one too), bodies_fetched only verified
    bodies; the host's bytes_sent counts what its endpoints served (small and streamed bodies)."""
    a, b = host.add_endpoint(max_blob_bytes=4 * MB), host.add_endpoint(max_blob_bytes=4 * MB)
    try:
        sent0 = host.bytes_sent
        small, big = b"s" * 1000, bytes(range(256)) * 4096  # 1 kB in one write, 1 MiB streamed in chunks
        hs, hb = a.publish(small), b.publish(big)
        with Fetcher(max_bytes=2 * MB, timeout=2.0, retries=0) as f:
            assert (f.bytes_received, f.bodies_fetched) == (0, 0)
            got = f.fetch_many([(a.url, hs), (b.url, hb), (a.url, "0x" + "ab" * 32)])
            assert got[hs] == small and got[hb] == big and isinstance(got["0x" + "ab" * 32], FetchError)
            assert (f.bytes_received, f.bodies_fetched) == (len(small) + len(big), 2)  # a 404 moves no body
            assert host.bytes_sent - sent0 == len(small) + len(big)
            a.set_fault("corrupt")
            with pytest.raises(HashMismatch):
                f.fetch(a.url, hs)
            assert (f.bytes_received, f.bodies_fetched) == (2 * len(small) + len(big), 2)
    finally:
        a.close()
        b.close()


def test_hash_mismatch_is_final_and_an_invalid_update(ep: Endpoint, fetcher: Fetcher) -> None:
    h = ep.publish(b"honest")
    ep.set_fault("corrupt")
    with pytest.raises(HashMismatch) as ei:
        fetcher.fetch(ep.url, h)
    e = ei.value
    assert isinstance(e, FetchError) and isinstance(e, InvalidUpdate)
    assert e.reason == "hash_mismatch" and e.attempts == 1
    assert ep.stats()["status"][200] == 1  # no retry


def test_timeout_with_bounded_retries(ep: Endpoint) -> None:
    h = ep.publish(b"slow")
    ep.set_fault("slow", delay=5.0)
    with Fetcher(max_bytes=MB, timeout=0.2, retries=2, backoff=0.01, max_backoff=0.02) as f:
        t0 = time.monotonic()
        with pytest.raises(FetchError) as ei:
            f.fetch(ep.url, h)
        elapsed = time.monotonic() - t0
    assert ei.value.reason == "timeout" and ei.value.attempts == 3
    assert 0.6 <= elapsed < 3.0  # 3 x 0.2 s + tiny backoffs (slack for a loaded machine)


def test_server_errors_are_retried_then_reported(ep: Endpoint, fetcher: Fetcher) -> None:
    h = ep.publish(b"x")
    ep.set_fault("error")
    with pytest.raises(FetchError) as ei:
        fetcher.fetch(ep.url, h)
    assert (ei.value.reason, ei.value.status, ei.value.attempts) == ("http_status", 503, 3)
    assert ep.stats()["status"][503] == 3


def test_retry_recovers_when_fault_clears(ep: Endpoint) -> None:
    data = b"eventually"
    h = ep.publish(data)
    ep.set_fault("drop")
    threading.Timer(0.15, ep.set_fault, args=(None,)).start()
    with Fetcher(max_bytes=MB, timeout=1.0, retries=5, backoff=0.1, max_backoff=0.2) as f:
        assert f.fetch(ep.url, h) == data


def test_dropped_connections_are_connection_errors(ep: Endpoint, fetcher: Fetcher) -> None:
    h = ep.publish(b"x")
    ep.set_fault("drop")
    with pytest.raises(FetchError) as ei:
        fetcher.fetch(ep.url, h)
    assert ei.value.reason == "connection" and ei.value.attempts == 3


def test_refused_connection(fetcher: Fetcher) -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    t0 = time.monotonic()
    with pytest.raises(FetchError) as ei:
        fetcher.fetch(f"http://127.0.0.1:{port}", "0x" + "00" * 32)
    assert ei.value.reason == "connection" and ei.value.attempts == 3
    assert time.monotonic() - t0 < 3.0


def test_rate_limited_requests_honour_retry_after(host: BlobHost) -> None:
    e = host.add_endpoint(max_blob_bytes=MB, limits=ServerLimits(rate_per_s=1.0, rate_burst=1.0))
    strict = host.add_endpoint(max_blob_bytes=MB, limits=ServerLimits(rate_per_s=0.01, rate_burst=1.0))
    try:
        h = e.publish(b"limited")
        with Fetcher(max_bytes=MB, timeout=1.0, retries=3, backoff=0.01, max_backoff=1.0) as f:
            assert f.fetch(e.url, h) == b"limited"
            assert f.fetch(e.url, h) == b"limited"  # 429 first, then a retry after Retry-After (1 s)
        assert e.stats()["status"][429] >= 1
        h2 = strict.publish(b"x")
        with Fetcher(max_bytes=MB, timeout=1.0, retries=1, backoff=0.01, max_backoff=0.05) as f:
            assert f.fetch(strict.url, h2) == b"x"
            with pytest.raises(FetchError) as ei:
                f.fetch(strict.url, h2)
        err = ei.value
        assert (err.reason, err.status, err.attempts) == ("rate_limited", 429, 2)
        assert err.retry_after is not None and err.retry_after >= 1
    finally:
        e.close()
        strict.close()


def test_body_over_limit_is_refused(ep: Endpoint) -> None:
    h = ep.publish(b"x" * 1000)
    with pytest.raises(FetchError) as ei:
        fetch_blob(ep.url, h, timeout=2.0, retries=3, max_bytes=999)
    assert ei.value.reason == "too_large" and ei.value.attempts == 1
    assert fetch_blob(ep.url, h, timeout=2.0, retries=0, max_bytes=1000) == b"x" * 1000


class EndlessServer:
    """A hostile server: 200 with no Content-Length (or a false one), then a huge body."""

    def __init__(self, content_length: int | None) -> None:
        self.content_length = content_length
        self.sent = 0
        self.loop = LoopThread("endless")
        self.port = self.loop.run(self._start())

    async def _start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        cl = f"Content-Length: {self.content_length}\r\n" if self.content_length is not None else ""
        writer.write(f"HTTP/1.1 200 OK\r\n{cl}Connection: close\r\n\r\n".encode())
        chunk = b"z" * 65536
        try:
            while self.sent < 512 * MB:
                writer.write(chunk)
                self.sent += len(chunk)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    def close(self) -> None:
        self.server.close()
        self.loop.close()


@pytest.mark.parametrize("content_length", [None, 512 * MB])
def test_streamed_body_over_limit_stops_early(content_length: int | None) -> None:
    srv = EndlessServer(content_length)
    try:
        t0 = time.monotonic()
        with pytest.raises(FetchError) as ei:
            fetch_blob(f"http://127.0.0.1:{srv.port}", "0x" + "00" * 32, timeout=5.0, retries=2, max_bytes=MB)
        assert ei.value.reason == "too_large" and ei.value.attempts == 1
        assert time.monotonic() - t0 < 4.0
        time.sleep(0.1)
        assert srv.sent < 64 * MB  # the client hung up instead of draining the stream
    finally:
        srv.close()


def test_bad_hash_is_a_bad_request(fetcher: Fetcher) -> None:
    with pytest.raises(FetchError) as ei:
        fetcher.fetch("http://127.0.0.1:1", "0x1234")
    assert ei.value.reason == "bad_request"
    err = fetcher.fetch_many([("http://127.0.0.1:1", "nope")])["nope"]
    assert isinstance(err, FetchError) and err.reason == "bad_request"


def test_fetch_many_mixed_results(host: BlobHost, fetcher: Fetcher) -> None:
    good, bad = host.add_endpoint(max_blob_bytes=MB), host.add_endpoint(max_blob_bytes=MB)
    try:
        hs = [good.publish(f"blob {i}".encode()) for i in range(5)]
        hb = bad.publish(b"tampered")
        bad.set_fault("corrupt")
        missing = hash_hex(update_hash(b"never published"))
        reqs = [(good.url, h) for h in hs] + [(bad.url, hb), (good.url, missing)]
        out = fetcher.fetch_many(reqs)
        assert set(out) == set(hs) | {hb, missing}
        assert [out[h] for h in hs] == [f"blob {i}".encode() for i in range(5)]
        assert isinstance(out[hb], HashMismatch)
        assert isinstance(out[missing], FetchError) and out[missing].reason == "not_found"  # type: ignore[union-attr]
    finally:
        good.close()
        bad.close()


def test_fetch_many_treats_same_hash_as_alternative_sources(host: BlobHost, fetcher: Fetcher) -> None:
    a, b = host.add_endpoint(max_blob_bytes=MB), host.add_endpoint(max_blob_bytes=MB)
    try:
        h = a.publish(b"shared")
        assert b.publish(b"shared") == h
        a.set_fault("corrupt")
        out = fetcher.fetch_many([(a.url, h), (b.url, h)])
        assert out == {h: b"shared"}
    finally:
        a.close()
        b.close()


def test_fetcher_usable_from_worker_threads_and_shared_loop(host: BlobHost, ep: Endpoint) -> None:
    h = ep.publish(b"threads")
    results: list[bytes] = []
    with Fetcher(max_bytes=MB, loop=host.loop_thread) as shared:
        def work() -> None:
            for _ in range(5):
                results.append(shared.fetch(ep.url, h))

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert results == [b"threads"] * 20
    assert ep.stats()["status"][200] == 20
    assert host.loop_thread.run(asyncio.sleep(0, result=1)) == 1  # closing the fetcher kept the host's loop


def test_fetcher_refuses_its_own_loop_thread(fetcher: Fetcher, ep: Endpoint) -> None:
    h = ep.publish(b"x")

    async def nested() -> None:
        with pytest.raises(RuntimeError):
            fetcher.fetch(ep.url, h)
        assert await fetcher.afetch(ep.url, h) == b"x"  # the async API is the way in there

    fetcher._loop.run(nested())


def test_closed_fetcher() -> None:
    f = Fetcher(max_bytes=MB)
    f.close()
    f.close()
    with pytest.raises(RuntimeError):
        f.fetch("http://127.0.0.1:1", "0x" + "00" * 32)


def test_thousand_blobs_from_hundred_endpoints() -> None:
    """The docs/net.md throughput figure: 1000 blobs x 20 KB, 100 endpoints, loopback."""
    rng = np.random.default_rng(0)
    with BlobHost() as h:
        eps = [h.add_endpoint(max_blob_bytes=MB, retain=None) for _ in range(100)]
        reqs = [(eps[i % 100].url, eps[i % 100].publish(rng.bytes(20_000))) for i in range(1000)]
        with Fetcher(max_bytes=MB, concurrency=64) as f:
            t0 = time.perf_counter()
            out = f.fetch_many(reqs)
            first = time.perf_counter() - t0
            t0 = time.perf_counter()
            out2 = f.fetch_many(reqs)
            second = time.perf_counter() - t0
        out3 = fetch_many(reqs[:10], timeout=5.0, retries=1, max_bytes=MB)
    assert all(isinstance(v, bytes) and len(v) == 20_000 for v in out.values()) and len(out) == 1000
    assert out2 == out and len(out3) == 10
    print(f"\n1000 x 20 KB from 100 endpoints: {first:.3f} s cold, {second:.3f} s warm")
    assert second < 10.0


def test_fetcher_on_a_host_loop_survives_the_host_closing_first() -> None:
    h = BlobHost()
    f = Fetcher(max_bytes=MB, loop=h.loop_thread)
    e = h.add_endpoint(max_blob_bytes=MB)
    assert f.fetch(e.url, e.publish(b"x")) == b"x"
    h.close()
    f.close()


def test_verified_bodies_are_kept_and_answered_without_a_request(host: BlobHost) -> None:
    """With ``cache_bytes`` a body that passed the hash check is answered again without a
    request (no second body received); without it (the default) every fetch asks."""
    ep = host.add_endpoint(max_blob_bytes=MB)
    try:
        data = b"kept update" * 100
        h = ep.publish(data)
        for cache, requests in ((MB, 1), (0, 2)):
            with Fetcher(max_bytes=MB, timeout=2.0, retries=0, cache_bytes=cache) as f:
                first = f.fetch_many([(ep.url, h)])[h]
                again = f.fetch_many([(ep.url, h.upper().replace("0X", "0x"))])[h]
                assert first == again == data and isinstance(again, HashedBytes)
                assert f.bodies_fetched == requests and f.bytes_received == requests * len(data)
                assert f.cache_hits == (1 if cache else 0)
    finally:
        ep.close()


def test_a_body_failing_its_hash_is_never_kept(host: BlobHost) -> None:
    """Adversary: an endpoint serving other bytes under a hash. The mismatch is reported and
    nothing is kept, so a later fetch asks again and gets the right bytes from an honest source."""
    ep = host.add_endpoint(max_blob_bytes=MB)
    try:
        data = b"honest" * 200
        h = ep.publish(data)
        ep.set_fault("corrupt")
        with Fetcher(max_bytes=MB, timeout=2.0, retries=0, cache_bytes=MB) as f:
            assert isinstance(f.fetch_many([(ep.url, h)])[h], HashMismatch)
            assert f.cache_hits == 0 and f.bodies_fetched == 0
            ep.set_fault(None)
            assert f.fetch_many([(ep.url, h)])[h] == data
            assert (f.bodies_fetched, f.cache_hits) == (1, 0)
            assert f.fetch_many([(ep.url, h)])[h] == data and f.cache_hits == 1
    finally:
        ep.close()


def test_kept_bodies_are_bounded_by_bytes_least_recently_used_first(host: BlobHost) -> None:
    ep = host.add_endpoint(max_blob_bytes=MB)
    try:
        blobs = [bytes([i]) * 1000 for i in range(3)]
        hs = [ep.publish(b) for b in blobs]
        with Fetcher(max_bytes=MB, timeout=2.0, retries=0, cache_bytes=2500) as f:
            f.fetch_many([(ep.url, hs[0]), (ep.url, hs[1])])
            f.fetch_many([(ep.url, hs[0])])  # hs[0] used last: hs[1] goes first
            f.fetch_many([(ep.url, hs[2])])
            assert (f.bodies_fetched, f.cache_hits) == (3, 1)
            out = f.fetch_many([(ep.url, h) for h in hs])
            assert [out[h] for h in hs] == blobs
            assert (f.bodies_fetched, f.cache_hits) == (4, 3)  # hs[1] asked again; hs[0], hs[2] kept
        with Fetcher(max_bytes=MB, timeout=2.0, retries=0, cache_bytes=999) as f:  # a body larger than the cache
            f.fetch_many([(ep.url, hs[0])])
            f.fetch_many([(ep.url, hs[0])])
            assert (f.bodies_fetched, f.cache_hits) == (2, 0)
    finally:
        ep.close()
