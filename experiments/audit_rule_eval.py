"""Measure the audit rule in a fast, chain-free mirror of `bdfl run`: the same round engine.

Every mirror peer is a :class:`bdfl.peer.engine.PeerEngine` built as a `bdfl run` worker
builds its peers (the runner's data split, attacker set, client and poisoning seeds, common
initial model, ``[task]`` hyper-parameters; :mod:`bdfl.experiment.setup`), and every round runs
the engine's own stages (:mod:`bdfl.peer.stages`): train, publish, audit (fetch, rebuilt
trainer starts and earlier moves, replay check, the audit rule, attackers' votes), commit,
reveal, aggregate (the shared aggregation rule: approved and clearly enough, weighted by
reputation, overlay neighbours topped up to ``overlay.min_sources``). What is not the engine
is held in memory instead of a devnet and HTTP:

* the chain is a :class:`bdfl.peer.memory_chain.MemoryChain` — the contracts' committee draw
  (eligible by reputation, accepted with probability min(stake, minStake) / minStake), audit
  seats, outcome rule and settlement (the slashing line, the reputation floor) with the
  parameters a deployment gets from the same config (``setup.protocol_params``); peers read it
  through a :class:`bdfl.peer.view.MemoryChainView`;
* the peers' endpoints are one dictionary (hash -> bytes). Update bytes are bound to their
  submission (chain id, contract, round, submitter) as in `bdfl run`, so a model published
  again (a free-rider's copy, ALIE's identical updates) is new bytes with a new hash: the
  replay check does not see it, the detectors judge it. ``--unbound-updates`` publishes the
  bare arrays instead (a deployment without binding): the engine's replay check
  (``defense.replay_window``) then rejects a re-published model unjudged, and peers
  publishing the same arrays in one round collide on chain (``DuplicateHash``): the second
  sits the round out (counted per run as ``duplicates``; with binding, the engine
  re-encodes with a fresh nonce and submits again, ``stages.submit.recover_front_run``).

Every setting is the library's default (``bdfl.config``: the default experiment's, committee
9/8/5, clear approvals, dissent limit 0.5, expander degree 8) unless a flag sets it.

The same audits are also judged offline by the labelled rules of ``RULES`` (the detectors'
measurements, :class:`bdfl.defense.detectors.Evidence`, re-judged with
:func:`bdfl.defense.audit.rejudge`): vote level only; the votes cast, the chain's decisions
and the trajectory follow the rule named by ``--rule``.

Reported per attack (pooled over seeds):
* vote FRR / DR — share of votes of honest auditors that reject honest / attacking updates;
* dec. FRR / DR — share of decided (approved or rejected) honest / attacking updates rejected;
* sep. — first round (1-based, like rounds.csv) from which the attackers' mean reputation
  stays below the lowest honest reputation until the end (worst seed);
* final acc — mean test accuracy of the honest peers' own models after the last round.

Not mirrored: the beacon (the round seeds differ from a real run's, so committees and the
overlay do too), transaction timing, update binding, rewards. The numbers are
statistically, not bit-for-bit, those of `bdfl run`.

Run:  .venv/bin/python experiments/audit_rule_eval.py [--attacks ...] [--seeds 11 12]
      [--rounds 8] [--json out.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from eth_utils import keccak

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bdfl.attacks import attacker_client  # noqa: E402
from bdfl.chain.protocol import Outcome, genesis_seed  # noqa: E402
from bdfl.config import DERIVED_SETTINGS, DETECTORS, ExperimentConfig, from_dict, scale_to_peers  # noqa: E402
from bdfl.defense.audit import AuditRule, AuditVerdict, observe_audits, rejudge  # noqa: E402
from bdfl.defense.detectors import Evidence  # noqa: E402
from bdfl.errors import BDFLError  # noqa: E402
from bdfl.experiment.setup import attacker_indices, make_attack_for, peer_data, protocol_params  # noqa: E402
from bdfl.learning.task import load_task, task_base_config, task_hparams  # noqa: E402
from bdfl.net.serialization import hash_hex, update_hash  # noqa: E402
from bdfl.peer import stages  # noqa: E402
from bdfl.peer.engine import ClientFailure, PeerEngine  # noqa: E402
from bdfl.peer.memory_chain import MemoryChain, Revert  # noqa: E402
from bdfl.peer.node import Peer, peer_settings  # noqa: E402
from bdfl.peer.round_state import ChainMemory, RoundState  # noqa: E402
from bdfl.peer.view import REP_SCALE  # noqa: E402

# label -> (attack name, parameters)
ATTACK_SETTINGS = {
    "none": ("none", {}),
    "label_flip": ("label_flip", {"mode": "reverse"}),
    "sign_flip": ("sign_flip", {"scale": 1.0}),
    "sign_flip_x3": ("sign_flip", {"scale": 3.0}),
    "gaussian_noise": ("gaussian_noise", {"sigma": 0.5}),
    "gaussian_0.05": ("gaussian_noise", {"sigma": 0.05}),  # issue 22: small noise
    "alie": ("alie", {}),
    "ipm": ("ipm", {"epsilon": 0.5}),
    "scaling": ("scaling", {"boost": 10.0}),
    "backdoor": ("backdoor", {}),
    "backdoor_2x2": ("backdoor", {"target_label": 0, "trigger_size": 2}),  # the sweep's (issue 22)
    "backdoor_4x4": ("backdoor", {"target_label": 0, "trigger_size": 4}),
    "backdoor_blended": ("backdoor", {"target_label": 0, "blend_alpha": 0.2, "seed": 1}),
    "dba": ("dba", {"target_label": 0, "parts": 4, "trigger_size": 2}),
    "free_rider": ("free_rider", {}),
    "free_rider_disguised_0.001": ("free_rider", {"sigma": 0.001, "gamma": 1.0}),  # Fraboni et al.'s disguise
    "free_rider_disguised_0.01": ("free_rider", {"sigma": 0.01, "gamma": 1.0}),
    "free_rider_disguised_0.1": ("free_rider", {"sigma": 0.1, "gamma": 1.0}),
    "on_off": ("on_off", {"inner": "label_flip", "on_after": 3, "period": 4, "on_rounds": 2}),
    "on_off_sign": ("on_off", {}),  # the runner's defaults: sign flip for good from round 6 (1-based)
    "colluding": ("label_flip", {"collude": True}),
    "colluding_auditor": ("colluding_auditor", {}),  # honest updates, dishonest votes
    "label_flip_collude": ("label_flip", {"mode": "reverse", "collude": True}),  # the sweep's (issue 22)
    "fang": ("fang", {"target": "trimmed_mean"}),  # the sweep's (issue 22)
    "mimic": ("mimic", {}),
    "mimic_jitter": ("mimic", {"jitter": 0.01}),  # the sweep's: no two copies equal
    "mimic_jitter_0.1": ("mimic", {"jitter": 0.1}),  # at the near-copy bar
    "mimic_jitter_0.3": ("mimic", {"jitter": 0.3}),  # past it, still a tight cluster
    "mimic_jitter_1": ("mimic", {"jitter": 1.0}),  # copies as far apart as honest models
}
DEFAULT_ATTACKS = ["none", "label_flip", "sign_flip", "gaussian_noise", "alie", "ipm", "scaling", "free_rider",
                   "backdoor", "on_off"]

# the default experiment's rule: the library's defaults
DEFAULT_RULE = AuditRule()


def _every_k(rule: AuditRule, delta: float) -> AuditRule:
    for n in DETECTORS:
        rule = rule.with_detector(n, k=getattr(rule.detectors, n).k + delta)
    return rule


RULES = {
    "default": DEFAULT_RULE,
    "quality detectors only": AuditRule.only("accuracy", "loss"),
    "parameter detectors only": AuditRule.only("distance", "direction", "shift", "no_work", "consistency"),
    **{f"without {n}": DEFAULT_RULE.with_detector(n, enabled=False) for n in DETECTORS},
    "any failure rejects": replace(DEFAULT_RULE, detectors=replace(DEFAULT_RULE.detectors, corroboration=1.0)),  # before issue 22's F
    "corroboration 2": replace(DEFAULT_RULE, detectors=replace(DEFAULT_RULE.detectors, corroboration=2.0)),
    # issue 22, F2: corroboration counting failures by evidence family (bdfl.defense.audit.family; measured, not
    # adopted), or each detector as its own measurement (c896489's rule, the default)
    "by evidence family": replace(DEFAULT_RULE, by_family=True),
    "each detector counted": replace(DEFAULT_RULE, by_family=False),
    "every k - 1": _every_k(DEFAULT_RULE, -1.0),
    "every k + 1": _every_k(DEFAULT_RULE, +1.0),
}

#: the chain id and RoundManager address update bytes are bound to (any fixed values: nothing is deployed)
CHAIN_ID = 31337
MIRROR_CONTRACT = "0x" + "00" * 19 + "01"
#: the failed tests of a vote on a replayed update (Peer.audit rejects it unjudged)
REPLAYED = ("replayed",)
#: statistics of a judged candidate written by --votes-csv
STAT_FIELDS = ("distance_ratio", "shift", "cosine", "cosine_gap", "median_cosine", "own_cosine", "own_cosine_gap",
               "update_ratio", "history_cosine")


@dataclass
class MemoryBlobs:
    """Every mirror peer's endpoint in one dictionary: what a peer publishes is fetched by
    its keccak256 (the FetchMany of :class:`bdfl.peer.engine.PeerEngine`)."""

    blobs: dict[str, bytes] = field(default_factory=dict)

    def endpoint(self, url: str) -> MemoryEndpoint:
        return MemoryEndpoint(url, self)

    def fetch_many(self, pairs: Sequence[tuple[str, str]], budget: float | None = None) -> Mapping[str, bytes | Exception]:
        return {h: self.blobs.get(h, BDFLError(f"{h} was not published")) for _url, h in pairs}


@dataclass
class MemoryEndpoint:
    url: str
    store: MemoryBlobs

    def publish(self, data: bytes, *, round_: int | None = None) -> str:
        """As :meth:`bdfl.net.blobserver.Endpoint.publish`; the mirror has no Submit phase to seal
        an update for (``round_`` is taken and not used)."""
        h = hash_hex(update_hash(data))
        self.store.blobs[h] = data
        return h


def _set(d: dict[str, Any], path: str, value: Any) -> None:
    *outer, last = path.split(".")
    for key in outer:
        d = d.setdefault(key, {})
    if value is not None:
        d[last] = value


def experiment_config(attack_label: str, seed: int, args: argparse.Namespace) -> ExperimentConfig:
    """The run's config: the library's defaults, the attack, and what the flags set."""
    name, params = ATTACK_SETTINGS[attack_label]
    d: dict[str, Any] = {"seed": seed}
    _set(d, "attack.name", name)
    _set(d, "attack.params", params)
    _set(d, "attack.fraction", 0.0 if name == "none" else args.attackers)
    for path, value in (("peers", args.peers), ("rounds", args.rounds), ("task.client", args.task), ("task.alpha", args.alpha),
                        ("task.val_fraction", args.val_fraction), ("task.local_epochs", args.local_epochs),
                        ("task.batch_size", args.batch_size), ("task.learning_rate", args.lr),
                        ("protocol.committee_size", args.committee), ("protocol.auditors_per_update", args.auditors_per_update),
                        ("protocol.quorum", args.quorum), ("protocol.reject_percent", args.reject_percent),
                        ("protocol.approve_percent", args.approve_percent), ("overlay.degree", args.degree),
                        ("overlay.min_sources", args.min_sources), ("defense.bdfl.max_reject_share", args.max_reject_share),
                        ("defense.bdfl.dissent_limit", args.dissent_limit), ("defense.replay_window", args.replay_window),
                        ("defense.consistency_window", args.consistency_window),
                        ("defense.rebuild_starts", False if args.no_rebuilt_starts else None)):
        _set(d, path, value)
    # as `bdfl run` does: defaults that do not fit --peers are lowered, flags are never changed
    scale_to_peers(d, explicit={p for p in DERIVED_SETTINGS if _flag_set(d, p)})
    return from_dict(d)


def _flag_set(d: Mapping[str, Any], path: str) -> bool:
    table, name = path.split(".")
    node = d.get(table)
    return isinstance(node, Mapping) and name in node


class SplitTrustChain(MemoryChain):
    """A what-if of the contracts (not what they do): votes move a separate **auditor trust**
    instead of the reputation. The draw needs both at or above ``rep_threshold``; whether an
    update is eligible for aggregation (else ``Probation``) reads the reputation alone, which
    only the member's own updates and absences move. Why: an honest auditor with little data
    that misses a subtle attack loses 0.02 per vote against the outcome and, below the
    threshold, its next updates go on probation (docs/design-log.md, 2026-12-05 midday); a
    colluding auditor must still lose its seats. As Bittensor's Yuma consensus keeps validator
    trust apart from miner incentive.

    ``mode = "dissent"``: a seat that voted against more than half of the decided outcomes it
    judged (``disagree > agree``, the same line as the peers' ``defense.bdfl.dissent_limit`` 0.5),
    or did not reveal, pays with its reputation too, as today; only the votes of a seat that
    mostly agreed move its trust alone.

    ``mode = "excess"``: the reputation pays only for a seat's votes against the outcome **beyond
    the median seat's count in the same round** (the honest miss rate, read from the round
    itself); its trust pays for all of them."""

    MODES = ("all", "dissent", "excess")

    def __init__(self, *args: Any, mode: str = "all", **kwargs: Any) -> None:
        if mode not in self.MODES:
            raise ValueError(f"split-trust mode {mode!r}: one of {self.MODES}")
        self.mode = mode
        self.trust: dict[str, int] = {}  # address -> trust (fixed point); new members start at rep_initial
        super().__init__(*args, **kwargs)

    def trust_of(self, peer: str) -> int:
        return self.trust.get(peer, self.p.rep_initial)

    def _draw_reputation(self, peer: str) -> int:
        return min(self.member(peer).reputation, self.trust_of(peer))

    def _settle_seats(self) -> None:
        disagreed = [s.disagree for s in self.seats if s.revealed]
        median = float(np.median(disagreed)) if disagreed else 0.0  # "excess": the round's median seat
        for seat in self.seats:
            delta = self._seat_delta(seat)
            self.trust[seat.auditor] = max(0, min(REP_SCALE, self.trust_of(seat.auditor) + delta))
            m = self.member(seat.auditor)
            if self.mode == "dissent" and (not seat.revealed or seat.disagree > seat.agree):
                self._adjust(m, delta)
            elif self.mode == "excess":
                self._adjust(m, delta if not seat.revealed else -int(max(0.0, seat.disagree - median)) * self.p.rep_loss_vote)


class Mirror:
    """One mirrored run: the peers' engines over a memory chain (module docstring)."""

    def __init__(self, cfg: ExperimentConfig, rule: AuditRule, *, bound: bool = True, slash_after: int | None = None,
                 split_trust: str = "") -> None:
        self.cfg = cfg
        self.bound = bound
        task = load_task(cfg.task.client)
        ds, shards = peer_data(task, cfg)
        hp = task_hparams(cfg.task)
        base = task_base_config(cfg.task, ds.num_classes)
        initial = task.initial_parameters(ds, seed=cfg.seed, hparams=hp, config=base)
        self.attackers = set(attacker_indices(cfg))
        n = cfg.peers
        self.addresses = [f"0x{i + 1:040x}" for i in range(n)]  # digits only: already checksummed
        self.index_of = {a: i for i, a in enumerate(self.addresses)}
        self.attacker_addrs = frozenset(self.addresses[i] for i in self.attackers)
        params = protocol_params(cfg)  # the deployment's parameters from the same config
        if slash_after is not None:  # an ablation of the slashing line (not a [protocol] setting)
            params = replace(params, slash_after_rejections=slash_after)
        seed0 = genesis_seed(CHAIN_ID, f"0x{cfg.seed + 1:040x}")
        self.chain = SplitTrustChain(params, seed0, mode=split_trust) if split_trust else MemoryChain(params, seed0)
        self.blobs = MemoryBlobs()
        memory = ChainMemory(cfg)  # chain-derived memory shared by all peers, as in a worker
        settings = replace(peer_settings(cfg, cfg.num_attackers), audit_rule=rule)
        self.engines: list[PeerEngine] = []
        for i in range(n):
            (xtr, ytr), (xva, yva) = shards[i]
            attack = make_attack_for(cfg, i) if i in self.attackers else None

            def make_client(train: tuple[np.ndarray, np.ndarray], val: Any = (xva, yva), i: int = i) -> Any:
                return task.make_client(train, val, seed=cfg.seed * 100_003 + i, hparams=hp, config=base,
                                        cast_dtypes=cfg.task.cast_dtypes)

            client = make_client((xtr, ytr)) if attack is None else attacker_client(
                attack, make_client, (xtr, ytr), np.random.default_rng([cfg.seed, i, 1]), num_classes=ds.num_classes)
            url = f"http://peer{i}.mirror:8000/"
            peer = Peer(index=i, address=self.addresses[i], client=client, endpoint=self.blobs.endpoint(url), settings=settings,
                        attack=attack, seed=cfg.seed, num_peers=n, num_attackers=cfg.num_attackers)
            peer.params = [p.copy() for p in initial]
            if bound:  # update bytes bound to their submission, as a worker's peers' are
                peer.domain = (CHAIN_ID, MIRROR_CONTRACT)
            self.engines.append(PeerEngine(peer, view=self.chain.view, fetch=self.blobs.fetch_many, task=cfg.task.client,
                                           state=RoundState(memory), cfg=cfg))
            self.chain.join(self.addresses[i], params.min_stake, url)  # as the orchestrator's Join(min_stake)
        self.test_client = task.make_client((ds.X_test[:64], ds.y_test[:64]), (ds.X_test, ds.y_test), seed=0, hparams=hp,
                                            config=base)

    def kind(self, addr: str) -> str:
        return "attacker" if addr in self.attacker_addrs else "honest"

    def train_publish_submit(self, rnd: int) -> tuple[float, int]:
        """Stages train, publish (honest peers first, then attackers, who may use the honest
        updates) and the submissions. Returns (training seconds, duplicate hashes refused)."""
        members = set(self.chain.members)
        t_train, dup = 0.0, 0
        honest_models: list[Any] = []
        for attackers in (False, True):
            chosen = [e for e in self.engines if (e.peer.index in self.attackers) == attackers and e.address in members]
            t0 = time.perf_counter()
            chosen = [e for e in chosen if not isinstance(stages.train.train(e, rnd), ClientFailure)]
            t_train += time.perf_counter() - t0
            wants = any(getattr(e.peer.attack, "needs_honest_updates", False) for e in chosen)
            for e in chosen:
                pub = stages.publish.publish(e, rnd, honest_models if attackers and wants else None)
                try:
                    self.chain.submit(e.address, bytes.fromhex(pub.hash[2:]), e.peer.num_examples)
                except Revert as exc:
                    if exc.name != "DuplicateHash":
                        raise
                    dup += 1
                    if not self.bound:
                        continue
                    front = stages.submit.recover_front_run(e, rnd)  # as a worker does after DuplicateHash
                    self.chain.submit(e.address, bytes.fromhex(front.new_hash[2:]), e.peer.num_examples)
                if not attackers:
                    honest_models.append(e.peer.submitted_params)
        if self.chain.phase == 0:  # not every member submitted: the submit deadline passes
            self.chain.close_submissions()
        return t_train, dup

    def committee_audit_inputs(self, rnd: int) -> tuple[list[Any], dict[str, Any], dict[Any, Any], Any]:
        """Round ``rnd``'s committee engines, each one's audit inputs (by address), the bodies
        they want fetched once for all, and the rebuilt starts and earlier moves, as a worker
        prepares its hosted auditors."""
        auditors = [self.engines[self.index_of[a]] for a in self.chain.view.committee(rnd)]
        inputs = {e.address: stages.audit.audit_inputs(e, rnd) for e in auditors}
        wanted: set[tuple[str, str]] = set()
        recipes: dict[str, Any] = {}
        past: dict[str, Any] = {}
        for x in inputs.values():
            wanted |= stages.audit.wanted(x)
            recipes.update(x.recipes)
            past.update(x.past)
        fetched = self.blobs.fetch_many(sorted(wanted))
        rebuilt = stages.audit.rebuild(auditors[0].peer, rnd, recipes, past, fetched) if auditors else stages.audit.Rebuilt.empty()
        return auditors, inputs, fetched, rebuilt

    def audit(self, rnd: int, rules: Mapping[str, AuditRule], tally: Any) -> None:
        """Stages audit, commit and reveal of every committee member; ``tally(auditor, trainer,
        {rule: failed tests}, verdict or None)`` gets every vote as each rule would cast it."""
        auditors, inputs, fetched, rebuilt = self.committee_audit_inputs(rnd)
        for e in auditors:
            x = inputs[e.address]
            seen: list[tuple[Evidence, list[AuditVerdict]]] = []
            with observe_audits(lambda ev, vs: seen.append((ev, vs))):
                res = stages.audit.judge(e, x, fetched, self.attacker_addrs, rebuilt)
            if isinstance(res, ClientFailure):
                continue
            fresh = x.fresh()
            judged = judged_candidates(x, res)
            if len(seen) != (1 if judged else 0) or (judged and len(seen[0][1]) != len(judged)):
                raise BDFLError(f"mirror: auditor {e.address} judged {len(seen)} audits for {len(judged)} judged updates")
            refused = dict(res.rejections)
            for c in x.candidates:
                if c not in fresh:
                    tally(e.address, c.peer, dict.fromkeys(rules, REPLAYED), None)
                elif c not in judged:  # refused before any rule ran (republished, bytes not usable)
                    tally(e.address, c.peer, dict.fromkeys(rules, (refused[c.peer],)), None)
            if judged:
                ev, verdicts = seen[0]
                failed = {rn: rejudge(rule, ev) for rn, rule in rules.items()}
                for j, c in enumerate(judged):
                    tally(e.address, c.peer, {rn: failed[rn][j] for rn in rules}, verdicts[j])
            stages.commit.commit(e, rnd, res.indices, res.accept,
                                 lambda ix, acc, salt, a=e.address: keccak(repr((rnd, a, list(ix), list(acc))).encode() + salt))
        for e in auditors:
            v = stages.reveal.reveal(e, rnd)
            if v is not None:
                self.chain.reveal(e.address, v.indices, v.accept)

    def aggregate(self, rnd: int) -> None:
        """Stage aggregate of every peer (the plan from the closed round, then the combination)."""
        plans = [stages.aggregate.plan(e, rnd) for e in self.engines]
        wanted = set().union(*(stages.aggregate.wanted(p) for p in plans))
        fetched = self.blobs.fetch_many(sorted(wanted))
        for e, plan in zip(self.engines, plans):
            stages.aggregate.aggregate(e, rnd, plan, fetched)
        # the blobs no later audit or plan can ask for: older than the replay and consistency windows
        keep = {"0x" + s.update_hash.hex() for r in range(max(0, rnd - 8), rnd + 1) for s in self.chain.view.subs.get(r, [])}
        self.blobs.blobs = {h: b for h, b in self.blobs.blobs.items() if h in keep}

    def accuracy(self, i: int) -> float:
        _loss, _n, metrics = self.test_client.evaluate(self.engines[i].peer.params, {})
        return float(metrics.get("accuracy", float("nan")))


def judged_candidates(x: Any, res: Any) -> list[Any]:
    """The fresh candidates of an auditor's inputs ``x`` that its audit rule judged: those the
    peer refused before any rule ran (``res.rejections``: republished, bytes not usable) left
    out, in order (the audit's verdicts are theirs, one each)."""
    refused = {p for p, _why in res.rejections}
    return [c for c in x.fresh() if c.peer not in refused]


def run(attack_label: str, seed: int, args: argparse.Namespace, rules: dict[str, AuditRule] | None = None,
        vote_rows: list[dict] | None = None) -> dict:
    rules = rules or RULES
    torch.set_num_threads(1)
    cfg = experiment_config(attack_label, seed, args)
    m = Mirror(cfg, rules[args.rule], bound=not args.unbound_updates, slash_after=args.slash_after_rejections,
               split_trust=args.split_trust)
    n, attackers = cfg.peers, m.attackers
    honest = [i for i in range(n) if i not in attackers]
    votes = {rn: defaultdict(lambda: [0, 0]) for rn in rules}  # rule -> kind -> [rejects, total]
    decisions = defaultdict(lambda: [0, 0])  # kind -> [rejected, decided]
    failed_tests: dict[str, dict[str, int]] = {"honest": defaultdict(int), "attacker": defaultdict(int)}
    mismatches = 0  # votes whose offline re-judging under --rule differs from the vote the engine cast
    per_round = []
    t_train = 0.0
    duplicates = 0
    for r in range(cfg.rounds):
        dt, dup = m.train_publish_submit(r)
        t_train += dt
        duplicates += dup

        def tally(auditor: str, trainer: str, failed: dict[str, tuple[str, ...]], verdict: AuditVerdict | None, r: int = r) -> None:
            nonlocal mismatches
            if verdict is not None and tuple(verdict.failed) != failed[args.rule]:
                mismatches += 1
            if auditor in m.attacker_addrs:
                return
            kind = m.kind(trainer)
            for rn, f in failed.items():
                votes[rn][kind][0] += int(bool(f))
                votes[rn][kind][1] += 1
            for name in failed[args.rule]:
                failed_tests[kind][name] += 1
            if vote_rows is not None and verdict is not None and verdict.stats is not None:
                vote_rows.append({"seed": seed, "round": r + 1, "auditor": m.index_of[auditor], "candidate": m.index_of[trainer],
                                  "kind": kind, "acc": verdict.accuracy, "loss": verdict.loss, "own_acc": verdict.reference_accuracy,
                                  "own_loss": verdict.reference_loss, "failed": " ".join(verdict.failed),
                                  **{f: getattr(verdict.stats, f) for f in STAT_FIELDS},
                                  **{f"z_{f.name}": f.z for f in verdict.findings}})

        m.audit(r, rules, tally)
        outcomes = dict(zip((s.peer for s in m.chain.view.subs[r]), m.chain.finalize()))
        for addr, o in outcomes.items():
            if o in (Outcome.APPROVED, Outcome.REJECTED):
                decisions[m.kind(addr)][0] += int(o == Outcome.REJECTED)
                decisions[m.kind(addr)][1] += 1
        m.aggregate(r)
        rep = [m.chain.reputation(a) for a in m.addresses]
        out = {i: outcomes.get(m.addresses[i]) for i in range(n)}
        row = {
            "round": r + 1,
            "committee": len(m.chain.view.committee(r)),
            "attacker_reputation": float(np.mean([rep[i] for i in attackers])) if attackers else float("nan"),
            "min_honest_reputation": float(min(rep[i] for i in honest)),
            "honest_rejected": sum(out[i] == Outcome.REJECTED for i in honest),
            "attackers_rejected": sum(out[i] == Outcome.REJECTED for i in attackers),
            "attackers_approved": sum(out[i] == Outcome.APPROVED for i in attackers),
            "honest_undecided": sum(out[i] == Outcome.UNDECIDED for i in honest),
            "honest_probation": sum(out[i] == Outcome.PROBATION for i in honest),
            "attackers_probation": sum(out[i] == Outcome.PROBATION for i in attackers),
            "attacker_seats": sum(a in m.attacker_addrs for a in m.chain.view.committee(r)),
            "rejected": sorted(i for i in range(n) if out[i] == Outcome.REJECTED),
            "members": len(m.chain.members),
        }
        if r + 1 == cfg.rounds or (args.eval_every and (r + 1) % args.eval_every == 0):
            row["honest_accuracy"] = float(np.mean([m.accuracy(i) for i in honest]))
        per_round.append(row)

    sep = None
    if attackers:
        below = [row["attacker_reputation"] < row["min_honest_reputation"] for row in per_round]
        sep = next((t + 1 for t in range(len(below)) if all(below[t:])), None)

    def rate(c: list[int]) -> float | None:
        return c[0] / c[1] if c[1] else None

    return {
        "attack": attack_label,
        "seed": seed,
        "votes": {rn: {kd: list(v) for kd, v in d.items()} for rn, d in votes.items()},
        "committee": {kd: list(v) for kd, v in decisions.items()},
        "failed_tests": {kd: dict(v) for kd, v in failed_tests.items()},
        "vote_frr": rate(votes[args.rule]["honest"]),
        "vote_dr": rate(votes[args.rule]["attacker"]),
        "decision_frr": rate(decisions["honest"]),
        "decision_dr": rate(decisions["attacker"]),
        "separation_round": sep,
        "final_accuracy": per_round[-1].get("honest_accuracy"),
        "rounds": per_round,
        "duplicates": duplicates,
        "rejudge_mismatches": mismatches,
        "train_time_per_round_s": t_train / cfg.rounds,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--attacks", nargs="+", default=DEFAULT_ATTACKS, choices=list(ATTACK_SETTINGS))
    p.add_argument("--seeds", nargs="+", type=int, default=[11, 12])
    # every setting below defaults to the library's (bdfl.config): None = not overridden
    p.add_argument("--peers", type=int, help="peers")
    p.add_argument("--attackers", type=float, default=0.3, help="attack.fraction (0 for --attacks none)")
    p.add_argument("--alpha", type=float, help="task.alpha")
    p.add_argument("--rounds", type=int, help="rounds")
    p.add_argument("--committee", type=int, help="protocol.committee_size")
    p.add_argument("--auditors-per-update", type=int, help="protocol.auditors_per_update")
    p.add_argument("--quorum", type=int, help="protocol.quorum")
    p.add_argument("--reject-percent", type=int, help="protocol.reject_percent")
    p.add_argument("--approve-percent", type=int, help="protocol.approve_percent")
    p.add_argument("--max-reject-share", type=float, help="defense.bdfl.max_reject_share")
    p.add_argument("--dissent-limit", type=float, help="defense.bdfl.dissent_limit")
    p.add_argument("--degree", type=int, help="overlay.degree (expander)")
    p.add_argument("--min-sources", type=int, help="overlay.min_sources")
    p.add_argument("--local-epochs", type=int, help="task.local_epochs")
    p.add_argument("--batch-size", type=int, help="task.batch_size")
    p.add_argument("--lr", type=float, help="task.learning_rate")
    p.add_argument("--val-fraction", type=float, help="task.val_fraction")
    p.add_argument("--task", help="task.client (clients.digits, clients.mnist, clients.seattle_weather)")
    p.add_argument("--consistency-window", type=int, help="defense.consistency_window (0 = off)")
    p.add_argument("--replay-window", type=int, help="defense.replay_window (0 = off)")
    p.add_argument("--no-rebuilt-starts", action="store_true", help="defense.rebuild_starts = false")
    p.add_argument("--slash-after-rejections", type=int,
                   help="ablation: ProtocolParams.slash_after_rejections (default: the deployment's; 1 = the rule before the slashing line)")
    p.add_argument("--unbound-updates", action="store_true",
                   help="publish bare arrays, not bound to their submission (the replay check then sees re-published models)")
    p.add_argument("--split-trust", nargs="?", const="all", default="", choices=SplitTrustChain.MODES,
                   help="what-if: votes move a separate auditor trust, not the reputation that admits updates "
                        "(SplitTrustChain; 'dissent': except for seats that voted against most decided outcomes; 'excess': the "
                        "reputation pays for the votes against the outcome beyond the round's median seat)")
    p.add_argument("--rule", choices=list(RULES), default="default", help="the rule the auditors vote by")
    p.add_argument("--rule-json", default="", help='that rule\'s [defense.detectors] table, e.g. \'{"shift": {"k": 2.5}}\'')
    p.add_argument("--eval-every", type=int, default=0, help="also record honest accuracy every N rounds")
    p.add_argument("--json", type=Path, help="write all results here")
    p.add_argument("--votes-csv", type=Path, help="write every honest auditor's statistics per judged vote (rule --rule) here")
    args = p.parse_args(argv)
    logging.getLogger("bdfl.peer").setLevel(logging.ERROR)  # every rejected update is counted here, not logged
    rules = dict(RULES)
    if args.rule_json:
        rules[args.rule] = replace(rules[args.rule], detectors=AuditRule.from_dict(json.loads(args.rule_json)).detectors)

    t0 = time.perf_counter()
    runs = []
    vote_rows: list[dict] | None = [] if args.votes_csv else None
    for a in args.attacks:
        for s in args.seeds:
            start = len(vote_rows) if vote_rows is not None else 0
            runs.append(run(a, s, args, rules, vote_rows))
            if vote_rows is not None:
                for row_ in vote_rows[start:]:
                    row_["attack"] = a
    elapsed = time.perf_counter() - t0

    def pooled(runs_: list[dict], get: Any) -> str:
        rej = sum(get(r)[0] for r in runs_ if get(r))
        tot = sum(get(r)[1] for r in runs_ if get(r))
        return f"{100 * rej / tot:5.1f}%" if tot else "   - "

    cfg = experiment_config(args.attacks[0], args.seeds[0], args)
    t, pr = cfg.task, cfg.protocol
    print(f"{t.client}, {cfg.peers} peers, Dirichlet alpha={t.alpha}, {args.attackers:.0%} attackers, {cfg.rounds} rounds, "
          f"seeds {args.seeds}, votes by rule {args.rule!r}, local_epochs={t.local_epochs}, batch_size={t.batch_size}, "
          f"lr={t.learning_rate}, val_fraction={t.val_fraction}, committee {pr.committee_size}/{pr.auditors_per_update}/{pr.quorum}, "
          f"max_reject_share={cfg.defense.bdfl.max_reject_share}, dissent_limit={cfg.defense.bdfl.dissent_limit}, "
          f"{'rebuilt trainer starts' if cfg.defense.rebuild_starts else 'own starts'}, expander degree {cfg.overlay.degree}, "
          f"{'unbound' if args.unbound_updates else 'bound'} update bytes; "
          f"round engine over a memory chain")
    print(f"{'attack':15s} {'vote FRR':>9s} {'vote DR':>9s} {'dec. FRR':>10s} {'dec. DR':>9s} {'sep.':>5s} {'final acc':>10s}")
    for a in args.attacks:
        rs = [r for r in runs if r["attack"] == a]
        seps = [r["separation_round"] for r in rs]
        sep = "-" if a == "none" else ("never" if any(s is None for s in seps) else str(max(seps)))
        accs = [r["final_accuracy"] for r in rs if r["final_accuracy"] is not None]
        acc = f"{np.mean(accs):10.3f}" if accs else f"{'-':>10s}"
        print(
            f"{a:15s} {pooled(rs, lambda r: r['votes'][args.rule].get('honest')):>9s} "
            f"{pooled(rs, lambda r: r['votes'][args.rule].get('attacker')):>9s} "
            f"{pooled(rs, lambda r: r['committee'].get('honest')):>10s} "
            f"{pooled(rs, lambda r: r['committee'].get('attacker')):>9s} {sep:>5s} {acc}"
        )
    print("\nall rules on the same evaluations (vote FRR / vote DR, honest auditors):")
    print(f"{'rule':30s} " + " ".join(f"{a:>15s}" for a in args.attacks))
    for rn in rules:
        cells = []
        for a in args.attacks:
            rs = [r for r in runs if r["attack"] == a]
            cells.append(f"{pooled(rs, lambda r: r['votes'][rn].get('honest')).strip()}/"
                         f"{pooled(rs, lambda r: r['votes'][rn].get('attacker')).strip()}")
        print(f"{rn:30s} " + " ".join(f"{c:>15s}" for c in cells))
    t_round = np.mean([r["train_time_per_round_s"] for r in runs])
    print(f"\nlocal training, all peers, one round: {1000 * t_round:.1f} ms; total run time {elapsed:.1f} s; "
          f"duplicate hashes {sum(r['duplicates'] for r in runs)}; "
          f"offline re-judging differing from the votes cast {sum(r['rejudge_mismatches'] for r in runs)}")
    if vote_rows:
        with args.votes_csv.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for row_ in vote_rows for k in row_)))
            w.writeheader()
            w.writerows(vote_rows)
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "runs": runs}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
