"""A round's update bytes are sealed until its Submit phase ends (bdfl.net.blobserver.SubmitSeal).

Why: the bytes used to be served from the moment they were published, so a copier that read a
victim's hash from ``UpdateSubmitted`` could fetch them and submit a near-copy before the
phase closed (the Mimic attack; at 45 % it cost up to 16 points on MNIST with near-copies
counted once, docs/design-log.md). Nobody honest needs them earlier: auditors fetch after
the committee draw, neighbours after finalize."""

from __future__ import annotations

import asyncio
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from bdfl.net.blobserver import BlobHost, SubmitSeal
from bdfl.net.fetch import FetchError, Fetcher

MB = 1024 * 1024


class Clock:
    """The chain as the seal reads it: rounds up to ``closed_through`` have ended their Submit phase."""

    def __init__(self) -> None:
        self.closed_through = -1
        self.reads = 0
        self.lock = threading.Lock()

    def __call__(self, round_: int) -> bool:
        with self.lock:
            self.reads += 1
            return round_ <= self.closed_through


@pytest.fixture
def host() -> Iterator[BlobHost]:
    with BlobHost() as h:
        yield h


def _get(url: str) -> tuple[int, bytes, str | None]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read(), r.headers.get("Retry-After")
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers.get("Retry-After")


def test_an_update_is_served_only_once_its_rounds_submit_phase_has_ended(host: BlobHost) -> None:
    clock = Clock()
    host.seal = SubmitSeal(clock, recheck=0.0)
    ep = host.add_endpoint(max_blob_bytes=MB)
    update, earlier, unbound = b"round 3 update" * 100, b"round 2 update" * 100, b"no round" * 100
    clock.closed_through = 2
    h3, h2, hx = ep.publish(update, round_=3), ep.publish(earlier, round_=2), ep.publish(unbound)
    status, body, retry = _get(f"{ep.url}/blobs/{h3}")
    assert status == 503 and b"sealed until the Submit phase of round 3 ends" in body and retry == "1"
    assert _get(f"{ep.url}/blobs/{h2}")[:2] == (200, earlier)  # an earlier round's: served
    assert _get(f"{ep.url}/blobs/{hx}")[:2] == (200, unbound)  # published without a round: served
    assert host.served(ep.url, h3) is None and host.served(ep.url, h2) == earlier
    clock.closed_through = 3  # the Submit phase of round 3 ends (advance, or its deadline)
    assert host.served(ep.url, h3) == update  # a co-hosted auditor's in-process read: one chain read
    reads = clock.reads
    assert _get(f"{ep.url}/blobs/{h3}")[:2] == (200, update)
    assert host.served(ep.url, h3) == update and clock.reads == reads  # kept: no chain read again


def test_a_fetcher_waits_out_the_seal_within_its_budget(host: BlobHost) -> None:
    """An auditor whose view of the chain is a moment ahead of the endpoint's retries (503 +
    Retry-After) and gets the bytes once the endpoint sees the phase ended."""
    clock = Clock()
    host.seal = SubmitSeal(clock, recheck=0.0)
    ep = host.add_endpoint(max_blob_bytes=MB)
    h = ep.publish(b"x" * 1000, round_=0)
    threading.Timer(0.5, lambda: setattr(clock, "closed_through", 0)).start()
    with Fetcher(max_bytes=MB, timeout=2.0, retries=5) as f:
        assert f.fetch_many([(ep.url, h)], budget=10.0)[h] == b"x" * 1000


def test_a_copier_polling_during_submit_gets_nothing_and_costs_one_chain_read_per_recheck(host: BlobHost) -> None:
    """The adversary: a member that read the victim's hash from UpdateSubmitted and polls the
    victim's endpoint (plain, with a made-up key, with an empty key, over a shared listener's
    route, with HEAD) to copy the update before the phase closes."""
    clock = Clock()
    host.seal = SubmitSeal(clock, key="the-simulators-secret", recheck=60.0)
    host.add_endpoint(max_blob_bytes=0, serve_routes=True)
    victim = host.add_endpoint(route="00004", max_blob_bytes=MB)
    h = victim.publish(b"victim's update" * 100, round_=5)
    urls = [f"{victim.url}/blobs/{h}", f"{victim.url}/blobs/{h}?seal_key=guess", f"{victim.url}/blobs/{h}?seal_key=",
            f"{victim.url}/blobs/{h}?seal_key=the-simulators-secreT"]
    for _ in range(20):
        for url in urls:
            assert _get(url)[0] == 503
    head = urllib.request.Request(urls[0], method="HEAD")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(head, timeout=5)
    assert err.value.code == 503
    with Fetcher(max_bytes=MB, timeout=1.0, retries=1) as f:
        got = f.fetch_many([(victim.url, h)])[h]
        assert isinstance(got, FetchError) and got.status == 503
    assert host.served(victim.url, h) is None and host.served(victim.url, h, key="guess") is None
    assert clock.reads == 1  # 80+ requests, one chain read: polling costs the victim no RPC each


def test_the_simulators_side_channel_reads_a_sealed_update_and_nothing_else_does(host: BlobHost) -> None:
    """attack.knowledge = "omniscient": the worst-case attackers' fetcher carries the run's key
    (over a route too); the key is the host's own, never a default."""
    clock = Clock()
    host.seal = SubmitSeal(clock, key="k3y", recheck=0.0)
    host.add_endpoint(max_blob_bytes=0, serve_routes=True)
    ep = host.add_endpoint(route="00001", max_blob_bytes=MB)
    h = ep.publish(b"honest update" * 50, round_=0)
    with Fetcher(max_bytes=MB, timeout=2.0, retries=0, seal_key="k3y") as oracle:
        assert oracle.fetch_many([(ep.url, h)])[h] == b"honest update" * 50
    assert host.served(ep.url, h, key="k3y") == b"honest update" * 50
    with Fetcher(max_bytes=MB, timeout=2.0, retries=0) as plain:
        assert isinstance(plain.fetch_many([(ep.url, h)])[h], FetchError)
    assert clock.reads >= 1 and SubmitSeal(clock).authorised(None) is False and SubmitSeal(clock).authorised("") is False


def test_a_failing_chain_read_keeps_the_seal(host: BlobHost) -> None:
    def broken(round_: int) -> bool:
        raise ConnectionError("rpc down")

    host.seal = SubmitSeal(broken, recheck=0.0)
    ep = host.add_endpoint(max_blob_bytes=MB)
    h = ep.publish(b"y" * 100, round_=1)
    assert _get(f"{ep.url}/blobs/{h}")[0] == 503


def test_evicted_and_unpublished_updates_leave_no_seal_behind(host: BlobHost) -> None:
    host.seal = SubmitSeal(Clock(), recheck=0.0)
    ep = host.add_endpoint(max_blob_bytes=MB, retain=2)
    first = ep.publish(b"a" * 10, round_=0)
    ep.publish(b"b" * 10, round_=0)
    ep.publish(b"c" * 10, round_=0)  # evicts the first
    assert first not in ep.published() and first not in ep._sealed
    h = ep.publish(b"d" * 10, round_=1)
    assert ep.unpublish(h) and h not in ep._sealed
    again = ep.publish(b"b" * 10)  # re-published without a round: no longer sealed
    assert again not in ep._sealed


def test_an_empty_key_opens_nothing_even_on_a_host_whose_key_is_empty(host: BlobHost) -> None:
    """Found by an outside probe: SubmitSeal(key="") authorised key "" on the in-process path."""
    host.seal = SubmitSeal(Clock(), key="", recheck=0.0)
    ep = host.add_endpoint(max_blob_bytes=MB)
    h = ep.publish(b"z" * 100, round_=0)
    assert host.served(ep.url, h, key="") is None and host.served(ep.url, h) is None
    assert _get(f"{ep.url}/blobs/{h}?seal_key=")[0] == 503


def test_a_slow_chain_read_is_not_repeated_by_every_queued_request() -> None:
    """Found by an outside probe: with reads slower than the recheck interval, each queued sealed
    request made its own read, one after another. Now a read is stamped when it ends and a
    request waits at most one interval for another's read."""
    import time as _time

    reads: list[float] = []

    def slow(round_: int) -> bool:
        reads.append(_time.monotonic())
        _time.sleep(0.5)
        return False

    seal = SubmitSeal(slow, recheck=0.25)
    threads = [threading.Thread(target=seal.opened, args=(3,)) for _ in range(40)]
    t0 = _time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert _time.monotonic() - t0 < 2.0  # nobody queued behind 40 reads
    assert len(reads) <= 2, len(reads)


def test_the_in_process_read_on_the_hosts_loop_never_blocks_it_on_a_chain_read(host: BlobHost) -> None:
    """A worker's fetcher runs on its host's loop and reads co-hosted updates in process
    (``local=host.aserved``). The chain read a sealed update needs must not run on that loop: it
    used to (BlobHost.served), so a slow read, or one waiting for an executor's read, stalled every
    endpoint of the worker, and under load in-process reads fell back to HTTP (a flaky e2e test)."""
    import time as _time

    def slow(round_: int) -> bool:
        _time.sleep(0.2)
        return True

    host.seal = SubmitSeal(slow, recheck=0.0)
    eps = [host.add_endpoint(max_blob_bytes=MB) for _ in range(3)]
    hashes = [ep.publish(bytes([i]) * 1000, round_=4) for i, ep in enumerate(eps)]
    stalls: list[float] = []

    async def tick() -> None:  # how late the loop runs a 10 ms timer meanwhile
        for _ in range(30):
            t = _time.monotonic()
            await asyncio.sleep(0.01)
            stalls.append(_time.monotonic() - t - 0.01)

    with Fetcher(max_bytes=MB, timeout=5.0, retries=0, loop=host.loop_thread, local=host.aserved) as f:
        ticking = asyncio.run_coroutine_threadsafe(tick(), host.loop_thread.loop)
        got = f.fetch_many([(ep.url, h) for ep, h in zip(eps, hashes)])
        ticking.result(timeout=5)
    assert [got[h] for h in hashes] == [bytes([i]) * 1000 for i in range(3)]
    assert f.local_bodies == 3 and f.bodies_fetched == 0  # in process, none over HTTP
    assert max(stalls) < 0.1, max(stalls)  # the 0.2 s read never held the loop


def test_the_recheck_limit_follows_only_a_round_read_as_open() -> None:
    """The recheck interval held after any read, so a worker's audit that read round r - 1's
    starts (open) and at once round r's candidates got "sealed" for round r for 0.25 s, and its
    in-process reads fell back to HTTP (a flaky e2e test). A round read as still open says the
    same of every later round, nothing of earlier ones."""
    clock = Clock()
    clock.closed_through = 2
    seal = SubmitSeal(clock, recheck=60.0)
    assert seal.opened(1) and seal.opened(2) and clock.reads == 2  # no wait after an open answer
    assert not seal.opened(5) and clock.reads == 3  # round 5 still open
    assert not seal.opened(6) and clock.reads == 3  # so is 6: not read again within the interval
    clock.closed_through = 4
    assert seal.opened(4) and clock.reads == 4  # an earlier round may have closed: read at once
