"""HTTP client for blob endpoints: timeouts, bounded retries, size limit, hash check.

:class:`Fetcher` owns (or shares) one event loop and one aiohttp session, so a
peer or a simulation worker reuses connections across rounds; its synchronous
methods may be called from any thread other than that loop's thread.
:func:`fetch_blob` and :func:`fetch_many` are one-shot conveniences.

Retry policy: connection errors, timeouts, 5xx and 429 are retried with exponential
backoff from ``backoff`` capped at ``max_backoff`` and full jitter (429 honours
``Retry-After`` up to that cap); 404, other 4xx/3xx, a body over ``max_bytes`` and a
hash mismatch are final. Without a time budget a fetch makes at most ``retries`` retries;
with one (``fetch_many(..., budget=seconds)``, sized by the caller from its phase
deadline) it keeps retrying until the budget is spent, each attempt's timeout clipped to
what is left, so a peer that is unreachable for a few seconds (a restart, a flooded
endpoint) is still fetched in time. With an ``allowance`` too, each fetch retries for at most that long from its
first turn on: the budget bounds the whole phase (its window), the allowance one fetch, so
many fetches queued behind ``concurrency`` do not time out for want of a turn.

Bytes in flight: at most ``max_inflight_bytes`` of bodies are fetched at once (counted in
bodies of the size last seen: a round's updates are all one size; a peer that knows its model
sets ``max_bytes`` to the most an update of it encodes to, :meth:`Fetcher.expect_model`, so that
hostile sources streaming ``max_bytes`` each stay within the count), never fewer than one body
and never more than ``concurrency`` requests; until a first answer tells the size, one request
at a time. Without it, 64 concurrent fetches of 44 MB updates through one event loop each
took as long as all of them together, so every attempt hit its timeout at once and every
retry did again (docs/results/model-size.md). A request waiting for its turn does not use its
attempt's timeout, only the budget.

Verified bodies kept (``cache_bytes`` > 0, off by default): bodies that passed the hash check
are kept, least recently used first out, up to that many bytes and, with ``cache_updates`` > 0,
up to that many bodies, and :meth:`Fetcher.fetch_many` answers a hash it holds without a request.
Sized in updates, the cache holds what a round needs whatever the model's size (a fixed byte
size held 32 of 4 MB updates but only 2 of 44 MB ones, so an 11M-parameter run fetched the same
bodies again in every phase: docs/results/model-size.md); the byte size then bounds it by a
memory budget (:func:`memory_budget`). Content addressing makes this safe: the key is the
keccak256 the body was checked against when it arrived. A simulation worker, whose auditors
need last round's updates again as the trainers' start recipes (fetched by its peers to
aggregate) and the round before's as their earlier moves, sets it (:mod:`bdfl.experiment.worker`).

Endpoint URLs come from the chain, i.e. from any member: :func:`check_endpoint_url` refuses
anything but ``http(s)://host[:port][/path]`` (no userinfo, query or fragment) before any
request is sent, and a fetcher with ``allow_private=False`` (a non-devnet chain, unless the
operator allows it) refuses loopback, private, link-local and other non-public addresses,
both literal and as a host name resolves (checked on the resolved addresses it connects to).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import ipaddress
import json
import os
import random
import socket
import urllib.request
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver
from aiohttp.resolver import DefaultResolver

from bdfl.net.blobserver import SEAL_KEY_PARAM, LoopThread
from bdfl.net.serialization import HashedBytes, InvalidUpdate, KeccakStream, ModelSpec, NetError, parse_hash_hex

#: Every ``FetchError.reason``.
FETCH_REASONS = (
    "bad_request",    # malformed hash or URL (never sent)
    "not_found",      # 404: the endpoint does not serve this hash
    "http_status",    # another non-200 status (5xx after retries)
    "rate_limited",   # 429 after retries
    "timeout",        # an attempt exceeded `timeout` seconds, after retries
    "connection",     # refused / reset / closed mid-body, after retries
    "too_large",      # body (or Content-Length) over max_bytes
    "hash_mismatch",  # keccak256(body) differs from the requested hash
)
_RETRYABLE = frozenset({"http_status", "rate_limited", "timeout", "connection"})
#: Chain ids of local devnets (anvil, Hardhat, Ganache), where endpoints on loopback and
#: private addresses are normal; elsewhere they are refused unless the operator allows them.
DEVNET_CHAIN_IDS = frozenset({31337, 1337})
#: Below this many seconds left of a budget no further attempt is started.
_MIN_ATTEMPT_SECONDS = 0.05


def private_allowed(chain_id: int, allow_private: bool = False) -> bool:
    """Whether endpoints on non-public addresses may be fetched on chain ``chain_id``."""
    return bool(allow_private) or int(chain_id) in DEVNET_CHAIN_IDS


def is_public_ip(ip: str) -> bool:
    """True for a globally routable unicast address (IPv4-mapped IPv6 judged as IPv4)."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return not (addr.is_private or addr.is_loopback or addr.is_link_local or addr.is_multicast
                or addr.is_reserved or addr.is_unspecified or not addr.is_global)


def check_endpoint_url(url: str, *, allow_private: bool = True) -> str:
    """``url`` if it is an acceptable endpoint base URL, else :class:`FetchError` ``bad_request``:
    scheme http or https, a host, a port in 1..65535 if given, no userinfo, query or
    fragment, printable ASCII only; with ``allow_private=False`` a literal IP host must be public
    (names are checked when resolved, see :class:`PublicResolver`)."""
    def bad(why: str) -> FetchError:
        return FetchError("bad_request", f"endpoint URL {str(url)[:120]!r} refused: {why}", url=str(url)[:200])

    if not isinstance(url, str) or not url or len(url) > 2048:
        raise bad("not a string of 1..2048 characters")
    if any(not 0x21 <= ord(c) <= 0x7E for c in url):
        raise bad("whitespace, control or non-ASCII characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise bad(str(e)) from None
    if parts.scheme not in ("http", "https"):
        raise bad("scheme must be http or https")
    if "@" in parts.netloc or parts.username is not None:
        raise bad("userinfo (user:password@) is not allowed")
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise bad("query and fragment are not allowed")
    host = parts.hostname
    if not host:
        raise bad("no host")
    if port is not None and not 1 <= port <= 65535 or parts.netloc.endswith(":"):
        raise bad("port must be 1..65535")
    if not allow_private:
        try:
            ipaddress.ip_address(host.split("%", 1)[0])
            literal = True
        except ValueError:
            literal = False
        if literal and not is_public_ip(host):
            raise bad(f"{host} is not a public address (loopback, private, link-local, ...); "
                      "allowed only on devnets or with the operator's allow-private-endpoints option")
        if not literal and host.rstrip(".").lower() in ("localhost", "localhost.localdomain") or host.lower().endswith(".localhost"):
            raise bad(f"{host} is loopback")
    return url


class PublicResolver(AbstractResolver):
    """DNS resolver that drops non-public addresses (so a name cannot lead a fetch to an
    internal service, even when it re-resolves differently later: the check is on the very
    addresses connected to)."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[Any]:
        found = await self._inner.resolve(host, port, family)
        public = [r for r in found if is_public_ip(str(r["host"]))]
        if not public:
            raise OSError(f"{host} resolves to no public address (refused: non-devnet chain)")
        return public

    async def close(self) -> None:
        await self._inner.close()


class FetchError(NetError):
    """A blob could not be fetched; ``reason`` is one of :data:`FETCH_REASONS`."""

    def __init__(self, reason: str, message: str, *, url: str = "", status: int | None = None,
                 attempts: int = 0, retry_after: float | None = None) -> None:
        super().__init__(reason, message)
        self.url = url
        self.status = status
        self.attempts = attempts
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.reason in _RETRYABLE and not (self.reason == "http_status" and (self.status or 0) < 500)


class HashMismatch(FetchError, InvalidUpdate):
    """The endpoint served bytes whose keccak256 is not the requested hash.

    Both a :class:`FetchError` and an :class:`InvalidUpdate` (reason ``hash_mismatch``):
    the publisher served a wrong update, which callers may treat as misbehaviour.
    """

    def __init__(self, url: str, got: bytes) -> None:
        FetchError.__init__(self, "hash_mismatch", f"{url}: body hash is 0x{got.hex()}, not the requested one", url=url)


class Fetcher:
    """Reusable blob client: one aiohttp session on one event loop.

    ``loop=None`` starts a private loop thread; pass ``BlobHost.loop_thread`` to
    share the endpoints' loop (one thread for a whole simulation worker).
    """

    def __init__(
        self,
        *,
        max_bytes: int,
        timeout: float = 10.0,
        retries: int = 2,
        concurrency: int = 64,
        per_host_connections: int = 8,
        backoff: float = 0.05,
        max_backoff: float = 1.0,
        loop: LoopThread | None = None,
        allow_private: bool = True,
        local_addr: str | None = None,
        max_inflight_bytes: int = 128 * 1024 * 1024,
        cache_bytes: int = 0,
        cache_updates: int = 0,
        local: Callable[[str, str], bytes | None | Awaitable[bytes | None]] | None = None,
        seal_key: str | None = None,
    ) -> None:
        if (retries < 0 or timeout <= 0 or concurrency < 1 or max_bytes < 0 or max_inflight_bytes < 1 or cache_bytes < 0
                or cache_updates < 0):
            raise ValueError("need retries >= 0, timeout > 0, concurrency >= 1, max_bytes >= 0, max_inflight_bytes >= 1, "
                             "cache_bytes >= 0, cache_updates >= 0")
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.retries = retries
        self.concurrency = concurrency
        self.per_host_connections = per_host_connections
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.allow_private = allow_private
        self.local_addr = local_addr  # source address to connect from (a multi-homed host; tests)
        # the simulator's side channel past endpoints' Submit-phase seal (bdfl.net.blobserver.SubmitSeal)
        self._query = "?" + urlencode({SEAL_KEY_PARAM: seal_key}) if seal_key else ""
        self._owns_loop = loop is None
        self._loop = loop if loop is not None else LoopThread("bdfl-fetcher")
        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        self.max_inflight_bytes = max_inflight_bytes
        self._body_size: int | None = None  # size of the latest body seen (None: no answer yet)
        self._inflight = 0
        self._turns: asyncio.Condition | None = None  # created on this fetcher's loop
        # traffic counters (read by the owner between calls, e.g. a worker per phase): body bytes
        # received by every attempt (a failed or cut one too) and verified bodies returned
        self.bytes_received = 0
        self.bodies_fetched = 0
        # verified bodies by 0x hash, least recently used first (module docstring); only the loop thread touches it
        self.cache_bytes = cache_bytes
        self.cache_updates = cache_updates  # at most this many bodies kept too (0: bytes alone bound the cache)
        self._cache: OrderedDict[str, HashedBytes] = OrderedDict()
        self._cached = 0  # bytes held in _cache
        self.cache_hits = 0  # hashes fetch_many answered from the cache
        # (base URL, 0x hash) -> the bytes an endpoint in this process serves there, or None, or an
        # awaitable of them (BlobHost.aserved, on this loop): fetch_many takes them without a request
        # once they pass the hash check
        self.local = local
        # verified bodies fetch_many took from a co-hosted endpoint, and their bytes: moved in process,
        # not over HTTP, so bytes_received / bodies_fetched leave them out (bytes moved = both)
        self.local_bodies = 0
        self.local_bytes = 0

    # ------------------------------------------------------------ sync API

    def expect_model(self, spec: ModelSpec) -> None:
        """Read no body longer than an update of ``spec`` encodes to
        (:attr:`~bdfl.net.serialization.ModelSpec.max_encoded_bytes`; never more than ``max_bytes``
        already allows). Measured (an outside probe): with the flat 64 MiB limit, 10 hostile
        sources streaming 63 MiB each raised a fetcher's memory by 630 MB while honest 20 kB
        updates set its in-flight count; a longer body is ``too_large`` (the auditor abstains,
        as for any update it could not fetch: serving nothing would have the same effect)."""
        self.max_bytes = min(self.max_bytes, spec.max_encoded_bytes)

    def fetch(self, base_url: str, hash_hex: str) -> bytes:
        """Fetch and verify one blob; raises :class:`FetchError` (or :class:`HashMismatch`)."""
        return self._loop.run(self.afetch(base_url, hash_hex))

    def fetch_many(self, requests: Sequence[tuple[str, str]], *, budget: float | None = None,
                   allowance: float | None = None) -> dict[str, bytes | FetchError]:
        """Fetch many ``(base_url, hash_hex)`` concurrently; see :meth:`afetch_many`."""
        return self._loop.run(self.afetch_many(requests, budget=budget, allowance=allowance))

    def close(self) -> None:
        """Close the session (and the loop thread if this fetcher started it)."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._session is not None and not self._loop.closed:  # a shared loop closes it itself
                self._loop.cancel_at_close(self._session.close)
                self._loop.run(self._session.close(), timeout=10)
        finally:
            if self._owns_loop:
                self._loop.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ async API (on this fetcher's loop)

    async def afetch(self, base_url: str, hash_hex: str, *, deadline: float | None = None,
                     allowance: float | None = None) -> bytes:
        """Coroutine form of :meth:`fetch`. ``deadline`` (this loop's ``time()``): retry until
        then instead of at most ``retries`` times. ``allowance``: seconds this fetch may retry
        from its first turn on (waiting for a turn does not count), within ``deadline``."""
        try:
            expected = parse_hash_hex(hash_hex)
        except ValueError as e:
            raise FetchError("bad_request", str(e), url=base_url) from None
        check_endpoint_url(base_url, allow_private=self.allow_private)
        url = f"{base_url.rstrip('/')}/blobs/0x{expected.hex()}{self._query}"
        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            attempt += 1
            try:
                async with self._turn(url, deadline):
                    if allowance is not None and attempt == 1:  # its own time starts with its first turn
                        own_end = loop.time() + allowance
                        deadline = own_end if deadline is None else min(deadline, own_end)
                    timeout = self.timeout
                    if deadline is not None:
                        timeout = max(_MIN_ATTEMPT_SECONDS, min(timeout, deadline - loop.time()))
                    return await self._attempt(url, expected, timeout)
            except FetchError as e:
                e.attempts = attempt
                if self._body_size is None:
                    self._saw_size(0)  # no size learnt: do not keep every other request waiting
                if not e.retryable:
                    raise
                # jittered: concurrent fetchers do not come back in lockstep
                delay = random.uniform(0.5, 1.0) * min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
                if e.retry_after is not None:
                    delay = max(delay, min(e.retry_after, self.max_backoff))
                if deadline is None:
                    if attempt > self.retries:
                        raise
                elif loop.time() + delay + _MIN_ATTEMPT_SECONDS > deadline:
                    raise
                await asyncio.sleep(delay)

    async def afetch_many(self, requests: Sequence[tuple[str, str]], *, budget: float | None = None,
                          allowance: float | None = None) -> dict[str, bytes | FetchError]:
        """Fetch ``(base_url, hash_hex)`` pairs with at most ``concurrency`` in flight.

        Returns ``{hash: bytes | FetchError}`` keyed by the lowercase ``0x`` hash.
        Requests naming the same hash are alternative sources for the same
        content-addressed bytes: they are tried in the given order until one succeeds.
        ``budget``: seconds all of it may take (each hash's sources share what is left;
        see the module's retry policy); None: at most ``retries`` retries per source.
        ``allowance``: seconds each source may retry from its first turn on, within the
        budget: many fetches queued behind ``concurrency`` then do not spend a fixed budget
        waiting, while one unreachable source still stops retrying after its own allowance.
        A hash whose verified body the cache holds (``cache_bytes``) is answered without a request.
        """
        loop = asyncio.get_running_loop()
        end = None if budget is None else loop.time() + max(0.0, float(budget))
        sources: dict[str, list[str]] = {}
        for base_url, h in requests:
            urls = sources.setdefault(h.lower() if isinstance(h, str) else str(h), [])
            if base_url not in urls:
                urls.append(base_url)
        sem = asyncio.Semaphore(self.concurrency)
        held = {h: body for h in sources if (body := self._cached_body(h)) is not None}

        async def one(h: str, urls: list[str]) -> tuple[str, bytes | FetchError]:
            async with sem:
                err: FetchError | None = None
                for i, base in enumerate(urls):
                    body = await self._local_body(base, h)
                    if body is not None:
                        self._keep(h, body)
                        return h, body
                    # each remaining source gets an equal share of the time left
                    deadline = None if end is None else loop.time() + (end - loop.time()) / (len(urls) - i)
                    try:
                        body = await self.afetch(base, h, deadline=deadline, allowance=allowance)
                        self._keep(h, body)
                        return h, body
                    except FetchError as e:
                        err = e
                assert err is not None
                return h, err

        results = await asyncio.gather(*(one(h, urls) for h, urls in sources.items() if h not in held))
        return {**held, **dict(results)}

    async def _local_body(self, base: str, h: str) -> HashedBytes | None:
        """The bytes a co-hosted endpoint serves at ``base`` under ``h`` (``local``), if they are
        within ``max_bytes`` and their keccak256 is ``h`` (the same check as a fetched body's:
        the digest a :class:`HashedBytes` carries was computed from exactly these immutable bytes in
        this process); else None and the request goes over HTTP as before."""
        if self.local is None:
            return None
        data = self.local(base, h)
        if inspect.isawaitable(data):
            data = await data
        if not isinstance(data, bytes) or len(data) > self.max_bytes:
            return None
        try:
            expected = parse_hash_hex(h)
        except ValueError:
            return None
        body = HashedBytes.of(data)  # the same object when it already is one (publish keeps encode's)
        if body.keccak256 != expected:
            return None
        self.local_bodies += 1
        self.local_bytes += len(body)
        return body

    def _cached_body(self, h: str) -> HashedBytes | None:
        """The verified body kept for hash ``h`` (lowercase ``0x``), now the most recently used; None if none."""
        body = self._cache.get(h)
        if body is not None:
            self._cache.move_to_end(h)
            self.cache_hits += 1
        return body

    def _keep(self, h: str, body: bytes) -> None:
        """Keep a body that passed the hash check against ``h``, evicting the least recently used
        beyond ``cache_bytes`` or ``cache_updates`` bodies (a body larger than the whole cache is not kept)."""
        if not self.cache_bytes or len(body) > self.cache_bytes or h in self._cache or not isinstance(body, HashedBytes):
            return
        self._cache[h] = body
        self._cached += len(body)
        while self._cached > self.cache_bytes or 0 < self.cache_updates < len(self._cache):
            _old, dropped = self._cache.popitem(last=False)
            self._cached -= len(dropped)

    # ------------------------------------------------------------ internals

    def inflight_allowed(self) -> int:
        """Requests that may be in flight now: 1 until a first answer tells the body size, then
        ``max_inflight_bytes`` // that size, within [1, concurrency]."""
        if self._body_size is None:
            return 1
        return max(1, min(self.concurrency, self.max_inflight_bytes // max(1, self._body_size)))

    def _saw_size(self, size: int) -> None:
        """Record a body size (a Content-Length, or a whole body) and wake requests waiting for a turn."""
        if size != self._body_size:
            self._body_size = size
            if self._turns is not None:
                asyncio.get_running_loop().create_task(self._wake())

    async def _wake(self) -> None:
        assert self._turns is not None
        async with self._turns:
            self._turns.notify_all()

    @contextlib.asynccontextmanager
    async def _turn(self, url: str, deadline: float | None) -> AsyncIterator[None]:
        """Wait until fewer than :meth:`inflight_allowed` requests are in flight (at most until
        ``deadline``: a ``timeout`` FetchError then), and hold a place while the body is read."""
        if self._turns is None:
            self._turns = asyncio.Condition()
        turns = self._turns
        async with turns:
            try:
                async with asyncio.timeout_at(deadline):
                    await turns.wait_for(lambda: self._inflight < self.inflight_allowed())
            except TimeoutError:
                raise FetchError("timeout", f"{url}: the budget ran out while waiting for a turn", url=url) from None
            self._inflight += 1
        try:
            yield
        finally:
            async with turns:
                self._inflight -= 1
                turns.notify_all()

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("Fetcher is closed")
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self.concurrency, limit_per_host=self.per_host_connections,
                keepalive_timeout=5.0,  # below the server's idle timeout, so reused sockets are alive
                resolver=None if self.allow_private else PublicResolver(),
                local_addr=None if self.local_addr is None else (self.local_addr, 0),
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None),  # each attempt is bounded by asyncio.timeout
                auto_decompress=False,  # a compressed body could be a decompression bomb
                trust_env=False,
            )
            self._loop.at_close(self._session.close)  # closed with a shared loop that outlives us
        return self._session

    async def _attempt(self, url: str, expected: bytes, timeout: float) -> HashedBytes:
        """One GET: the body, hashed chunk by chunk as it arrives (keccak256 carried by the
        returned :class:`HashedBytes`, so nobody downstream hashes it again), cut as soon as it
        passes ``max_bytes``."""
        session = self._get_session()
        chunks: list[bytes] = []
        stream = KeccakStream()
        try:
            async with asyncio.timeout(timeout):
                async with session.get(url, allow_redirects=False) as resp:
                    if resp.status != 200:
                        if self._body_size is None:
                            self._saw_size(0)  # an answer without a body: nothing to pace by yet
                        raise _status_error(url, resp)
                    if resp.content_length is not None:
                        self._saw_size(resp.content_length)
                    if resp.content_length is not None and resp.content_length > self.max_bytes:
                        raise FetchError("too_large", f"{url}: Content-Length {resp.content_length} > max_bytes "
                                         f"{self.max_bytes}", url=url, status=200)
                    async for chunk in resp.content.iter_any():
                        if stream.size + len(chunk) > self.max_bytes:  # stop reading: never hold more than max_bytes
                            raise FetchError("too_large", f"{url}: body exceeds max_bytes {self.max_bytes}",
                                             url=url, status=200)
                        stream.update(chunk)
                        chunks.append(chunk)
                        self.bytes_received += len(chunk)
        except FetchError:
            raise
        except TimeoutError:
            raise FetchError("timeout", f"{url}: no complete answer within {timeout:.3g} s", url=url) from None
        except aiohttp.InvalidURL as e:
            raise FetchError("bad_request", f"invalid URL {url!r}: {e}", url=url) from None
        except (aiohttp.ClientError, OSError, ValueError) as e:
            raise FetchError("connection", f"{url}: {type(e).__name__}: {e}", url=url) from None
        self._saw_size(stream.size)
        got = stream.digest()
        if got != expected:
            raise HashMismatch(url, got)
        self.bodies_fetched += 1
        return HashedBytes.from_stream(b"".join(chunks), stream)


def _status_error(url: str, resp: aiohttp.ClientResponse) -> FetchError:
    s = resp.status
    if s == 404:
        return FetchError("not_found", f"{url}: 404 not found", url=url, status=s)
    retry_after: float | None = None
    # 429: rate limited (Retry-After 1 if absent); 503 with Retry-After: an update sealed until
    # its Submit phase ends (a busy endpoint's 503 has none: the usual backoff)
    header = resp.headers.get("Retry-After", "1" if s == 429 else None)
    if s in (429, 503) and header is not None:
        try:
            retry_after = float(header)
        except ValueError:
            retry_after = None
    if s == 429:
        return FetchError("rate_limited", f"{url}: 429 rate limited", url=url, status=s, retry_after=retry_after)
    return FetchError("http_status", f"{url}: HTTP {s}", url=url, status=s, retry_after=retry_after)


def endpoint_answers(base_url: str, timeout: float = 2.0) -> bool:
    """Whether a BDFL blob endpoint answers at ``base_url`` now (``GET /health`` gives its JSON
    ``{"status": "ok"}``). One short request; anything else (refused, timed out, another
    server) is False."""
    try:
        with urllib.request.urlopen(f"{base_url.rstrip('/')}/health", timeout=timeout) as resp:  # noqa: S310 - http(s) only
            return resp.status == 200 and json.loads(resp.read(4096)).get("status") == "ok"
    except (OSError, ValueError, AttributeError):
        return False


def memory_budget(share: float, floor: int = 128 * 1024 * 1024) -> int:
    """``share`` of this machine's physical memory in bytes, at least ``floor`` (the floor alone
    where the size cannot be read): a cache's byte bound."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return floor
    return max(floor, int(total * share))


def fetch_blob(base_url: str, hash_hex: str, *, timeout: float, retries: int, max_bytes: int) -> bytes:
    """One-shot :meth:`Fetcher.fetch` (starts and stops a loop; reuse a Fetcher in loops)."""
    with Fetcher(max_bytes=max_bytes, timeout=timeout, retries=retries, concurrency=1) as f:
        return f.fetch(base_url, hash_hex)


def fetch_many(requests: Sequence[tuple[str, str]], *, concurrency: int = 64, timeout: float, retries: int,
               max_bytes: int, **kwargs: Any) -> dict[str, bytes | FetchError]:
    """One-shot :meth:`Fetcher.fetch_many`."""
    with Fetcher(max_bytes=max_bytes, timeout=timeout, retries=retries, concurrency=concurrency, **kwargs) as f:
        return f.fetch_many(requests)
