"""``bdfl peer``: one real peer process on its own host, driven by the chain alone.

The process loads its deployment, key, task client and data shard, serves its updates on
one HTTP endpoint, joins the federation if it is not a member, and then polls the chain
(every ~0.3 s) and acts on the current round's phase:

* **Submit** — train, publish the update bytes on its endpoint, submit their keccak256;
* **Commit** (committee members) — fetch the updates assigned to it over HTTP, check each
  against its on-chain hash, decode strictly, audit, persist the votes and salt to disk,
  then commit;
* **Reveal** (if it committed) — reveal the persisted votes;
* a phase whose deadline passed and that nobody ended: ``advance`` it (anyone may);
* **Finalize** — ``finalize`` in batches (anyone may; losing the race is fine);
* once the round is **closed** — fetch the approved updates of its overlay neighbours,
  check their hashes, aggregate them weighted by on-chain reputation, evaluate the result
  on its local validation data and log one line.

It is a thin polling loop around one round engine (:class:`~bdfl.peer.engine.PeerEngine`,
the stages of :mod:`bdfl.peer.stages`, over a :class:`~bdfl.peer.view.ProtocolView`): the
same engine every simulated peer runs. What is its own: when to act (the polling, deadlines,
racing for permissionless calls), the state on disk for restarts, and the logs.
docs/peer.md is the manual.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from bdfl.chain.accounts import load_key_file
from bdfl.chain.deploy import TOKEN, Deployment, tokens_text
from bdfl.chain.endpoints import endpoint_rule
from bdfl.chain.connection import open_account
from bdfl.chain.protocol import SUBMIT_GAS_BASE, Phase, Status, draw_gas_bound
from bdfl.chain.txsender import DuplicateHashError, TxReverted, transient_chain_errors
from bdfl.config import ExperimentConfig, load_config, read_toml
from bdfl.defense import check_defense
from bdfl.errors import BDFLError
from bdfl.learning.data import task_shard_indices
from bdfl.learning.task import load_task, task_base_config, task_defaults, task_hparams
from bdfl.net.blobserver import BlobHost, SubmitSeal
from bdfl.net.fetch import FetchError, Fetcher, check_endpoint_url, endpoint_answers, private_allowed
from bdfl.net.serialization import MAX_UPDATE_BYTES, InvalidUpdate, ModelSpec, decode_ndarrays, encode_ndarrays, hash_hex, update_hash
from bdfl.peer import stages
from bdfl.peer.engine import ClientFailure, PeerEngine
from bdfl.peer.node import Peer, peer_settings
from bdfl.peer.overlay_tracker import OverlayTracker
from bdfl.peer.rejoin import ensure_membership, resync_from_tiers
from bdfl.peer.round_state import ChainMemory, RoundState, Votes
from bdfl.peer.state import PeerState
from bdfl.peer.view import REP_SCALE, ProtocolView
from bdfl.plugins import load_plugins
from bdfl.policy import PolicyMismatch, check_deployment_policy, explicit_policy_fields, resolve_policy

log = logging.getLogger("bdfl.peer.standalone")

#: Seconds between two looks at the chain.
POLL_SECONDS = 0.3
#: Give up when the chain stayed unreachable this long.
RPC_GIVE_UP_SECONDS = 120.0
#: Extra gas on top of an estimate for commit / reveal: the last one also ends the phase,
#: and another peer's transaction may make ours the last one after we estimated.
PHASE_END_HEADROOM = 60_000
#: Stagger between peers racing for the same permissionless call (advance, finalize):
#: the peer of rank r (sorted member addresses) waits r * this (capped) before trying.
STAGGER_SECONDS = 0.5
STAGGER_MAX_RANK = 8
#: A chain whose latest block is older than this is idle (a devnet that mines on demand).
IDLE_CHAIN_SECONDS = 10.0
#: A peer that has done its part of a phase and waits for others says so after this long, and
#: again each time this long passes (a member that stopped without leaving holds every phase
#: until its deadline: minutes, silent otherwise).
WAITING_LOG_SECONDS = 60.0
#: An auditor retries an unreachable assigned update for at most this long (and at most half
#: the Commit time left), so that a peer restarting after a crash is not voted down.
AUDIT_RETRY_SECONDS = 20.0
#: One pass of the auditor's fetches retries (with backoff) for at most this long.
AUDIT_PASS_SECONDS = 4.0
RETRY_FETCH_REASONS = frozenset({"connection", "timeout", "not_found", "http_status", "rate_limited"})


# ------------------------------------------------------------------ argument helpers


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` -> (I, N) with 0 <= I < N."""
    try:
        i_text, n_text = str(text).split("/")
        i, n = int(i_text), int(n_text)
    except ValueError:
        raise BDFLError(f"--data-shard must be I/N, got {text!r}", fix="give this peer's shard and the number of shards, e.g. --data-shard 2/10 (shards 0 .. 9)") from None
    if n < 1 or not 0 <= i < n:
        raise BDFLError(f"--data-shard {text}: need N >= 1 and 0 <= I < N", fix="shards are numbered 0 .. N-1")
    return i, n


_LISTEN_FIX = "give the address and port to serve on, e.g. --listen 0.0.0.0:8600 (all interfaces) or 127.0.0.1:0 (a free port)"


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) -> (host, port)."""
    host, sep, port_text = str(text).rpartition(":")
    if not sep or not host:
        raise BDFLError(f"--listen must be HOST:PORT, got {text!r}", fix=_LISTEN_FIX)
    try:
        port = int(port_text)
    except ValueError:
        raise BDFLError(f"--listen {text}: the port {port_text!r} is not a number", fix=_LISTEN_FIX) from None
    if not 0 <= port <= 65535:
        raise BDFLError(f"--listen {text}: port out of range 0..65535", fix=_LISTEN_FIX)
    return host.strip("[]"), port


def shard_data(task: Any, cfg: Any, index: int, count: int) -> tuple[Any, tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The data set and shard ``index`` of ``count`` as (train, val) — the same seeded split a
    simulation with ``peers = count`` gives its peer ``index`` (both use
    bdfl.learning.data.task_shard_indices)."""

    dataset = task.load_dataset(cfg.task.data_dir or None)
    y = dataset.y_train
    tr, va = task_shard_indices(y, cfg.task, count, cfg.seed)[index]
    return dataset, (dataset.X_train[tr], y[tr]), (dataset.X_train[va], y[va])


def waiting_text(info: Any, now: float) -> str:
    """What a phase waits for (``info``: a :class:`~bdfl.chain.protocol.RoundInfo`) and until when."""
    phase = info.phase.name
    if phase == "SUBMIT":
        done = f"{info.num_submissions} update(s) submitted" + (f" of {info.pool} members" if info.pool else "")
    elif phase == "COMMIT":
        done = f"{info.commits} of {info.committee_size} committee seat(s) committed"
    elif phase == "REVEAL":
        done = f"{info.reveals} of {info.commits} committed vote(s) revealed"
    else:
        done = "finalizing"
    if not info.deadline:
        return done
    at = time.strftime("%H:%M:%S UTC", time.gmtime(info.deadline))
    left = int(info.deadline - now)
    until = f"in {left} s" if left > 0 else "passed: advancing"
    return (f"{done}; it ends when every member expected has acted, else at its deadline {at} ({until}); "
            "a member that stopped without leaving holds it until then")


def default_state_dir(key_file: str) -> Path:
    """Next to the key file: ``<key file>.bdfl-state/``."""
    p = Path(key_file).expanduser().resolve()
    return p.with_name(p.name + ".bdfl-state")


def _transient_errors() -> tuple[type[BaseException], ...]:
    return transient_chain_errors()


def _short(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:300]


def peer_config(config: str | None, client: str | None, plugins: Sequence[str] = ()) -> tuple[ExperimentConfig, list[str]]:
    """A standalone peer's config (``--config``, or the defaults) and the notes for its log:
    ``--client`` overrides the config's ``task.client`` (until this function the flag's default
    always won, so a config's task went unused), and the task module's ``TASK_DEFAULTS`` fill the
    training settings neither sets, as in ``bdfl run``."""
    notes: list[str] = []
    overrides: dict[str, Any] = {"task.client": client} if client else {}
    if plugins:
        overrides["plugins"] = list(plugins)
    cfg = load_config(config or None, overrides or None, notes, task_defaults=task_defaults)
    load_plugins(cfg.plugins)  # the config's own attacks, strategies, detectors: before any name is read
    check_defense(cfg.defense)  # before it joins: a strategy or detector this peer lacks is named now
    return cfg, notes


class _Stop:
    """Set by SIGINT / SIGTERM; a second signal interrupts at once."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.event.is_set():
            raise KeyboardInterrupt
        self.signal = signum
        self.event.set()
        log.info("%s received: stopping after the current step (again to stop at once)", signal.Signals(signum).name)

    def wait(self, seconds: float) -> bool:
        return self.event.wait(seconds)

    def is_set(self) -> bool:
        return self.event.is_set()


@dataclass
class _RoundClock:
    first_seen: float
    committee: list[str] | None = None
    finalize_seen: float | None = None


# ------------------------------------------------------------------ the peer process


class StandalonePeer:
    """One peer: set-up from the command-line arguments, then :meth:`run`."""

    def __init__(self, args: Any, stop: _Stop | None = None) -> None:
        self.args = args
        self.stop = stop or _Stop()
        self.host: Any = None
        self.fetcher: Any = None
        try:
            self._setup()
        except BaseException:
            self.close()
            raise

    # -- set-up -----------------------------------------------------------------------
    def _setup(self) -> None:
        args = self.args
        self.shard, self.num_shards = parse_shard(args.data_shard or "0/1")
        self.listen_host, self.listen_port = parse_listen(args.listen or "127.0.0.1:0")
        if args.rounds is not None and args.rounds < 0:
            raise BDFLError(f"--rounds must be >= 0, got {args.rounds}")
        if args.stake is not None and args.stake < 0:
            raise BDFLError(f"--stake must be >= 0 tokens, got {args.stake}")
        if args.advertise:
            try:  # the rule every auditor applies to it (and the chain, for a registered URL)
                check_endpoint_url(str(args.advertise))
            except FetchError as exc:
                raise BDFLError(f"--advertise: {exc}", fix="e.g. --advertise http://203.0.113.7:8600") from None
            rule = endpoint_rule(str(args.advertise).rstrip("/"))  # the URL registered on chain
            if rule is not None:  # refused by PeerRegistry (e.g. no port): say so before any transaction
                raise BDFLError(f"--advertise {str(args.advertise)[:120]!r}: the registry refuses it (rule {rule!r}, docs/protocol.md, \"Endpoints\")",
                                fix="e.g. --advertise http://203.0.113.7:8600 (scheme in lower case, an explicit port)")
        self.cfg, notes = peer_config(args.config, args.client, getattr(args, "plugin", None) or ())
        for note in notes:
            log.info("%s", note)
        if args.config and "attack" in read_toml(args.config, "--config"):
            log.warning("the config's [attack] table is ignored: a standalone peer is honest")
        # key and deployment file first: offline checks before any network access
        self.account = load_key_file(args.key_file)
        self.address = self.account.address
        self.deployment = Deployment.load(args.deployment)
        # the policy (audit and aggregation rule) is the deployment's: --config may only repeat it
        source = f"deployment file {args.deployment}"
        if self.deployment.policy is None and self.deployment.policy_hash == bytes(32):
            log.warning("%s declares no policy: auditing and aggregating by the local config", source)
        else:
            check_deployment_policy(self.deployment.policy, self.deployment.policy_hash, source)
            self.cfg = resolve_policy(self.cfg, self.deployment.policy or {}, explicit_policy_fields(args.config))
            log.info("policy: the deployment's (0x%s)", self.deployment.policy_hash.hex())
        self.rpc, self.chain = open_account(args.rpc_url, self.account, self.deployment, source)
        self.chain_id = self.rpc.chain_id
        log.info("peer %s on chain %d (%s), round manager %s", self.address, self.chain_id, args.rpc_url, self.deployment.round_manager)
        self.chain.check_contracts(source)
        on_chain = self.chain.policy_hash()
        if on_chain != self.deployment.policy_hash:
            raise PolicyMismatch(f"{source} declares policy hash 0x{self.deployment.policy_hash.hex()}, the chain holds 0x{on_chain.hex()}",
                                 fix="use the deployment file written when these contracts were deployed")
        self.params = self.deployment.params
        # any submission may be the last one, which draws the committee (see the worker)
        self.submit_gas = SUBMIT_GAS_BASE + draw_gas_bound(self.params.committee_size)

        self._setup_learning()
        self._setup_state()
        self._setup_network()

    def _setup_learning(self) -> None:
        cfg = self.cfg
        self.task = load_task(cfg.task.client)
        torch = sys.modules.get("torch")
        if not os.environ.get("OMP_NUM_THREADS"):
            if torch is not None:
                torch.set_num_threads(1)  # small models train faster single-threaded; OMP_NUM_THREADS overrides
            # the audit's small matrix products too: peers sharing a host took each other's cores
            # with OpenBLAS's spinning threads (a simulation worker: 1.76 -> 1.23 s a round at N = 100)
            threadpool_limits(1)
        t0 = time.perf_counter()
        dataset, train, val = shard_data(self.task, cfg, self.shard, self.num_shards)
        self.val_size = len(val[1])
        hp = task_hparams(cfg.task)
        # every fit / evaluate config carries these (docs/tasks.md); the peer adds server_round
        base = task_base_config(cfg.task, dataset.num_classes)
        client = self.task.make_client(train, val, seed=cfg.seed * 100_003 + self.shard, hparams=hp, config=base,
                                       cast_dtypes=cfg.task.cast_dtypes)
        # a real peer knows no attacker count: krum_malicious -1 assumes none
        settings = peer_settings(cfg, 0)
        self.peer = Peer(index=self.shard, address=self.address, client=client, endpoint=None, settings=settings, seed=cfg.seed)
        self.peer.sketch_seed = secrets.randbits(63)  # private: an attacker who knew it could hide noise from the replay check
        self.peer.domain = (self.chain_id, self.deployment.round_manager)  # update bytes bind to their submission
        # decentralized FL starts from one common initial model, seeded by the config
        self.peer.params = self.task.initial_parameters(dataset, seed=cfg.seed, hparams=hp, config=base)
        # the client contract, checked before this peer joins or submits: a mismatch stops it here
        failure = self.task.probe([(train, val)], self.peer.params, seed=cfg.seed * 100_003 + self.shard, hparams=hp,
                                  config=base, cast_dtypes=cfg.task.cast_dtypes)
        if failure is not None:
            log.warning("task %s: a trial fit on this shard raised (the peer goes on; each failing round is logged):\n%s",
                        self.task.name, failure.rstrip())

        self.peer.spec = ModelSpec.of_ndarrays(self.peer.params)
        log.info("task %s: shard %d/%d (%d train, %d val samples, %s partition), ready in %.1f s",
                 self.task.name, self.shard, self.num_shards, len(train[1]), len(val[1]), cfg.task.partition, time.perf_counter() - t0)

    def _setup_state(self) -> None:
        base = getattr(self.args, "state_dir", None) or os.environ.get("BDFL_PEER_STATE_DIR") or default_state_dir(self.args.key_file)
        self.state = PeerState.open(base, address=self.address, chain_id=self.chain_id, round_manager=self.deployment.round_manager)
        self.state.hold()
        saved = max([self.state.last_aggregated, *self.state.rounds])
        chain_round = self.chain.current_round()
        if saved > chain_round:
            # a devnet started again deploys to the same addresses, so the state's identity (chain id,
            # round manager, account) matches a chain that has never seen these rounds: resuming would
            # skip aggregation until the chain caught up with the saved round
            raise BDFLError(f"the peer state in {self.state.folder} is from chain round {saved}, but the chain is at round "
                            f"{chain_round}: it belongs to an earlier deployment at the same addresses (a restarted devnet?)",
                            fix=f"move {self.state.folder} away (or give another --state-dir) to start this deployment fresh")
        o = self.cfg.overlay
        self.tracker = OverlayTracker.from_json(o.topology, o.degree, o.edge_probability if o.topology == "erdos_renyi" else None, self.state.overlay)
        self.round_state = RoundState(ChainMemory(self.cfg, self.tracker))
        model = self.state.load_model()
        self.resumed_model = False
        if model is not None:
            try:
                self.peer.params = decode_ndarrays(model, max_bytes=MAX_UPDATE_BYTES, spec=self.peer.spec)
                self.resumed_model = True
                log.info("resumed the model saved after chain round %d (%s)", self.state.last_aggregated, self.state.folder)
            except InvalidUpdate as exc:
                log.warning("ignoring the saved model in %s: %s", self.state.folder, exc.reason)

    def _setup_network(self) -> None:
        self.host = BlobHost("bdfl-peer")
        # this round's update is served once the round's Submit phase has ended on chain, so no
        # member copies it before then (bdfl.net.blobserver.SubmitSeal); a connection of its own: it
        # is read from the endpoint's thread
        self.host.seal = SubmitSeal(self.rpc.reconnected(10.0).submissions_closed(self.deployment))
        self.endpoint = self.host.add_endpoint(self.listen_host, self.listen_port, max_blob_bytes=MAX_UPDATE_BYTES, advertise_url=self.args.advertise)
        self.peer.endpoint = self.endpoint
        s = self.peer.settings

        # endpoints are chosen by members: on a non-devnet chain none on a private address is fetched
        allow = private_allowed(self.chain_id, bool(getattr(self.args, "allow_private_endpoints", False)))
        self.fetcher = Fetcher(max_bytes=s.max_update_bytes, timeout=s.fetch_timeout, retries=s.fetch_retries, concurrency=16,
                               loop=self.host.loop_thread, allow_private=allow)
        self.fetcher.expect_model(self.peer.spec)  # no body longer than an update of this model is read
        self.view = ProtocolView(self.chain)
        self.engine = PeerEngine(self.peer, view=self.view, fetch=self.fetcher.fetch_many, task=self.task.name,
                                 state=self.round_state, cfg=self.cfg)
        if not allow:
            log.info("chain %d is not a devnet: endpoints on loopback/private/link-local addresses are not fetched "
                     "(--allow-private-endpoints allows them)", self.chain_id)
        if self.listen_host in ("0.0.0.0", "::", "") and not self.args.advertise:
            log.warning("listening on %s without --advertise: other hosts will be told %s, which only works locally",
                        self.listen_host or "all interfaces", self.endpoint.url)
        log.info("serving updates on %s:%d, advertised as %s", self.listen_host, self.endpoint.port, self.endpoint.url)
        if not endpoint_answers(self.endpoint.url):
            # nobody could fetch its updates: its auditors abstain, each update stays undecided and
            # unpaid, and every round waits on the fetches (an outside probe: a wrong --advertise
            # went unsaid while rounds took 13 s instead of 1.5)
            log.warning("the advertised endpoint %s does not answer from this host: if other members cannot reach it "
                        "either, none of this peer's updates can be audited (its auditors abstain; the updates stay "
                        "undecided, unpaid, and slow every round); check --advertise and the port forwarding",
                        self.endpoint.url)

    def close(self) -> None:
        if self.fetcher is not None:
            self.fetcher.close()
            self.fetcher = None
        if self.host is not None:
            self.host.close()
            self.host = None
            log.info("endpoint closed")

    # -- membership -------------------------------------------------------------------
    def ensure_member(self) -> None:
        """Join, re-join after a leave, reactivate after inactivity, or update the endpoint
        (the rules every returning peer follows: bdfl.peer.rejoin.ensure_membership)."""

        chain = self.chain
        url = self.endpoint.url
        min_stake = self.params.min_stake
        before = chain.status_of()
        if before in (Status.ACTIVE, Status.INACTIVE, Status.EXITING):
            registered = chain.endpoint_of(self.address)
            # a second process with this key would register its own endpoint over the first's, and
            # the two would take turns submitting; a peer that moved hosts finds the old one down
            if registered and registered.rstrip("/") != url.rstrip("/") and endpoint_answers(registered):
                raise BDFLError(f"account {self.address} is a member whose registered endpoint {registered} answers: another "
                                "bdfl peer with this key is running",
                                fix="stop it first (a peer moving to another host takes the endpoint over once the old one is down)")
        before_stake = chain.stake_of() if before.name == "INACTIVE" else 0
        known = chain.peer_info().known  # a returning address pays no entry fee (PeerRegistry.join)

        def check_funds(stake: int) -> None:
            if stake < min_stake:
                raise BDFLError(f"--stake {self.args.stake} is below the minimum stake of {tokens_text(min_stake)} tokens")
            have = chain.token_balance()
            if have < stake:
                raise BDFLError(f"account {self.address} holds {tokens_text(have)} tokens, joining needs a stake of {tokens_text(stake)}",
                                fix="get stake tokens (BDFLToken) to this account"
                                + (f", or lower --stake (the minimum is {tokens_text(min_stake)})" if stake > min_stake else ""))
            if self.rpc.eth_balance(self.address) == 0:
                raise BDFLError(f"account {self.address} has no ETH to pay for gas", fix="send it some ETH first")

        if before.name == "LEFT":
            log.info("this account left the federation earlier: withdrawing its stake before joining again")
        done = ensure_membership(chain, url, stake=self.args.stake * TOKEN if self.args.stake else None, before_join=check_funds)
        if "joined" in done:
            # a fresh address pays it out of what it sends (burned); one that was a member before does not
            fee = 0 if known else int(getattr(self.params, "entry_fee", 0))
            log.info("joined with a stake of %g tokens%s, endpoint %s", chain.stake_of() / TOKEN,
                     f" (the entry fee of {tokens_text(fee)} tokens is burned from what it paid)" if fee else "", url)
        elif "reactivated" in done:
            log.info("reactivated (added stake %g tokens)", (chain.stake_of() - before_stake) / TOKEN)
        elif "endpoint_updated" in done:
            log.info("already a member (%s); endpoint updated to %s", before.name, url)
        else:
            log.info("already a member (%s), endpoint %s", before.name, url)
        info = chain.peer_info()
        members = chain.member_count()
        log.info("member: reputation %.3f, stake %g tokens, %d members", info.reputation / REP_SCALE, chain.stake_of() / TOKEN, members)
        self.warn_small_federation(members, chain.current_round())  # the round it joins in: said once, not again there

    def warn_small_federation(self, members: int, rnd: int | None = None) -> None:
        """Say (once per round) when the federation is too small for the deployment to approve
        anything: an update needs ``quorum`` votes from members other than its trainer."""
        q = int(self.params.quorum)
        if members <= q and self._once("small-federation", rnd):
            log.warning("%d member%s: an update needs %d votes from other members (the deployment's quorum), so nothing is "
                        "approved or aggregated until at least %d are active; a smaller federation needs a deployment "
                        "with a smaller committee (bdfl deploy --params, or the experiment's [protocol] committee_size, "
                        "auditors_per_update, quorum)", members, "" if members == 1 else "s", q, q + 1)

    def recover(self) -> None:
        """After a restart: serve again the bytes of an update already submitted on chain and
        take them as this round's trained model (so the round can still be aggregated)."""

        rnd = self.chain.current_round()
        for r in (rnd, rnd - 1):
            if r < 0 or r <= self.state.last_aggregated:
                continue
            want = self.state.rounds.get(r, {}).get("hash")
            blob = self.state.load_blob(r)
            if not want or blob is None or hash_hex(update_hash(blob)) != want:
                continue
            try:
                trained = decode_ndarrays(blob, max_bytes=MAX_UPDATE_BYTES, spec=self.peer.spec)
            except InvalidUpdate:
                continue
            self.peer.publish(r, blob)
            self.peer.reference = [p.copy() for p in self.peer.params]
            self.peer.trained = trained
            self.trained_round = r
            if self.state.last_aggregated == r - 1:  # the saved model is the start that update was trained from:
                self.peer.last_start = (r, self.peer.params)  # round r + 1 continues its momentum (Peer.train)
            log.info("chain round %d: serving the saved update %s again after a restart", r, want[:10])
            break

    def resync(self) -> None:
        """After missing rounds (down, inactive, or joining a running federation): take a current
        model from the neighbours' latest approved updates, each hash-checked against the chain,
        instead of resuming from an old one (bdfl.peer.rejoin.resync_model; the simulation's
        restarted peers do the same)."""

        closed = self.chain.current_round() - 1
        if closed < 0 or self.trained_round is not None:
            return
        if self.state.last_aggregated >= closed:
            if self.state.last_aggregated == closed and self.resumed_model:
                self.resume_saved_momentum(closed)
            return
        self.view.refresh()
        # the same choice a simulated peer makes when it restarts (it also brings the overlay up to date)
        source, tiers = stages.aggregate.resync_plan(self.engine, closed)
        used, tier = resync_from_tiers(self.peer, source, tiers, self.fetcher.fetch_many)
        if not used:
            log.info("chain round %d: no approved neighbour update to resync from; keeping the %s model", closed,
                     "saved" if self.state.last_aggregated >= 0 else "initial")
            return
        # its first update back carries a velocity (bdfl.peer.rejoin.resume_momentum)
        self.log_velocity(closed, source, stages.aggregate.resume_velocity(self.engine, closed, source, tiers[tier], used))
        self.state.last_aggregated = closed
        self.state.overlay = self.tracker.to_json()
        self.state.save_model(encode_ndarrays(self.peer.params))
        self.state.save()
        log.info("chain round %d: resynced the model from %d of %d approved %s update(s) of chain round %d, hash-verified against the chain",
                 closed, len(used), len(tiers[tier]),
                 "fallback (no neighbour update could be verified)" if tier == 1 else "neighbour", source)

    def resume_saved_momentum(self, closed: int) -> None:
        """Restarted after aggregating chain round ``closed`` and saving the model, before training
        again: its previous start was not saved, so (with quasi-global momentum in effect) the
        velocity is rebuilt as a resynced peer's is: its sources' mean approved move of that
        round (bdfl.peer.rejoin.resume_momentum); the saved model less it is its previous start."""

        if self.tracker.overlay is None or stages.train.momentum(self.engine) <= 0:  # the saved overlay: complete or not
            return
        self.view.refresh()
        source, tiers = stages.aggregate.resync_plan(self.engine, closed)
        self.log_velocity(closed, source, stages.aggregate.resume_velocity(self.engine, closed, source, tiers[0] or tiers[1]))

    @staticmethod
    def log_velocity(closed: int, source: int, moved: list[str]) -> None:
        if moved:
            log.info("chain round %d: momentum velocity rebuilt from %d approved move(s) of chain round %d (their starts: chain round %d)",
                     closed, len(moved), source, source - 1)

    # -- main loop --------------------------------------------------------------------
    def run(self) -> int:
        self.rounds_limit = int(self.args.rounds or 0)
        self.rounds_done = 0
        self.trained_round: int | None = None
        self.first_submit_done = False
        self._clocks: dict[int, _RoundClock] = {}
        self._not_before: dict[tuple[Any, ...], float] = {}
        self._said: set[tuple[Any, ...]] = set()
        transient = _transient_errors()
        self.ensure_member()
        self.recover()
        self.resync()
        failing_since: float | None = None
        while not self.stop.is_set():
            try:
                if self.step():
                    self.linger()
                    break
                failing_since = None
            except BDFLError as exc:
                if not isinstance(exc, transient):
                    raise
                failing_since = self._chain_trouble(exc, failing_since)
                self.stop.wait(2.0)
                continue
            except transient as exc:
                failing_since = self._chain_trouble(exc, failing_since)
                self.stop.wait(2.0)
                continue
            self.stop.wait(POLL_SECONDS)
        if self.stop.is_set():
            log.info("stopped after %d round(s)", self.rounds_done)
            return 130 if self.stop.signal == signal.SIGINT else 0
        log.info("done: %d round(s)", self.rounds_done)
        return 0

    def _chain_trouble(self, exc: BaseException, since: float | None) -> float:
        now = time.monotonic()
        if since is None:
            log.warning("chain request failed, retrying: %s", _short(exc))
            return now
        if now - since > RPC_GIVE_UP_SECONDS:
            raise BDFLError(f"the chain at {self.args.rpc_url} stayed unreachable or failing for {RPC_GIVE_UP_SECONDS:.0f} s: {_short(exc)}",
                            fix="check the node; a restarted peer resumes from its state folder") from None
        return since

    def chain_time(self) -> float:
        """Estimated timestamp of the next block: the latest block's timestamp, or the wall
        clock shifted by the largest chain-minus-wall offset seen (a devnet's clock may have been
        moved; a quiet devnet mines no blocks, so its latest timestamp lags). Refreshed every 2 s."""
        now = time.time()
        if now - getattr(self, "_chain_time_at", 0.0) >= 2.0:
            ts = float(self.rpc.timestamp())
            offset = ts - now
            self._chain_offset = offset if not hasattr(self, "_chain_offset") else max(self._chain_offset, offset)
            self._chain_latest = ts
            self._chain_time_at = now
        return max(self._chain_latest, now + self._chain_offset)

    def maybe_passed(self, deadline: int) -> bool:
        """The deadline may have passed by the wall clock or by the chain's: worth trying to
        advance (a refused try costs no gas: the estimate fails)."""
        return bool(deadline) and (time.time() >= deadline or self.chain_time() >= deadline)

    def surely_passed(self, deadline: int) -> bool:
        """Both clocks say the deadline passed: a submission / commit / reveal would revert."""
        return bool(deadline) and time.time() >= deadline and self.chain_time() >= deadline

    def _once(self, *key: Any) -> bool:
        """True the first time ``key`` is seen (for messages that would repeat every poll)."""
        if key in self._said:
            return False
        self._said.add(key)
        return True

    def _ready(self, *key: Any) -> bool:
        return time.monotonic() >= self._not_before.get(key, 0.0)

    def _later(self, seconds: float, *key: Any) -> None:
        self._not_before[key] = time.monotonic() + seconds

    def step(self) -> bool:
        """One look at the chain and at most a few actions; True when --rounds is reached."""

        rnd = self.chain.current_round()
        clock = self._clocks.setdefault(rnd, _RoundClock(time.monotonic()))
        tr = self.trained_round
        if tr is not None and tr < rnd and tr > self.state.last_aggregated:
            self.finish_round(tr)
            if self.rounds_limit and self.rounds_done >= self.rounds_limit:
                return True
        info = self.chain.round_info(rnd)
        if info.phase == Phase.SUBMIT:
            self.on_submit(rnd, info)
        elif info.phase == Phase.COMMIT:
            self.on_commit(rnd, info, clock)
        elif info.phase == Phase.REVEAL:
            self.on_reveal(rnd, info, clock)
        elif info.phase == Phase.FINALIZE:
            self.on_finalize(rnd, clock)
        for old in [r for r in self._clocks if r < rnd - 2]:
            del self._clocks[old]
        return False

    # -- phases -----------------------------------------------------------------------
    def on_submit(self, rnd: int, info: Any) -> None:
        st = self.state.round(rnd)
        if st.get("submitted") or st.get("submit_failed"):
            self.maybe_advance(rnd, info)
            return
        me = self.chain.peer_info()
        if me.last_submit_round == rnd + 1:
            self.state.mark(rnd, submitted=True)
            return
        if me.status in (Status.LEFT, Status.NONE):
            # it left (bdfl account --leave), or its stake was withdrawn or slashed to zero: nothing
            # this process can do any more (it logged this every round until killed; an outside probe)
            log.info("chain round %d: this account is no longer a member (%s): stopping (bdfl account shows its stake "
                     "and rewards; bdfl peer again joins anew)", rnd, me.status.name)
            self.stop.event.set()
            return
        if me.status not in (Status.ACTIVE, Status.EXITING):
            if self._once("not-member", rnd):
                log.warning("chain round %d: not an active member (%s): not submitting", rnd, me.status.name)
            self.maybe_advance(rnd, info)
            return
        now = time.time()
        if self.surely_passed(info.deadline):
            if self._once("late", rnd):
                log.warning("chain round %d: the Submit deadline passed before this peer submitted", rnd)
            self.state.mark(rnd, submit_failed="deadline")
            self.maybe_advance(rnd, info)
            return
        if not self.first_submit_done and self.num_shards > 1:
            # Start-up barrier: the Submit phase ends as soon as every *current* member
            # submitted, so an early starter alone would close the first round; wait for the
            # federation (N of --data-shard I/N) unless the deadline comes close.
            members = self.chain.member_count()
            margin = max(10.0, 0.25 * self.params.submit_duration)
            if members < self.num_shards and info.deadline - max(now, self.chain_time()) > margin:
                if self._once("barrier", rnd):
                    log.info("chain round %d: %d of %d expected members so far; waiting for the others (at most until %.0f s before the deadline)",
                             rnd, members, self.num_shards, margin)
                return
        self.first_submit_done = True
        if self._once("members-counted", rnd):  # one read per round
            self.warn_small_federation(self.chain.member_count(), rnd)
        if self.trained_round != rnd:
            t0 = time.perf_counter()
            fit = stages.train.train(self.engine, rnd)
            if isinstance(fit, ClientFailure):  # the task's fit raised: no update this round
                self._client_failed(rnd, fit)
                self.state.mark(rnd, submit_failed="client")
                return
            pub = stages.publish.publish(self.engine, rnd)
            self.state.save_blob(rnd, pub.data)
            self.state.mark(rnd, hash=pub.hash, bytes=len(pub.data))
            self.trained_round = rnd
            metrics = "".join(f", {k} {v:.4g}" for k, v in sorted(fit.items()) if k != "num_examples")  # what the fit returned
            log.info("chain round %d: trained on %d samples in %.2f s%s; update %s (%d bytes) published on %s",
                     rnd, fit.get("num_examples", 0), time.perf_counter() - t0, metrics, pub.hash[:10], len(pub.data), self.endpoint.url)
        st = self.state.rounds[rnd]
        h = st["hash"]
        refused = ("DeadlinePassed", "WrongPhase", "WrongRound", "NotActiveMember")

        def send(hh: str) -> Any:
            return self.chain.submit_update(rnd, bytes.fromhex(hh[2:]), self.peer.num_examples, gas=self.submit_gas)

        if not st.get("front_run"):
            try:
                if self._send_once(rnd, "submitted", "AlreadySubmitted", refused, lambda: send(h)):
                    log.info("chain round %d: submitted the update hash %s on chain", rnd, h[:10])
                return
            except DuplicateHashError:  # a copier submitted this hash first: re-encode (stage submit)
                front = stages.submit.recover_front_run(self.engine, rnd)
                self.state.save_blob(rnd, front.data)
                self.state.mark(rnd, hash=front.new_hash, bytes=len(front.data), front_run=h)
                h = front.new_hash
        # the re-encoded hash is submitted once: a second DuplicateHash is recorded, not retried
        if self._send_once(rnd, "submitted", "AlreadySubmitted", refused + ("DuplicateHash",), lambda: send(h)):
            log.info("chain round %d: submitted the update hash %s on chain", rnd, h[:10])

    def _committee(self, rnd: int, clock: _RoundClock) -> list[str]:
        if clock.committee is None:
            clock.committee = self.chain.committee(rnd)
        return clock.committee

    def on_commit(self, rnd: int, info: Any, clock: _RoundClock) -> None:
        committee = self._committee(rnd, clock)
        st = self.state.round(rnd)
        if self.address not in committee or st.get("committed") or st.get("commit_failed"):
            self.maybe_advance(rnd, info)
            return
        seat = committee.index(self.address)
        if any(self.chain.seat_info(rnd, seat).commitment):
            if self.state.votes(rnd) is None and self._once("lost-votes", rnd):
                log.warning("chain round %d: committed earlier but the votes are not in %s: cannot reveal", rnd, self.state.path)
            self.state.mark(rnd, committed=True)
            return
        if self.surely_passed(info.deadline):
            self.state.mark(rnd, commit_failed="deadline")
            log.warning("chain round %d: the Commit deadline passed before this auditor committed", rnd)
            self.maybe_advance(rnd, info)
            return
        saved = self.state.votes(rnd)
        if saved is None:
            judged = self.audit(rnd, info)
            if isinstance(judged, ClientFailure):  # the task's evaluate raised while judging: no vote this round
                self._client_failed(rnd, judged)
                self.state.mark(rnd, commit_failed="client")
                return
            votes, commitment = stages.commit.commit(self.engine, rnd, judged.indices, judged.accept,
                                                     lambda i, a, s: self.chain.vote_commitment(rnd, i, a, s))
            self.state.record_votes(rnd, votes.indices, votes.accept, votes.salt)  # on disk before the commit
        else:
            votes = Votes(*saved)
            self.round_state.votes[rnd] = votes
            commitment = self.chain.vote_commitment(rnd, votes.indices, votes.accept, votes.salt)  # binds chain id and contract
            log.info("chain round %d: committing the votes saved before a restart", rnd)
        indices = votes.indices
        def send_commit() -> Any:
            gas = self.chain.sender.estimate(self.chain.rounds.functions.commitVotes(rnd, commitment)) + PHASE_END_HEADROOM
            return self.chain.commit(rnd, commitment, gas=gas)

        if not self._send_once(rnd, "committed", "AlreadyCommitted", ("DeadlinePassed", "WrongPhase", "WrongRound", "NotInCommittee"), send_commit):
            return
        log.info("chain round %d: committed votes on %d update(s) (seat %d of %d)", rnd, len(indices), seat, len(committee))
        if os.environ.get("BDFL_PEER_TEST_CRASH") == "after-commit":  # TEST HOOK (tests/peer): die like a crash
            log.warning("test hook: exiting without cleanup right after the commit")
            os._exit(3)

    def _client_failed(self, rnd: int, failure: ClientFailure) -> None:
        """Log a failure of the task's client (the engine's rule, :meth:`PeerEngine.isolated`:
        the peer sits the round out, and stops after MAX_CLIENT_FAILURES rounds in a row)."""
        log.error("chain round %d: task %s %s raised %s; this peer sits the round out (%s)\n%s", rnd, failure.task, failure.step,
                  failure.error, "no update" if failure.step == "fit" else "no vote", failure.traceback.rstrip())

    def audit(self, rnd: int, info: Any) -> stages.audit.AuditResult | ClientFailure:
        """Stage audit: fetch the assigned updates, check them against the chain, judge them.

        An update that cannot be fetched (connection refused, timeout, 404, 5xx) is fetched
        again every 2 s, its endpoint re-read from the chain, for at most AUDIT_RETRY_SECONDS
        and half the time left in the Commit phase: a peer restarting after a crash serves its
        update again (possibly at a new endpoint) within seconds. Wrong bytes are never retried.
        """
        self.view.refresh()
        inputs = stages.audit.audit_inputs(self.engine, rnd)
        cands = inputs.candidates
        to_fetch = inputs.fresh()  # a replayed update is rejected unfetched
        t0 = time.perf_counter()
        give_up = time.monotonic() + min(AUDIT_RETRY_SECONDS, 0.5 * max(0.0, info.deadline - time.time()))
        # each pass retries with backoff for a few seconds; between passes endpoints are re-read
        def budget() -> float:
            return max(0.0, min(AUDIT_PASS_SECONDS, give_up - time.monotonic()))

        fetched = dict(self.fetcher.fetch_many([(c.url, c.hash) for c in to_fetch], budget=budget())) if to_fetch else {}
        retries = 0
        while not self.stop.is_set():
            missing = [c for c in to_fetch if getattr(fetched.get(c.hash), "reason", None) in RETRY_FETCH_REASONS]
            if not missing or time.monotonic() >= give_up:
                break
            if retries == 0:
                log.info("chain round %d: audit: %d assigned update(s) unreachable; retrying for up to %.0f s",
                         rnd, len(missing), give_up - time.monotonic())
            self.stop.wait(2.0)
            retries += 1
            for c in missing:
                self.view.forget_endpoint(c.peer)
                c.url = inputs.urls[c.peer] = self.view.endpoint_of(c.peer)
            fetched.update(self.fetcher.fetch_many([(c.url, c.hash) for c in missing], budget=budget()))
        t_fetch = time.perf_counter() - t0
        got = [v for v in fetched.values() if isinstance(v, bytes)]
        # the models of the trainers' start recipes and earlier moves (stage audit)
        rest = sorted(stages.audit.wanted(inputs) - {(c.url, c.hash) for c in to_fetch})
        if rest:
            fetched.update(self.fetcher.fetch_many(rest))
        rebuilt = stages.audit.rebuild(self.peer, rnd, inputs.recipes, inputs.past, fetched)
        judged = stages.audit.judge(self.engine, inputs, fetched, rebuilt=rebuilt)
        if isinstance(judged, ClientFailure):
            return judged
        log.info("chain round %d: audit: fetched %d of %d assigned update(s) over HTTP (%d bytes, %.2f s); "
                 "%d verified against their on-chain hash and decoded; %d trainer start(s) and %d earlier move(s) rebuilt; "
                 "votes: %d accept, %d reject, %d abstain (could not fetch) (%.2f s)",
                 rnd, len(got), len(cands), sum(len(b) for b in got), t_fetch, len(cands) - len(judged.rejections), len(rebuilt[0]),
                 len(rebuilt[1]), sum(judged.accept), len(judged.accept) - sum(judged.accept), len(judged.abstentions),
                 time.perf_counter() - t0)
        return judged

    def on_reveal(self, rnd: int, info: Any, clock: _RoundClock) -> None:

        committee = self._committee(rnd, clock)
        st = self.state.round(rnd)
        if self.address not in committee or st.get("revealed") or st.get("reveal_failed"):
            self.maybe_advance(rnd, info)
            return
        seat = committee.index(self.address)
        seat_info = self.chain.seat_info(rnd, seat)
        if seat_info.revealed:
            self.state.mark(rnd, revealed=True)
            return
        saved = self.state.votes(rnd)  # on disk: a restart loses nothing it committed
        if saved is not None and rnd not in self.round_state.votes:
            self.round_state.votes[rnd] = Votes(*saved)
        if not any(seat_info.commitment) or saved is None:
            if saved is None and any(seat_info.commitment) and self._once("cannot-reveal", rnd):
                log.warning("chain round %d: committed, but the votes are lost: cannot reveal", rnd)
            self.maybe_advance(rnd, info)
            return
        if self.surely_passed(info.deadline):
            self.state.mark(rnd, reveal_failed="deadline")
            log.warning("chain round %d: the Reveal deadline passed before this auditor revealed", rnd)
            self.maybe_advance(rnd, info)
            return
        votes = stages.reveal.reveal(self.engine, rnd)
        assert votes is not None
        indices, accept, salt = votes.indices, votes.accept, votes.salt
        call = self.chain.rounds.functions.revealVotes(rnd, [int(i) for i in indices], [bool(a) for a in accept], salt)
        if not self._send_once(
            rnd, "revealed", "AlreadyRevealed", ("DeadlinePassed", "WrongPhase", "WrongRound", "CommitmentMismatch", "NotCommitted"),
            lambda: self.chain.reveal_votes(rnd, indices, accept, salt, gas=self.chain.sender.estimate(call) + PHASE_END_HEADROOM),
        ):
            return
        log.info("chain round %d: revealed %d vote(s)", rnd, len(indices))

    def _send_once(self, rnd: int, done: str, already: str, refused: tuple[str, ...], send: Any) -> bool:
        """Send a once-per-round transaction and record the outcome in the state file.

        ``already`` (e.g. AlreadySubmitted, after a restart) counts as done; a ``refused``
        error (too late, wrong phase, no longer a member...) is logged and recorded as
        ``<done>_failed`` so it is not retried; anything else propagates. True if sent now.
        """

        failed = {"submitted": "submit_failed", "committed": "commit_failed", "revealed": "reveal_failed"}[done]
        try:
            send()
        except TxReverted as exc:
            if exc.error_name == already:
                self.state.mark(rnd, **{done: True})
            elif exc.error_name in refused:
                log.warning("chain round %d: %s refused: %s", rnd, failed.split("_")[0], exc.error_name)
                self.state.mark(rnd, **{failed: exc.error_name})
            else:
                raise
            return False
        self.state.mark(rnd, **{done: True})
        return True

    def _rank(self) -> int:
        """This peer's position among the sorted members (for staggering races), cached."""
        key = ("rank",)
        if self._ready(*key):
            members = sorted(m.lower() for m in self.chain.members())
            self._rank_value = members.index(self.address.lower()) if self.address.lower() in members else len(members)
            self._later(30.0, *key)
        return min(getattr(self, "_rank_value", 0), STAGGER_MAX_RANK)

    def _say_waiting(self, rnd: int, info: Any) -> None:
        """Every WAITING_LOG_SECONDS of waiting in one phase, a line saying who it waits for and
        until when (the first after WAITING_LOG_SECONDS: a healthy phase ends well before)."""
        key = ("waiting", rnd, int(info.phase))
        if key not in self._not_before:
            self._later(WAITING_LOG_SECONDS, *key)
            return
        if not self._ready(*key):
            return
        self._later(WAITING_LOG_SECONDS, *key)
        log.info("chain round %d: waiting in the %s phase: %s", rnd, info.phase.name, waiting_text(info, time.time()))

    def maybe_advance(self, rnd: int, info: Any) -> None:
        """End the current phase once its deadline passed and nobody else did (anyone may).

        The gas estimate runs against the latest block, whose timestamp an idle devnet does
        not move (it mines only when a transaction comes): when the wall clock is past the
        deadline but the latest block is older than IDLE_CHAIN_SECONDS, the transaction is
        sent with a fixed gas limit instead, and the block that includes it is fresh."""

        self._say_waiting(rnd, info)
        if not info.deadline or not self.maybe_passed(info.deadline + self._rank() * STAGGER_SECONDS):
            return
        key = ("advance", rnd, int(info.phase))
        if not self._ready(*key):
            return
        try:
            try:
                self.chain.advance(rnd)
            except TxReverted as exc:
                idle = time.time() - self.rpc.timestamp() > IDLE_CHAIN_SECONDS
                if exc.error_name != "PhaseNotOver" or not idle or time.time() < info.deadline + 1:
                    raise
                self._later(5.0, *key)  # at most one such blind try per 5 s
                self.chain.advance(rnd, gas=200_000 + draw_gas_bound(self.params.committee_size))
        except TxReverted as exc:
            if exc.error_name == "PhaseNotOver":  # the chain's clock is behind ours
                self._later(1.0, *key)
                return
            if exc.error_name in ("WrongPhase", "WrongRound"):
                return  # someone else advanced it
            raise
        log.info("chain round %d: the %s phase passed its deadline; advanced it", rnd, info.phase.name)

    def on_finalize(self, rnd: int, clock: _RoundClock) -> None:
        """Finalize in batches; several peers may race, losing is harmless."""

        if clock.finalize_seen is None:
            clock.finalize_seen = time.monotonic()
        if time.monotonic() - clock.finalize_seen < self._rank() * STAGGER_SECONDS:
            return
        sent = 0
        for _ in range(50):
            if self.chain.round_info(rnd).phase != Phase.FINALIZE:
                break
            try:
                self.chain.finalize_batch(rnd)
                sent += 1
            except TxReverted as exc:
                if exc.error_name in ("WrongPhase", "WrongRound"):
                    break  # another peer finished it
                raise
        if sent:
            log.info("chain round %d: sent %d finalize transaction(s)", rnd, sent)

    # -- after the round closed ---------------------------------------------------------
    def finish_round(self, rnd: int) -> None:
        """Stage aggregate: the approved updates of this peer's overlay neighbours (the plan),
        fetched, hash-checked and combined; then evaluate on the local validation data; log."""

        t0 = time.perf_counter()
        chain = self.chain
        self.view.refresh()
        plan = stages.aggregate.plan(self.engine, rnd)
        cands = plan.candidates
        t1 = time.perf_counter()
        fetched = self.fetcher.fetch_many(sorted(stages.aggregate.wanted(plan))) if cands else {}
        got = [v for v in fetched.values() if isinstance(v, bytes)]
        t_fetch = time.perf_counter() - t1
        agg = stages.aggregate.aggregate(self.engine, rnd, plan, fetched)
        rejected = len(agg.rejections)
        evaluated = self.engine.isolated(rnd, "evaluate", self.peer.client.evaluate, self.peer.params, {})
        if isinstance(evaluated, ClientFailure):
            self._client_failed(rnd, evaluated)
        loss, n_val, metrics = evaluated if not isinstance(evaluated, ClientFailure) else (float("nan"), 0, {})
        acc = float(metrics.get("accuracy", float("nan")))
        self.state.last_aggregated = rnd
        self.state.overlay = self.tracker.to_json()
        self.state.save_model(encode_ndarrays(self.peer.params))
        self.state.prune(rnd + 1)
        self.rounds_done += 1
        clock = self._clocks.get(rnd)
        # a round that began before this process started (a restart mid-round) has no duration of its own
        seconds = time.monotonic() - clock.first_seen if clock else None
        committee = "yes" if self.address in (clock.committee if clock and clock.committee is not None else chain.committee(rnd)) else "no"
        log.info("chain round %d: fetched %d of %d approved neighbour update(s) over HTTP (%d bytes, %.2f s), "
                 "hash-verified against the chain; aggregated %d with weights by reputation",
                 rnd, len(got), len(cands), sum(len(b) for b in got), t_fetch, agg.aggregated)
        reputation = plan.closed.reputation.get(self.address, 0.0)
        self.state.append_round({
            "chain_round": rnd, "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "accuracy": acc,
            "loss": float(loss), "val_samples": n_val, "approved_on_chain": plan.closed.approved_count,
            "submissions": len(plan.closed.submissions), "neighbours": len(cands), "aggregated": agg.aggregated,
            "rejected_inputs": rejected, "committee": committee, "reputation": reputation,
            "stake_tokens": chain.stake_of() / TOKEN, "rewards_to_claim_tokens": chain.claimable() / TOKEN, "seconds": "" if seconds is None else round(seconds, 3)})
        log.info("chain round %d done: accuracy %.4f (local val, %d samples) loss %.4f | approved %d/%d on chain | "
                 "neighbours %d, aggregated %d, rejected %d | committee %s | reputation %.3f | %s (aggregation %.2f s)",
                 rnd, acc, n_val, float(loss), plan.closed.approved_count, len(plan.closed.submissions),
                 len(cands), agg.aggregated, rejected, committee, reputation,
                 "joined mid-round" if seconds is None else f"{seconds:.1f} s",
                 time.perf_counter() - t0)

    def linger(self) -> None:
        """After the last round, keep serving a little so that slower neighbours can still
        fetch this peer's last update: at least 5 s, until nobody fetched for 3 s, at most 30 s."""
        start = time.monotonic()
        last_count = -1
        last_change = start
        while not self.stop.is_set():
            served = self.endpoint.status_counts.get(200, 0)
            now = time.monotonic()
            if served != last_count:
                last_count, last_change = served, now
            if now - start >= 30.0 or (now - start >= 5.0 and now - last_change >= 3.0):
                break
            self.stop.wait(0.25)


def _setup_logging() -> None:
    root = logging.getLogger()
    if not any(getattr(h, "_bdfl_peer", False) for h in root.handlers):
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        h._bdfl_peer = True  # type: ignore[attr-defined]
        root.addHandler(h)
    root.setLevel(logging.INFO)
    for noisy in ("urllib3", "web3", "asyncio", "aiohttp"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run_standalone_peer(args: Any) -> int:
    """Entry point of ``bdfl peer`` (see bdfl/cli.py for the flags): returns the exit code."""
    _setup_logging()
    stop = _Stop()
    stop.install()
    node: StandalonePeer | None = None
    try:
        node = StandalonePeer(args, stop)
        if stop.is_set():  # stopped while it started: the exit code of a stop (it returned 0 for Ctrl-C)
            return 130 if stop.signal == signal.SIGINT else 0
        return node.run()
    finally:
        if node is not None:
            node.close()
        stop.uninstall()
