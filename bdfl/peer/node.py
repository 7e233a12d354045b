"""One peer's round: train, publish, submit the hash, audit, vote, aggregate approved.

The same :class:`Peer` runs as a lone process on its own host (``bdfl peer``) and,
in simulations, by the hundred inside a worker process; only the driver differs.
Everything a peer learns from other peers (bytes over HTTP) is checked against the
hash recorded on chain before it is decoded, and decoded with a strict,
code-free parser before it is evaluated or aggregated.
"""

from __future__ import annotations

import logging
import numbers
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bdfl.attacks import AttackContext, VoteContext, attacker_update
from bdfl.config import DefenseConfig, TaskConfig
from bdfl.errors import BDFLError
from bdfl.defense import defense_params, make_strategy
from bdfl.defense.audit import AuditRule, audit_updates, claimed_steps
from bdfl.learning.mixing import with_momentum
from bdfl.learning.task import CheckedClient
from bdfl.net.serialization import (
    MAX_UPDATE_BYTES,
    Binding,
    InvalidUpdate,
    ModelSpec,
    decode_ndarrays,
    encode_ndarrays,
    hash_hex,
    update_hash,
)
from bdfl.peer.decode_cache import DecodeCache
from bdfl.peer.republished import NEAR_REPUBLISHED, EarlierModels
from bdfl.peer.sources import PastMove, StartSource, start_model
from bdfl.types import NDArrays

log = logging.getLogger("bdfl.peer.node")


def numeric_metrics(metrics: Mapping[str, Any] | None) -> tuple[dict[str, int | float], list[str]]:
    """The numbers of a fit's metrics (integers as int, any other real number as float:
    ``np.float32(0.5)`` and ``np.int64(3)`` are numbers too, as ``np.mean`` of float32 data gives
    them) and the keys of the values that are not numbers (strings, lists: not recorded)."""
    kept: dict[str, int | float] = {}
    dropped: list[str] = []
    for k, v in (metrics or {}).items():
        if isinstance(v, numbers.Integral):
            kept[k] = int(v)
        elif isinstance(v, numbers.Real):
            kept[k] = float(v)
        else:
            dropped.append(str(k))
    return kept, dropped


@dataclass(frozen=True)
class PeerSettings:
    """A peer's local policy (not on chain)."""

    defense: str = "bdfl"
    # the default [defense] table's strategy parameters (bdfl: defense.bdfl.clip, clip_k)
    defense_params: dict[str, Any] = field(default_factory=lambda: defense_params(DefenseConfig()))
    audit_rule: AuditRule = field(default_factory=AuditRule)
    max_update_bytes: int = MAX_UPDATE_BYTES
    fetch_timeout: float = 10.0
    fetch_retries: int = 2
    # the task's batch size: turns a trainer's claimed sample count into local steps for the
    # no-work test's small-shard credit (bdfl.defense.detectors.no_work); None: no credit
    batch_size: int | None = field(default_factory=lambda: TaskConfig().batch_size)


def peer_settings(cfg: Any, num_attackers: int) -> PeerSettings:
    """A peer's settings from an experiment config (its ``[defense]`` table): the one builder
    for simulated peers and ``bdfl peer`` (which knows no attacker count and passes 0)."""
    return PeerSettings(defense=cfg.defense.name, defense_params=defense_params(cfg.defense, num_attackers),
                        audit_rule=AuditRule.from_defense(cfg.defense), batch_size=cfg.task.batch_size)


@dataclass
class Rejection:
    """A received update that was not used, and why (logged and counted, never aggregated)."""

    round: int
    peer: str
    reason: str


@dataclass
class Candidate:
    """An update another peer published: who, the on-chain hash, where to fetch it, its weight,
    and the sample count its trainer claims on chain (None: not known here)."""

    index: int  # submission index in the round (for votes)
    peer: str
    hash: str
    url: str
    weight: float = 1.0
    num_samples: int | None = None


class Peer:
    """A federated-learning participant with its own account, endpoint, data and model."""

    def __init__(
        self,
        *,
        index: int,
        address: str,
        client: Any,
        endpoint: Any,
        settings: PeerSettings,
        attack: Any | None = None,
        seed: int = 0,
        num_peers: int | None = None,
        num_attackers: int | None = None,
    ) -> None:
        self.num_peers = num_peers
        self.num_attackers = num_attackers
        self.num_examples = 0
        self.index = index
        self.address = address
        # every fit goes through the checked contract once: a task's client already comes wrapped
        # (Task.make_client); a bare client (tests, library use) is wrapped here
        self.client = client if isinstance(client, CheckedClient) else CheckedClient(client, task=type(client).__name__)
        self.endpoint = endpoint
        self.settings = settings
        self.attack = attack
        self.rng = np.random.default_rng([seed, index])
        # the replay check's sketch (bdfl.peer.republished): an attacker who knows its buckets can
        # hide noise from it, so a peer on its own host draws a private one (bdfl peer); a
        # simulation's peers share the run's seed, for reproducible runs
        self.sketch_seed = seed
        self.params: NDArrays = [np.array(p, copy=True) for p in client.get_parameters({})]  # never the client's live arrays
        self.spec = ModelSpec.of_ndarrays(self.params)
        self.trained: NDArrays | None = None
        self.reference: NDArrays | None = None
        self.submitted_params: NDArrays | None = None  # the arrays of this round's update (make_update)
        self.published: dict[int, str] = {}  # round -> hash hex
        self.rejections: list[Rejection] = []
        # the audit rule's negative verdicts of the last audit: (candidate peer, failed tests)
        self.last_audit_rejections: list[tuple[str, tuple[str, ...]]] = []
        self.received_last: list[NDArrays] = []
        # (chain id, round-manager address): when set, published bytes are bound to
        # (chain id, contract, round, submitter) and received ones must match their submission
        self.domain: tuple[int, str] | None = None
        # assigned updates of the last audit left without a vote (could not be fetched): (peer, why)
        self.last_abstentions: list[tuple[str, str]] = []
        # decoded updates shared read-only with the other peers of this process (a simulation
        # worker sets one for all its peers and clears it each phase); None: decode every time
        self.decode_cache: DecodeCache | None = None
        self.warned_dropped_metrics = False  # a fit metric that is not a number was logged once
        self.warned_no_examples = False  # a fit that reported 0 examples was logged once
        # quasi-global momentum (bdfl.learning.mixing): (round, start) of the last round trained
        # with momentum on, and (round, model) of the last aggregate, to tell that this round's
        # start is the aggregate that followed that round (not a restart's or a rejoin's model)
        self.last_start: tuple[int, NDArrays] | None = None
        self.last_aggregate: tuple[int, NDArrays] | None = None

    @property
    def is_attacker(self) -> bool:
        return self.attack is not None

    # -- 1. local training --------------------------------------------------------
    def train(self, rnd: int, config: dict[str, Any] | None = None, momentum: float = 0.0) -> dict[str, Any]:
        """Fit the local model from the current parameters (Flower NumPyClient.fit) with
        ``server_round`` = chain round ``rnd`` + 1 (1-based, as Flower servers send it); the
        returned arrays are checked against the parameters given (bdfl.learning.task.check_contract).

        ``momentum`` > 0 (:func:`bdfl.learning.mixing.momentum_in_effect`): the trained model
        is ``fit + momentum * (start - previous start)`` when this round's start is the
        aggregate of round ``rnd - 1`` and the previous start was round ``rnd - 1``'s
        (:func:`bdfl.learning.mixing.with_momentum`); otherwise (first round, after a
        restart, a rejoin or a failed fit) nothing is added this round."""
        # the same arrays, not a copy (one model per peer: 0.9 GB at 11M, N = 20): params is only ever
        # replaced (aggregate, restart), never written in place, and the client fits copies
        self.reference = list(self.params)
        previous, agg = self.last_start, self.last_aggregate
        continuing = (previous is not None and previous[0] == rnd - 1 and agg is not None and agg[0] == rnd - 1
                      and agg[1] is self.params)
        self.last_start = (rnd, self.params) if momentum > 0 else None  # a reference: params are never written in place
        self.trained = None  # a fit that raises leaves no trained model: this round, no update
        if self.attack is not None and not self.attack.trains and self.attack.active(rnd):
            self.trained = [p.copy() for p in self.params]  # a free-rider does no work
            self.num_examples = self.attack.claimed_samples(0)
            return {"num_examples": self.num_examples}
        params, num_examples, metrics = self.client.fit([p.copy() for p in self.params],
                                                        {**(config or {}), "server_round": rnd + 1})
        self.trained = [np.asarray(p) for p in params]
        if momentum > 0 and continuing:
            assert previous is not None
            self.trained = with_momentum(self.trained, self.params, previous[1], momentum)
        counted = int(num_examples)
        # an attack off this round (on_off) states what was trained, like the honest peer it is then
        self.num_examples = self.attack.claimed_samples(counted) if self.attack is not None and self.attack.active(rnd) else counted
        if counted == 0 and not self.warned_no_examples:  # legal (docs/tasks.md), but most often a counting bug
            self.warned_no_examples = True
            log.warning("peer %s: fit reported 0 examples: its update claims no local steps (the audit's no-work test gives it "
                        "no small-shard credit) and, where weights count samples (defense.bdfl.weighting = "
                        "\"reputation_samples\"), it weighs almost nothing; a client whose fit trains should return "
                        "its training-set size", self.address)
        kept, dropped = numeric_metrics(metrics)
        if dropped and not self.warned_dropped_metrics:  # once per peer: the same keys come every round
            self.warned_dropped_metrics = True
            log.warning("peer %s: fit returned metrics that are not numbers, not recorded: %s", self.address, ", ".join(sorted(dropped)))
        return {"num_examples": counted, **kept}

    def resume_momentum(self, rnd: int, previous_start: NDArrays) -> None:
        """Take up quasi-global momentum after a resync (:func:`bdfl.peer.rejoin.resume_momentum`):
        the current parameters count as the aggregate of round ``rnd`` and ``previous_start`` as
        the start of round ``rnd``, so :meth:`train` of round ``rnd + 1`` adds
        ``momentum * (params - previous_start)``. Replacing ``params`` afterwards cancels it."""
        self.last_start = (rnd, previous_start)
        self.last_aggregate = (rnd, self.params)

    # -- 2. the bytes that are hashed and exchanged -------------------------------
    def make_update(self, rnd: int, honest_updates: list[NDArrays] | None = None,
                    honest_samples: Sequence[int] | None = None) -> bytes:
        """Serialize this round's update; an active attacker poisons it first (``honest_samples``:
        the sample counts ``honest_updates`` were submitted with, when known)."""
        assert self.trained is not None and self.reference is not None, "train() first"
        params = self.trained
        if self.attack is not None:
            ctx = AttackContext(
                round=rnd,
                trained=self.trained,
                reference=self.reference,
                honest_updates=honest_updates or [],
                received=self.received_last,
                honest_steps=[claimed_steps(n, self.settings.batch_size) for n in honest_samples or ()],
                own_steps=claimed_steps(self.num_examples, self.settings.batch_size),
                rng=self.rng,
                num_peers=self.num_peers,
                num_attackers=self.num_attackers,
            )
            params = [np.asarray(p, dtype=t.dtype) for p, t in zip(attacker_update(self.attack, ctx), self.trained)]
        self.submitted_params = params
        return encode_ndarrays(params, binding=self.binding_for(rnd, self.address))

    def binding_for(self, rnd: int, submitter: str) -> Binding | None:
        """The binding of ``submitter``'s update of round ``rnd`` on this peer's chain and
        contract (None without a ``domain``: unbound bytes, e.g. in unit tests)."""
        if self.domain is None:
            return None
        return Binding(int(self.domain[0]), self.domain[1], int(rnd), submitter)

    def rebind_fresh(self, rnd: int) -> bytes:
        """This round's update (the arrays :meth:`make_update` encoded) re-encoded with a fresh
        random nonce in its binding: new bytes and a new hash for the same arrays and the same
        (chain id, contract, round, submitter). For a submission front-run by a copier
        (``DuplicateHash``); needs a ``domain`` (unbound bytes have nothing to vary)."""
        params = self.submitted_params
        binding = self.binding_for(rnd, self.address)
        if params is None or binding is None:
            raise BDFLError("cannot re-encode this round's update: no update made, or no domain (unbound bytes)")
        return encode_ndarrays(params, binding=binding.with_fresh_nonce())

    def publish(self, rnd: int, data: bytes) -> str:
        """Serve the bytes on this peer's endpoint, sealed until round ``rnd``'s Submit phase
        ends where the endpoint's host has a seal; returns their keccak256 (what goes on chain)."""
        h = self.endpoint.publish(data, round_=rnd)
        self.published[rnd] = h
        return h

    # -- 3. verification of received bytes ----------------------------------------
    def decode_verified(self, rnd: int, cand: Candidate, data: bytes | Exception) -> NDArrays | None:
        """Hash-check and strictly decode a fetched update; log and record any rejection."""
        out = self._checked_arrays(cand.hash, data, submitter=cand.peer, rnd=rnd)
        return self._reject(rnd, cand, out) if isinstance(out, str) else out

    @staticmethod
    def unavailable(h: str, data: bytes | Exception | None) -> str | None:
        """Why the bytes committed to by hash ``h`` did not arrive (a failed fetch, or bytes
        that are not the ones committed to), or None when ``data`` is exactly those bytes.
        Nothing here is evidence against the submitter: a network attacker can cause all of it."""
        if not isinstance(data, bytes):
            return f"fetch failed: {getattr(data, 'reason', None) or data}"
        if hash_hex(update_hash(data)) != h.lower():
            return "hash_mismatch"
        return None

    def checked_arrays(self, rnd: int, cand: Candidate, data: bytes | Exception | None) -> NDArrays | None:
        """:meth:`decode_verified` without recording a rejection: the arrays of ``cand``'s
        fetched bytes (hash-checked, bound, strictly decoded), or None."""
        out = self._checked_arrays(cand.hash, data, submitter=cand.peer, rnd=rnd)
        return None if isinstance(out, str) else out

    def _checked_arrays(self, h: str, data: bytes | Exception | None, *, submitter: str, rnd: int) -> NDArrays | str:
        """The arrays of fetched bytes that match the ``0x`` hash ``h``, strictly decoded, or
        the reason they cannot be used. With a ``domain``, the bytes must be bound to this chain
        and contract, ``submitter`` and round ``rnd`` (any nonce: a front-run re-encoding), or
        the decoder refuses them (``binding_mismatch``)."""
        why = self.unavailable(h, data)
        if why is not None:
            return why
        assert isinstance(data, bytes)
        binding = self.binding_for(rnd, submitter)
        max_bytes = self.settings.max_update_bytes

        def decode() -> NDArrays | str:
            try:
                return decode_ndarrays(data, max_bytes=max_bytes, spec=self.spec, binding=binding)
            except InvalidUpdate as exc:
                return exc.reason

        if self.decode_cache is None:
            return decode()
        # the bytes matched h above; the key holds all else the decode depends on
        return self.decode_cache.get(h, (binding, self.spec, max_bytes), decode, data)

    def _reject(self, rnd: int, cand: Candidate, reason: str) -> None:
        log.warning("peer %s chain round %d: could not use the update of %s: %s", self.address, rnd, cand.peer, reason)
        self.rejections.append(Rejection(rnd, cand.peer, reason))
        return None

    # -- 4. auditing (committee members) ------------------------------------------
    def rebuild_starts(self, recipes: Mapping[str, Sequence[StartSource]], fetched: Mapping[str, bytes | Exception],
                       rnd: int, earlier: EarlierModels | None = None) -> dict[str, NDArrays]:
        """Each trainer's start of a round from its recipe (:func:`bdfl.peer.sources.start_recipes`):
        the recipe's fetched models (updates submitted in round ``rnd``, the round before),
        hash-checked and strictly decoded, averaged. A trainer whose
        recipe cannot be completed (a model missing or not matching its hash) is left out: the
        audit then measures its move from this auditor's own start. ``earlier``: gets a digest
        of every model decoded (the replay check by content, :mod:`bdfl.peer.republished`)."""
        models: dict[str, NDArrays] = {}
        submitter = {src.hash: src.peer for recipe in recipes.values() for src in recipe}
        for h in sorted(submitter):
            arrays = self._checked_arrays(h, fetched.get(h), submitter=submitter[h], rnd=rnd)
            if not isinstance(arrays, str):  # a failure is not recorded: it is not a vote or an input
                models[h] = arrays
                if earlier is not None:
                    earlier.add(h, arrays, submitter[h])
        out: dict[str, NDArrays] = {}
        for trainer, recipe in recipes.items():
            start = start_model(list(recipe), models)
            if start is not None:
                out[trainer] = start
        return out

    def rebuild_past_moves(self, past: Mapping[str, PastMove], fetched: Mapping[str, bytes | Exception],
                           kept: Mapping[str, NDArrays] | None = None, earlier: EarlierModels | None = None) -> dict[str, NDArrays]:
        """Each trainer's earlier move (:class:`bdfl.peer.sources.PastMove`): its update of that
        round minus its start then (rebuilt like :meth:`rebuild_starts`), both hash-checked.
        A trainer whose update or start cannot be rebuilt is left out: the audit's
        consistency test then skips it. ``kept``: trainer -> its start of that round already
        rebuilt from exactly ``past[trainer].start`` (:class:`bdfl.peer.decode_cache.KeptStarts`),
        handed over: not rebuilt again, and the move is computed into its arrays where they own
        their memory and have the move's dtype (the same bits as a new array). ``earlier``: as
        :meth:`rebuild_starts`'s, for the earlier updates and their starts' models."""
        kept = kept or {}
        starts: dict[str, NDArrays] = {}
        for r in sorted({m.round for m in past.values()}):  # a move of round r started from round r - 1's updates
            starts.update(self.rebuild_starts({t: m.start for t, m in past.items() if m.round == r and t not in kept}, fetched, r - 1,
                                              earlier))
        out: dict[str, NDArrays] = {}
        for trainer, m in past.items():
            update = self._checked_arrays(m.hash, fetched.get(m.hash), submitter=trainer, rnd=m.round)
            if earlier is not None and not isinstance(update, str):
                earlier.add(m.hash, update, trainer)
            start = kept.get(trainer, starts.get(trainer))
            if isinstance(update, str) or start is None or len(update) != len(start):
                continue
            # in the models' dtype (float32: half the bytes of a float64 move, 0.9 GB per worker at
            # 11M, N = 20); the audit reads it in float64 blocks (tests/defense/test_audit_streamed.py)
            out[trainer] = [_minus(u, s0, reuse=trainer in kept) for u, s0 in zip(update, start)]
        return out

    def audit(self, rnd: int, assigned: list[Candidate], fetched: dict[str, bytes | Exception], attacker_peers: frozenset[str] = frozenset(),
              earlier_hashes: Collection[str] = frozenset(), starts: Mapping[str, NDArrays] | None = None,
              past_moves: Mapping[str, NDArrays] | None = None,
              earlier_models: EarlierModels | None = None) -> tuple[list[int], list[bool]]:
        """Vote on each assigned update. An update whose committed bytes could not be fetched
        (after the caller's retries; or bytes not matching the on-chain hash) gets no vote: the
        auditor abstains on it (``last_abstentions``), since a network attacker can cause that
        as easily as its submitter, so an update nobody could fetch ends Undecided on chain,
        neither approved nor slashed. Fetched bytes that do not decode, or are bound to another
        submission (a copied update), are rejected, and so is an update whose on-chain hash was
        already submitted in an earlier round (``earlier_hashes``, lowercase 0x-hex): the same
        bytes again are a replay, never the result of training. Returns the indices voted on
        (abstentions left out, as the contract expects) and their verdicts. ``starts``: trainer -> its rebuilt
        start of the round (:meth:`rebuild_starts`); a trainer without one is measured from
        this auditor's own start. ``past_moves``: trainer -> its latest earlier move that was
        not rejected (:meth:`rebuild_past_moves`), for the consistency test. ``earlier_models``:
        the models of earlier rounds those rebuilds decoded; a candidate whose arrays are one of
        them is rejected (``republished``: the replay check by content, :mod:`bdfl.peer.republished`),
        and so is one lying nearer to another trainer's earlier model than
        :data:`~bdfl.peer.republished.NEAR_REPUBLISHED` x its move from its rebuilt start (a
        re-published model with noise added)."""
        models: list[NDArrays] = []
        ok_positions: list[int] = []
        verdict = [False] * len(assigned)
        voted = [True] * len(assigned)
        self.last_abstentions = []
        for pos, cand in enumerate(assigned):
            if cand.hash.lower() in earlier_hashes:
                self._reject(rnd, cand, "replayed")
                continue
            data = fetched.get(cand.hash, BDFLError("not fetched"))
            why = self.unavailable(cand.hash, data)
            if why is not None:  # recorded as not used, but no vote: it may be the network's fault
                self._reject(rnd, cand, why)
                self.last_abstentions.append((cand.peer, why))
                voted[pos] = False
                continue
            params = self.decode_verified(rnd, cand, data)
            if params is not None and earlier_models is not None and earlier_models.holds(params):
                self._reject(rnd, cand, "republished")
                continue
            trainer_start = (starts or {}).get(cand.peer)
            if params is not None and earlier_models is not None and trainer_start is not None:
                # only from its rebuilt start: from this auditor's own, a trainer whose recipe was
                # one model would lie nearer to that model than to the start it is measured from
                share = earlier_models.near_share(params, trainer_start, cand.peer, cand.hash)
                if share < NEAR_REPUBLISHED:
                    self._reject(rnd, cand, "republished")
                    continue
            if params is not None:
                models.append(params)
                ok_positions.append(pos)
        if models:
            base = self.trained if self.trained is not None else self.params
            start = self.reference if self.trained is not None else None  # this round's model before training
            trainer_starts = [(starts or {}).get(assigned[pos].peer) for pos in ok_positions]
            past = [(past_moves or {}).get(assigned[pos].peer) for pos in ok_positions]
            steps = [claimed_steps(assigned[pos].num_samples, self.settings.batch_size) for pos in ok_positions]
            verdicts = audit_updates(self.client, base, models, self.settings.audit_rule, start_params=start,
                                     candidate_starts=trainer_starts if any(x is not None for x in trainer_starts) else None,
                                     candidate_past_moves=past if any(x is not None for x in past) else None,
                                     candidate_steps=steps)
            for pos, v in zip(ok_positions, verdicts):
                verdict[pos] = bool(v.accept)
            self.last_audit_rejections = [(assigned[pos].peer, v.failed) for pos, v in zip(ok_positions, verdicts) if not v.accept]
        else:
            self.last_audit_rejections = []
        if self.attack is not None and self.attack.abstains(rnd):  # a lazy auditor casts no vote
            self.last_abstentions.extend((c.peer, "lazy") for c, v in zip(assigned, voted) if v)
            voted = [False] * len(assigned)
        if self.attack is not None:
            verdict = [
                bool(self.attack.vote(VoteContext(round=rnd, candidate=cand.peer), cand.peer in attacker_peers, v))
                for cand, v in zip(assigned, verdict)
            ]
        return [c.index for c, v in zip(assigned, voted) if v], [x for x, v in zip(verdict, voted) if v]

    # -- 5. aggregation of approved updates ---------------------------------------
    def aggregate(self, rnd: int, candidates: list[Candidate], fetched: dict[str, bytes | Exception], own_weight: float = 1.0) -> dict[str, Any]:
        """Combine this peer's own trained model with the verified candidates it was given.

        Under the ``bdfl`` defense the caller passes only updates approved on chain
        (weights = on-chain reputation); under a baseline, every neighbour's update.
        """
        own = self.trained if self.trained is not None else self.params  # its fit failed this round: its current model
        others: list[NDArrays] = []
        weights: list[float] = []
        seen: set[str] = set()
        for cand in candidates:
            if cand.hash.lower() in seen:  # each update counts once, whoever else submitted its hash
                continue
            seen.add(cand.hash.lower())
            params = self.decode_verified(rnd, cand, fetched.get(cand.hash, BDFLError("not fetched")))
            if params is not None:
                others.append(params)
                weights.append(cand.weight)
        t0 = time.perf_counter()
        strategy = make_strategy(self.settings.defense, **self.settings.defense_params)
        if not _finite(own):
            # its training diverged (NaN / inf; the update was refused as non_finite): averaging it
            # in would keep this peer's model NaN for good. It restarts from the others' models
            # (auditors cannot decode its update either, so they judge its next move from their
            # own start), or from its start of the round when it was given none.
            if not others:
                own, others, weights = self.params, [], []
            else:
                own, others, own_weight, weights = others[0], others[1:], weights[0], weights[1:]
        all_weights = [own_weight, *weights] if strategy.uses_weights else None  # robust rules take none
        combined = strategy.combine(own, others, all_weights)
        # a rule that selects one input (Krum) may return shared read-only decoded arrays: own a copy
        self.params = [a if getattr(a, "flags", None) is None or a.flags.writeable else a.copy() for a in combined]
        self.last_aggregate = (rnd, self.params)
        # only an attack reads them (AttackContext.received): an honest peer keeping its degree of
        # neighbours' models would hold N x degree models per worker between rounds
        self.received_last = others if self.attack is not None else []
        return {"aggregated": len(others), "seconds_aggregate": time.perf_counter() - t0}


def _finite(model: NDArrays) -> bool:
    """Whether every float array of ``model`` is free of NaN and inf."""
    return all(np.isfinite(a).all() for a in model if np.asarray(a).dtype.kind in "fc")


def _minus(u: np.ndarray, s0: np.ndarray, *, reuse: bool) -> np.ndarray:
    """``u - s0`` (NumPy's subtract); with ``reuse``, written into ``s0`` where it owns its memory
    and already has the result's shape and dtype (``s0`` is the caller's alone then)."""
    u, s0 = np.asarray(u), np.asarray(s0)
    if (reuse and s0.flags.owndata and s0.flags.c_contiguous and s0.shape == u.shape
            and s0.dtype == np.result_type(u.dtype, s0.dtype)):
        s0.flags.writeable = True
        return np.subtract(u, s0, out=s0)
    return np.subtract(u, s0)
