"""A worker process hosting many simulated peers.

Each peer keeps its own account, its own HTTP endpoint (its own port on loopback),
its own data shard and model, and signs its own transactions: the worker only
shares the machinery (one event loop for the endpoints and fetches, one JSON-RPC
connection). Public chain state (committee, assignments, approved set) is read
once per round by the orchestrator and handed to the workers with each command.

The orchestrator (``bdfl.experiment.runner``) sends one command per phase over a
pipe; the worker answers with per-peer results and timings.
"""

from __future__ import annotations

import logging
import signal
import time
import traceback
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from bdfl.attacks import attacker_client
from bdfl.chain.accounts import account_from_key
from bdfl.chain.deploy import Deployment
from bdfl.chain.devnet import batch_mining, make_web3, set_pdeathsig
from bdfl.chain.protocol import ProtocolClient, draw_gas_bound, salt_for
from bdfl.chain.txsender import DuplicateHashError, FeeCache, TxSender, wait_many
from bdfl.config import ExperimentConfig, from_dict
from bdfl.errors import BDFLError
from bdfl.experiment.setup import bind_endpoint, frozen_clock, make_attack_for, peer_data
from bdfl.defense import defense_params
from bdfl.defense.audit import AuditRule
from bdfl.learning.task import ClientContractError, base_config, load_task, task_hparams
from bdfl.net.blobserver import BlobHost
from bdfl.net.fetch import Fetcher
from bdfl.net.serialization import MAX_UPDATE_BYTES, InvalidUpdate, decode_ndarrays, encode_ndarrays, hash_hex, update_hash
from bdfl.peer.node import Candidate, Peer, PeerSettings
from bdfl.peer.rejoin import ensure_membership, resync_from_tiers
from bdfl.peer.sources import PastMove, StartSource
from bdfl.peer.state import PeerState

log = logging.getLogger("bdfl.worker")

#: Gas limits of the set-up transactions (measured: approve 46k, join 146k-197k with a
#: loopback endpoint URL; a longer URL costs ~22k per extra 32 bytes).
APPROVE_GAS = 80_000
JOIN_GAS = 400_000


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
    endpoint_host: str = "127.0.0.1"  # address the peers' endpoints listen on and advertise (a Ray node's: ray_pool)


class Worker:
    """Owns its peers and executes the orchestrator's phase commands."""

    def __init__(self, spec: WorkerSpec) -> None:
        import torch

        torch.set_num_threads(1)  # tiny models: 15-90x slower with default threads on 2 cores

        self.cfg: ExperimentConfig = from_dict(spec.config)

        # a simulation devnet: the in-turn sends of a phase are mined together (chain.devnet.batch_mining)
        self.batch_mining = frozen_clock(self.cfg)
        self.spec = spec
        cfg = self.cfg
        self.w3 = make_web3(spec.rpc_url, 60.0)
        self.deployment = Deployment.load(spec.deployment_path, w3=self.w3)
        self.host = BlobHost()
        # one event-loop thread serves every endpoint of this worker and runs its fetches
        # the simulated peers' endpoints are on loopback by construction (allow_private)
        self.fetcher = Fetcher(max_bytes=MAX_UPDATE_BYTES, timeout=cfg.net.fetch_timeout, retries=cfg.net.fetch_retries,
                               concurrency=64, loop=self.host.loop_thread, allow_private=True)
        self.fetch_budget = fetch_budget(cfg)
        task = load_task(cfg.task.client)
        dataset, shards = peer_data(task, cfg)
        self.attackers = set(spec.attackers)
        settings = PeerSettings(
            defense=cfg.defense.name,
            defense_params=defense_params(cfg.defense, cfg.num_attackers),
            audit_rule=AuditRule.from_defense(cfg.defense),  # every audit_* field of [defense]
        )
        chain_id = int(self.w3.eth.chain_id)

        # Peers in other workers submit concurrently, so any submission may turn out to be the
        # last one, which draws the committee: every submission carries the draw's gas bound.
        self.submit_gas = 300_000 + draw_gas_bound(self.deployment.params.committee_size)
        self.peers: dict[int, Any] = {}  # the peers running now
        self._outbox: list[Any] = []  # peers holding signed transactions, in signing order
        self._signing = 0.0  # seconds spent signing in the current command: chain time
        self._front_runs: list[dict[str, Any]] = []  # submissions re-encoded after a DuplicateHash
        self._fee_cache = FeeCache(self.w3)  # one fee read per worker, not one per peer
        self._chain_id = chain_id
        self._task, self._dataset, self._shards, self._settings = task, dataset, shards, settings
        self.keys = {index: (key, port) for index, key, port in spec.peers}
        self.down: set[int] = set(spec.late)  # peers not running now: crashed, left, not joined yet
        self.states: dict[int, Any] = {}
        self.state_dir: str | None = None
        if spec.keep_state:
            import tempfile

            self.state_dir = tempfile.mkdtemp(prefix=f"bdfl-worker{spec.worker_id}-state-")
        # decentralized FL still starts from one common initial model (seeded by the config)
        self._base = _base_config(cfg, dataset)  # what every fit/evaluate config carries (docs/tasks.md)
        self.initial = task.initial_parameters(dataset, seed=cfg.seed, hparams=task_hparams(cfg.task), config=self._base)
        if spec.worker_id == 0:  # the client contract, checked once before any stake is touched
            task.probe([self._shards[i] for i in sorted(self.keys)[:3]], self.initial, seed=cfg.seed, hparams=task_hparams(cfg.task),
                       config=self._base, cast_dtypes=cfg.task.cast_dtypes)
        for index in self.keys:
            if index not in self.down:
                self.peers[index] = self._make_peer(index)
        # one evaluation client on the global test set for the accuracy curves
        self.test_client = task.make_client((dataset.X_test[:64], dataset.y_test[:64]), (dataset.X_test, dataset.y_test), seed=0,
                                            hparams=task_hparams(cfg.task), config=self._base)
        self.asr_client = self._asr_client(task, dataset)

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

    def _make_peer(self, index: int) -> Any:
        """Build peer ``index`` from what it owns: key, data shard, endpoint port; it starts from
        the common initial model (a restart then replaces it: :meth:`restart`)."""
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
        endpoint = bind_endpoint(self.host, port, bind_host=self.spec.endpoint_host, max_blob_bytes=MAX_UPDATE_BYTES)
        self.keys[index] = (key, endpoint.port)
        peer = Peer(index=index, address=account.address, client=client, endpoint=endpoint, settings=self._settings, attack=attack, seed=cfg.seed, num_peers=cfg.peers, num_attackers=cfg.num_attackers)
        peer.domain = (self._chain_id, self.deployment.round_manager)  # update bytes bind to their submission
        sender = TxSender(self.w3, account, chain_id=self._chain_id, fee_cache=self._fee_cache)
        peer.chain = ProtocolClient(self.w3, self.deployment, account, sender)  # type: ignore[attr-defined]
        peer.params = [p.copy() for p in self.initial]
        if self.state_dir is not None:
            self.states[index] = PeerState.open(self.state_dir, address=account.address, chain_id=self._chain_id,
                                                round_manager=self.deployment.round_manager)
        return peer

    # -- commands -------------------------------------------------------------------
    def join(self, stake: int) -> dict[str, Any]:
        """Every peer approves its stake and joins (signed here, sent and mined like a phase's
        transactions; gas bounds instead of estimates, which need the approval mined first)."""
        for peer in self.peers.values():
            self._queue(peer, peer.chain.approve, stake, wait=False, gas=APPROVE_GAS)
            self._queue(peer, peer.chain.join, peer.endpoint.url, stake, wait=False, gas=JOIN_GAS)
        self._take_signing()
        self.send_outbox()
        return {"joined": len(self.peers)}

    def train_submit(self, rnd: int, attackers: bool, honest: list[tuple[str, str]], active: list[int] | None = None) -> dict[str, Any]:
        """Train and submit; ``attackers`` selects which half of the peers acts (attackers go second
        so that omniscient attacks (ALIE, IPM) can fetch the round's honest updates)."""
        t0 = time.perf_counter()
        # peers the chain no longer counts as active members (slashed out, absent) sit out
        members = set(active) if active is not None else set(self.peers)
        chosen = [p for i, p in self.peers.items() if (i in self.attackers) == attackers and i in members]
        failed: list[dict[str, Any]] = []  # a peer whose client raised sits this round out: no update
        for peer in list(chosen):
            _, fail = self._isolated(peer, "fit", peer.train, rnd)
            if fail is not None:
                failed.append(fail)
                chosen.remove(peer)
        t_train = time.perf_counter() - t0
        honest_models: list[list[np.ndarray]] = []
        if attackers and honest and any(p.attack is not None and getattr(p.attack, "needs_honest_updates", False) for p in chosen):
            fetched = self.fetcher.fetch_many([(u, h) for h, u in honest])

            for h, _u in honest:
                data = fetched.get(h)
                if isinstance(data, bytes):
                    honest_models.append(decode_ndarrays(data, max_bytes=MAX_UPDATE_BYTES, spec=chosen[0].spec))
        t1 = time.perf_counter()
        out: dict[int, dict[str, Any]] = {}
        for peer in chosen:
            data = peer.make_update(rnd, honest_models)
            h = peer.publish(rnd, data)
            self._queue(peer, peer.chain.submit_update, rnd, bytes.fromhex(h[2:]), peer.num_examples, wait=False, gas=self.submit_gas)
            out[peer.index] = {"hash": h, "url": peer.endpoint.url, "bytes": len(data)}
        sign = self._take_signing()
        return {"peers": out, "failed": failed, "seconds_train": t_train, "seconds_exchange": time.perf_counter() - t1 - sign, "seconds_chain": sign}

    def _isolated(self, peer: Any, step: str, fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, dict[str, Any] | None]:
        """Run one peer's call into the task's client: (its result, None). An exception there (not
        a contract violation: bdfl.learning.task.ClientContractError stops the run) is that peer's
        fault for this round: (None, a failure record: peer, step, task, traceback)."""

        try:
            return fn(*args, **kwargs), None
        except ClientContractError:
            raise
        except Exception as exc:  # noqa: BLE001 - isolated to this peer and round
            return None, {"peer": peer.index, "address": peer.address, "step": step, "task": self.cfg.task.client,
                          "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}

    def audit_commit(self, rnd: int, assignments: dict[str, list[dict[str, Any]]], attacker_addrs: list[str],
                     earlier_hashes: list[str] | None = None) -> dict[str, Any]:
        """Committee members of this worker fetch, judge and commit their votes. ``earlier_hashes``:
        update hashes submitted in the last ``defense.replay_window`` rounds (replays are rejected
        unfetched)."""

        t0 = time.perf_counter()
        earlier = frozenset(h.lower() for h in earlier_hashes or ())
        mine = {p.address: p for p in self.peers.values() if p.address in assignments}
        wanted: set[tuple[str, str]] = set()
        recipes: dict[str, list[StartSource]] = {}  # trainer -> the models that make its start of the round
        past: dict[str, PastMove] = {}  # trainer -> its latest earlier, not-rejected move (bdfl.peer.sources)

        def recipe_of(items: list[dict[str, Any]]) -> list[StartSource]:
            return [StartSource(x["peer"], x["hash"], float(x["weight"])) for x in items]

        for c in (c for addr in mine for c in assignments[addr] if c["hash"].lower() not in earlier):
            wanted.add((c["url"], c["hash"]))
            if not c.get("start"):
                continue
            recipes[c["peer"]] = recipe_of(c["start"])
            wanted |= {(x["url"], x["hash"]) for x in c["start"]}
            if c.get("past"):
                m = c["past"]
                past[c["peer"]] = PastMove(int(m["round"]), m["hash"], recipe_of(m["start"]))
                wanted |= {(m["url"], m["hash"])} | {(x["url"], x["hash"]) for x in m["start"]}
        fetched = self.fetcher.fetch_many(sorted(wanted), budget=self.fetch_budget) if wanted else {}
        # the same models for every auditor of this worker: rebuilt once
        anyone = next(iter(mine.values())) if mine else None
        starts = anyone.rebuild_starts(recipes, fetched) if recipes and anyone else {}
        past_moves = anyone.rebuild_past_moves(past, fetched) if past and anyone else {}
        t1 = time.perf_counter()
        # a simulation-only check: an honest trainer hosted here started exactly where its auditors say
        honest_here = [p for p in self.peers.values() if p.address in starts and not p.is_attacker and p.reference is not None]
        exact = sum(all(np.array_equal(a, b) for a, b in zip(starts[p.address], p.reference)) for p in honest_here)
        votes: dict[int, dict[str, Any]] = {}
        attackers = frozenset(attacker_addrs)
        rejected: list[dict[str, Any]] = []
        abstained: list[dict[str, Any]] = []  # assigned updates that could not be fetched: no vote
        verdicts: list[dict[str, Any]] = []  # the audit rule's rejections, with the tests that failed
        failed: list[dict[str, Any]] = []
        for addr, peer in mine.items():
            cands = [Candidate(index=c["index"], peer=c["peer"], hash=c["hash"], url=c["url"]) for c in assignments[addr]]
            before = len(peer.rejections)
            judged, fail = self._isolated(peer, "audit", peer.audit, rnd, cands, fetched, attackers, earlier_hashes=earlier,
                                          starts=starts, past_moves=past_moves)
            if fail is not None:  # its client raised while judging: no vote this round
                failed.append(fail)
                continue
            idx, accept = judged
            rejected += [{"peer": peer.index, "from": r.peer, "reason": r.reason, "step": "audit"} for r in peer.rejections[before:]]
            index_of = {c.peer: c.index for c in cands}  # a submitter submits once per round
            abstained += [{"peer": peer.index, "from": frm, "index": index_of.get(frm), "reason": why}
                          for frm, why in peer.last_abstentions]
            verdicts += [{"peer": peer.index, "from": frm, "failed": list(failed)} for frm, failed in peer.last_audit_rejections]
            # a random salt per run (nobody derives it from the public seed); salt and
            # commitment free of zero bytes, so calldata gas stays the same across runs
            salt, _commitment = salt_for(lambda s, c=peer.chain, i=idx, a=accept: c.vote_commitment(rnd, i, a, s))
            peer.pending_votes[rnd] = (idx, accept, salt)
            self._queue(peer, peer.chain.commit_votes, rnd, idx, accept, salt, wait=False)
            votes[peer.index] = {"indices": idx, "accept": accept}
        sign = self._take_signing()
        return {"votes": votes, "rejected": rejected, "abstained": abstained, "audit_rejections": verdicts, "failed": failed,
                "seconds_exchange": t1 - t0,
                "starts": {"rebuilt": len(starts), "honest_checked": len(honest_here), "honest_exact": exact, "past_moves": len(past_moves)},
                "seconds_audit": time.perf_counter() - t1 - sign, "seconds_chain": sign}

    def reveal(self, rnd: int) -> dict[str, Any]:
        n = 0
        for peer in self.peers.values():
            if rnd in peer.pending_votes:
                idx, accept, salt = peer.pending_votes.pop(rnd)
                self._queue(peer, peer.chain.reveal_votes, rnd, idx, accept, salt, wait=False)
                n += 1
        return {"revealed": n, "seconds_chain": self._take_signing()}

    def _take_signing(self) -> float:
        s, self._signing = self._signing, 0.0
        return s

    def _queue(self, peer: Any, fn: Any, *args: Any, **kwargs: Any) -> None:
        """Sign the transaction now (workers sign in parallel); send it in :meth:`send_outbox`."""
        t = time.perf_counter()
        peer.chain.sender.hold()
        fn(*args, **kwargs)
        self._signing += time.perf_counter() - t
        if not self._outbox or self._outbox[-1] is not peer:
            self._outbox.append(peer)

    def send_outbox(self) -> dict[str, Any]:
        """Send the queued transactions (each signed by its own peer) and wait for them.

        The orchestrator calls this on one worker after another, so transactions reach
        the chain in the same order on every run: submission order decides update
        indices, and block contents decide the next committee's randomness."""
        t0 = time.perf_counter()
        outbox, self._outbox = self._outbox, []
        if self.batch_mining:  # the worker's transactions in one block, in send order

            with batch_mining(self.w3):
                pending = [(peer, h) for peer in outbox for h in peer.chain.sender.release()]
        else:
            pending = [(peer, h) for peer in outbox for h in peer.chain.sender.release()]
        self._wait(pending)
        front_runs, self._front_runs = self._front_runs, []
        return {"sent": len(pending), "seconds_chain": time.perf_counter() - t0, "front_runs": front_runs}

    def aggregate(self, rnd: int, inputs: dict[str, list[dict[str, Any]]], own_weights: dict[str, float]) -> dict[str, Any]:
        """Each peer fetches the updates it may use (chosen by the orchestrator from chain
        state and the overlay), verifies them against their on-chain hash, aggregates, and
        is evaluated on the global test set."""

        t0 = time.perf_counter()
        wanted = {(c["url"], c["hash"]) for p in self.peers.values() for c in inputs.get(p.address, [])}
        fetched = self.fetcher.fetch_many(sorted(wanted), budget=self.fetch_budget) if wanted else {}
        t1 = time.perf_counter()
        out: dict[int, dict[str, Any]] = {}
        t_eval = 0.0
        record = bool(self.cfg.faults)  # runs with injected faults record what each peer aggregated
        for peer in self.peers.values():
            cands = [Candidate(index=c["index"], peer=c["peer"], hash=c["hash"], url=c["url"], weight=c["weight"]) for c in inputs.get(peer.address, [])]
            before = len(peer.rejections)
            info = peer.aggregate(rnd, cands, fetched, own_weight=own_weights.get(peer.address, 1.0))
            t = time.perf_counter()
            loss, _n, metrics = self._evaluate_test(peer.params)
            out[peer.index] = {**info, "accuracy": float(metrics.get("accuracy", float("nan"))), "loss": float(loss), "rejected_inputs": len(peer.rejections) - before}
            if self.asr_client is not None and peer.index not in self.attackers:
                _l, _n, m = self.asr_client.evaluate(peer.params, {})
                out[peer.index]["attack_success_rate"] = float(m.get("accuracy", float("nan")))
            t_eval += time.perf_counter() - t
            refused = {r.peer for r in peer.rejections[before:]}
            out[peer.index]["rejected"] = [{"peer": peer.index, "from": r.peer, "reason": r.reason, "step": "aggregate"} for r in peer.rejections[before:]]
            if record:
                # keccak256 of the very bytes each aggregated update was decoded from
                out[peer.index]["used"] = [{"from": c.peer, "bytes_hash": hash_hex(update_hash(fetched[c.hash]))}  # type: ignore[arg-type]
                                           for c in cands if c.peer not in refused]
            state = self.states.get(peer.index)
            if state is not None:  # what a real peer saves after aggregating (bdfl.peer.state)

                state.last_aggregated = rnd
                state.save_model(encode_ndarrays(peer.params))
                state.save()
        # aggregation is learning work (train); the test-set evaluation feeds the curves only
        return {"peers": out, "seconds_exchange": t1 - t0, "seconds_train": time.perf_counter() - t1 - t_eval, "seconds_eval": t_eval}

    def _evaluate_test(self, params: list[np.ndarray]) -> Any:
        """The task's evaluate on the global test set (the accuracy curves). It is the same
        call for every peer, so an exception there stops the run with one message."""
        try:
            return self.test_client.evaluate(params, {})
        except (BDFLError, KeyboardInterrupt):
            raise
        except Exception as exc:  # noqa: BLE001 - one message instead of a worker traceback
            raise BDFLError(f"task {self.cfg.task.client}: evaluate raised on the global test set: {type(exc).__name__}: {exc}",
                            fix="fix the task's evaluate (it must accept any parameters of the model and the whole test set)") from exc

    # -- injected faults ([[faults]], bdfl.experiment.faults) ---------------------------
    def stop_peer(self, index: int) -> dict[str, Any]:
        """Peer ``index`` stops as a killed process would: its endpoint closes (connections are
        refused from now on), its in-memory state is gone. What it saved on disk stays."""
        peer = self.peers.pop(index, None)
        if peer is None:
            return {}
        self.down.add(index)
        peer.endpoint.close()
        return {"stopped": index, "url": peer.endpoint.url}

    def restart_peer(self, index: int, rnd: int, candidates: list[dict[str, Any]]) -> dict[str, Any]:
        """Peer ``index`` comes back, rebuilt from what a restarted process has: its key, data
        and port, its saved model (if any), the chain (membership: bdfl.peer.rejoin), and a
        current model from its neighbours' approved updates of round ``rnd`` (``candidates``,
        chosen by the orchestrator from chain state and the overlay), each hash-checked."""

        if index not in self.keys or index in self.peers:
            return {}
        t0 = time.perf_counter()
        peer = self._make_peer(index)
        model_from = "initial"
        saved_round = None
        state = self.states.get(index)
        saved = state.load_model() if state is not None else None
        if saved is not None:
            try:
                peer.params = decode_ndarrays(saved, max_bytes=MAX_UPDATE_BYTES, spec=peer.spec)
                model_from, saved_round = "saved", state.last_aggregated  # type: ignore[union-attr]
            except InvalidUpdate:
                pass
        actions = ensure_membership(peer.chain, peer.endpoint.url)
        before = len(peer.rejections)
        # the fallbacks only when no first choice verifies
        tiers = [[Candidate(index=c["index"], peer=c["peer"], hash=c["hash"], url=c["url"], weight=c["weight"])
                  for c in candidates if bool(c.get("fallback")) == fallback] for fallback in (False, True)]
        used, tier = resync_from_tiers(peer, rnd, tiers, self.fetcher.fetch_many)
        if used:
            model_from = ("neighbours", "fallback")[tier]
        _loss, _n, metrics = self.test_client.evaluate(peer.params, {})
        self.peers[index] = peer
        self.down.discard(index)
        return {
            "peer": index, "membership": actions, "model_from": model_from, "saved_round": saved_round, "resynced_from": used,
            "rejected": [{"peer": index, "from": r.peer, "reason": r.reason, "step": "resync"} for r in peer.rejections[before:]],
            "accuracy": float(metrics.get("accuracy", float("nan"))), "seconds": time.perf_counter() - t0,
        }

    def leave_peer(self, index: int) -> dict[str, Any]:
        """``requestLeave`` on chain: a member until the current round is finalized."""
        peer = self.peers.get(index)
        if peer is None:
            return {}
        peer.chain.leave()
        return {"left": index}

    def set_endpoint_fault(self, index: int, kind: str | None, delay: float = 0.0) -> dict[str, Any]:
        """Make peer ``index``'s endpoint misbehave (bdfl.net.blobserver.Endpoint.set_fault) or heal it."""
        peer = self.peers.get(index)
        if peer is None:
            return {}
        peer.endpoint.set_fault(kind, delay=delay or 1.0)
        return {"peer": index, "fault": kind}

    def close(self) -> None:
        self.fetcher.close()
        self.host.close()
        if self.state_dir is not None:
            import shutil

            shutil.rmtree(self.state_dir, ignore_errors=True)

    def _wait(self, pending: list[Any]) -> None:
        """Receipts of transactions sent without waiting (polled in batches); every failure is reported."""

        receipts = wait_many([(peer.chain.sender, tx_hash) for peer, tx_hash in pending])
        errors: list[str] = []
        for (peer, _h), r in zip(pending, receipts, strict=True):
            if isinstance(r, DuplicateHashError) and r.error_args:
                try:
                    self._resubmit_front_run(peer, int(r.error_args[0]))
                    continue
                except Exception as exc:  # noqa: BLE001 - reported with the others below
                    r = exc
            if isinstance(r, Exception):
                errors.append(f"peer {peer.index} ({peer.address}): {r}")
        if errors:
            raise BDFLError(f"{len(errors)} transaction(s) failed:\n" + "\n".join(errors[:10]))


    def _resubmit_front_run(self, peer: Any, rnd: int) -> None:
        """A copier submitted ``peer``'s hash of chain round ``rnd`` first (``DuplicateHash``): the
        peer re-encodes its update with a fresh binding nonce, publishes it and submits the new
        hash once (bdfl.peer.node.Peer.recover_front_run); recorded for a ``SubmissionFrontRun`` event."""
        old = peer.published[rnd]
        data, h = peer.recover_front_run(rnd, old)
        peer.chain.submit_update(rnd, bytes.fromhex(h[2:]), peer.num_examples, gas=self.submit_gas)
        self._front_runs.append({"peer": peer.index, "address": peer.address, "old_hash": old, "new_hash": h,
                                 "bytes": len(data)})


def fetch_budget(cfg: ExperimentConfig) -> float:
    """Seconds a phase's fetches may retry an unreachable update (bdfl.net.fetch): the
    attempts ``net.fetch_retries + 1`` of ``net.fetch_timeout`` each would take, at most half
    the Commit phase, so an auditor still commits before the deadline."""
    return min(0.5 * cfg.protocol.commit_seconds, (cfg.net.fetch_retries + 1) * cfg.net.fetch_timeout)


def _base_config(cfg: ExperimentConfig, dataset: Any) -> dict[str, Any]:
    """The config keys every fit / evaluate of this run receives (bdfl.learning.task.base_config)."""

    t = cfg.task
    return base_config(classes=range(dataset.num_classes), local_epochs=t.local_epochs, batch_size=t.batch_size,
                       learning_rate=t.learning_rate)


def worker_main(spec: WorkerSpec, conn: Connection) -> None:
    """Process entry point: build the worker, then serve commands until 'stop'."""
    set_pdeathsig()  # die with the orchestrator, even if it is SIGKILLed
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the orchestrator handles Ctrl-C and stops us
    worker, reply = start_worker(spec)
    conn.send(reply)
    if worker is None:
        return
    try:
        while True:
            message = conn.recv()
            if message[0] == "stop":
                break
            conn.send(handle(worker, message))
    except (EOFError, OSError):
        pass  # orchestrator gone
    finally:
        worker.close()


def start_worker(spec: WorkerSpec) -> tuple[Worker | None, tuple[str, Any]]:
    """Build the worker; with it, the reply to send the orchestrator (``("error", why)`` and
    no worker when it failed). Shared by the pipe loop and the Ray actor (bdfl.experiment.ray_pool)."""
    try:
        worker = Worker(spec)
    except BaseException as exc:  # noqa: BLE001 - reported to the orchestrator, which stops the run
        return None, ("error", _describe(exc))
    return worker, ("ok", {"peers": len(worker.peers)})


def handle(worker: Worker, message: tuple[str, dict[str, Any]]) -> tuple[str, Any]:
    """One command ``(cmd, kwargs)`` run on ``worker``: ``("ok", result)`` or ``("error", why)``."""
    cmd, kwargs = message
    try:
        return "ok", getattr(worker, cmd)(**kwargs)
    except BaseException as exc:  # noqa: BLE001
        return "error", _describe(exc)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BDFLError):
        return str(exc)
    return "".join(traceback.format_exception(exc)).strip()
