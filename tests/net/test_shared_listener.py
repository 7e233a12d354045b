"""One listening socket for many peers (BlobHost.add_endpoint(serve_routes=True) / route=...),
and a phase budget that many queued fetches do not spend waiting (Fetcher allowance).

Why: at N = 10,000 a worker held one listening socket per peer plus per-port fetch
connections (~20,000 fds per worker, at ulimit -n), and ~15,000 audit fetches sharing one flat
30 s budget abstained by the thousand (docs/results/scale.md)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from bdfl.net.blobserver import BlobHost, ServerLimits
from bdfl.net.fetch import FetchError, Fetcher
from tests.net.test_adversaries import Hoarder

MB = 1024 * 1024


@pytest.fixture
def host() -> Iterator[BlobHost]:
    with BlobHost() as h:
        yield h


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_routes_share_one_socket_and_serve_only_their_own_blobs(host: BlobHost) -> None:
    listener = host.add_endpoint(max_blob_bytes=0, serve_routes=True)
    before = _fds()
    eps = [host.add_endpoint(route=f"{i:05d}", max_blob_bytes=MB) for i in range(300)]
    assert _fds() - before <= 2  # 300 peers, no socket of their own
    blobs = [f"update of peer {i}".encode() * 50 for i in range(300)]
    hashes = [ep.publish(b) for ep, b in zip(eps, blobs)]
    assert eps[7].url == f"{listener.url}/p/00007" and eps[7].port == listener.port
    with Fetcher(max_bytes=MB, timeout=2.0, retries=0) as f:
        got = f.fetch_many([(ep.url, h) for ep, h in zip(eps, hashes)])
        assert [got[h] for h in hashes] == blobs
        # peer 1's URL does not serve peer 0's update, nor does the listener's own path
        for base in (eps[1].url, listener.url):
            err = f.fetch_many([(base, hashes[0])])[hashes[0]]
            assert isinstance(err, FetchError) and err.reason == "not_found"
    assert eps[3].stats()["status"] == {200: 1}  # each route counts its own responses


def test_a_stopped_route_drops_connections_and_a_restart_takes_its_url_back(host: BlobHost) -> None:
    host.add_endpoint(max_blob_bytes=0, serve_routes=True)
    ep = host.add_endpoint(route="00001", max_blob_bytes=MB)
    h = ep.publish(b"before the crash")
    url = ep.url
    ep.close()
    with Fetcher(max_bytes=MB, timeout=1.0, retries=1, backoff=0.01) as f:
        err = f.fetch_many([(url, h)])[h]
        assert isinstance(err, FetchError) and err.reason == "connection"  # as a closed port would answer
        back = host.add_endpoint(route="00001", max_blob_bytes=MB)
        assert back.url == url
        assert f.fetch_many([(url, back.publish(b"before the crash"))])[h] == b"before the crash"
        unknown = f.fetch_many([(url[: -len("00001")] + "00002", h)])[h]
        assert isinstance(unknown, FetchError) and unknown.reason == "not_found"


def test_socket_hoarder_cannot_exhaust_a_shared_listener_or_starve_other_peers_fetches(host: BlobHost) -> None:
    """A client (127.0.0.2) opening and holding hundreds of idle connections gets at most its
    per-client share of the one listener; the listener's open connections (its fds) stay under
    its cap, and an honest fetcher still gets every peer's update."""
    limits = ServerLimits(header_timeout=1.0, max_connections=48, max_connections_per_client=16)
    listener = host.add_endpoint(max_blob_bytes=0, serve_routes=True, limits=limits)
    eps = [host.add_endpoint(route=f"{i:05d}", max_blob_bytes=MB) for i in range(60)]
    blobs = [f"honest update {i}".encode() * 500 for i in range(60)]
    hashes = [ep.publish(b) for ep, b in zip(eps, blobs)]
    with Hoarder(listener.port, max_socks=300) as attacker, \
            Fetcher(max_bytes=MB, timeout=1.0, retries=2, backoff=0.05, max_backoff=0.3, local_addr="127.0.0.1") as f:
        held = open_max = 0
        got: dict[str, bytes | FetchError] = {}
        for start in range(0, 60, 10):  # while the hoarder keeps re-opening what the server closes
            got.update(f.fetch_many([(ep.url, h) for ep, h in zip(eps[start:start + 10], hashes[start:start + 10])], budget=5.0))
            held = max(held, listener.connections_of("127.0.0.2"))
            open_max = max(open_max, listener.stats()["connections"])
            time.sleep(0.05)
    assert attacker.opened > limits.max_connections_per_client  # it did try
    assert held <= limits.max_connections_per_client
    assert open_max <= limits.max_connections
    assert [got[h] for h in hashes] == blobs


def test_queued_fetches_get_their_own_allowance_instead_of_a_flat_budget(host: BlobHost) -> None:
    """30 fetches, one at a time, each answered after 0.1 s: a flat 1 s budget lets the
    queue's tail time out unattempted; a 1 s allowance per fetch within a 30 s window
    fetches all of them, and an unreachable peer still gives up after its allowance."""
    host.add_endpoint(max_blob_bytes=0, serve_routes=True)
    eps = [host.add_endpoint(route=f"{i:05d}", max_blob_bytes=MB) for i in range(30)]
    hashes = [ep.publish(f"update {i}".encode()) for i, ep in enumerate(eps)]
    for ep in eps:
        ep.set_fault("slow", delay=0.1)
    requests = [(ep.url, h) for ep, h in zip(eps, hashes)]
    with Fetcher(max_bytes=MB, timeout=1.0, retries=2, concurrency=1, per_host_connections=1) as f:
        flat = f.fetch_many(requests, budget=1.0)
        assert sum(isinstance(v, FetchError) and v.reason == "timeout" for v in flat.values()) >= 15
        paced = f.fetch_many(requests, budget=30.0, allowance=1.0)
        assert all(isinstance(paced[h], bytes) for h in hashes)
        eps[0].close()
        t = time.monotonic()
        dead = f.fetch_many([requests[0]], budget=30.0, allowance=0.5)[hashes[0]]
        assert isinstance(dead, FetchError) and dead.reason == "connection"
        assert time.monotonic() - t < 3.0  # its allowance, not the phase's window
