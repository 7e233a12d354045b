"""Blob endpoints: content addressing, HTTP API, limits, fault hooks, lifecycle."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from bdfl.errors import BDFLError
from bdfl.net.blobserver import BlobHost, Endpoint, LoopThread, ServerLimits
from bdfl.net.serialization import hash_hex, update_hash
from tests.net.helpers import read_all

MB = 1 << 20


@pytest.fixture(scope="module")
def host() -> Iterator[BlobHost]:
    with BlobHost() as h:
        yield h


@pytest.fixture()
def ep(host: BlobHost) -> Iterator[Endpoint]:
    e = host.add_endpoint(max_blob_bytes=MB)
    yield e
    e.close()


def get(e: Endpoint, path: str, method: str = "GET", headers: dict[str, str] | None = None) -> tuple[int, dict, bytes]:
    c = http.client.HTTPConnection("127.0.0.1", e.port, timeout=5)
    try:
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def raw(e: Endpoint, data: bytes, *, wait: float = 2.0) -> bytes:
    """Send raw bytes, return everything the server sends until it closes (or `wait` passes)."""
    with socket.create_connection(("127.0.0.1", e.port), timeout=wait) as s:
        s.sendall(data)
        return read_all(s)


# ----------------------------------------------------------------- serving


def test_serves_published_bytes_by_keccak(ep: Endpoint) -> None:
    data = b"model bytes" * 1000
    h = ep.publish(data)
    assert h == hash_hex(update_hash(data))
    status, headers, body = get(ep, f"/blobs/{h}")
    assert (status, body) == (200, data)
    assert headers["content-type"] == "application/octet-stream"
    assert headers["content-length"] == str(len(data))
    assert get(ep, f"/blobs/{h.upper().replace('0X', '0x')}")[2] == data  # hex case-insensitive


def test_head_gives_length_without_body(ep: Endpoint) -> None:
    h = ep.publish(b"x" * 100)
    status, headers, body = get(ep, f"/blobs/{h}", method="HEAD")
    assert (status, headers["content-length"], body) == (200, "100", b"")


def test_large_blob(ep: Endpoint) -> None:
    data = bytes(range(256)) * (MB // 256)
    h = ep.publish(data)
    assert get(ep, f"/blobs/{h}")[2] == data


def test_empty_blob(ep: Endpoint) -> None:
    h = ep.publish(b"")
    assert get(ep, f"/blobs/{h}")[:3:2] == (200, b"")


def test_unknown_hash_and_paths_are_404(ep: Endpoint) -> None:
    ep.publish(b"something")
    for path in ["/blobs/0x" + "0" * 64, "/blobs/xyz", "/blobs/0x" + "g" * 64, "/blobs/", "/", "/blobs",
                 "/etc/passwd", "/blobs/../health"]:
        assert get(ep, path)[0] == 404, path


def test_health(ep: Endpoint) -> None:
    ep.publish(b"a")
    status, headers, body = get(ep, "/health")
    assert status == 200 and headers["content-type"] == "application/json"
    assert json.loads(body) == {"blobs": 1, "status": "ok"}


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
def test_other_methods_are_405(ep: Endpoint, method: str) -> None:
    h = ep.publish(b"a")
    status, headers, _ = get(ep, f"/blobs/{h}", method=method)
    assert status == 405 and headers["allow"] == "GET, HEAD"


def test_serves_only_its_own_blobs(host: BlobHost) -> None:
    a = host.add_endpoint(max_blob_bytes=MB)
    b = host.add_endpoint(max_blob_bytes=MB)
    try:
        h = a.publish(b"only on a")
        assert get(a, f"/blobs/{h}")[0] == 200
        assert get(b, f"/blobs/{h}")[0] == 404
    finally:
        a.close()
        b.close()


def test_retention_unpublish_and_republish(host: BlobHost) -> None:
    e = host.add_endpoint(max_blob_bytes=MB, retain=2)
    try:
        h1, h2 = e.publish(b"1"), e.publish(b"2")
        assert e.publish(b"1") == h1  # republish: h1 is now newest
        h3 = e.publish(b"3")  # evicts h2, the oldest
        assert e.published() == (h1, h3)
        assert get(e, f"/blobs/{h2}")[0] == 404 and get(e, f"/blobs/{h1}")[0] == 200
        assert e.unpublish(h1) and not e.unpublish(h1)
        assert get(e, f"/blobs/{h1}")[0] == 404
    finally:
        e.close()
    with pytest.raises(ValueError):
        host.add_endpoint(max_blob_bytes=MB, retain=0)


def test_publish_over_size_limit_is_refused(host: BlobHost) -> None:
    e = host.add_endpoint(max_blob_bytes=10)
    try:
        e.publish(b"x" * 10)
        with pytest.raises(BDFLError, match="max_blob_bytes"):
            e.publish(b"x" * 11)
    finally:
        e.close()


def test_keep_alive_and_pipelining(ep: Endpoint) -> None:
    h = ep.publish(b"abc")
    c = http.client.HTTPConnection("127.0.0.1", ep.port, timeout=5)
    try:
        for _ in range(3):
            c.request("GET", f"/blobs/{h}")
            assert c.getresponse().read() == b"abc"
    finally:
        c.close()
    req = f"GET /blobs/{h} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    out = raw(ep, req + req[:-2] + b"Connection: close\r\n\r\n")
    assert out.count(b"HTTP/1.1 200 OK") == 2 and out.endswith(b"abc")


def test_http10_closes_by_default(ep: Endpoint) -> None:
    out = raw(ep, b"GET /health HTTP/1.0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200 OK") and b"Connection: close" in out


# ----------------------------------------------------------------- hostile input


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"\x00\xff\xfe garbage\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET /health\r\n\r\n",
        b"GET /health HTTP/2.0\r\n\r\n",
        b"get /health HTTP/1.1\r\n\r\n",
        b"GET http://x/health HTTP/1.1\r\n\r\n",
        b"GET /he\x01alth HTTP/1.1\r\n\r\n",
        b"GET  /health HTTP/1.1\r\n\r\n",
        b"GET /health HTTP/1.1\r\nno colon\r\n\r\n",
        b"GET /health HTTP/1.1\r\nBad Name: x\r\n\r\n",
        b"GET /health HTTP/1.1\r\nX: a\r\n folded\r\n\r\n",
        b"GET /health HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
        b"GET /health HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ],
)
def test_malformed_requests_get_400_and_server_survives(ep: Endpoint, request_bytes: bytes) -> None:
    out = raw(ep, request_bytes)
    assert out.startswith(b"HTTP/1.1 400 "), out[:80]
    assert get(ep, "/health")[0] == 200


def test_oversized_request_head_gets_431(host: BlobHost) -> None:
    e = host.add_endpoint(max_blob_bytes=MB, limits=ServerLimits(max_header_bytes=1024))
    try:
        out = raw(e, b"GET /health HTTP/1.1\r\nX: " + b"a" * 5000 + b"\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 431 ")
        assert get(e, "/health")[0] == 200
    finally:
        e.close()


def test_rate_limit_gives_429_with_retry_after(host: BlobHost) -> None:
    e = host.add_endpoint(max_blob_bytes=MB, limits=ServerLimits(rate_per_s=2.0, rate_burst=3.0))
    try:
        statuses = [get(e, "/health")[0] for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        status, headers, _ = get(e, "/health")
        assert status == 429 and int(headers["retry-after"]) >= 1
        time.sleep(0.6)  # 2 tokens/s refill
        assert get(e, "/health")[0] == 200
        assert e.stats()["status"][429] == 2
    finally:
        e.close()


def test_slow_client_is_disconnected(host: BlobHost) -> None:
    e = host.add_endpoint(max_blob_bytes=MB, limits=ServerLimits(header_timeout=0.3))
    try:
        with socket.create_connection(("127.0.0.1", e.port), timeout=3) as s:
            t0 = time.monotonic()
            for ch in b"GET /health HTTP/1.1\r\n":  # slowloris: one byte every 50 ms
                try:
                    s.send(bytes([ch]))
                except OSError:
                    break
                time.sleep(0.05)
            assert s.recv(100) == b""
            assert time.monotonic() - t0 < 3.0
        with socket.create_connection(("127.0.0.1", e.port), timeout=3) as s:  # idle keep-alive too
            s.sendall(b"GET /health HTTP/1.1\r\n\r\n")
            time.sleep(0.6)
            data = s.recv(4096)
            assert data.startswith(b"HTTP/1.1 200") and s.recv(100) == b""
    finally:
        e.close()


def test_max_connections_gives_503(host: BlobHost) -> None:
    e = host.add_endpoint(max_blob_bytes=MB, limits=ServerLimits(max_connections=2))
    try:
        idle = [socket.create_connection(("127.0.0.1", e.port)) for _ in range(2)]
        try:
            time.sleep(0.1)
            assert raw(e, b"GET /health HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 503 ")
        finally:
            for s in idle:
                s.close()
        deadline = time.monotonic() + 3.0  # the server notices the closed sockets soon
        while get(e, "/health")[0] != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        e.close()


# ----------------------------------------------------------------- fault hooks


def test_fault_hooks(ep: Endpoint) -> None:
    data = b"honest bytes"
    h = ep.publish(data)
    ep.set_fault("corrupt")
    status, _, body = get(ep, f"/blobs/{h}")
    assert status == 200 and len(body) == len(data) and body != data
    ep.set_fault("error")
    assert get(ep, f"/blobs/{h}")[0] == 503
    ep.set_fault("drop")
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        get(ep, f"/blobs/{h}")
    ep.set_fault("slow", delay=0.3)
    t0 = time.monotonic()
    assert get(ep, f"/blobs/{h}")[2] == data
    assert time.monotonic() - t0 >= 0.3
    assert get(ep, "/health")[0] == 200  # faults only touch /blobs/
    ep.set_fault(None)
    assert get(ep, f"/blobs/{h}")[2] == data
    with pytest.raises(ValueError):
        ep.set_fault("explode")


# ----------------------------------------------------------------- lifecycle


def test_many_endpoints_in_one_host() -> None:
    with BlobHost() as h:
        eps = [h.add_endpoint(max_blob_bytes=1024) for _ in range(200)]
        assert len({e.port for e in eps}) == 200 and len(h.endpoints) == 200
        hashes = [e.publish(f"peer {i}".encode()) for i, e in enumerate(eps)]
        for i in range(0, 200, 13):
            assert get(eps[i], f"/blobs/{hashes[i]}")[2] == f"peer {i}".encode()
            assert get(eps[i], f"/blobs/{hashes[(i + 1) % 200]}")[0] == 404


def test_close_releases_ports_and_host_is_a_context_manager() -> None:
    with BlobHost() as h:
        e = h.add_endpoint(max_blob_bytes=1024)
        port = e.port
        held = socket.create_connection(("127.0.0.1", port))  # an open connection must not keep it alive
        e.close()
        e.close()  # idempotent
        assert held.recv(10) == b""
        held.close()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=1)
        e2 = h.add_endpoint(port=port, max_blob_bytes=1024)  # the port is free again
        assert e2.port == port
        ports = [h.add_endpoint(max_blob_bytes=1024).port for _ in range(5)] + [port]
    for p in ports:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", p), timeout=1)
    with pytest.raises(RuntimeError):
        h.add_endpoint(max_blob_bytes=1024)
    h.close()  # idempotent


def test_port_in_use_is_a_clear_error(ep: Endpoint, host: BlobHost) -> None:
    with pytest.raises(BDFLError, match="cannot listen"):
        host.add_endpoint(port=ep.port, max_blob_bytes=1024)


def test_deployed_peer_binding_and_advertised_url(host: BlobHost) -> None:
    e = host.add_endpoint("0.0.0.0", 0, max_blob_bytes=1024)
    try:
        assert e.url == f"http://127.0.0.1:{e.port}"
        assert get(e, "/health")[0] == 200
    finally:
        e.close()
    e = host.add_endpoint(max_blob_bytes=1024, advertise_url="http://peer.example:8080/")
    try:
        assert e.url == "http://peer.example:8080"
    finally:
        e.close()


def test_publish_is_thread_safe_while_serving(ep: Endpoint) -> None:
    hashes: list[str] = []

    def publisher(k: int) -> None:
        for i in range(200):
            hashes.append(ep.publish(f"{k}-{i}".encode()))

    threads = [threading.Thread(target=publisher, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for _ in range(20):
        assert get(ep, "/health")[0] == 200
    for t in threads:
        t.join()
    assert len(ep.published()) == ep.retain


def test_loop_thread_refuses_to_block_on_itself() -> None:
    lt = LoopThread()
    try:
        async def inner() -> None:
            async def noop() -> int:
                return 1
            with pytest.raises(RuntimeError, match="own loop thread"):
                lt.run(noop())

        lt.run(inner())
        async def two() -> int:
            return 2
        assert lt.run(two()) == 2
    finally:
        lt.close()
        lt.close()


def test_low_open_files_limit_is_raised_when_needed() -> None:
    import subprocess
    import sys

    code = (
        "import resource; from bdfl.net.blobserver import BlobHost\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))\n"
        "with BlobHost() as h:\n"
        "    eps = [h.add_endpoint(max_blob_bytes=10) for _ in range(150)]\n"
        "assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] > 64\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
