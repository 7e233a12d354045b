"""A worker process hosting many simulated peers, each a round engine (:mod:`bdfl.peer.engine`).

Each peer keeps its own account, its own HTTP endpoint (its own URL, under ``/p/<index>`` of
the worker's one listening port), its own data shard and model, and signs its own
transactions: the worker only shares the machinery (one event loop and one listening socket
for the endpoints, one fetch connection pool, one JSON-RPC connection) and what all its peers read alike: one chain view (each round read once per
worker, :class:`bdfl.peer.view.ProtocolView`) and the chain-derived round memory
(:class:`bdfl.peer.round_state.ChainMemory`: overlay, replay cache, start recipes, moves).

The orchestrator (:mod:`bdfl.experiment.orchestrator`) sends one typed command per stage
over a pipe (:mod:`bdfl.experiment.messages`); the worker answers with a typed reply.
"""

from __future__ import annotations

import functools
import gc
import logging
import shutil
import signal
import tempfile
import time
import traceback
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from bdfl.attacks import attacker_client
from bdfl.chain.accounts import account_from_key
from bdfl.chain.connection import Chain
from bdfl.chain.devnet import set_pdeathsig
from bdfl.chain.protocol import JOIN_GAS, SUBMIT_GAS_BASE, ProtocolClient, draw_gas_bound
from bdfl.chain.relay import Relayer, RelayRequest
from bdfl.chain.txsender import DuplicateHashError, resync_nonces, wait_many
from bdfl.config import ExperimentConfig, from_dict
from bdfl.errors import BDFLError
from bdfl.experiment.messages import (
    Abstained,
    Aggregate,
    AggregateReply,
    AuditCommit,
    AuditRejection,
    AuditReply,
    EndpointFault,
    InputRejected,
    Join,
    Joined,
    LeavePeer,
    OverlayReport,
    PeerRound,
    RestartPeer,
    Restarted,
    Reveal,
    RevealReply,
    SendOutbox,
    SendReply,
    Started,
    StartsCheck,
    Stop,
    StopPeer,
    Submitted,
    Times,
    Traffic,
    TrainSubmit,
    TrainSubmitReply,
)
from bdfl.experiment.setup import bind_endpoint, frozen_clock, make_attack_for, peer_data
from bdfl.learning.task import load_task, task_base_config, task_hparams
from bdfl.plugins import load_plugins
from bdfl.net.allocator import keep_freed_memory
from bdfl.net.blobserver import BlobHost, ServerLimits, SubmitSeal
from bdfl.net.fetch import Fetcher, memory_budget
from bdfl.net.serialization import (MAX_UPDATE_BYTES, InvalidUpdate, ModelSpec, decode_ndarrays, encode_ndarrays, hash_hex,
                                    update_hash)
from bdfl.peer import stages
from bdfl.peer.engine import ClientFailure, PeerEngine
from bdfl.peer.decode_cache import DecodeCache, KeptStarts
from bdfl.peer.node import Peer, peer_settings
from bdfl.peer.rejoin import ensure_membership, resync_from_tiers
from bdfl.peer.round_state import ChainMemory, RoundState
from bdfl.peer.stages.submit import Fallback, FrontRun
from bdfl.peer.state import PeerState
from bdfl.peer.view import ProtocolView
from bdfl.types import NDArrays

log = logging.getLogger("bdfl.worker")

#: Gas limit of the set-up approve (measured: 46k); the join's is bdfl.chain.protocol.JOIN_GAS.
APPROVE_GAS = 80_000
#: A worker's fetcher pools at most this many connections per listener (one per worker), and
#: the listener admits the other workers' pools: every simulated peer fetches from loopback,
#: i.e. as one client, so its per-client cap is the listener's cap.
FETCH_CONNECTIONS_PER_HOST = 32
#: Verified update bodies a worker's fetcher keeps (bdfl.net.fetch, ``cache_updates``): its auditors
#: need this round's updates (candidates, then its peers' aggregation), last round's again (the
#: trainers' start recipes) and the round before's (earlier moves): three rounds of N updates,
#: whatever the model's size (a fixed 128 MiB held 2 of 44 MB updates: docs/results/model-size.md),
#: bounded in bytes by FETCH_CACHE_MEMORY_SHARE of the machine's memory shared by the workers.
#: Only in runs without injected faults: there every endpoint serves every update it published for
#: the whole run, so a kept body is the body a fetch would get; with ``[[faults]]`` (endpoints down,
#: corrupt, slow) each phase fetches from the endpoints, as a peer that had not fetched it would.
FETCH_CACHE_ROUNDS = 3
FETCH_CACHE_MEMORY_SHARE = 0.25
LISTENER_LIMITS = ServerLimits(max_connections=1024, max_connections_per_client=1024, rate_per_s=None, client_bytes_per_s=None)


@dataclass
class WorkerSpec:
    """What a worker needs to start its peers (sent once, at start-up)."""

    worker_id: int
    config: dict[str, Any]
    rpc_url: str
    deployment_path: str
    peers: list[tuple[int, str, int]]  # (peer index, private key hex, endpoint port, 0 = any free): simulation keys only
    attackers: list[int]
    late: list[int] = field(default_factory=list)  # peers that join during the run ([[faults]] join), not at start
    keep_state: bool = False  # persist each peer's model (bdfl.peer.state) so a crashed peer can restart from it
    addresses: list[str] = field(default_factory=list)  # every peer of the run (the chain view reads them in batches)
    endpoint_host: str = "127.0.0.1"  # address the peers' endpoints listen on and advertise (a Ray node's: ray_pool)
    relayer_key: str = ""  # chain.submission = "relayed": the worker's own funded account posting its peers' submitBatch
    # the run's side channel past the endpoints' Submit-phase seal (attack.knowledge = "omniscient":
    # the attackers read the round's honest updates before the phase ends; bdfl.net.blobserver.SubmitSeal)
    seal_key: str = ""


@dataclass
class Hosted:
    """A simulated peer as its worker holds it: its round engine and its own chain client
    (account, signer)."""

    engine: PeerEngine
    chain: ProtocolClient

    @property
    def peer(self) -> Peer:
        return self.engine.peer


class Worker:
    """Hosts many peer round engines over one shared chain view and executes the
    orchestrator's commands (:mod:`bdfl.experiment.messages`), one stage per command."""

    def __init__(self, spec: WorkerSpec) -> None:
        torch.set_num_threads(1)  # tiny models: 15-90x slower with default threads on 2 cores
        # one BLAS thread too: each worker is one process per core, and OpenBLAS's own threads (one
        # per core, spinning between calls) took the other worker's core on the audit's small
        # matrix products: N = 100, 12 rounds, 2 workers: 1.76 -> 1.23 s/round, audit 0.88 -> 0.39 s
        threadpool_limits(1)

        self.cfg: ExperimentConfig = from_dict(spec.config)
        load_plugins(self.cfg.plugins)  # before any name is read: the parent checked them with these imported
        # a simulation devnet: the in-turn sends of a phase are mined together (chain.devnet.batch_mining)
        self.batch_mining = frozen_clock(self.cfg)
        self.spec = spec
        cfg = self.cfg
        self.chain = Chain(spec.rpc_url, 60.0)
        self.deployment = self.chain.load_deployment(spec.deployment_path)
        self.host = BlobHost()
        # one listening socket serves every peer here, each under /p/<its index> with its own
        # URL, blobs and per-client budgets (one socket per peer held 5,000 fds per worker at
        # N = 10,000, and the fetchers' per-port connections ran into ulimit -n: docs/results/scale.md)
        self.listener = bind_endpoint(self.host, 0, bind_host=spec.endpoint_host, max_blob_bytes=0, serve_routes=True,
                                      limits=LISTENER_LIMITS)
        # one event-loop thread serves every endpoint of this worker and runs its fetches
        # the simulated peers' endpoints are on loopback by construction (allow_private)
        fetching = dict(max_bytes=MAX_UPDATE_BYTES, timeout=cfg.net.fetch_timeout, retries=cfg.net.fetch_retries,
                        concurrency=64, per_host_connections=FETCH_CONNECTIONS_PER_HOST, loop=self.host.loop_thread,
                        allow_private=True)
        self.fetcher = Fetcher(**fetching, cache_bytes=0 if cfg.faults else memory_budget(FETCH_CACHE_MEMORY_SHARE / cfg.workers),
                               cache_updates=FETCH_CACHE_ROUNDS * cfg.peers,
                               local=self.host.aserved)  # this worker's peers' updates: their endpoints' bytes, no HTTP copy
        # a round's updates are served once its Submit phase has ended on chain (honest fetches come
        # later anyway); the seal reads the chain from the endpoints' loop: a connection of its own
        self.host.seal = SubmitSeal(self.chain.reconnected().submissions_closed(self.deployment), key=spec.seal_key)
        # attack.knowledge = "omniscient": the attackers' side channel past the seal (not the peers' fetcher:
        # the honest peers' fetches go through the seal as a deployed peer's would)
        self.oracle = (Fetcher(**fetching, seal_key=spec.seal_key, local=functools.partial(self.host.aserved, key=spec.seal_key))
                       if spec.seal_key and cfg.attack.knowledge == "omniscient" and spec.attackers else None)
        self.fetch_budget = fetch_budget(cfg)  # a phase's fetches in all: its window
        # fetcher HTTP bytes, bodies, endpoints' bytes served, in-process bytes, bodies at the last reply (_traffic)
        self._moved = (0, 0, 0, 0, 0)
        task = load_task(cfg.task.client)
        dataset, shards = peer_data(task, cfg)
        self.attackers = set(spec.attackers)
        self._chain_id = self.chain.chain_id
        # one chain view (each round read once) and one chain-derived memory for all peers here
        reader = self.chain.client(self.deployment, account_from_key(spec.peers[0][1]) if spec.peers else None)
        self.view = ProtocolView(reader, members=spec.addresses or None, keep_endpoints=True)
        self.memory = ChainMemory(cfg)
        # Peers in other workers submit concurrently, so any submission may turn out to be the
        # last one, which draws the committee: every submission carries the draw's gas bound.
        self.submit_gas = SUBMIT_GAS_BASE + draw_gas_bound(self.deployment.params.committee_size)
        self.hosted: dict[int, Hosted] = {}  # the peers running now
        self._outbox: list[Hosted] = []  # peers holding signed transactions, in signing order
        self._signing = 0.0  # seconds spent signing in the current command: chain time
        self._front_runs: list[FrontRun] = []  # submissions re-encoded after a DuplicateHash
        self._fee_cache = self.chain.fee_cache()  # one fee read per worker, not one per peer
        # chain.submission = "relayed": this worker relays its peers' signed submissions (bdfl.chain.relay);
        # it is not trusted by them: each checks its entry landed and else submits directly (send_outbox)
        self.relayer: Relayer | None = None
        if cfg.chain.submission == "relayed":
            if not spec.relayer_key:
                raise BDFLError("chain.submission = 'relayed' but this worker got no relayer account")
            relay_account = account_from_key(spec.relayer_key)
            self.relayer = Relayer(self.chain.client(self.deployment, relay_account,
                                                     self.chain.sender(relay_account, fee_cache=self._fee_cache)))
        self._relay_box: list[tuple[int, Hosted, RelayRequest]] = []  # signed submissions for the relayer, in signing order
        self._fallbacks: list[Fallback] = []  # peers that submitted directly after the relay
        # each fetched update decoded once for all peers here, shared read-only; cleared each phase
        self.decodes = DecodeCache()
        # the trainers' starts the last audit rebuilt, for the next round's earlier moves
        self.kept_starts = KeptStarts()
        self.heap_settled = False  # after round 1's aggregation (settle_heap)
        self._task, self._dataset, self._shards = task, dataset, shards
        self._settings = peer_settings(cfg, cfg.num_attackers)
        self.keys = {index: (key, port) for index, key, port in spec.peers}
        self.down: set[int] = set(spec.late)  # peers not running now: crashed, left, not joined yet
        self.states: dict[int, PeerState] = {}
        self.state_dir: str | None = tempfile.mkdtemp(prefix=f"bdfl-worker{spec.worker_id}-state-") if spec.keep_state else None
        # decentralized FL still starts from one common initial model (seeded by the config)
        self._base = task_base_config(cfg.task, dataset.num_classes)  # what every fit/evaluate config carries (docs/tasks.md)
        self.initial = task.initial_parameters(dataset, seed=cfg.seed, hparams=task_hparams(cfg.task), config=self._base)
        model = ModelSpec.of_ndarrays(self.initial)
        for fetcher in (self.fetcher, self.oracle):  # no body longer than an update of this model is read
            if fetcher is not None:
                fetcher.expect_model(model)
        if spec.worker_id == 0:  # the client contract, checked once before any stake is touched
            task.probe([self._shards[i] for i in sorted(self.keys)[:3]], self.initial, seed=cfg.seed, hparams=task_hparams(cfg.task),
                       config=self._base, cast_dtypes=cfg.task.cast_dtypes)
        for index in self.keys:
            if index not in self.down:
                self.hosted[index] = self._make_peer(index)
        # one evaluation client on the global test set for the accuracy curves
        self.test_client = task.make_client((dataset.X_test[:64], dataset.y_test[:64]), (dataset.X_test, dataset.y_test), seed=0,
                                            hparams=task_hparams(cfg.task), config=self._base)
        self.asr_client = self._asr_client(task, dataset)

    #: the method that runs each command of bdfl.experiment.messages
    HANDLERS: dict[type, str] = {
        Join: "join", TrainSubmit: "train_submit", SendOutbox: "send_outbox", AuditCommit: "audit_commit", Reveal: "reveal",
        Aggregate: "aggregate", StopPeer: "stop_peer", RestartPeer: "restart_peer", LeavePeer: "leave_peer",
        EndpointFault: "set_endpoint_fault",
    }

    def execute(self, command: Any) -> Any:
        """Execute one command (:mod:`bdfl.experiment.messages`) and return its reply."""
        name = self.HANDLERS.get(type(command))
        if name is None:
            raise BDFLError(f"unknown worker command {type(command).__name__}")
        return getattr(self, name)(command)

    def _asr_client(self, task: Any, dataset: Any) -> Any:
        """Under a backdoor attack: a client whose validation set is the test set with the
        trigger stamped on every image of another class, labelled with the target class, so
        its accuracy is the attack success rate (bdfl.attacks.backdoor). None otherwise."""

        backdoors = [a for a in (getattr(b, "inner_attack", b) for b in (make_attack_for(self.cfg, i) for i in sorted(self.attackers)))
                     if hasattr(a, "triggered_test_set")]  # on_off around a backdoor; with groups, the first backdoor group
        if not backdoors:
            return None
        attack = backdoors[0]
        X, y = attack.triggered_test_set(dataset.X_test, dataset.y_test)
        return task.make_client((X[:64], y[:64]), (X, y), seed=0, hparams=task_hparams(self.cfg.task), config=self._base)

    def _make_peer(self, index: int) -> Hosted:
        """Build peer ``index`` from what it owns: key, data shard, endpoint port; it starts from
        the common initial model (a restart then replaces it: :meth:`restart_peer`)."""
        cfg = self.cfg
        key, port = self.keys[index]
        account = account_from_key(key)
        (xtr, ytr), (xva, yva) = self._shards[index]
        attack = make_attack_for(cfg, index) if index in self.attackers else None

        def make_client(train: tuple[np.ndarray, np.ndarray]) -> Any:
            return self._task.make_client(train, (xva, yva), seed=cfg.seed * 100_003 + index, hparams=task_hparams(cfg.task),
                                          config=self._base, cast_dtypes=cfg.task.cast_dtypes)

        if attack is None:
            client = make_client((xtr, ytr))
        else:  # poisoned training shard; a clean one too for on_off's honest rounds
            client = attacker_client(attack, make_client, (xtr, ytr), np.random.default_rng([cfg.seed, index, 1]),
                                     num_classes=self._dataset.num_classes)
        # any free port, bound here and read back; a restarted peer gets its port back if free
        endpoint = self.host.add_endpoint(route=f"{index:05d}", max_blob_bytes=MAX_UPDATE_BYTES)  # fixed width: constant URL length
        self.keys[index] = (key, endpoint.port)
        peer = Peer(index=index, address=account.address, client=client, endpoint=endpoint, settings=self._settings, attack=attack,
                    seed=cfg.seed, num_peers=cfg.peers, num_attackers=cfg.num_attackers)
        peer.domain = (self._chain_id, self.deployment.round_manager)  # update bytes bind to their submission
        peer.decode_cache = self.decodes
        peer.params = [p.copy() for p in self.initial]
        chain = self.chain.client(self.deployment, account, self.chain.sender(account, fee_cache=self._fee_cache))
        if self.state_dir is not None:
            self.states[index] = PeerState.open(self.state_dir, address=account.address, chain_id=self._chain_id,
                                                round_manager=self.deployment.round_manager)
        engine = PeerEngine(peer, view=self.view, fetch=self.fetcher.fetch_many, task=cfg.task.client,
                            state=RoundState(self.memory), cfg=cfg)
        return Hosted(engine, chain)

    # -- commands -------------------------------------------------------------------
    def join(self, cmd: Join) -> Joined:
        """Every peer approves its stake and joins (signed here, sent and mined like a phase's
        transactions; gas bounds instead of estimates, which need the approval mined first).
        Every peer's nonce is read first, in batches (txsender.resync_nonces)."""
        resync_nonces([h.chain.sender for h in self.hosted.values()])
        for h in self.hosted.values():
            self._queue(h, h.chain.approve, cmd.stake, wait=False, gas=APPROVE_GAS)
            self._queue(h, h.chain.join, h.peer.endpoint.url, cmd.stake, wait=False, gas=JOIN_GAS)
        self._take_signing()
        self.send_outbox(SendOutbox())
        return Joined(len(self.hosted))

    def train_submit(self, cmd: TrainSubmit) -> TrainSubmitReply:
        """Stages train, publish, submit (signed; sent in :meth:`send_outbox`) for the honest
        peers or the attackers (attackers go second so that omniscient attacks (ALIE, IPM)
        can fetch the round's honest updates). Peers the chain no longer counts as active
        members (slashed out, absent) sit out."""
        t0 = time.perf_counter()
        rnd = cmd.round
        members = set(cmd.active)
        chosen = [h for i, h in self.hosted.items() if (i in self.attackers) == cmd.attackers and i in members]
        failed: list[ClientFailure] = []  # a peer whose client raised sits this round out: no update
        fit_metrics: dict[int, dict[str, float]] = {}
        for h in list(chosen):
            out = stages.train.train(h.engine, rnd)
            if isinstance(out, ClientFailure):
                failed.append(out)
                chosen.remove(h)
            else:
                fit_metrics[h.peer.index] = {k: float(v) for k, v in out.items() if k != "num_examples"}
        t_train = time.perf_counter() - t0
        honest_models: list[NDArrays] = []
        honest_samples: list[int] = []  # their claimed sample counts (on chain): what auditors credit
        if (self.oracle is not None and cmd.attackers and cmd.honest
                and any(h.peer.attack is not None and getattr(h.peer.attack, "needs_honest_updates", False) for h in chosen)):
            # omniscient attackers: the round's honest updates, before the Submit phase ends (side channel)
            fetched = self.oracle.fetch_many([(u, hh) for hh, u, _n in cmd.honest])
            for hh, _u, samples in cmd.honest:
                data = fetched.get(hh)
                if isinstance(data, bytes):
                    honest_models.append(decode_ndarrays(data, max_bytes=MAX_UPDATE_BYTES, spec=chosen[0].peer.spec))
                    honest_samples.append(samples)
        t1 = time.perf_counter()
        out_peers: dict[int, Submitted] = {}
        for h in chosen:
            pub = stages.publish.publish(h.engine, rnd, honest_models, honest_samples)
            # sent later, in turn with the other workers; a DuplicateHash shows in the receipt (_wait)
            if self.relayer is not None:  # signed for this worker's relayer (send_outbox)
                t = time.perf_counter()
                entry = h.chain.sign_submission(rnd, bytes.fromhex(pub.hash[2:]), h.peer.num_examples)
                self._relay_box.append((rnd, h, RelayRequest(h.peer.address, entry)))
                self._signing += time.perf_counter() - t
            else:
                self._queue(h, h.chain.submit_update, rnd, bytes.fromhex(pub.hash[2:]), h.peer.num_examples, wait=False, gas=self.submit_gas)
            out_peers[h.peer.index] = Submitted(pub.hash, pub.url, len(pub.data), fit_metrics.get(h.peer.index, {}),
                                                samples=h.peer.num_examples)
        sign = self._take_signing()
        return TrainSubmitReply(out_peers, failed, Times(train=t_train, exchange=time.perf_counter() - t1 - sign, chain=sign),
                                self._traffic("submit"))

    def audit_commit(self, cmd: AuditCommit) -> AuditReply:
        """Stages audit and commit for the committee members of this worker: one fetch for all
        of them, the trainers' starts rebuilt once, each member's votes salted and signed."""
        t0 = time.perf_counter()
        rnd = cmd.round
        self.view.refresh()
        committee = set(self.view.committee(rnd))
        mine = [h for h in self.hosted.values() if h.peer.address in committee]
        inputs = {h.peer.index: stages.audit.audit_inputs(h.engine, rnd) for h in mine}
        wanted: set[tuple[str, str]] = set()
        recipes: dict[str, Any] = {}
        past: dict[str, Any] = {}
        for h in mine:
            wanted |= stages.audit.wanted(inputs[h.peer.index])
            recipes.update(inputs[h.peer.index].recipes)
            past.update(inputs[h.peer.index].past)
        fetched = self.fetcher.fetch_many(sorted(wanted), budget=self.fetch_budget, allowance=self.fetch_allowance) if wanted else {}
        # the same models for every auditor of this worker: rebuilt once
        # the earlier moves' starts rebuilt last round are taken over, not rebuilt (KeptStarts)
        rebuilt = stages.audit.rebuild(mine[0].peer, rnd, recipes, past, fetched, self.kept_starts) if mine else stages.audit.Rebuilt.empty()
        self.decodes.clear()  # the starts' models are averaged: free them before the judges decode
        # the starts' and earlier moves' models are rebuilt: keep only the candidates' bytes for the
        # judges (two thirds of a later round's fetched bytes, 1.8 GB per worker at 11M, N = 20)
        judged = {c.hash.lower() for i in inputs.values() for c in i.candidates}
        fetched = {h: d for h, d in fetched.items() if h.lower() in judged}
        starts = rebuilt[0]
        t1 = time.perf_counter()
        if mine:  # the near-copy searches of all its auditors' candidates, batched
            stages.audit.prepare(mine[0].peer, inputs.values(), fetched, rebuilt)
        # a simulation-only check: an honest trainer hosted here started exactly where its auditors say
        honest_here = [h.peer for h in self.hosted.values() if h.peer.address in starts and not h.peer.is_attacker and h.peer.reference is not None]
        exact = sum(all(np.array_equal(a, b) for a, b in zip(starts[p.address], p.reference)) for p in honest_here)
        attackers = frozenset(cmd.attacker_addrs)
        votes: dict[int, tuple[list[int], list[bool]]] = {}
        rejected: list[InputRejected] = []
        abstained: list[Abstained] = []
        verdicts: list[AuditRejection] = []
        failed: list[ClientFailure] = []
        for h in mine:
            i = h.peer.index
            res = stages.audit.judge(h.engine, inputs[i], fetched, attackers, rebuilt)
            if isinstance(res, ClientFailure):  # its client raised while judging: no vote this round
                failed.append(res)
                continue
            rejected += [InputRejected(i, frm, why, "audit") for frm, why in res.rejections]
            index_of = {c.peer: c.index for c in inputs[i].candidates}  # a submitter submits once per round
            abstained += [Abstained(i, frm, index_of.get(frm), why) for frm, why in res.abstentions]
            verdicts += [AuditRejection(i, frm, list(tests)) for frm, tests in res.verdicts]
            v, _commitment = stages.commit.commit(h.engine, rnd, res.indices, res.accept,
                                                  lambda ix, acc, s, c=h.chain: c.vote_commitment(rnd, ix, acc, s))
            self._queue(h, h.chain.commit_votes, rnd, v.indices, v.accept, v.salt, wait=False)
            votes[i] = (res.indices, res.accept)
        self.decodes.clear()
        # this round's starts: next round's earlier moves start from them (nothing else keeps them)
        self.kept_starts.keep(rnd, recipes, starts)
        check = StartsCheck(len(starts), len(honest_here), int(exact), len(rebuilt[1]))
        del rebuilt, starts
        sign = self._take_signing()
        return AuditReply(votes, rejected, abstained, verdicts, failed, check,
                          Times(exchange=t1 - t0, audit=time.perf_counter() - t1 - sign, chain=sign), self._traffic("audit"))

    def reveal(self, cmd: Reveal) -> RevealReply:
        n = 0
        for h in self.hosted.values():
            v = stages.reveal.reveal(h.engine, cmd.round)
            if v is not None:
                self._queue(h, h.chain.reveal_votes, cmd.round, v.indices, v.accept, v.salt, wait=False)
                n += 1
        return RevealReply(n, Times(chain=self._take_signing()))

    def _traffic(self, phase: str) -> Traffic:
        """Update bytes fetched over HTTP, served, and read in process from this worker's own
        endpoints since the previous reply (every worker runs the same command at once, so what its
        endpoints served meanwhile belongs to this phase)."""
        f, o = self.fetcher, self.oracle
        now = (f.bytes_received + (o.bytes_received if o else 0), f.bodies_fetched + (o.bodies_fetched if o else 0),
               self.host.bytes_sent, f.local_bytes + (o.local_bytes if o else 0), f.local_bodies + (o.local_bodies if o else 0))
        before, self._moved = self._moved, now
        return Traffic(phase, *(a - b for a, b in zip(now, before)))

    @property
    def fetch_allowance(self) -> float:
        """One fetch's retries, from its first turn on, within :attr:`fetch_budget` (:func:`fetch_allowance`)."""
        return min(self.fetch_budget, fetch_allowance(self.cfg))

    def _take_signing(self) -> float:
        s, self._signing = self._signing, 0.0
        return s

    def _queue(self, h: Hosted, fn: Any, *args: Any, **kwargs: Any) -> None:
        """Sign the transaction now (workers sign in parallel); send it in :meth:`send_outbox`."""
        t = time.perf_counter()
        h.chain.sender.hold()
        fn(*args, **kwargs)
        self._signing += time.perf_counter() - t
        if not self._outbox or self._outbox[-1] is not h:
            self._outbox.append(h)

    def send_outbox(self, _cmd: SendOutbox) -> SendReply:
        """Send the queued transactions (each signed by its own peer) and wait for them.

        The orchestrator calls this on one worker after another, so transactions reach
        the chain in the same order on every run: submission order decides update
        indices, and block contents decide the next committee's randomness."""
        t0 = time.perf_counter()
        relayed = self._relay()
        outbox, self._outbox = self._outbox, []
        with self._mined_together():  # the worker's transactions in one block, in send order
            pending = [(h, tx) for h in outbox for tx in h.chain.sender.release()]
        self._wait(pending)
        front_runs, self._front_runs = self._front_runs, []
        fallbacks, self._fallbacks = self._fallbacks, []
        return SendReply(len(pending) + relayed, front_runs, Times(chain=time.perf_counter() - t0), fallbacks)

    def _mined_together(self) -> AbstractContextManager[Any]:
        """On a simulation devnet, the sends inside are mined in one block (chain.devnet.batch_mining)."""
        return self.chain.mined_together() if self.batch_mining else nullcontext()

    def _relay(self) -> int:
        """Post the queued signed submissions in ``submitBatch`` transactions from this worker's
        relayer account, then do what each peer does after handing its entry to a relayer it
        does not trust: read the round's submissions on chain and, for every peer whose entry
        did not land (skipped by the contract, or left out), queue its own direct
        ``submitUpdate`` (a ``DuplicateHash`` skip: re-encoded first, :func:`recover_front_run`).
        Those are sent by :meth:`send_outbox` right after, still in the Submit phase (the
        keeper ends it only after every worker's outbox). Returns the batches sent."""
        box, self._relay_box = self._relay_box, []
        if not box or self.relayer is None:
            return 0
        rnd = box[0][0]
        with self._mined_together():
            batches = self.relayer.send(rnd, [req for _r, _h, req in box])
        hosted = {h.peer.address: h for _r, h, _req in box}
        fallbacks = stages.submit.check_relayed(self.relayer, rnd, batches, {a: h.peer.index for a, h in hosted.items()})
        for f in fallbacks:
            h = hosted[f.address]
            if f.front_run:  # a copier submitted this hash first: new bytes, new hash (now published[rnd])
                self._front_runs.append(stages.submit.recover_front_run(h.engine, rnd))
            update = h.peer.published[rnd]
            log.info("peer %s chain round %d: relayed submission did not land (%s): submitting directly", f.address, rnd, f.reason)
            self._queue(h, h.chain.submit_update, rnd, bytes.fromhex(update[2:]), h.peer.num_examples, wait=False, gas=self.submit_gas)
        self._take_signing()
        self._fallbacks.extend(fallbacks)
        return len(batches)

    def aggregate(self, cmd: Aggregate) -> AggregateReply:
        """Stage aggregate for every peer: the plan from the closed round (the shared rule),
        one fetch for all peers, each peer verifies and combines; then each peer's model is
        evaluated on the global test set (the accuracy curves)."""
        t0 = time.perf_counter()
        rnd = cmd.round
        self.view.refresh()
        self.memory.last_change = None
        plans = {i: stages.aggregate.plan(h.engine, rnd) for i, h in self.hosted.items()}
        if not self.hosted:  # a worker whose peers are all down still watches the round
            self.memory.observe(self.view.closed(rnd))
        wanted = set().union(*(stages.aggregate.wanted(p) for p in plans.values())) if plans else set()
        fetched = self.fetcher.fetch_many(sorted(wanted), budget=self.fetch_budget, allowance=self.fetch_allowance) if wanted else {}
        t1 = time.perf_counter()
        out: dict[int, PeerRound] = {}
        t_eval = 0.0
        record = bool(self.cfg.faults)  # runs with injected faults record what each peer aggregated
        for i, h in self.hosted.items():
            res = stages.aggregate.aggregate(h.engine, rnd, plans[i], fetched)
            t = time.perf_counter()
            loss, _n, metrics = self._evaluate_test(h.peer.params, rnd)
            asr = None
            if self.asr_client is not None and i not in self.attackers:
                _l, _n, m = self.asr_client.evaluate(h.peer.params, {"server_round": rnd + 1})
                asr = float(m.get("accuracy", float("nan")))
            t_eval += time.perf_counter() - t
            # keccak256 of the very bytes each aggregated update was decoded from
            used = [{"from": c.peer, "bytes_hash": hash_hex(update_hash(fetched[c.hash]))}  # type: ignore[arg-type]
                    for c in plans[i].candidates if c.hash in res.used] if record else None
            out[i] = PeerRound(res.aggregated, float(metrics.get("accuracy", float("nan"))), float(loss),
                               [InputRejected(i, frm, why, "aggregate") for frm, why in res.rejections], asr, used)
            state = self.states.get(i)
            if state is not None:  # what a real peer saves after aggregating (bdfl.peer.state)
                state.last_aggregated = rnd
                state.save_model(encode_ndarrays(h.peer.params))
                state.save()
        self.decodes.clear()  # the round's decoded updates: freed at its end
        # aggregation is learning work (train); the test-set evaluation feeds the curves only
        change = self.memory.last_change
        return AggregateReply(out, OverlayReport.of(change, self.spec.addresses) if change is not None else None,
                              Times(exchange=t1 - t0, train=time.perf_counter() - t1 - t_eval, eval=t_eval),
                              self._traffic("aggregate"))

    def _evaluate_test(self, params: NDArrays, rnd: int) -> Any:
        """The task's evaluate on the global test set (the accuracy curves) after chain round
        ``rnd``, with ``server_round`` as every evaluate gets it (docs/tasks.md). It is the same
        call for every peer, so an exception there stops the run with one message."""
        try:
            return self.test_client.evaluate(params, {"server_round": rnd + 1})
        except (BDFLError, KeyboardInterrupt):
            raise
        except Exception as exc:  # noqa: BLE001 - one message instead of a worker traceback
            raise BDFLError(f"task {self.cfg.task.client}: evaluate raised on the global test set: {type(exc).__name__}: {exc}",
                            fix="fix the task's evaluate (it must accept any parameters of the model and the whole test set)") from exc

    # -- injected faults ([[faults]], bdfl.experiment.faults) ---------------------------
    def stop_peer(self, cmd: StopPeer) -> int | None:
        """Peer ``index`` stops as a killed process would: its endpoint closes (connections are
        refused from now on), its in-memory state is gone. What it saved on disk stays."""
        h = self.hosted.pop(cmd.index, None)
        if h is None:
            return None
        self.down.add(cmd.index)
        h.peer.endpoint.close()
        return cmd.index

    def restart_peer(self, cmd: RestartPeer) -> Restarted | None:
        """Peer ``index`` comes back, rebuilt from what a restarted process has: its key, data
        and port, its saved model (if any), the chain (membership: bdfl.peer.rejoin), and a
        current model from its neighbours' approved updates of the latest closed round, each
        hash-checked (:func:`bdfl.peer.stages.aggregate.resync_plan`, as ``bdfl peer`` does)."""
        self.view.refresh()
        if cmd.index < len(self.spec.addresses):  # it may come back at another endpoint: every worker reads it again
            self.view.forget_endpoint(self.spec.addresses[cmd.index])
        if cmd.index not in self.keys or cmd.index in self.hosted:
            return None
        t0 = time.perf_counter()
        h = self._make_peer(cmd.index)
        peer = h.peer
        # chosen before the peer re-joins: as the other members see the closed round
        source, tiers = stages.aggregate.resync_plan(h.engine, cmd.round - 1)
        model_from = "initial"
        saved_round = None
        state = self.states.get(cmd.index)
        saved = state.load_model() if state is not None else None
        if saved is not None and state is not None:
            try:
                peer.params = decode_ndarrays(saved, max_bytes=MAX_UPDATE_BYTES, spec=peer.spec)
                model_from, saved_round = "saved", state.last_aggregated
            except InvalidUpdate:
                pass
        actions = ensure_membership(h.chain, peer.endpoint.url)
        self.view.forget_endpoint(peer.address)
        before = len(peer.rejections)
        used, tier = resync_from_tiers(peer, source, tiers, self.fetcher.fetch_many)
        if used:  # its first update back carries a velocity (bdfl.peer.rejoin.resume_momentum)
            stages.aggregate.resume_velocity(h.engine, cmd.round - 1, source, tiers[tier], used)
        self.decodes.clear()
        if used:
            model_from = ("neighbours", "fallback")[tier]
        _loss, _n, metrics = self._evaluate_test(peer.params, cmd.round - 1)
        self.hosted[cmd.index] = h
        self.down.discard(cmd.index)
        return Restarted(cmd.index, actions, model_from, saved_round, source, len(tiers[0]), len(tiers[0]) + len(tiers[1]), used,
                         [InputRejected(cmd.index, r.peer, r.reason, "resync") for r in peer.rejections[before:]],
                         float(metrics.get("accuracy", float("nan"))), time.perf_counter() - t0)

    def leave_peer(self, cmd: LeavePeer) -> int | None:
        """``requestLeave`` on chain: a member until the current round is finalized."""
        h = self.hosted.get(cmd.index)
        if h is None:
            return None
        h.chain.leave()
        return cmd.index

    def set_endpoint_fault(self, cmd: EndpointFault) -> int | None:
        """Make peer ``index``'s endpoint misbehave (bdfl.net.blobserver.Endpoint.set_fault) or heal it."""
        h = self.hosted.get(cmd.index)
        if h is None:
            return None
        h.peer.endpoint.set_fault(cmd.kind, delay=cmd.delay or 1.0)
        return cmd.index

    def close(self) -> None:
        if self.oracle is not None:
            self.oracle.close()
        self.fetcher.close()
        self.host.close()
        if self.state_dir is not None:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def _wait(self, pending: list[tuple[Hosted, Any]]) -> None:
        """Receipts of transactions sent without waiting (polled in batches); every failure is
        reported. A submission front-run by a copier (``DuplicateHash``) is re-encoded and
        submitted again (:func:`bdfl.peer.stages.submit.recover_front_run`)."""
        receipts = wait_many([(h.chain.sender, tx_hash) for h, tx_hash in pending])
        errors: list[str] = []
        for (h, _tx), r in zip(pending, receipts, strict=True):
            if isinstance(r, DuplicateHashError) and r.error_args:
                try:
                    front = stages.submit.recover_front_run(h.engine, int(r.error_args[0]))
                    h.chain.submit_update(int(r.error_args[0]), bytes.fromhex(front.new_hash[2:]), h.peer.num_examples, gas=self.submit_gas)
                    self._front_runs.append(front)
                    continue
                except Exception as exc:  # noqa: BLE001 - reported with the others below
                    r = exc
            if isinstance(r, Exception):
                errors.append(f"peer {h.peer.index} ({h.peer.address}): {r}")
        if errors:
            raise BDFLError(f"{len(errors)} transaction(s) failed:\n" + "\n".join(errors[:10]))


def fetch_budget(cfg: ExperimentConfig) -> float:
    """Seconds all of a phase's fetches may take (bdfl.net.fetch's ``budget``): half the Commit
    phase, so an auditor still commits before the deadline. However many fetches a worker
    makes (its auditors' ~N·m/(K·workers) updates and their starts' models: ~15,000 at
    N = 10,000), they share this window only; each one's retries are bounded by
    :func:`fetch_allowance`, counted from its first turn, so fetches queued behind the
    fetcher's concurrency no longer time out unattempted (they did under a flat
    min(window, attempts x timeout) budget: docs/results/scale.md)."""
    return 0.5 * cfg.protocol.commit_seconds


def fetch_allowance(cfg: ExperimentConfig) -> float:
    """Seconds one fetch may retry an unreachable update from its first turn on: the attempts
    ``net.fetch_retries + 1`` of ``net.fetch_timeout`` each would take, within
    :func:`fetch_budget`."""
    return min(fetch_budget(cfg), (cfg.net.fetch_retries + 1) * cfg.net.fetch_timeout)


def worker_main(spec: WorkerSpec, conn: Connection) -> None:
    """Process entry point: build the worker, then serve commands until :class:`Stop`."""
    set_pdeathsig()  # die with the orchestrator, even if it is SIGKILLed
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the orchestrator handles Ctrl-C and stops us
    # a peer's rejected inputs come back in the replies and reach the run's log and terminal once,
    # through the orchestrator; the peer's own warning (for `bdfl peer`) would print each twice
    logging.getLogger("bdfl.peer.node").setLevel(logging.ERROR)
    worker, reply = start_worker(spec)
    conn.send(reply)
    if worker is None:
        return
    try:
        while True:
            command = conn.recv()
            if isinstance(command, Stop):
                break
            conn.send(handle(worker, command))
    except (EOFError, OSError):
        pass  # orchestrator gone
    finally:
        worker.close()


def start_worker(spec: WorkerSpec) -> tuple[Worker | None, tuple[str, Any]]:
    """Build the worker; with it, the reply to send the orchestrator (``("error", why)`` and
    no worker when it failed). Shared by the pipe loop and the Ray actor (bdfl.experiment.ray_pool)."""
    # before the worker's threads start: freed model-sized blocks (fetched bodies, rebuilt starts,
    # the audit's buffers) are reused, not faulted in again each round (bdfl.net.allocator)
    keep_freed_memory()
    try:
        worker = Worker(spec)
    except BaseException as exc:  # noqa: BLE001 - reported to the orchestrator, which stops the run
        return None, ("error", _describe(exc))
    settle_heap()
    return worker, ("ok", Started(len(worker.hosted)))


def settle_heap() -> None:
    """Collect the garbage once, then exempt every object still alive from the garbage
    collector's later passes (``gc.freeze``): a worker's set-up objects (its peers' clients,
    models and data, torch's and web3's modules) live until the run ends.

    Why: a worker at N = 100 holds ~400,000 objects from its set-up and first round, and every
    full collection walked all of them: 185-230 ms each, two or three per worker in 12 rounds,
    each landing inside some round (issue 23: the round time's spikes). Frozen, a full collection
    walks only what later rounds made. Frozen objects are still freed when their last reference
    goes; only a reference cycle among them would never be collected, which is why it runs right
    after a collection and only twice: at set-up and after round 1's aggregation (the first
    fit's lazy imports).

    The youngest generation is collected every 10,000 new container objects instead of 700
    (Python's default, for small programs): every round makes many (candidates, fetched bodies'
    dicts, the chain's replies), and each young collection moves the survivors on towards a
    full one. Measured at N = 1000, 8 rounds, both workers, pauses over 20 ms:
    4.37 s of collections before, 1.91 s frozen, 0.37 s frozen and at 10,000."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_OBJECTS, *gc.get_threshold()[1:])


#: new container objects between two collections of the youngest generation (settle_heap)
YOUNG_COLLECTION_OBJECTS = 10_000


def handle(worker: Worker, command: Any) -> tuple[str, Any]:
    """One command (:mod:`bdfl.experiment.messages`) run on ``worker``: ``("ok", its reply)``
    or ``("error", why)``."""
    try:
        reply = worker.execute(command)
    except BaseException as exc:  # noqa: BLE001
        return "error", _describe(exc)
    if isinstance(command, Aggregate) and not worker.heap_settled:
        worker.heap_settled = True
        settle_heap()
    return "ok", reply


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BDFLError):
        return str(exc)
    return "".join(traceback.format_exception(exc)).strip()
