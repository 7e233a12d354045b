"""Which closed-round updates a peer may aggregate, and with which weights.

One rule for the simulated peers (:meth:`bdfl.experiment.orchestrator.Orchestrator._aggregation_inputs`)
and ``bdfl peer`` (:meth:`bdfl.peer.standalone.StandalonePeer._aggregation_plan`). Under
``bdfl``: updates approved on chain whose revealed votes are clear enough
(``defense.bdfl.max_reject_share``, :func:`bdfl.defense.audited.clear_approval`; the votes
of seats that went against the outcome on more than ``defense.bdfl.dissent_limit`` of the round's
updates do not count, :mod:`bdfl.learning.votes`), weighted by
on-chain reputation (times the capped on-chain sample count with ``defense.bdfl.weighting =
"reputation_samples"``, :func:`bdfl.defense.audited.update_weight`), from the overlay
neighbours topped up to ``overlay.min_sources``. Under a baseline: every submission, weight 1,
neighbours only.

The same rule tells an auditor where a trainer's round started (:func:`start_recipes`): a
peer's model at the start of round r+1 is the weighted average of its own round-r update and
the updates it may aggregate, all of them on chain, so the auditor can rebuild it
(:func:`start_model`) and judge the trainer's *move* ``update - start`` instead of the
update's distance from the auditor's own model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bdfl.chain.protocol import Outcome
from bdfl.defense.aggregate import AggregationError, merge_copies, weighted_average
from bdfl.defense import strategy_class
from bdfl.defense.audited import clear_approval, update_weight
from bdfl.learning.votes import SeatVotes, counted_votes, dissenting_seats


@dataclass(frozen=True)
class AggregationRule:
    """``usable``: peer -> ``0x`` update hash of the submissions it may aggregate;
    ``weight(peer)``: that peer's aggregation weight (also for a peer's own model);
    ``min_sources``: the argument for :meth:`bdfl.net.overlay.Overlay.aggregation_sources`."""

    usable: dict[str, str]
    weight: Callable[[str], float]
    min_sources: int
    index: dict[str, int] = field(default_factory=dict, repr=False, compare=False)  # peer -> its submission's index in the round
    #: the usable peers lower-cased (what :meth:`~bdfl.net.overlay.Overlay.aggregation_sources`
    #: matches) and their spelling in ``usable``: built once per rule, not once per peer asked
    lowered: frozenset[str] = field(init=False, repr=False, compare=False)
    spelled: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        spelled = {p.strip().lower(): p for p in self.usable}
        object.__setattr__(self, "spelled", spelled)
        object.__setattr__(self, "lowered", frozenset(spelled))


def aggregation_rule(cfg: Any, subs: Iterable[Any], reputation: Mapping[str, float]) -> AggregationRule:
    """The rule for a closed round's submissions ``subs`` (:class:`bdfl.chain.protocol.Submission`)
    under config ``cfg`` (its ``defense`` and ``overlay`` tables); ``reputation``: peer ->
    on-chain reputation in [0, 1] (0 for a peer not in it)."""

    all_subs = list(subs)
    index = {s.peer: s.index for s in all_subs}
    subs = first_of_each_hash(all_subs)  # aggregation counts each hash once
    if not strategy_class(cfg.defense.name).audited:
        return AggregationRule({s.peer: "0x" + s.update_hash.hex() for s in subs}, lambda _a: 1.0, 0, index)
    share = cfg.defense.bdfl.max_reject_share
    weighting = cfg.defense.bdfl.weighting
    samples = {s.peer: s.num_samples for s in subs}  # capped at maxSamples by the contract
    limit = cfg.defense.bdfl.dissent_limit
    excluded = dissenting_seats(seat_votes(all_subs), limit) if share < 1 and limit < 1 else 0

    def votes(s: Any) -> tuple[int, int]:
        return counted_votes(s.voted_mask, s.accept_mask, excluded) if excluded else (s.accepts, s.rejects)

    usable = {s.peer: "0x" + s.update_hash.hex() for s in subs
              if s.outcome == Outcome.APPROVED and clear_approval(*votes(s), share)}

    def weight(a: str) -> float:
        return update_weight(reputation.get(a, 0.0), samples.get(a, 1), weighting)

    return AggregationRule(usable, weight, cfg.overlay.min_sources, index)


def first_of_each_hash(subs: Iterable[Any]) -> list[Any]:
    """The submissions in order, each update hash kept once (its first submission): an update
    another member submitted again (a copy) is never counted, or weighed, twice."""
    seen: set[bytes] = set()
    out = []
    for s in subs:
        if bytes(s.update_hash) not in seen:
            seen.add(bytes(s.update_hash))
            out.append(s)
    return out


def seat_votes(subs: Iterable[Any]) -> list[Any]:
    """The closed round's revealed votes (:class:`bdfl.learning.votes.SeatVotes`), one per
    submission, with its on-chain outcome (approved and probation count as accepted)."""

    majority = {Outcome.APPROVED: True, Outcome.PROBATION: True, Outcome.REJECTED: False}
    return [SeatVotes(s.voted_mask, s.accept_mask, majority.get(s.outcome)) for s in subs]


def rebuilds_starts(defense: Any) -> bool:
    """Whether auditors rebuild trainers' starts (and earlier moves) under this ``defense``
    config: only an audited strategy's auditors (``bdfl``'s), and ``defense.rebuild_starts`` can switch it off."""
    return strategy_class(defense.name).audited and bool(defense.rebuild_starts)


@dataclass(frozen=True)
class StartSource:
    """One model in a start recipe: the ``0x`` update hash ``peer`` submitted, and its weight."""

    peer: str
    hash: str
    weight: float


def sources_of(rule: AggregationRule, overlay: Any, peer: str) -> list[str]:
    """The peers whose updates ``peer`` aggregates under ``rule`` (addresses as in
    ``rule.usable``), in the overlay's order: approved neighbours topped up to
    ``rule.min_sources``. Empty when ``peer`` is not in the overlay."""
    if overlay is None:
        return []
    spelled = rule.spelled
    return [spelled[x] for x in overlay.aggregation_sources(peer, rule.lowered, rule.min_sources, lowered=True) if x in spelled]


def resync_sources(rule: AggregationRule, overlay: Any, peer: str, degree: int) -> tuple[list[str], list[str]]:
    """Whose updates of a closed round a returning peer (restarted, reactivated or joining
    late: :mod:`bdfl.peer.rejoin`) takes its model from, in two tiers: the ones it would
    aggregate under ``rule`` (:func:`sources_of`), then the next ``degree`` (the overlay
    degree, at least 1) usable updates by weight (heaviest first, ties by address), tried
    only when none of the first tier verifies. Its own update is in neither. The one choice
    ``bdfl peer`` and the simulation's fault injection make."""
    me = peer.lower()
    first = [p for p in sources_of(rule, overlay, peer) if p.lower() != me]
    rest = sorted((p for p in rule.usable if p not in first and p.lower() != me), key=lambda p: (-rule.weight(p), p.lower()))
    return first, rest[: max(1, int(degree or 1))]


def start_recipes(rule: AggregationRule, overlay: Any, subs: Iterable[Any]) -> dict[str, list[StartSource]]:
    """For every peer that submitted in the closed round ``subs``: the models (own update
    first) and weights whose weighted average is its model at the start of the next round,
    when it follows the protocol. An honest peer's own update is the model it trained, so the
    recipe is exact for it; what a dishonest peer really started from does not matter — its
    next update is judged against where the protocol says it started."""
    out: dict[str, list[StartSource]] = {}
    for s in subs:
        if overlay is None or s.peer not in overlay:
            continue  # not an active member: it does not aggregate
        own = StartSource(s.peer, "0x" + s.update_hash.hex(), rule.weight(s.peer))
        out[s.peer] = [own] + [StartSource(nb, rule.usable[nb], rule.weight(nb)) for nb in sources_of(rule, overlay, s.peer)]
    return out


def start_model(recipe: list[StartSource], models: Mapping[str, Any]) -> list[np.ndarray] | None:
    """The weighted average of the recipe's models (``models``: hash -> decoded arrays); None
    when one of them is missing (not fetched, wrong hash) or the weights sum to zero — then
    the trainer's start is unknown and the auditor falls back to its own."""

    if not recipe or any(not isinstance(models.get(src.hash), list) for src in recipe):
        return None
    try:  # as the trainer's own aggregation (bdfl.defense.audited): identical models count once
        return weighted_average(*merge_copies([models[src.hash] for src in recipe], [src.weight for src in recipe]))
    except AggregationError:
        return None


@dataclass(frozen=True)
class PastMove:
    """Where a trainer's move of an earlier round is found: ``hash``, its update of round
    ``round``, minus the average of ``start``, its start recipe of that round."""

    round: int
    hash: str
    start: list[StartSource]


class MoveHistory:
    """The last ``window`` closed rounds' submissions and start recipes, to find each
    trainer's latest move that was not rejected (the audit's consistency test,
    :mod:`bdfl.defense.audit`).

    Fed once per closed round, in order, by whoever knows both: :meth:`record` takes round
    ``rnd``'s submissions (with their on-chain outcomes) and the start recipes the trainers
    had in that round (from round ``rnd - 1``'s close). A rejected update is skipped, so an
    attacker's move keeps being compared with its last accepted one while it is rejected;
    a round without a recipe (the first, or a peer that was not in the overlay) gives none.
    """

    def __init__(self, window: int) -> None:
        if window < 0:
            raise ValueError(f"window must be >= 0, got {window}")
        self.window = window
        self._rounds: dict[int, dict[str, PastMove]] = {}

    def record(self, rnd: int, subs: Iterable[Any], recipes: Mapping[str, list[StartSource]] | None) -> None:
        if self.window == 0:
            return
        recipes = recipes or {}
        self._rounds[rnd] = {s.peer: PastMove(rnd, "0x" + s.update_hash.hex(), list(recipes[s.peer]))
                             for s in subs if s.outcome != Outcome.REJECTED and recipes.get(s.peer)}
        for old in [r for r in self._rounds if r < rnd - self.window]:
            del self._rounds[old]

    def latest(self, trainer: str, rnd: int) -> PastMove | None:
        """``trainer``'s latest recorded, not-rejected move before round ``rnd`` and at most
        ``window`` rounds back; None when there is none."""
        for k in range(rnd - 1, rnd - 1 - self.window, -1):
            got = self._rounds.get(k, {}).get(trainer)
            if got is not None:
                return got
        return None
