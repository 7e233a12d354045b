"""The two drivers of the round engine agree: given the same closed rounds, the simulation's
worker (:class:`bdfl.experiment.worker.Worker`, many peers over one shared chain view and
round memory) and ``bdfl peer`` (:class:`bdfl.peer.standalone.StandalonePeer`, one peer and
its own view and memory) cast the same votes, make the same aggregation plans and end with
bit-identical models.

No devnet: the chain is an in-memory view (:class:`bdfl.peer.view.MemoryChainView`), the
updates are real bytes served over HTTP by real endpoints, and each driver runs its own
code path (the worker's ``audit_commit`` and ``aggregate`` commands, ``bdfl peer``'s
``audit`` and ``finish_round``). Round 0 closes first, so that round 1's auditors rebuild
each trainer's start from the round-0 recipes; one update of round 1 is poisoned.
"""

from __future__ import annotations

import csv

import hashlib
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from bdfl.chain.protocol import Outcome, Submission
from bdfl.config import from_dict
from bdfl.experiment.messages import Aggregate, AuditCommit
from bdfl.experiment.worker import Hosted, Worker
from bdfl.learning.data import load_digits, make_peer_shards
from bdfl.learning.task import fit_client, load_task
from bdfl.net.blobserver import BlobHost
from bdfl.net.fetch import Fetcher
from bdfl.net.serialization import MAX_UPDATE_BYTES
from bdfl.peer import stages
from bdfl.peer.decode_cache import DecodeCache, KeptStarts
from bdfl.peer.engine import PeerEngine
from bdfl.peer.node import Peer, peer_settings
from bdfl.peer.overlay_tracker import OverlayTracker
from bdfl.peer.round_state import ChainMemory, RoundState
from bdfl.peer.standalone import StandalonePeer
from bdfl.peer.state import PeerState
from bdfl.peer.view import MemoryChainView
from tests.peer.auditors import CHAIN, RM

N = 6
ADDRS = [f"0x{i:040x}" for i in range(1, N + 1)]  # digits only: already checksummed
HP = {"local_epochs": 1, "batch_size": 16}
CFG = from_dict({"peers": N, "protocol": {"committee_size": 5, "auditors_per_update": 3, "quorum": 2}, "overlay": {"topology": "ring", "degree": 2, "min_sources": 2},
                 "defense": {"rebuild_starts": True, "replay_window": 2}})


class _Chain:
    """A simulated peer's chain client as the worker uses it when committing: the commitment
    (any hash of the vote vector and salt) and a signer that holds transactions."""

    def __init__(self) -> None:
        self.sender = SimpleNamespace(hold=lambda: None)
        self.committed: list[tuple[int, list[int], list[bool]]] = []

    def vote_commitment(self, rnd: int, idx: list[int], accept: list[bool], salt: bytes) -> bytes:
        return hashlib.sha256(repr((rnd, idx, accept)).encode() + salt).digest()

    def commit_votes(self, rnd: int, idx: list[int], accept: list[bool], salt: bytes, **_kw: Any) -> None:
        self.committed.append((rnd, list(idx), list(accept)))


@pytest.fixture(scope="module")
def world() -> Iterator[dict[str, Any]]:
    """Six digits peers' clients (one per driver copy, built alike), the initial model, the
    round-0 trained models, and six endpoints serving every update."""
    task = load_task("clients.digits")
    ds = load_digits()
    shards = make_peer_shards(ds, N, scheme="iid", seed=0, min_size=20)
    start = task.initial_parameters(ds, seed=0, hparams=HP)
    trained = [fit_client(task.make_client(s.train, s.val, seed=i, hparams=HP), start, {"round": 0}).parameters
               for i, s in enumerate(shards)]
    with BlobHost() as host:
        endpoints = [host.add_endpoint("127.0.0.1", 0, max_blob_bytes=MAX_UPDATE_BYTES) for _ in ADDRS]
        yield {"task": task, "shards": shards, "start": start, "trained": trained, "host": host, "endpoints": endpoints}


def _peer(world: dict[str, Any], i: int) -> Peer:
    s = world["shards"][i]
    peer = Peer(index=i, address=ADDRS[i], client=world["task"].make_client(s.train, s.val, seed=i, hparams=HP),
                endpoint=world["endpoints"][i], settings=peer_settings(CFG, 0), seed=0)
    peer.domain = (CHAIN, RM)
    peer.params = [p.copy() for p in world["start"]]
    return peer


def _set_round(peer: Peer, rnd: int, start: list[np.ndarray], trained: list[np.ndarray]) -> None:
    """The peer trained round ``rnd`` from ``start`` to ``trained`` (same in both drivers)."""
    peer.params = [p.copy() for p in start]
    peer.reference = [p.copy() for p in start]
    peer.trained = [np.asarray(p).copy() for p in trained]


def _subs(view: MemoryChainView, rnd: int, peers: list[Peer], outcomes: dict[int, Outcome]) -> None:
    """Round ``rnd``'s submissions: each peer's published update; votes 5-0 / 0-5 by outcome."""
    out = []
    for i, p in enumerate(peers):
        ok = outcomes.get(i, Outcome.APPROVED)
        accept = 0b11111 if ok == Outcome.APPROVED else 0
        out.append(Submission(i, p.address, 40 + 5 * i, True, ok, bytes.fromhex(p.published[rnd][2:]), 0b11111, accept,
                              bin(accept).count("1"), 5 - bin(accept).count("1")))
    view.subs[rnd] = out
    view.seeds[rnd] = bytes([rnd + 1]) * 32


def _worker(view: MemoryChainView, peers: list[Peer], fetcher: Fetcher, test_client: Any) -> Any:
    """The simulation's worker as far as its audit and aggregate commands need it."""
    w: Any = Worker.__new__(Worker)
    w.cfg, w.view, w.memory, w.fetcher, w.fetch_budget = CFG, view, ChainMemory(CFG), fetcher, 10.0
    w.hosted = {p.index: Hosted(PeerEngine(p, view=view, fetch=fetcher.fetch_many, task="clients.digits",
                                           state=RoundState(w.memory), cfg=CFG), _Chain()) for p in peers}  # type: ignore[arg-type]
    w.states, w.attackers, w.asr_client, w.test_client = {}, set(), None, test_client
    w.spec = SimpleNamespace(addresses=ADDRS)
    w._outbox, w._signing = [], 0.0
    w.host, w._moved = SimpleNamespace(bytes_sent=0), (0, 0, 0)  # the traffic counters of its replies (Worker._traffic)
    w.oracle = None  # attack.knowledge = "omniscient"'s side-channel fetcher: no attackers here
    w.decodes = DecodeCache()  # the worker's peers share one read-only decode per update; the standalone peer has none
    w.kept_starts = KeptStarts()  # the worker takes last audit's starts for the earlier moves; the standalone peer rebuilds them
    for p in peers:
        p.decode_cache = w.decodes
    return w


def _standalone(view: MemoryChainView, peer: Peer, fetcher: Fetcher, tmp: Any) -> Any:
    """``bdfl peer``'s process as far as its audit and finish_round need it: one peer, its own
    round state and overlay, its state folder."""
    sp: Any = StandalonePeer.__new__(StandalonePeer)
    sp.cfg, sp.view, sp.fetcher, sp.peer, sp.address = CFG, view, fetcher, peer, peer.address
    sp.tracker = OverlayTracker("ring", 2)
    sp.round_state = RoundState(ChainMemory(CFG, sp.tracker))
    sp.engine = PeerEngine(peer, view=view, fetch=fetcher.fetch_many, task="clients.digits", state=sp.round_state, cfg=CFG)  # type: ignore[arg-type]
    sp.stop = SimpleNamespace(is_set=lambda: False, wait=lambda s: None)
    sp.state = PeerState.open(tmp, address=peer.address, chain_id=CHAIN, round_manager=RM)
    sp.chain = SimpleNamespace(committee=view.committee, stake_of=lambda: 90 * 10**18, claimable=lambda: 0)  # rounds.csv reads both
    sp._clocks, sp.rounds_done = {}, 0
    return sp


def test_simulated_and_standalone_drivers_agree_bit_for_bit(world: dict[str, Any], tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    view = MemoryChainView(endpoints={a: e.url for a, e in zip(ADDRS, world["endpoints"])},
                           reputation={a: 0.4 + 0.1 * i for i, a in enumerate(ADDRS)})
    sim_peers = [_peer(world, i) for i in range(N)]
    solo_peers = [_peer(world, i) for i in range(N)]
    plans: dict[tuple[str, int], list[Any]] = {}
    real_plan = stages.aggregate.plan

    def spy(engine: PeerEngine, rnd: int) -> Any:  # records each driver's plan, computes it unchanged
        plan = real_plan(engine, rnd)
        plans.setdefault((engine.address, rnd), []).append(plan)
        return plan

    monkeypatch.setattr(stages.aggregate, "plan", spy)
    start, trained0 = world["start"], world["trained"]
    for peers in (sim_peers, solo_peers):
        for p, t in zip(peers, trained0):
            _set_round(p, 0, start, t)
    for p in sim_peers:  # the bytes every peer serves (bound to its submission: same in both copies)
        p.publish(0, p.make_update(0))
    for p, q in zip(solo_peers, sim_peers):
        p.published[0] = q.published[0]
    _subs(view, 0, sim_peers, {3: Outcome.REJECTED})
    with Fetcher(max_bytes=MAX_UPDATE_BYTES, timeout=5.0, retries=1, loop=world["host"].loop_thread, allow_private=True) as fetcher:
        s0 = world["shards"][0]
        test_client = world["task"].make_client(s0.train, s0.val, seed=0, hparams=HP)
        worker = _worker(view, sim_peers, fetcher, test_client)
        solos = [_standalone(view, p, fetcher, tmp_path / f"s{i}") for i, p in enumerate(solo_peers)]

        # round 0 closes: both drivers aggregate it (and remember the round-1 start recipes)
        worker.aggregate(Aggregate(0))
        for sp in solos:
            sp.finish_round(0)
        _same_plans_and_models(plans, sim_peers, solo_peers, 0)
        # these peers never saw round 0 begin (as after a restart mid-round): no duration, not "nan"
        row = next(csv.DictReader((solos[0].state.folder / "rounds.csv").open()))
        assert row["chain_round"] == "0" and row["seconds"] == ""

        # round 1: every peer moves from its aggregated model; peer 4's update is poisoned
        rng = np.random.default_rng(7)
        for i in range(N):
            base = sim_peers[i].params
            move = [0.05 * rng.standard_normal(p.shape).astype(p.dtype) for p in base]
            if i == 4:
                move = [-40.0 * m for m in move]
            new = [b + m for b, m in zip(base, move)]
            _set_round(sim_peers[i], 1, base, new)
            _set_round(solo_peers[i], 1, solo_peers[i].params, new)
            sim_peers[i].publish(1, sim_peers[i].make_update(1))
            solo_peers[i].published[1] = sim_peers[i].published[1]
            solo_peers[i].submitted_params = sim_peers[i].submitted_params
        view.subs[1] = [Submission(i, ADDRS[i], 40 + 5 * i, True, Outcome.PENDING, bytes.fromhex(p.published[1][2:]), 0, 0, 0, 0)
                        for i, p in enumerate(sim_peers)]
        view.committees[1] = list(ADDRS[:5])
        view.assigned[1] = {a: [j for j in range(N) if j != k] for k, a in enumerate(ADDRS[:5])}

        # the votes: the worker's audit_commit (all its auditors at once) vs bdfl peer's audit, one by one
        reply = worker.audit_commit(AuditCommit(1, []))
        solo_votes = {}
        for k in range(5):
            res = solos[k].audit(1, SimpleNamespace(deadline=1e12))
            solo_votes[k] = (res.indices, res.accept)
        assert reply.votes == solo_votes
        assert all(reply.votes[k][0] == view.assigned[1][ADDRS[k]] for k in range(5))  # every assigned update judged
        assert reply.starts.rebuilt > 0  # round-0 recipes were used
        assert any(not a for _i, acc in reply.votes.values() for a in acc)  # the poisoned update got reject votes
        assert [c for h in worker.hosted.values() for c in h.chain.committed] == [(1, i, a) for i, a in solo_votes.values()]

        # round 1 closes: the same plans and bit-identical aggregates
        _subs(view, 1, sim_peers, {4: Outcome.REJECTED})
        worker.aggregate(Aggregate(1))
        for sp in solos:
            sp.finish_round(1)
        _same_plans_and_models(plans, sim_peers, solo_peers, 1)


def _same_plans_and_models(plans: dict[tuple[str, int], list[Any]], sim: list[Peer], solo: list[Peer], rnd: int) -> None:
    for a, b in zip(sim, solo):
        sim_plan, solo_plan = plans[(a.address, rnd)]  # the worker's, then bdfl peer's
        key = [(c.peer, c.hash, c.url, c.weight, c.index) for c in sim_plan.candidates]
        assert key and key == [(c.peer, c.hash, c.url, c.weight, c.index) for c in solo_plan.candidates]
        assert sim_plan.own_weight == solo_plan.own_weight
        assert [p.tobytes() for p in a.params] == [p.tobytes() for p in b.params]  # bit-identical aggregate
        assert [p.dtype for p in a.params] == [p.dtype for p in b.params]
    if rnd:
        assert any(not all(np.array_equal(x, y) for x, y in zip(a.params, a.trained or [])) for a in sim)  # something was combined
