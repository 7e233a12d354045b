"""Content-addressed HTTP endpoints: each peer serves the update bytes it published.

A :class:`BlobHost` runs one asyncio event loop in a background thread and hosts
any number of :class:`Endpoint` s, each with its own listening socket, so one
simulation worker can serve hundreds of peers; a deployed peer runs the same
class with a single endpoint on ``0.0.0.0:PORT``. A host hosting thousands of peers
gives them one listening socket instead (:meth:`BlobHost.add_endpoint` with
``serve_routes=True``, then ``route=`` for each peer): each peer is served under
``/p/<route>/`` of that one port, with its own blobs, faults and per-client budgets, and
advertises its own URL ``http://host:port/p/<route>``; the listener's connection limits
then bound the sockets of the whole host (fetchers pool their connections per host:port).

HTTP API (HTTP/1.0 and 1.1, keep-alive, GET/HEAD only, no request bodies)::

    GET /blobs/0x<64 hex>   200 application/octet-stream | 404
                            | 503 (+Retry-After) while sealed (below)
    GET /p/<route>/blobs/0x<64 hex>   the same, of the endpoint at <route> (a shared listener)
    GET /health             200 application/json {"blobs": n, "status": "ok"}
    other paths             404;   other methods   405
    malformed request       400;   head too large  431;   rate limited   429 (+Retry-After)
    too many connections    503    (in all, or from this client)

The server is a small hand-written HTTP/1.1 responder on asyncio streams (see
docs/net.md for why): every limit in :class:`ServerLimits` is enforced by this
module, and a hostile client can only ever get a status line and a closed socket.

Budgets are per client (an IPv4 address, an IPv6 /64): a cap on its open connections, a
token bucket of requests and one of blob bytes, and a lifetime per connection; when the
endpoint is full, a newcomer takes the place of an idle connection of the client holding
the most, so one client hoarding sockets cannot lock others out. A blob is one immutable
``bytes`` object shared by all its readers and streamed in ``send_chunk`` memoryview
slices, so a reader holds at most about one chunk of copies, and a reader draining slower
than ``min_send_rate`` (after ``send_grace`` seconds) is cut.

Sealed until the Submit phase ends: an update published for round ``r`` (``publish(data,
round_=r)``) is not served while round ``r``'s Submit phase is open on chain, when the host
has a :class:`SubmitSeal` (``BlobHost.seal``). Nobody honest needs the bytes earlier (auditors
fetch after the committee draw, neighbours after finalize), and a copier who read a victim's
hash from ``UpdateSubmitted`` could otherwise fetch the bytes and submit a near-copy of them
before the phase closes (the Mimic attack; docs/security.md). The simulator's worst-case
attackers read them through an explicit side channel instead (``SubmitSeal.key``).
"""

from __future__ import annotations

import asyncio
import errno
import hmac
import ipaddress
import json
import logging
import math
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qs

from bdfl.errors import BDFLError
from bdfl.net.serialization import hash_hex, update_hash

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Test hooks (see :meth:`Endpoint.set_fault`).
FAULT_KINDS = (None, "corrupt", "slow", "drop", "error")

_REASON = {
    200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
    429: "Too Many Requests", 431: "Request Header Fields Too Large", 503: "Service Unavailable",
}
_HEXDIGITS = frozenset("0123456789abcdef")
_ROUTE = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Origin-form targets only, visible ASCII: no absolute URLs, no control characters.
_REQUEST_LINE = re.compile(r"([A-Z]{1,16}) (/[\x21-\x7e]*) (HTTP/1\.[01])")


class LoopThread:
    """One asyncio event loop running forever in a daemon thread.

    Synchronous code in any *other* thread submits coroutines with :meth:`run`.
    """

    def __init__(self, name: str = "bdfl-net") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._closed = False
        self._closers: list[Callable[[], Awaitable[Any]]] = []
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def in_loop_thread(self) -> bool:
        return threading.get_ident() == self._thread.ident

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and wait for its result (from another thread)."""
        if self._closed:
            coro.close()
            raise RuntimeError("LoopThread is closed")
        if self.in_loop_thread:
            coro.close()
            # Blocking the loop on itself would deadlock forever.
            raise RuntimeError("LoopThread.run called from its own loop thread; await the coroutine instead")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def at_close(self, closer: Callable[[], Awaitable[Any]]) -> None:
        """Await ``closer()`` on the loop when it closes (e.g. a sharing Fetcher's session)."""
        self._closers.append(closer)

    def cancel_at_close(self, closer: Callable[[], Awaitable[Any]]) -> None:
        if closer in self._closers:
            self._closers.remove(closer)

    def close(self) -> None:
        """Run closers, cancel pending tasks, stop the loop and join the thread (idempotent)."""
        if self._closed:
            return
        self._closed = True

        async def _cancel_all() -> None:
            await asyncio.gather(*(c() for c in self._closers), return_exceptions=True)
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            asyncio.run_coroutine_threadsafe(_cancel_all(), self.loop).result(10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            if not self._thread.is_alive():
                self.loop.close()


@dataclass(frozen=True)
class ServerLimits:
    """Per-endpoint limits. ``rate_per_s=None`` disables rate limiting."""

    max_header_bytes: int = 8192        # request line + headers (431 beyond)
    header_timeout: float = 10.0        # seconds to receive a request head; also keep-alive idle (slowloris)
    write_timeout: float = 60.0         # seconds to hand one response to a slow reader
    max_connections: int = 128          # concurrent connections per endpoint (503 beyond)
    max_requests_per_connection: int = 1000
    rate_per_s: float | None = 200.0    # token bucket per client IP: refill rate ...
    rate_burst: float = 400.0           # ... and capacity
    backlog: int = 512
    max_tracked_clients: int = 4096     # bucket table bound (idle buckets are pruned)
    max_connections_per_client: int = 16  # per client IP (IPv6: per /64); 503 beyond
    max_connection_seconds: float = 120.0  # a connection is closed after its response past this age
    client_bytes_per_s: float | None = 64 * 1024 * 1024  # blob-byte bucket per client: refill ...
    client_bytes_burst: float = 512 * 1024 * 1024        # ... and capacity (429 when a blob does not fit)
    send_chunk: int = 64 * 1024         # blob bodies are written in slices of this size
    min_send_rate: float = 64 * 1024    # bytes/s a reader must drain at (after send_grace) or be cut
    send_grace: float = 5.0             # seconds of slack before the floor rate applies

    def __post_init__(self) -> None:
        if self.rate_per_s is not None and not (self.rate_per_s > 0 and self.rate_burst >= 1):
            raise ValueError("rate_per_s must be > 0 (or None to disable) and rate_burst >= 1")
        if min(self.max_header_bytes, self.max_connections, self.max_requests_per_connection, self.backlog) < 1:
            raise ValueError("ServerLimits sizes and counts must be >= 1")
        if not (self.header_timeout > 0 and self.write_timeout > 0 and self.max_connection_seconds > 0):
            raise ValueError("ServerLimits timeouts must be > 0")
        if min(self.max_connections_per_client, self.send_chunk) < 1 or not (self.min_send_rate > 0 and self.send_grace >= 0):
            raise ValueError("ServerLimits per-client cap and send_chunk must be >= 1, min_send_rate > 0, send_grace >= 0")
        if self.client_bytes_per_s is not None and not (self.client_bytes_per_s > 0 and self.client_bytes_burst >= 1):
            raise ValueError("client_bytes_per_s must be > 0 (or None to disable) and client_bytes_burst >= 1")


def client_key(ip: str) -> str:
    """Whom a connection's budgets are charged to: the IPv4 address (also when IPv4-mapped),
    or the /64 network of an IPv6 address (one host is typically given a whole /64)."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return ip
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr)


#: The query parameter that carries :attr:`SubmitSeal.key` (``/blobs/0x...?seal_key=...``).
SEAL_KEY_PARAM = "seal_key"


class SubmitSeal:
    """When a round's updates may be served: not while that round's Submit phase is open.

    ``submissions_closed(r)`` answers from the chain (a read; :func:`bdfl.chain.protocol.
    submissions_closed_reader`); a True answer is kept (rounds only move on), a False one is
    asked again at most every ``recheck`` seconds, so early requests cost no chain read each.
    ``key``: the simulator's side channel for omniscient attackers (``attack.knowledge =
    "omniscient"``, the worst case of ALIE / IPM / Min-Max / Mimic), a secret shared with its
    workers only; None (a deployed peer): nobody reads a sealed update early."""

    def __init__(self, submissions_closed: Callable[[int], bool], *, key: str | None = None,
                 recheck: float = 0.25) -> None:
        self._closed = submissions_closed
        self.key = key or None  # an empty key is no key: nothing authorises with ""
        self.recheck = recheck
        self._open_through = -1  # every round up to this one has closed its Submit phase
        # the last round read as still open, and when: it and every later round are open too, so a
        # read for them waits ``recheck`` (an earlier round may have closed: it is read at once)
        self._refused: tuple[int, float] = (0, -math.inf)
        self._lock = threading.Lock()
        self.reads = 0  # chain reads made (a counter for tests and diagnosis)

    def known_open(self, round_: int) -> bool:
        """Whether round ``round_``'s updates are known servable, without reading the chain."""
        return round_ <= self._open_through

    def opened(self, round_: int) -> bool:
        """Whether round ``round_``'s updates may be served (reads the chain, rate-limited:
        call it off the event loop)."""
        if round_ <= self._open_through:
            return True
        # one read at a time; a caller that waited a recheck interval for another's read gets
        # no read of its own (a flood of sealed requests holds no thread longer than that)
        if not self._lock.acquire(timeout=self.recheck):
            return round_ <= self._open_through
        try:
            if round_ <= self._open_through:
                return True
            refused, at = self._refused
            if round_ >= refused and time.monotonic() - at < self.recheck:
                return False
            self.reads += 1
            try:
                closed = bool(self._closed(round_))
            except Exception as e:  # noqa: BLE001 - an RPC hiccup keeps the seal, the reader retries
                log.warning("cannot read whether round %d's Submit phase ended (%s); its updates stay sealed", round_, e)
                closed = False
            if closed:
                self._open_through = max(self._open_through, round_)
            else:  # stamped when the read ends: a slow RPC does not let every queued request read again
                self._refused = (round_, time.monotonic())
            return closed
        finally:
            self._lock.release()

    def authorised(self, key: str | None) -> bool:
        """Whether ``key`` opens the side channel (never without a non-empty key of its own)."""
        return bool(self.key) and bool(key) and hmac.compare_digest(str(self.key).encode(), str(key).encode())


class Endpoint:
    """One peer's blob endpoint. Create with :meth:`BlobHost.add_endpoint`.

    ``publish`` / ``unpublish`` / ``set_fault`` are thread-safe; the endpoint
    serves only what was published through it, keeping the last ``retain`` blobs.
    """

    def __init__(
        self,
        host: BlobHost,
        bind_host: str,
        port: int,
        *,
        max_blob_bytes: int,
        retain: int | None,
        limits: ServerLimits,
        advertise_url: str | None,
        listener: Endpoint | None = None,
        route: str | None = None,
    ) -> None:
        if retain is not None and retain < 1:
            raise ValueError("retain must be >= 1 or None (unlimited)")
        self._host = host
        self.bind_host = bind_host
        self.port = port
        self.max_blob_bytes = max_blob_bytes
        self.retain = retain
        self.limits = limits
        self._advertise_url = advertise_url
        self._listener = listener  # the shared listener serving this endpoint under /p/<route>
        self.route = route
        self._routes: dict[str, Endpoint] | None = None  # on a shared listener: route -> endpoint
        self._blobs: dict[str, bytes] = {}  # insertion order = publish order (oldest first)
        self._sealed: dict[str, int] = {}  # hash -> the round whose Submit phase must end first (SubmitSeal)
        self._lock = threading.Lock()
        self._fault: tuple[str | None, float] = (None, 0.0)
        self._sock: socket.socket | None = None
        self._raw: set[socket.socket] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._conns: set[asyncio.StreamWriter] = set()
        self._by_client: dict[str, set[asyncio.StreamWriter]] = {}
        self._idle: set[asyncio.StreamWriter] = set()  # waiting for a request head
        # waiting for its reader to take what was written (loop time the wait began): like an
        # idle one, a connection whose client is not reading is evictable (_admit)
        self._draining: dict[asyncio.StreamWriter, float] = {}
        self._buckets: dict[str, list[float]] = {}
        self._byte_buckets: dict[str, list[float]] = {}
        self._closed = False
        self.status_counts: Counter[int] = Counter()
        self.bytes_sent = 0
        self.evicted = 0  # idle or unread connections closed to make room for another client
        self.cut_slow = 0  # responses cut because the reader drained below min_send_rate

    # ------------------------------------------------------------ public API

    @property
    def url(self) -> str:
        """Base URL other peers fetch from, e.g. ``http://127.0.0.1:41234``."""
        if self._advertise_url:
            return self._advertise_url.rstrip("/")
        if self._listener is not None:
            return f"{self._listener.url}/p/{self.route}"
        h = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.bind_host, self.bind_host)
        return f"http://[{h}]:{self.port}" if ":" in h else f"http://{h}:{self.port}"

    def publish(self, data: bytes, *, round_: int | None = None) -> str:
        """Serve ``data`` under its keccak256; returns ``"0x" + hex``. Evicts beyond ``retain``.
        ``round_``: the round it was submitted in; with a host :class:`SubmitSeal` it is served
        only once that round's Submit phase has ended."""
        # one immutable buffer, shared (never copied) by every reader; bytes (HashedBytes from
        # encode_arrays included: its keccak256 is not computed again) are kept as they are
        data = data if isinstance(data, bytes) else bytes(data)
        if len(data) > self.max_blob_bytes:
            raise BDFLError(
                f"blob of {len(data)} bytes exceeds this endpoint's max_blob_bytes {self.max_blob_bytes}",
                fix="raise max_blob_bytes (and the fetchers' max_bytes) or shrink the model",
            )
        h = hash_hex(update_hash(data))
        with self._lock:
            self._blobs.pop(h, None)  # re-publishing makes it the newest
            self._blobs[h] = data
            if round_ is None:
                self._sealed.pop(h, None)
            else:
                self._sealed[h] = int(round_)
            while self.retain is not None and len(self._blobs) > self.retain:
                old = next(iter(self._blobs))
                del self._blobs[old]
                self._sealed.pop(old, None)
        return h

    def unpublish(self, h: str) -> bool:
        """Stop serving ``h``; True if it was published."""
        with self._lock:
            self._sealed.pop(h.lower(), None)
            return self._blobs.pop(h.lower(), None) is not None

    def published(self) -> tuple[str, ...]:
        """Hashes currently served, oldest first."""
        with self._lock:
            return tuple(self._blobs)

    def set_fault(self, kind: str | None, *, delay: float = 1.0) -> None:
        """TEST HOOK: misbehave on every ``/blobs/`` request until reset with ``None``.

        ``"corrupt"`` serves the blob with its first byte flipped (wrong hash);
        ``"slow"`` waits ``delay`` seconds before answering; ``"drop"`` closes the
        connection without a response; ``"error"`` answers 503.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {FAULT_KINDS}, got {kind!r}")
        self._fault = (kind, float(delay))

    def stats(self) -> dict[str, Any]:
        """Counters for metrics: responses by status, bytes of blob bodies sent."""
        return {"status": dict(self.status_counts), "bytes_sent": self.bytes_sent,
                "connections": len(self._conns), "blobs": len(self._blobs), "clients": len(self._by_client),
                "evicted": self.evicted, "cut_slow": self.cut_slow}

    def connections_of(self, ip: str) -> int:
        """Connections this endpoint holds open for the client ``ip`` belongs to (:func:`client_key`)."""
        return len(self._by_client.get(client_key(ip), ()))

    def close(self) -> None:
        """Stop listening and drop open connections (releases the port). Idempotent."""
        if not self._closed:
            self._host._loop.run(self._aclose())
            self._host._endpoints.discard(self)
            if self._host._by_url.get(self.url) is self:  # its blobs are not kept alive by the URL index
                del self._host._by_url[self.url]

    # ------------------------------------------------------------ loop side

    async def _start(self) -> None:
        # Own listening socket and accept callback rather than asyncio.start_server:
        # on Python 3.11 a connection accepted just before Server.close() can be
        # left open until the next gc, which would break "close releases everything".
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(self.bind_host or None, self.port, type=socket.SOCK_STREAM,
                                       flags=socket.AI_PASSIVE)
        family, _, _, _, addr = infos[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(addr)
            sock.listen(self.limits.backlog)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self.port = sock.getsockname()[1]
        loop.add_reader(sock.fileno(), self._on_acceptable)

    def _on_acceptable(self) -> None:
        assert self._sock is not None
        loop = asyncio.get_running_loop()
        for _ in range(64):  # bounded batch, so one busy endpoint cannot starve the loop
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. out of file descriptors: pause accepting instead of spinning
                fd = self._sock.fileno()
                loop.remove_reader(fd)
                loop.call_later(0.05, lambda: self._closed or loop.add_reader(fd, self._on_acceptable))
                return
            conn.setblocking(False)
            self._raw.add(conn)  # closed by _aclose if its task never got to run
            task = loop.create_task(self._serve_socket(conn))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _serve_socket(self, conn: socket.socket) -> None:
        try:
            reader, writer = await asyncio.open_connection(sock=conn, limit=self.limits.max_header_bytes)
        except BaseException:
            conn.close()
            raise
        finally:
            self._raw.discard(conn)
        await self._handle(reader, writer)

    async def _aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()  # the port is free from here on
        for w in list(self._conns):
            w.transport.abort()
        self._conns.clear()
        for c in list(self._raw):
            c.close()
        self._raw.clear()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _rate_wait(self, ip: str) -> float:
        """Request token bucket: 0 if the request may proceed, else seconds until a token."""
        return self._take(self._buckets, ip, 1.0, self.limits.rate_per_s, self.limits.rate_burst)

    def _take(self, buckets: dict[str, list[float]], key: str, cost: float, rate: float | None, burst: float) -> float:
        """Token bucket ``buckets[key]``: take ``cost`` tokens and return 0, or return the seconds
        until there are enough (nothing taken). A cost above ``burst`` is charged as ``burst``."""
        if rate is None:
            return 0.0
        cost = min(cost, burst)
        now = asyncio.get_running_loop().time()
        b = buckets.get(key)
        if b is None:
            if len(buckets) >= self.limits.max_tracked_clients:
                # Forget clients whose bucket has refilled: they behave like new ones anyway.
                for k in [k for k, v in buckets.items() if v[0] + (now - v[1]) * rate >= burst]:
                    del buckets[k]
                if len(buckets) >= self.limits.max_tracked_clients:
                    buckets.clear()
            b = buckets[key] = [burst, now]
        tokens = min(burst, b[0] + (now - b[1]) * rate)
        b[1] = now
        if tokens >= cost:
            b[0] = tokens - cost
            return 0.0
        b[0] = tokens
        return (cost - tokens) / rate

    def _send(self, writer: asyncio.StreamWriter, status: int, body: bytes = b"", *,
              content_type: str = "text/plain; charset=utf-8", close: bool = False,
              head_only: bool = False, extra: str = "", length: int | None = None) -> None:
        """Write a response head (and ``body``). ``length``: the Content-Length of a body the
        caller streams itself (:meth:`_stream`)."""
        connection = "close" if close else "keep-alive"
        head = (
            f"HTTP/1.1 {status} {_REASON[status]}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body) if length is None else length}\r\n{extra}Connection: {connection}\r\n\r\n"
        ).encode("latin-1")
        self.status_counts[status] += 1
        if head_only or not body:
            writer.write(head)
        elif len(body) < 65536:
            writer.write(head + body)  # one segment for small blobs
        else:
            writer.write(head)
            writer.write(body)
        if status == 200 and not head_only and length is None:
            self.bytes_sent += len(body)

    def _admit(self, client: str) -> bool:
        """Whether a new connection of ``client`` may be served: under its own cap, and under
        the endpoint's, or else after closing a connection of the client holding the most (if
        that client holds more than this one would) that waits on its client: idle (no request)
        or unread (a response waiting for its reader; the longest waiting first). Unread ones
        count since an outside probe held all 128 slots with connections that pipelined 100
        requests and never read: none was idle, and honest fetches got 503 in 3 of 5 windows."""
        lim = self.limits
        mine = len(self._by_client.get(client, ()))
        if mine >= lim.max_connections_per_client:
            return False
        if len(self._conns) < lim.max_connections:
            return True
        heaviest = max(self._by_client, key=lambda k: len(self._by_client[k]), default=None)
        if heaviest is None or len(self._by_client[heaviest]) <= mine + 1:
            return False
        held = self._by_client[heaviest]
        idle = next((w for w in held if w in self._idle), None)
        if idle is None:
            idle = min((w for w in held if w in self._draining), key=self._draining.__getitem__, default=None)
        if idle is None:
            return False
        self._forget(idle, heaviest)
        idle.transport.abort()
        self.evicted += 1
        return True

    async def _drain(self, writer: asyncio.StreamWriter, due: float) -> None:
        """Wait until the transport has handed what was written to the socket, by loop time
        ``due`` (TimeoutError after); evictable meanwhile (:meth:`_admit`)."""
        loop = asyncio.get_running_loop()
        self._draining[writer] = loop.time()
        try:
            async with asyncio.timeout(max(0.0, due - loop.time())):
                await writer.drain()
        finally:
            self._draining.pop(writer, None)

    def _drain_due(self, writer: asyncio.StreamWriter) -> float:
        """By when the bytes written and not yet sent must be: ``send_grace`` plus their time at
        ``min_send_rate``, within ``write_timeout``. Every response, small ones too: a client that
        pipelines requests and never reads held each connection the whole ``write_timeout`` (60 s)
        while only blobs of ``send_chunk`` or more met the floor rate."""
        lim = self.limits
        pending = writer.transport.get_write_buffer_size()
        return asyncio.get_running_loop().time() + min(lim.write_timeout, lim.send_grace + pending / lim.min_send_rate)

    def _forget(self, writer: asyncio.StreamWriter, client: str) -> None:
        self._conns.discard(writer)
        self._idle.discard(writer)
        self._draining.pop(writer, None)
        conns = self._by_client.get(client)
        if conns is not None:
            conns.discard(writer)
            if not conns:
                del self._by_client[client]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        lim = self.limits
        peer = writer.get_extra_info("peername")
        ip = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
        client = client_key(ip)
        if self._closed or not self._admit(client):
            self._send(writer, 503, b"busy", close=True)
            writer.close()
            return
        self._conns.add(writer)
        self._by_client.setdefault(client, set()).add(writer)
        born = asyncio.get_running_loop().time()
        try:
            for served in range(1, lim.max_requests_per_connection + 1):
                self._idle.add(writer)
                try:
                    async with asyncio.timeout(lim.header_timeout):
                        head = await self._read_head(reader)
                except asyncio.LimitOverrunError:
                    head = 431
                except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, OSError):
                    break  # slow, idle or gone: close quietly
                finally:
                    self._idle.discard(writer)
                if head == 431:
                    self._send(writer, 431, b"request head too large", close=True)
                    break
                req = _parse_head(head) if isinstance(head, bytes) else None  # else 400
                if req is None:
                    self._send(writer, 400, b"malformed request", close=True)
                    break
                method, target, keep_alive = req
                old = asyncio.get_running_loop().time() - born >= lim.max_connection_seconds
                keep_alive = keep_alive and served < lim.max_requests_per_connection and not old
                if not await self._respond(writer, client, method, target, keep_alive):
                    break
                try:
                    await self._drain(writer, self._drain_due(writer))
                except TimeoutError:
                    self.cut_slow += 1
                    break
                if not keep_alive:
                    break
        except Exception:  # noqa: BLE001 - a client must never take the server down
            # resets and timeouts are routine with hostile clients; a bug of ours shows here
            log.debug("connection from %s ended by an exception", client, exc_info=True)
        finally:
            self._forget(writer, client)
            if writer.transport.get_write_buffer_size():
                # a graceful close waits for a reader that may never read: the socket (and what it
                # queued) stayed open, uncounted, until the client left (128 fds a minute, found by
                # an outside probe); what is unsent is dropped instead
                writer.transport.abort()
            else:
                writer.close()

    async def _read_head(self, reader: asyncio.StreamReader) -> bytes | int:
        """The request head through its blank line, or 400 / 431 as soon as it is malformed /
        too large. Lines are read one by one and must end in CRLF, and the request line is
        checked on arrival, so an HTTP/0.9 (``GET /path`` CRLF) or bare-LF request gets its 400
        at once instead of a silent close when the header timeout expires."""
        lines: list[bytes] = []
        size = 0
        while True:
            line = await reader.readuntil(b"\n")  # one line longer than the limit: LimitOverrunError
            size += len(line)
            if size > self.limits.max_header_bytes:
                return 431
            if not line.endswith(b"\r\n") or (
                not lines and _REQUEST_LINE.fullmatch(line[:-2].decode("latin-1")) is None
            ):
                return 400
            lines.append(line)
            if line == b"\r\n":
                return b"".join(lines)

    async def _respond(self, writer: asyncio.StreamWriter, client: str, method: str, target: str,
                       keep_alive: bool) -> bool:
        """Write one response; False if the connection must be closed."""
        close = not keep_alive
        head_only = method == "HEAD"  # a HEAD response never carries a body (RFC 9110 9.3.2)
        wait = self._rate_wait(client)
        if wait > 0:
            self._send(writer, 429, b"rate limited", close=close, head_only=head_only,
                       extra=f"Retry-After: {max(1, math.ceil(wait))}\r\n")
            return True
        if method not in ("GET", "HEAD"):
            self._send(writer, 405, b"method not allowed", close=close, extra="Allow: GET, HEAD\r\n")
            return True
        path, _, query = target.partition("?")
        if self._routes is not None and path.startswith("/p/"):
            route, _, rest = path[3:].partition("/")
            ep = self._routes.get(route)
            if ep is None:
                self._send(writer, 404, b"not found", close=close, head_only=head_only)
                return True
            if ep._closed:  # a stopped peer: its connections go, as with a socket of its own
                writer.transport.abort()
                return False
            return await ep._respond(writer, client, method, "/" + rest + ("?" + query if query else ""), keep_alive)
        if path == "/health":
            body = json.dumps({"blobs": len(self._blobs), "status": "ok"}, sort_keys=True).encode()
            self._send(writer, 200, body, content_type="application/json", close=close, head_only=head_only)
            return True
        h = path[7:].lower() if path.startswith("/blobs/") else ""
        blob = self._blobs.get(h) if len(h) == 66 and h.startswith("0x") and _HEXDIGITS.issuperset(h[2:]) else None
        if blob is None:
            self._send(writer, 404, b"not found", close=close, head_only=head_only)
            return True
        sealed = self._sealed.get(h)
        key = parse_qs(query).get(SEAL_KEY_PARAM, [None])[0] if query and sealed is not None else None
        if sealed is not None and not await self._host._servable(sealed, key):
            self._send(writer, 503, f"sealed until the Submit phase of round {sealed} ends".encode(), close=close,
                       head_only=head_only, extra="Retry-After: 1\r\n")
            return True
        kind, delay = self._fault
        if kind == "drop":
            writer.transport.abort()
            return False
        if kind == "error":
            self._send(writer, 503, b"injected fault", close=close, head_only=head_only)
            return True
        if kind == "slow":
            await asyncio.sleep(delay)
        if kind == "corrupt":
            blob = bytes([blob[0] ^ 0xFF]) + blob[1:] if blob else b"\x00"
        if not head_only:
            wait = self._take(self._byte_buckets, client, float(len(blob)), self.limits.client_bytes_per_s,
                              self.limits.client_bytes_burst)
            if wait > 0:
                self._send(writer, 429, b"byte budget spent", close=close,
                           extra=f"Retry-After: {max(1, math.ceil(wait))}\r\n")
                return True
        return await self._stream(writer, blob, close=close, head_only=head_only)

    async def _stream(self, writer: asyncio.StreamWriter, blob: bytes, *, close: bool, head_only: bool) -> bool:
        """Send a blob's 200 response in ``send_chunk`` memoryview slices of the shared buffer
        (the transport copies at most the unsent part of one slice), draining after each; a
        reader slower than ``min_send_rate`` after ``send_grace`` s (or past ``write_timeout``)
        is cut. False if the connection was cut."""
        lim = self.limits
        if head_only or len(blob) < lim.send_chunk:
            self._send(writer, 200, blob, content_type="application/octet-stream", close=close, head_only=head_only)
            return True
        self._send(writer, 200, b"", content_type="application/octet-stream", close=close, length=len(blob))
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        view = memoryview(blob)
        try:
            for start in range(0, len(view), lim.send_chunk):
                chunk = view[start:start + lim.send_chunk]
                writer.write(chunk)
                # by when this chunk must be drained: the floor rate over all bytes so far
                due = min(t0 + lim.write_timeout, t0 + lim.send_grace + (start + len(chunk)) / lim.min_send_rate)
                await self._drain(writer, due)
        except TimeoutError:
            self.cut_slow += 1
            writer.transport.abort()
            return False
        finally:
            view.release()
        self.bytes_sent += len(blob)
        return True


def _parse_head(head: bytes) -> tuple[str, str, bool] | None:
    """(method, target, keep_alive) of a request head, or None if malformed or it has a body."""
    lines = head[:-4].decode("latin-1").split("\r\n")
    m = _REQUEST_LINE.fullmatch(lines[0])
    if m is None:
        return None
    method, target, version = m.groups()
    keep_alive = version == "HTTP/1.1"
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or any(c in " \t" for c in name):  # also rejects obsolete line folding
            return None
        lname, value = name.lower(), value.strip().lower()
        if lname == "connection":
            tokens = {t.strip() for t in value.split(",")}
            keep_alive = "close" not in tokens and (keep_alive or "keep-alive" in tokens)
        elif (lname == "content-length" and value != "0") or lname == "transfer-encoding":
            return None  # no endpoint takes a body; refusing avoids request smuggling
    return method, target, keep_alive


def raise_fd_limit(target: int = 65536) -> bool:
    """Raise this process's soft open-files limit towards ``target`` (capped by the hard
    limit); True if it rose. Hosting N endpoints needs about N + open connections fds."""
    try:
        import resource
    except ImportError:  # not on POSIX
        return False
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = target if hard == resource.RLIM_INFINITY else min(target, hard)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        return True
    return False


class BlobHost:
    """An event-loop thread hosting many endpoints. Use as a context manager."""

    def __init__(self, name: str = "bdfl-blobhost") -> None:
        self._loop = LoopThread(name)
        self._endpoints: set[Endpoint] = set()
        self._listener: Endpoint | None = None  # the shared listener (add_endpoint(serve_routes=True))
        self._by_url: dict[str, Endpoint] = {}  # base URL -> the endpoint added last with it (served)
        self._closed = False
        #: when round-tagged updates may be served (None: at once; module docstring)
        self.seal: SubmitSeal | None = None
        self._reading: tuple[int, asyncio.Future[bool]] | None = None  # the seal's chain read in flight (_servable)

    @property
    def loop_thread(self) -> LoopThread:
        """The loop the endpoints run on (a :class:`~bdfl.net.fetch.Fetcher` may share it)."""
        return self._loop

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        return tuple(self._endpoints)

    @property
    def bytes_sent(self) -> int:
        """Body bytes of 200 responses sent by the endpoints open now (a traffic counter)."""
        return sum(ep.bytes_sent for ep in tuple(self._endpoints))

    def add_endpoint(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        max_blob_bytes: int,
        retain: int | None = 8,
        limits: ServerLimits | None = None,
        advertise_url: str | None = None,
        serve_routes: bool = False,
        route: str | None = None,
    ) -> Endpoint:
        """Listen on ``host:port`` (0 = a free port) and return the endpoint.

        ``serve_routes``: this endpoint becomes the host's shared listener; it also serves,
        under ``/p/<route>/``, every endpoint added later with ``route`` (its ``limits`` bound
        the connections of all of them). ``route`` (letters, digits, ``-``, ``_``): no socket of
        its own; served by the shared listener (``host`` and ``port`` are ignored), with its
        own blobs, faults, ``limits`` on requests and bytes, and URL ``<listener URL>/p/<route>``.
        Adding a route again replaces the endpoint there (a restarted peer)."""
        if self._closed:
            raise RuntimeError("BlobHost is closed")
        if route is not None:
            return self._add_route(route, max_blob_bytes=max_blob_bytes, retain=retain, limits=limits, advertise_url=advertise_url)
        ep = Endpoint(self, host, port, max_blob_bytes=max_blob_bytes, retain=retain,
                      limits=limits or ServerLimits(), advertise_url=advertise_url)
        if serve_routes:
            ep._routes = {}
        try:
            try:
                self._loop.run(ep._start())
            except OSError as e:
                if e.errno != errno.EMFILE or not raise_fd_limit():
                    raise
                self._loop.run(ep._start())  # retry once with the raised open-files limit
        except OSError as e:
            raise BDFLError(
                f"cannot listen on {host}:{port}: {e.strerror or e}",
                fix="choose another port (0 = any free port), or raise the open-files limit (ulimit -n) "
                "when hosting many endpoints",
            ) from e
        self._endpoints.add(ep)
        self._by_url[ep.url] = ep
        if serve_routes:
            self._listener = ep
        return ep

    async def _servable(self, round_: int, key: str | None) -> bool:
        """Whether an update of round ``round_`` may be served to a reader with ``key``. A chain
        read, when one is needed, runs in an executor thread (never on the loop), and one at a
        time per host: readers meanwhile await the read in flight when it is for this round or
        a later one (closing a round closes the earlier ones), so neither the first readers of a
        round (a worker's in-process reads, other workers' requests) nor a flood of sealed
        requests each hold a thread or fall back to the seal's recheck limit."""
        seal = self.seal
        if seal is None or seal.known_open(round_) or seal.authorised(key):
            return True
        reading = self._reading
        if reading is None or reading[0] < round_:
            reading = (round_, asyncio.get_running_loop().run_in_executor(None, seal.opened, round_))
            self._reading = reading
            reading[1].add_done_callback(lambda _done: self._read_done(reading))
        await asyncio.shield(reading[1])  # a reader that goes away does not cancel the others' read
        return seal.known_open(round_)

    def _read_done(self, reading: tuple[int, asyncio.Future[bool]]) -> None:
        if self._reading is reading:
            self._reading = None

    def _published(self, url: str, h: str) -> tuple[bytes | None, int | None]:
        """(blob, sealed round) the open endpoint at ``url`` holds under ``h``; (None, None) where
        there is none, it does not hold ``h`` or a test fault is set (faults answer over HTTP)."""
        ep = self._by_url.get(url.rstrip("/"))
        if ep is None or ep._closed or ep not in self._endpoints or ep._fault[0] is not None or not isinstance(h, str):
            return None, None
        with ep._lock:
            return ep._blobs.get(h.lower()), ep._sealed.get(h.lower())

    async def aserved(self, url: str, h: str, *, key: str | None = None) -> bytes | None:
        """:meth:`served` for a reader on this host's loop (``Fetcher(local=host.aserved)``): the
        chain read a sealed update may need runs in an executor thread, not on the loop."""
        blob, sealed = self._published(url, h)
        if blob is not None and sealed is not None and not await self._servable(sealed, key):
            return None
        return blob

    def served(self, url: str, h: str, *, key: str | None = None) -> bytes | None:
        """The blob the open endpoint of this host at base URL ``url`` serves under hash ``h``
        now, read without a request (the very object it serves: a fetcher in this process,
        ``Fetcher(local=host.served)``, or ``local=host.aserved`` on the host's loop, takes a
        co-hosted peer's update without an HTTP copy; it checks the hash itself). None where no open endpoint here has that URL, it does not serve
        ``h``, or a test fault is set on it (faults answer over HTTP, as they would elsewhere), or
        it is sealed (``key``: as a request's ``seal_key``). Whether it still is may take one chain
        read (:meth:`SubmitSeal.opened`: once per round once open, rate-limited before), in the
        calling thread: on the host's loop use :meth:`aserved`."""
        blob, sealed = self._published(url, h)
        seal = self.seal
        if blob is not None and sealed is not None and seal is not None and not seal.authorised(key) and not seal.opened(sealed):
            return None
        return blob

    def _add_route(self, route: str, *, max_blob_bytes: int, retain: int | None, limits: ServerLimits | None,
                   advertise_url: str | None) -> Endpoint:
        """An endpoint served by the shared listener under ``/p/<route>`` (:meth:`add_endpoint`)."""
        listener = self._listener
        if listener is None or listener._closed or listener._routes is None:
            raise BDFLError("no shared listener to add a route to", fix="add an endpoint with serve_routes=True first")
        if not _ROUTE.fullmatch(route):
            raise ValueError(f"route must be 1-64 letters, digits, '-' or '_', got {route!r}")
        ep = Endpoint(self, listener.bind_host, listener.port, max_blob_bytes=max_blob_bytes, retain=retain,
                      limits=limits or ServerLimits(), advertise_url=advertise_url, listener=listener, route=route)
        old = listener._routes.get(route)
        listener._routes[route] = ep  # a dict store: atomic for the loop thread reading it
        if old is not None:
            old.close()
        self._endpoints.add(ep)
        self._by_url[ep.url] = ep
        return ep

    def close(self) -> None:
        """Close every endpoint, stop the loop, release all ports (idempotent)."""
        if self._closed:
            return
        self._closed = True

        async def _close_all() -> None:
            for ep in list(self._endpoints):
                await ep._aclose()

        try:
            self._loop.run(_close_all(), timeout=10)
        finally:
            self._endpoints.clear()
            self._by_url.clear()
            self._loop.close()

    def __enter__(self) -> BlobHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
