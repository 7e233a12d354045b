"""HTTP client for blob endpoints: timeouts, bounded retries, size limit, hash check.

:class:`Fetcher` owns (or shares) one event loop and one aiohttp session, so a
peer or a simulation worker reuses connections across rounds; its synchronous
methods may be called from any thread other than that loop's thread.
:func:`fetch_blob` and :func:`fetch_many` are one-shot conveniences.

Retry policy: connection errors, timeouts, 5xx and 429 are retried (at most
``retries`` times, exponential backoff from ``backoff`` capped at ``max_backoff``,
429 honours ``Retry-After`` up to that cap); 404, other 4xx/3xx, a body over
``max_bytes`` and a hash mismatch are final.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from typing import Any

import aiohttp

from bdfl.net.blobserver import LoopThread
from bdfl.net.serialization import InvalidUpdate, NetError, parse_hash_hex, update_hash

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
    ) -> None:
        if retries < 0 or timeout <= 0 or concurrency < 1 or max_bytes < 0:
            raise ValueError("need retries >= 0, timeout > 0, concurrency >= 1, max_bytes >= 0")
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.retries = retries
        self.concurrency = concurrency
        self.per_host_connections = per_host_connections
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._owns_loop = loop is None
        self._loop = loop if loop is not None else LoopThread("bdfl-fetcher")
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    # ------------------------------------------------------------ sync API

    def fetch(self, base_url: str, hash_hex: str) -> bytes:
        """Fetch and verify one blob; raises :class:`FetchError` (or :class:`HashMismatch`)."""
        return self._loop.run(self.afetch(base_url, hash_hex))

    def fetch_many(self, requests: Sequence[tuple[str, str]]) -> dict[str, bytes | FetchError]:
        """Fetch many ``(base_url, hash_hex)`` concurrently; see :meth:`afetch_many`."""
        return self._loop.run(self.afetch_many(requests))

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

    async def afetch(self, base_url: str, hash_hex: str) -> bytes:
        """Coroutine form of :meth:`fetch`."""
        try:
            expected = parse_hash_hex(hash_hex)
        except ValueError as e:
            raise FetchError("bad_request", str(e), url=base_url) from None
        url = f"{base_url.rstrip('/')}/blobs/0x{expected.hex()}"
        for attempt in range(1, self.retries + 2):
            try:
                return await self._attempt(url, expected)
            except FetchError as e:
                e.attempts = attempt
                if not e.retryable or attempt > self.retries:
                    raise
                delay = min(self.max_backoff, self.backoff * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)
                if e.retry_after is not None:
                    delay = max(delay, min(e.retry_after, self.max_backoff))
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def afetch_many(self, requests: Sequence[tuple[str, str]]) -> dict[str, bytes | FetchError]:
        """Fetch ``(base_url, hash_hex)`` pairs with at most ``concurrency`` in flight.

        Returns ``{hash: bytes | FetchError}`` keyed by the lowercase ``0x`` hash.
        Requests naming the same hash are alternative sources for the same
        content-addressed bytes: they are tried in the given order until one succeeds.
        """
        sources: dict[str, list[str]] = {}
        for base_url, h in requests:
            urls = sources.setdefault(h.lower() if isinstance(h, str) else str(h), [])
            if base_url not in urls:
                urls.append(base_url)
        sem = asyncio.Semaphore(self.concurrency)

        async def one(h: str, urls: list[str]) -> tuple[str, bytes | FetchError]:
            async with sem:
                err: FetchError | None = None
                for base in urls:
                    try:
                        return h, await self.afetch(base, h)
                    except FetchError as e:
                        err = e
                assert err is not None
                return h, err

        results = await asyncio.gather(*(one(h, urls) for h, urls in sources.items()))
        return dict(results)

    # ------------------------------------------------------------ internals

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("Fetcher is closed")
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self.concurrency, limit_per_host=self.per_host_connections,
                keepalive_timeout=5.0,  # below the server's idle timeout, so reused sockets are alive
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None),  # each attempt is bounded by asyncio.timeout
                auto_decompress=False,  # a compressed body could be a decompression bomb
                trust_env=False,
            )
            self._loop.at_close(self._session.close)  # closed with a shared loop that outlives us
        return self._session

    async def _attempt(self, url: str, expected: bytes) -> bytes:
        session = self._get_session()
        chunks: list[bytes] = []
        try:
            async with asyncio.timeout(self.timeout):
                async with session.get(url, allow_redirects=False) as resp:
                    if resp.status != 200:
                        raise _status_error(url, resp)
                    if resp.content_length is not None and resp.content_length > self.max_bytes:
                        raise FetchError("too_large", f"{url}: Content-Length {resp.content_length} > max_bytes "
                                         f"{self.max_bytes}", url=url, status=200)
                    n = 0
                    async for chunk in resp.content.iter_any():
                        n += len(chunk)
                        if n > self.max_bytes:  # stop reading: never hold more than max_bytes + one chunk
                            raise FetchError("too_large", f"{url}: body exceeds max_bytes {self.max_bytes}",
                                             url=url, status=200)
                        chunks.append(chunk)
        except FetchError:
            raise
        except TimeoutError:
            raise FetchError("timeout", f"{url}: no complete answer within {self.timeout} s", url=url) from None
        except aiohttp.InvalidURL as e:
            raise FetchError("bad_request", f"invalid URL {url!r}: {e}", url=url) from None
        except (aiohttp.ClientError, OSError, ValueError) as e:
            raise FetchError("connection", f"{url}: {type(e).__name__}: {e}", url=url) from None
        data = b"".join(chunks)
        got = update_hash(data)
        if got != expected:
            raise HashMismatch(url, got)
        return data


def _status_error(url: str, resp: aiohttp.ClientResponse) -> FetchError:
    s = resp.status
    if s == 404:
        return FetchError("not_found", f"{url}: 404 not found", url=url, status=s)
    if s == 429:
        try:
            retry_after: float | None = float(resp.headers.get("Retry-After", "1"))
        except ValueError:
            retry_after = None
        return FetchError("rate_limited", f"{url}: 429 rate limited", url=url, status=s, retry_after=retry_after)
    return FetchError("http_status", f"{url}: HTTP {s}", url=url, status=s)


def fetch_blob(base_url: str, hash_hex: str, *, timeout: float, retries: int, max_bytes: int) -> bytes:
    """One-shot :meth:`Fetcher.fetch` (starts and stops a loop; reuse a Fetcher in loops)."""
    with Fetcher(max_bytes=max_bytes, timeout=timeout, retries=retries, concurrency=1) as f:
        return f.fetch(base_url, hash_hex)


def fetch_many(requests: Sequence[tuple[str, str]], *, concurrency: int = 64, timeout: float, retries: int,
               max_bytes: int, **kwargs: Any) -> dict[str, bytes | FetchError]:
    """One-shot :meth:`Fetcher.fetch_many`."""
    with Fetcher(max_bytes=max_bytes, timeout=timeout, retries=retries, concurrency=concurrency, **kwargs) as f:
        return f.fetch_many(requests)
