"""The orchestrator of a simulated run: owns the devnet, the deployment, the workers
and the results folder, and walks every round through its on-chain phases."""

from __future__ import annotations

import logging
import math
import secrets
import time
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from bdfl.chain.accounts import DEVNET_CHAIN_IDS, check_key_allowed, derive_keys, devnet_account, key_from_env
from bdfl.chain.compiler import build
from bdfl.chain.connection import Chain, GasMoney, gas_money
from bdfl.chain.devnet import connect, start_devnet
from bdfl.chain.protocol import JOIN_GAS, SUBMIT_GAS_BASE, Outcome, Phase, draw_gas_bound
from bdfl.chain.txsender import eth_text
from bdfl.config import ExperimentConfig, dump_toml
from bdfl.errors import BDFLError
from bdfl.experiment.faults import FaultInjector, keeps_state, late_joiners
from bdfl.experiment.keeper import Keeper
from bdfl.experiment.pool import RoundTimes, make_pool
from bdfl.experiment.progress import Progress, counted
from bdfl.experiment.report import build_report
from bdfl.experiment.results import (
    ResultsWriter,
    attack_name,
    compute_summary,
    honest_attack_success,
    load_clean_reference,
    package_versions,
    read_metrics,
    read_rounds,
    round_aggregates,
)
from bdfl.experiment.setup import attacker_indices, audited, frozen_clock, protocol_params
from bdfl.experiment.messages import (
    Aggregate,
    AuditCommit,
    InputRejected,
    Join,
    OverlayReport,
    PeerRound,
    Reveal,
    SendOutbox,
    SendReply,
    StartsCheck,
    TrainSubmit,
)
from bdfl.experiment.worker import WorkerSpec
from bdfl.peer.engine import ClientFailure
from bdfl.plugins import code_digests
from bdfl.policy import policy_hash, policy_of

log = logging.getLogger("bdfl.run")


def approved_cell(outcome: Outcome | None, audited: bool) -> int | str:
    """metrics.csv ``approved`` of a peer's update: 1 approved, 0 rejected on chain; empty for an
    update undecided or on probation (neither verdict: counting it as 0 would make it a false
    rejection), for no update, and under a baseline (nothing audited)."""
    if audited and outcome in (Outcome.APPROVED, Outcome.REJECTED):
        return int(outcome == Outcome.APPROVED)
    return ""


def starting_line(workers: int, configured: int, cluster: bool, peers: int, attackers: int) -> str:
    """The run log's line on the processes hosting the peers: ``workers`` started of the
    ``configured`` (capped at one per peer), local processes or Ray actors on a cluster."""
    kind = ("Ray actor", "Ray actors")[workers != 1] + " on the cluster" if cluster else ("worker process", "worker processes")[workers != 1]
    capped = f" (workers = {configured} capped at one per peer)" if workers < configured else ""
    return f"starting {workers} {kind} for {counted(peers, 'peer')} ({counted(attackers, 'attacker')}){capped}"

class Orchestrator:
    def __init__(self, cfg: ExperimentConfig, out_dir: Path, *, quiet: bool = False) -> None:
        self.cfg = cfg
        self.audited = audited(cfg)  # the committee audits every round (bdfl, or a plugin strategy that says so)
        self.out_dir = out_dir
        self.writer = ResultsWriter(out_dir, live=True)  # + TensorBoard event files, per round
        self.progress = Progress(total_rounds=cfg.rounds, quiet=quiet, log_path=out_dir / "run.log")
        self.devnet: Any = None
        self.pool: Any = None
        self.status = "running"
        self.started = time.monotonic()
        self.rounds_done = 0
        self.degraded: list[str] = []  # why this run went wrong though it ran every round (status "degraded")
        self._idle_rounds = 0  # consecutive rounds in which no peer aggregated any update
        self.totals = {"tx_count": 0, "gas_used": 0}
        # chain state read for a round's results, kept for the next round (N reads each: at
        # N = 10,000 they were most of the orchestrator's own time, docs/results/scale.md)
        self._states_after: dict[str, dict[str, Any]] | None = None  # peer states after the last round's finalize
        self._balances: dict[str, float] | None = None  # wallet tokens, exact through block _balances_block
        self._balances_block = -1

    def note(self, text: str) -> None:
        self.progress.log(text)

    # -- set-up -----------------------------------------------------------------------
    def run(self) -> None:
        cfg = self.cfg
        versions = {**package_versions(), "code": code_digests([*cfg.plugins, cfg.task.client])}  # user code: sweeps compare it
        self.writer.write_config(dump_toml(_rerunnable(cfg), {"versions": versions}))
        self._start_chain()
        try:
            self._deploy()
            self._start_peers()
        except Exception as exc:
            self._explain_failure("the set-up (deployment, workers, joins)", exc)
            raise
        for rnd_offset in range(cfg.rounds):
            try:
                self._round(rnd_offset)
            except Exception as exc:
                self._explain_failure(f"round {rnd_offset + 1}", exc)
                raise

    def _explain_failure(self, during: str, exc: Exception) -> None:
        """A failure in the set-up or in the middle of a round is most often the devnet having
        died: say so plainly instead of surfacing a connection error from deep in a worker (an
        outside probe met a worker's traceback when the devnet died during the joins). Any
        other failure without a fix of its own (a worker that died) gets where the finished
        rounds are (an outside probe: a devnet's death said so, a worker's did not)."""
        devnet = self.devnet
        saved = f"rounds 1..{self.rounds_done} are saved in {self.out_dir}" if self.rounds_done else f"the run's folder is {self.out_dir}"
        if devnet is None or devnet.alive():
            if isinstance(exc, BDFLError) and not exc.fix and self.rounds_done:
                exc.fix = f"{saved} (run.log has the details)"
            return
        if devnet.is_local:
            code = devnet.process.poll() if devnet.process is not None else None
            message = f"the {devnet.backend} devnet exited (exit code {code}) during {during}"
            fix = f"see {devnet.log_path} for why; {saved}"
        else:
            message = f"the chain at {devnet.rpc_url} stopped answering during {during}"
            fix = f"check the node; {saved}"
        raise BDFLError(message, fix=fix) from exc

    def _start_chain(self) -> None:
        self.note("compiling contracts (cached)")
        self.artifacts = build()
        c = self.cfg.chain
        if c.backend == "url":
            self.devnet = connect(c.rpc_url)
        else:
            self.note(f"starting {c.backend} devnet")
            # anvil with a frozen clock: reproducible block randomness (committees), and
            # deadlines pass only when the keeper moves time (docs/architecture.md)
            frozen = frozen_clock(self.cfg)
            host = "127.0.0.1"
            if self.cfg.cluster:  # on a Ray cluster the devnet listens where every node reaches it
                from bdfl.experiment.ray_pool import join_cluster  # lazy: Ray is an optional extra

                host = join_cluster(self.cfg.cluster)
            self.devnet = start_devnet(c.backend, host=host, block_time=c.block_time or None, log_path=self.out_dir / "devnet.log",
                                       frozen_time=frozen)
        self.chain = Chain(self.devnet.rpc_url)
        self.note(f"chain {self.devnet.rpc_url} (chain id {self.devnet.chain_id})")

    def _deploy(self) -> None:
        deployer = devnet_account(0) if self.devnet.is_local else key_from_env()
        if deployer is None and self.devnet.chain_id in DEVNET_CHAIN_IDS:
            # a devnet reached by URL (anvil, Hardhat, Ganache): its well-known account 0
            # deploys and funds, as on a devnet started here
            deployer = devnet_account(0)
            self.note(f"chain id {self.devnet.chain_id} is a devnet: deploying and funding from its well-known "
                      "account 0 (set BDFL_PRIVATE_KEY to use another)")
        if deployer is None:
            raise BDFLError(f"no deployer key for chain id {self.devnet.chain_id}",
                            fix="set BDFL_PRIVATE_KEY to a funded account's key (needed on any chain id other "
                                "than the devnets' 31337 and 1337)")
        check_key_allowed(deployer, self.devnet.chain_id)
        self.deployer = self.chain.sender(deployer)
        self.gas_money = None if self.chain.devnet_methods() else self._afford(deployer.address)
        self.note("deploying contracts")
        policy = policy_of(self.cfg)  # the audit and aggregation rule, pinned on chain (bdfl.policy)
        self.deployment = self.chain.deploy(deployer, self.artifacts, protocol_params(self.cfg), sender=self.deployer,
                                 policy_hash=policy_hash(policy))
        self.deployment.policy = policy
        self.deployment_path = self.out_dir / "deployment.json"
        self.deployment.save(self.deployment_path)
        self.keeper = Keeper(self.chain, self.chain.client(self.deployment, deployer, self.deployer), self.devnet,
                             self.deployment.block_number - 1)

    def _afford(self, deployer: str) -> GasMoney:
        """On a chain without devnet methods the peers' gas money is sent from the deployer: the
        budget (:func:`bdfl.chain.connection.gas_money` at the fee cap now), refused before any
        transaction when the deployer cannot pay it (an outside probe's run deployed, paid, and
        only then found it could not fund its peers)."""
        cfg = self.cfg
        peer_gas_limit = max(JOIN_GAS, SUBMIT_GAS_BASE + draw_gas_bound(protocol_params(cfg).committee_size))
        relayers = min(cfg.workers, cfg.peers) if cfg.chain.submission == "relayed" else 0
        money = gas_money(self.chain.fee_cap(), peers=cfg.peers + relayers, rounds=cfg.rounds, peer_gas_limit=peer_gas_limit)
        have = self.chain.eth_balance(deployer)
        if have < money.deployer:
            raise BDFLError(f"the deployer {deployer} holds {eth_text(have)}; this run needs about {eth_text(money.deployer)}: "
                            f"deploying, {cfg.rounds} rounds of the keeper's transactions and {eth_text(money.per_peer)} of gas "
                            f"money for each of {cfg.peers + relayers} accounts, at the fee cap of {money.fee_cap / 1e9:.3g} gwei "
                            "(this chain has no devnet methods to set balances)",
                            fix=f"send ETH to {deployer}, or run fewer peers or rounds")
        self.note(f"no devnet methods on this chain: each peer gets {eth_text(money.per_peer)} of gas money by transfer "
                  f"from the deployer (about {eth_text(money.deployer)} in all)")
        return money

    def _start_peers(self) -> None:
        cfg = self.cfg
        self.faults = FaultInjector(self)
        late = set(late_joiners(cfg))
        accounts = derive_keys(cfg.seed, cfg.peers)
        self.addresses = [a.address for a in accounts]
        self.attackers = attacker_indices(cfg)
        self.attacker_addrs = [self.addresses[i] for i in self.attackers]
        stake = self.deployment.params.min_stake
        self.note(f"funding {cfg.peers} peer accounts")
        eth_wei = self.gas_money.per_peer if self.gas_money is not None else 10**20  # 100 ETH: a devnet's
        self.chain.fund(self.deployment, self.deployer, self.addresses, tokens=stake * 2, eth_wei=eth_wei)
        workers = min(cfg.workers, cfg.peers)
        groups = [list(range(w, cfg.peers, workers)) for w in range(workers)]
        # chain.submission = "relayed": each worker relays its peers' signed submissions from its
        # own account (gas money only: a relayer holds no stake and is no member)
        relayers = derive_keys(cfg.seed, workers, namespace="bdfl-relayer") if cfg.chain.submission == "relayed" else []
        if relayers:
            self.chain.fund(self.deployment, self.deployer, [a.address for a in relayers], tokens=0, eth_wei=eth_wei)
        attackers = set(self.attackers)
        seal_key = secrets.token_hex(16)  # fresh per run: only this run's workers hold it
        specs = [
            WorkerSpec(
                worker_id=w,
                config=cfg.to_dict(),
                rpc_url=self.devnet.rpc_url,
                deployment_path=str(self.deployment_path),
                peers=[(i, "0x" + bytes(accounts[i].key).hex(), 0) for i in group],  # any free port (setup.bind_endpoint)
                attackers=[i for i in group if i in attackers],
                late=[i for i in group if i in late],
                keep_state=keeps_state(cfg),
                addresses=list(self.addresses),
                relayer_key="0x" + bytes(relayers[w].key).hex() if relayers else "",
                seal_key=seal_key,
            )
            for w, group in enumerate(groups)
        ]
        self.note(starting_line(workers, cfg.workers, bool(cfg.cluster), cfg.peers, len(self.attackers)))
        self.pool = make_pool(specs, cfg.cluster, note=self.note)
        self.pool.call_in_turn(Join(stake))  # in turn: a reproducible order of joins
        txs, gas, _ = self.keeper.chain_usage()  # set-up (deploy, funding, joins) is not round cost
        self.setup_chain = {"setup_tx_count": txs, "setup_gas_used": gas}
        joined = f"{cfg.peers - len(late)} peers joined ({len(late)} join later)" if late else "all peers joined"
        self.note(f"{joined} (set-up: {txs} transactions, {gas:,} gas)")

    # -- one round ----------------------------------------------------------------------
    def _round(self, offset: int) -> None:
        cfg = self.cfg
        k = self.keeper
        t_round = time.perf_counter()
        times = RoundTimes()
        rnd = k.current_round()
        first_block = k.next_block
        r = offset + 1
        faults = self.faults
        faults.round_start(r, rnd)
        self.progress.phase(offset + 1, "train+submit")
        # the last round's closing states, unless injected faults may have changed them since
        states = self._states_after if self._states_after is not None and not cfg.faults else k.peer_states(self.addresses)
        self._states_after = None
        # members submit; one that asked to leave (Exiting) still takes part in this round
        active = [i for i, a in enumerate(self.addresses) if states[a]["status"] in ("ACTIVE", "EXITING")]
        if not active:
            raise BDFLError(f"no active members left in round {r} (chain round {rnd}): every peer was slashed out or went inactive")
        res = self.pool.call(TrainSubmit(rnd, attackers=False, active=active))
        times.add(res)
        trained = sum(len(w.peers) for w in res)
        fit_failures = [x for w in res for x in w.failed]
        sent = self.pool.call_in_turn(SendOutbox())
        times.add(sent, in_turn=True)
        self._note_front_runs(r, rnd, sent)
        if self.attackers:
            honest = [(v.hash, v.url, v.samples) for w in res for v in w.peers.values()]
            res_a = self.pool.call(TrainSubmit(rnd, attackers=True, active=active, honest=honest))
            times.add(res_a)
            trained += sum(len(w.peers) for w in res_a)
            fit_failures += [x for w in res_a for x in w.failed]
            sent = self.pool.call_in_turn(SendOutbox())
            times.add(sent, in_turn=True)
            self._note_front_runs(r, rnd, sent)
        self._note_failures(r, rnd, fit_failures, everyone=trained == 0)
        fit_metrics = {i: v.fit_metrics for w in (res + res_a if self.attackers else res) for i, v in w.peers.items()}
        t = time.perf_counter()
        k.advance_to(rnd, Phase.COMMIT)  # at once if every member submitted, else at the deadline
        times.add_chain(time.perf_counter() - t)
        faults.after_submit(r, rnd)

        if self.audited:
            self.progress.phase(offset + 1, "audit+commit")
            audits = self.pool.call(AuditCommit(rnd, self.attacker_addrs))
            times.add(audits)
            voted = sum(len(w.votes) for w in audits)
            self._note_failures(r, rnd, [x for w in audits for x in w.failed], everyone=voted == 0)
            self._note_rejections(r, rnd, [x for w in audits for x in w.rejected])
            for x in (x for w in audits for x in w.abstained):
                # an assigned update this auditor could not fetch: no vote (not evidence against it)
                self.faults.emit("AuditAbstained", r, rnd, f"auditor {x.peer} abstained on update {x.index} of {x.source}: {x.reason}",
                                 auditor=x.peer, update=x.index, submitter=x.source, reason=x.reason)
            if cfg.defense.rebuild_starts:
                # how many trainers' starts this round's auditors rebuilt from the chain, and whether
                # the honest ones match where those trainers really started (a simulation-only check)
                checks = [w.starts for w in audits]
                self.faults.emit("StartsRebuilt", r, rnd, "", **{f.name: sum(getattr(c, f.name) for c in checks) for f in fields(StartsCheck)})
            for x in (x for w in audits for x in w.audit_rejections):
                # the rule's reasons for each reject vote (before attackers' vote hooks), for diagnosis
                self.faults.emit("AuditRejected", r, rnd, "", **x.event_args())
            times.add(self.pool.call_in_turn(SendOutbox()), in_turn=True)
            faults.after_commit(r, rnd)
            t = time.perf_counter()
            k.advance_to(rnd, Phase.REVEAL)
            times.add_chain(time.perf_counter() - t)
            self.progress.phase(offset + 1, "reveal")
            times.add(self.pool.call(Reveal(rnd)))
            times.add(self.pool.call_in_turn(SendOutbox()), in_turn=True)
        else:
            faults.after_commit(r, rnd)  # no audit under a baseline: endpoint faults begin after the submissions
        t = time.perf_counter()
        k.close_round(rnd)  # baselines cast no votes: the commit/reveal deadlines are reached instead
        times.add_chain(time.perf_counter() - t)

        self.progress.phase(offset + 1, "aggregate")
        t = time.perf_counter()
        subs = k.submissions(rnd)  # final outcomes, for the results
        times.add_chain(time.perf_counter() - t)
        res_agg = self.pool.call(Aggregate(rnd))
        times.add(res_agg)
        change = next((w.overlay for w in res_agg if w.overlay is not None), None)
        if change is not None:
            self._note_overlay(r, rnd, change)
        peer_res: dict[int, PeerRound] = {}
        for w in res_agg:
            peer_res.update(w.peers)
        self._note_rejections(r, rnd, [x for i in sorted(peer_res) for x in peer_res[i].rejected])
        if self.cfg.faults:
            for i in sorted(peer_res):
                if peer_res[i].used is not None:
                    faults.emit("Aggregated", r, rnd, "", peer=i, address=self.addresses[i], used=peer_res[i].used)
        faults.after_aggregate(r, rnd)
        # update bytes the workers moved, by phase (a measurement, like the seconds: not reproducible):
        # over HTTP (fetched, bodies, served) and read in process from a worker's own peers (local_*)
        faults.emit("RoundTraffic", r, rnd, "", **{f"{p}_{k}": getattr(t, k) for p, t in sorted(times.traffic.items())
                                                   for k in ("fetched", "bodies", "served", "local_bytes", "local_bodies")})
        txs, gas, last_block = k.chain_usage()
        events = k.events(first_block, last_block)
        # the run's own lines (faults, rejected inputs, overlay changes) join the chain's, by block
        events = sorted(events + faults.take_events(), key=lambda e: e["block"])
        self._write_round(offset + 1, rnd, peer_res, subs, events, times, time.perf_counter() - t_round, gas, txs, last_block,
                          fit_metrics)
        self._check_degraded(r, subs, peer_res)

    def _note_failures(self, r: int, rnd: int, failures: list[ClientFailure], *, everyone: bool) -> None:
        """A peer whose task client raised (fit or audit) sat the round out: one ``ClientFailed``
        event each, a run.log line with peer, task and traceback. When it hit every peer that
        took part, the run stops with one message."""
        for f in failures:
            self.faults.emit("ClientFailed", r, rnd, "", **f.event_args())
            self.note(f"round {r}: peer {f.peer} failed this round: task {f.task} {f.step} raised {f.error} "
                      f"({'no update' if f.step == 'fit' else 'no vote'}; traceback in run.log)")
            write = getattr(self.progress, "_write_log", None)
            if write is not None:
                write(f.traceback.rstrip())
        if failures and everyone:
            f = failures[0]
            raise BDFLError(
                f"round {r}: task {f.task} {f.step} raised on every peer ({len(failures)} of {len(failures)}): {f.error}",
                fix=f"fix the task's {'evaluate (it raised while the peer audited)' if f.step == 'audit' else f.step} "
                    f"(the traceback of each peer is in {self.out_dir / 'run.log'})",
            )

    def _check_degraded(self, r: int, subs: list[Any], peer_res: dict[int, PeerRound]) -> None:
        """A round that rejected most honest updates, or a second round in a row in which no
        peer aggregated anything, marks the run "degraded" (summary.json status, a loud
        run.log line, exit status 3 of ``bdfl run``)."""

        reasons = []
        if self.audited:
            attackers = {self.addresses[i] for i in self.attackers}
            decided = [s.outcome for s in subs if s.peer not in attackers and s.outcome in (Outcome.APPROVED, Outcome.REJECTED)]
            rejected = sum(o == Outcome.REJECTED for o in decided)
            if decided and rejected > len(decided) / 2:
                reasons.append(f"round {r}: {rejected} of {len(decided)} honest updates were rejected")
        honest_acc = [pr.accuracy for i, pr in peer_res.items() if i not in self.attackers]
        if honest_acc and not any(math.isfinite(a) for a in honest_acc):
            reasons.append(f"round {r}: no honest peer's test accuracy is a finite number (the task's evaluate)")
        aggregated = [pr.aggregated for pr in peer_res.values()]
        self._idle_rounds = self._idle_rounds + 1 if aggregated and not any(aggregated) else 0
        if self._idle_rounds == 2:
            reasons.append(f"rounds {r - 1}-{r}: no peer aggregated any update")
        for reason in reasons:
            self.note(f"RUN DEGRADED: {reason}")
        self.degraded += reasons

    def _note_front_runs(self, r: int, rnd: int, sent: list[SendReply]) -> None:
        """Submissions that reverted with DuplicateHash (another member submitted the hash first)
        and were re-encoded with a fresh nonce and submitted again: one event line each."""
        for x in (x for w in sent for x in w.front_runs):
            self.faults.emit("SubmissionFrontRun", r, rnd, f"peer {x.peer}'s submission {x.old_hash[:10]} was front-run (DuplicateHash); "
                             f"re-encoded and submitted {x.new_hash[:10]}", **x.event_args())
        for f in (f for w in sent for f in w.fallbacks):  # chain.submission = "relayed": entries that did not land
            self.faults.emit("RelayFallback", r, rnd, f"peer {f.peer}'s relayed submission did not land ({f.reason}): submitted directly",
                             peer=f.peer, address=f.address, reason=f.reason)

    def _note_rejections(self, r: int, rnd: int, rejected: list[InputRejected]) -> None:
        """Received updates a peer did not use because they could not be verified (unreachable,
        wrong hash, malformed): one event line each (the audit rule's verdicts are votes, not these)."""
        for rej in rejected:
            self.faults.emit("InputRejected", r, rnd, f"peer {rej.peer} ({rej.step}) could not use the update of {rej.source}: {rej.reason}",
                             **rej.event_args())

    def _note_overlay(self, r: int, rnd: int, report: OverlayReport) -> None:
        """The overlay the peers built or repaired after the round's close (by the rule real
        peers use, bdfl.peer.overlay_tracker, in the workers' round memory): an
        ``OverlayChanged`` line in events.jsonl."""
        self.faults.emit(
            "OverlayChanged", r, rnd,
            f"overlay {'built' if report.built else 'repaired'}: {report.members} members, degrees {report.degree_min}..{report.degree_max}"
            if self.cfg.faults else "", **report.event_args())
        if not report.connected:  # said where it starts, not only as a degraded run's "no peer aggregated" at its end
            self.note(f"warning: the overlay the peers {'built' if report.built else 'repaired'} in round {r} is not connected "
                      f"(topology {self.cfg.overlay.topology}): peers in different parts never exchange updates; "
                      "a denser overlay (overlay.degree, overlay.edge_probability) or the expander connects them")

    # -- results --------------------------------------------------------------------------
    def _write_round(self, r: int, rnd: int, peer_res: dict[int, PeerRound], subs: list[Any], events: list[dict[str, Any]],
                     times: RoundTimes, seconds_total: float, gas: int, txs: int, last_block: int,
                     fit_metrics: dict[int, dict[str, float]] | None = None) -> None:
        cfg = self.cfg
        k = self.keeper
        outcomes = {s.peer: s.outcome for s in subs}
        committee = set(k.committee(rnd))
        states = self._states_after = k.peer_states(self.addresses)  # after this round's finalize (and the next round's start)
        balances = self._token_balances(last_block)  # wallet tokens (stake and unclaimed rewards apart)
        attackers = set(self.attackers)
        audited = self.audited
        rows = []
        for i, addr in enumerate(self.addresses):
            pr = peer_res.get(i)
            outcome = outcomes.get(addr)
            approved = approved_cell(outcome, audited)
            rows.append({
                "round": r, "peer": i, "address": addr, "attacker": int(i in attackers),
                "committee": int(addr in committee), "submitted": int(outcome is not None),
                "approved": approved,
                "accuracy": pr.accuracy if pr is not None else None, "loss": pr.loss if pr is not None else None,
                "reputation": states[addr]["reputation"], "balance": balances[addr], "stake": states[addr]["stake"],
                "unclaimed": states[addr]["tokens"],
            })
        self.writer.append_fit_metrics({"round": r, "peer": i, "metric": name, "value": value}
                                       for i, m in sorted((fit_metrics or {}).items()) for name, value in sorted(m.items()))
        self.writer.append_metrics(rows)
        asr = honest_attack_success({i: pr.attack_success_rate for i, pr in peer_res.items()}, attackers)
        round_row = {
            "round": r,
            **round_aggregates(rows, audited),
            **({"attack_success_rate": asr} if asr is not None else {}),
            "tx_count": txs, "gas_used": gas,
            "seconds_train": times.total.train, "seconds_exchange": times.total.exchange,
            "seconds_audit": times.total.audit, "seconds_chain": times.total.chain, "seconds_eval": times.total.eval, "seconds_total": seconds_total,
        }
        self.writer.append_events(events)
        self.writer.append_round(round_row)  # last: a round's rounds.csv row marks everything of it written
        self.rounds_done += 1  # at once: an interrupt after the row must not leave the round uncounted
        # submitted, audited, and neither approved nor rejected (an outside probe's round read "approved 0 rejected 0")
        undecided = sum(1 for row in rows if row["submitted"] and row["approved"] not in (0, 1)) if audited else 0
        self.progress.round_done(r, round_row, undecided=undecided)

    def _token_balances(self, last_block: int) -> dict[str, float]:
        """Every peer's wallet tokens as of block ``last_block`` (the latest): all of them read
        once, then only the peers a token ``Transfer`` touched since (Keeper.token_holders_moved)."""
        k = self.keeper
        if self._balances is None:
            self._balances = k.token_balances(self.addresses)
        else:
            ours = set(self.addresses)
            moved = [a for a in sorted(k.token_holders_moved(self._balances_block + 1, last_block)) if a in ours]
            if moved:
                self._balances.update(k.token_balances(moved))
        self._balances_block = last_block
        return self._balances

    def shutdown(self, status: str, error: BaseException | None = None) -> None:
        """Stop everything we started; keep and summarise what was written. A run that
        completed but went wrong (:meth:`_check_degraded`) ends "degraded"; a failed run's
        ``error`` goes to run.log (with its fix) and to summary.json's ``error``."""
        message = None
        if error is not None:
            message = getattr(error, "message", None) or f"{type(error).__name__}: {error}"
            self.note(f"error: {message}")
            if getattr(error, "fix", None):
                self.note(f"fix: {error.fix}")
        if status == "completed" and self.degraded:
            status = "degraded"
            self.note(f"RUN DEGRADED ({len(self.degraded)} problem(s)): " + "; ".join(self.degraded[:5]))
        self.status = status
        if self.pool is not None:
            self.pool.stop()
            self.pool = None
        if self.devnet is not None:
            self.devnet.stop()
        try:
            rounds = read_rounds(self.out_dir)
            summary = compute_summary(read_metrics(self.out_dir), rounds, _clean_reference(self.cfg))
            summary.update(getattr(self, "setup_chain", {}))
            # the rounds.csv rows: a round's row is written last, so each one is a round whole on disk
            # (an interrupt between the row and the counter left "rounds_completed 0, last_round 1")
            self.rounds_done = max(self.rounds_done, len(rounds))
            summary.update({"status": status, "rounds_completed": self.rounds_done, "seconds_wall": time.monotonic() - self.started,
                            "attack": attack_name(self.cfg.to_dict()) if self.cfg.num_attackers else "none", "defense": self.cfg.defense.name, "audited": self.audited})
            if not summary.get("peers"):  # no round recorded: the configured counts, not 0
                summary["peers"], summary["attackers"] = self.cfg.peers, self.cfg.num_attackers
            if message is not None:
                summary["error"] = message
            if self.degraded:
                summary["degraded_reasons"] = list(self.degraded)
            self.writer.write_summary(summary)
            if self.rounds_done:
                build_report(self.out_dir)
        except Exception as exc:  # noqa: BLE001 - never mask the run's own outcome
            self.note(f"could not write summary/report: {exc}")
        self.writer.close()
        self.progress.close(status)


def _rerunnable(cfg: ExperimentConfig) -> ExperimentConfig:
    """``cfg`` as the run's config.toml keeps it, so that ``bdfl run --config <run>/config.toml``
    repeats the run from any folder: a task given as a relative ``.py`` path is written
    absolute, and ``out`` is left empty (it named this run's own folder, which already holds a
    run and would be refused: a repeat goes to a new folder, or to ``--out``)."""
    client = cfg.task.client
    if client.endswith(".py") and not Path(client).is_absolute() and Path(client).exists():
        cfg = replace(cfg, task=replace(cfg.task, client=str(Path(client).resolve())))
    return replace(cfg, out="")


def _clean_reference(cfg: ExperimentConfig) -> dict[str, Any] | None:
    if not cfg.clean_reference:
        return None
    try:  # checked by preflight; the same reader as `bdfl report` (a summary.json or its folder)
        return load_clean_reference(cfg.clean_reference)
    except BDFLError as exc:
        log.warning("clean_reference not used: %s", exc.message)
        return None
