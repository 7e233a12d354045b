"""Stage 7, aggregate: after the round's close, which updates to combine, then combine them.

:func:`plan` applies the shared rule (:mod:`bdfl.peer.sources`: approved and clearly enough,
weighted by reputation, from the overlay neighbours topped up to ``overlay.min_sources``)
to the closed round read from the chain view, after the round state observed it (overlay,
replay cache, start recipes, moves). :func:`aggregate` fetches nothing: the driver fetches
:func:`wanted` and hands the bytes in. :func:`resync_plan` is the same choice for a peer
that comes back after missed rounds (:mod:`bdfl.peer.rejoin`), :func:`velocity_plan` what
those sources started from (its quasi-global momentum's velocity).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bdfl.net.overlay import repair_overlay
from bdfl.peer.engine import PeerEngine
from bdfl.peer.node import Candidate
from bdfl.peer.rejoin import RESYNC_LOOKBACK, resume_momentum
from bdfl.peer.sources import AggregationRule, StartSource, resync_sources, sources_of, start_recipes
from bdfl.peer.stages.train import momentum
from bdfl.peer.view import ChainView, ClosedRound


@dataclass(frozen=True)
class AggregationPlan:
    """What a peer aggregates after a closed round: the candidates (approved sources, with
    hash, endpoint and weight), its own model's weight, and the closed round."""

    candidates: list[Candidate]
    own_weight: float
    closed: ClosedRound


@dataclass(frozen=True)
class AggregateResult:
    """How many updates were combined, the updates not used (submitter, reason), and the time."""

    aggregated: int
    rejections: list[tuple[str, str]]
    used: list[str]  # the hashes of the updates combined
    seconds: float


def candidates(view: ChainView, rule: AggregationRule, closed: ClosedRound, peers: list[str]) -> list[Candidate]:
    """``peers``' usable updates of the closed round as candidates (hash, endpoint, weight)."""
    index = rule.index if rule.index else {s.peer: s.index for s in closed.submissions}  # built once per rule
    return [Candidate(index=index[p], peer=p, hash=rule.usable[p], url=view.endpoint_of(p), weight=rule.weight(p)) for p in peers]


def plan(engine: PeerEngine, rnd: int) -> AggregationPlan:
    """What ``engine``'s peer aggregates after closed round ``rnd`` (module docstring)."""
    closed = engine.view.closed(rnd)
    rule = engine.memory.observe(closed)
    sources = sources_of(rule, engine.memory.tracker.overlay, engine.address)
    return AggregationPlan(candidates(engine.view, rule, closed, sources), rule.weight(engine.address), closed)


def wanted(plan: AggregationPlan) -> set[tuple[str, str]]:
    return {(c.url, c.hash) for c in plan.candidates}


def aggregate(engine: PeerEngine, rnd: int, plan: AggregationPlan, fetched: Mapping[str, bytes | Exception]) -> AggregateResult:
    """Combine the peer's own model with the plan's verified candidates
    (:meth:`bdfl.peer.node.Peer.aggregate`: hash-checked, strictly decoded, each hash once)."""
    peer = engine.peer
    before = len(peer.rejections)
    # the worker's one fetched dict, read only: copying it for each of its peers cost ~10 s a round at N = 10,000
    info = peer.aggregate(rnd, plan.candidates, fetched if isinstance(fetched, dict) else dict(fetched), own_weight=plan.own_weight)
    rejections = [(r.peer, r.reason) for r in peer.rejections[before:]]
    refused = {p for p, _ in rejections}
    used = [c.hash for c in plan.candidates if c.peer not in refused]
    return AggregateResult(int(info["aggregated"]), rejections, used, float(info["seconds_aggregate"]))


def resync_plan(engine: PeerEngine, closed_round: int, *, observe: bool = True) -> tuple[int, list[list[Candidate]]]:
    """The updates a returning peer takes its model from (:func:`bdfl.peer.sources.resync_sources`):
    the ones it would aggregate after ``closed_round``, then the next ``overlay.degree`` usable
    updates by weight (tried only when none of the first verifies). A peer outside the overlay
    (inactive, left, new) gets the neighbours a repair that adds it would give. A round with
    no usable update: the rounds before, :data:`bdfl.peer.rejoin.RESYNC_LOOKBACK` in all.
    ``observe``: first bring the round state up to date with ``closed_round`` (a peer that
    did not watch it). Returns (the round used, [first tier, fallback tier])."""
    view, memory = engine.view, engine.memory
    if closed_round < 0:
        return closed_round, [[], []]
    if observe:
        memory.observe(view.closed(closed_round))
    overlay = _resync_overlay(engine, closed_round)
    if overlay is None:
        return closed_round, [[], []]
    for rnd in range(closed_round, max(-1, closed_round - RESYNC_LOOKBACK), -1):
        tiers = _resync_tiers(engine, rnd, overlay)
        if tiers is not None:
            return rnd, tiers
    return closed_round, [[], []]


class _VelocityTiers(Sequence[list[tuple[Candidate, list[Candidate]]]]):
    """:func:`velocity_plan`'s two tiers: the first given, the fallback built by ``build`` when
    first read (:func:`bdfl.peer.rejoin.resume_momentum` reads it only when the first tier
    yields no move), then kept."""

    def __init__(self, first: list[tuple[Candidate, list[Candidate]]],
                 build: Any) -> None:
        self._tiers = [first]
        self._build = build

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(2))]
        if i not in (0, 1, -1, -2):
            raise IndexError(i)
        if i % 2 == 1 and len(self._tiers) == 1:
            self._tiers.append(self._build())
            self._build = None
        return self._tiers[i % 2]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    def __repr__(self) -> str:
        return f"_VelocityTiers({self._tiers!r}{'' if len(self._tiers) == 2 else ', <fallback not built>'})"


def velocity_plan(engine: PeerEngine, closed_round: int, source: int,
                  sources: Sequence[Candidate]) -> Sequence[list[tuple[Candidate, list[Candidate]]]]:
    """For quasi-global momentum after a resync (:func:`bdfl.peer.rejoin.resume_momentum`): the
    approved moves of round ``source`` the returning peer's velocity is the weighted mean of,
    in two tiers: its resync's ``sources`` (the updates its resync model averages), then the
    next ``overlay.degree`` usable updates of that round by weight (used only when none of the
    first yields a move: say every source joined in that round; built only then, when first
    read). Each as (its update, its
    start recipe of that round: the models of round ``source - 1`` it started from, its own
    update first, with hash, endpoint and weight; :func:`bdfl.peer.sources.start_recipes`),
    every move one the audit judged and approved. The recipe the round state recorded when
    round ``source`` closed (what auditors rebuilt) when there is one, else rebuilt from round
    ``source - 1`` on the current overlay (like auditors after a restart; once for both tiers).
    A trainer without a
    recipe (it did not submit in that round) is left out. Empty when the resync did not come
    from the last closed round (``source`` != ``closed_round``: an older model has no velocity
    of the round before this one) or from round 0 (no earlier round)."""
    if not sources or source != closed_round or source < 1:
        return []
    view, memory = engine.view, engine.memory
    closed = view.closed(source)
    rule = memory.rule(closed)
    rebuilt: dict[str, list[StartSource]] | None = None

    def moves(cands: Sequence[Candidate]) -> list[tuple[Candidate, list[Candidate]]]:
        nonlocal rebuilt
        out = []
        for cand in cands:
            past = memory.moves.latest(cand.peer, source + 1)
            if past is not None and past.round == source and past.hash.lower() == cand.hash.lower():
                recipe = past.start
            else:
                if rebuilt is None:
                    before = view.closed(source - 1)
                    rebuilt = start_recipes(memory.rule(before), memory.tracker.overlay, before.submissions) if before.submissions else {}
                recipe = rebuilt.get(cand.peer, [])
            if recipe:
                out.append((cand, [Candidate(index=0, peer=src.peer, hash=src.hash, url=view.endpoint_of(src.peer), weight=src.weight)
                                   for src in recipe]))
        return out

    def fallback() -> list[tuple[Candidate, list[Candidate]]]:
        taken = {c.peer.lower() for c in sources} | {engine.address.lower()}
        rest = sorted((p for p in rule.usable if p.lower() not in taken), key=lambda p: (-rule.weight(p), p.lower()))
        return moves(candidates(view, rule, closed, rest[: max(1, int(engine.cfg.overlay.degree or 1))]))

    return _VelocityTiers(moves(sources), fallback)


def resume_velocity(engine: PeerEngine, closed_round: int, source: int, sources: Sequence[Candidate],
                    used: Collection[str] | None = None) -> list[str]:
    """After a resync from round ``source`` (:func:`resync_plan`) with quasi-global momentum in
    effect: rebuild the returning peer's velocity (:func:`bdfl.peer.rejoin.resume_momentum` on
    :func:`velocity_plan`), fetching with the engine's fetcher, so its first update back carries
    one. ``sources``: the candidates of the tier the resync used, narrowed to ``used`` (the peers
    whose updates the resync model averages) when given. Returns the sources of the moves used
    ([] when momentum is off or nothing verified)."""
    if momentum(engine) <= 0:
        return []
    if used is not None:
        sources = [c for c in sources if c.peer in used]
    return resume_momentum(engine.peer, source, velocity_plan(engine, closed_round, source, sources), engine.fetch)


def _resync_overlay(engine: PeerEngine, closed_round: int) -> Any:
    """The overlay a returning peer resyncs on: the current one, or (a peer outside it:
    inactive, left, new) the one a repair that adds it would give. None before any overlay."""
    overlay = engine.memory.tracker.overlay
    addr = engine.address
    if overlay is None or addr in overlay:
        return overlay
    return repair_overlay(overlay, [*overlay.members, addr.lower()], engine.view.closed(closed_round).seed,
                          degree=engine.cfg.overlay.degree)


def _resync_tiers(engine: PeerEngine, rnd: int, overlay: Any) -> list[list[Candidate]] | None:
    """[first tier, fallback tier] of round ``rnd``'s usable updates for a returning peer on
    ``overlay`` (:func:`bdfl.peer.sources.resync_sources`); None when there is none."""
    closed = engine.view.closed(rnd)
    if not closed.submissions:
        return None
    rule = engine.memory.rule(closed)
    first, fallback = resync_sources(rule, overlay, engine.address, engine.cfg.overlay.degree)
    if not (first or fallback):
        return None
    return [candidates(engine.view, rule, closed, first), candidates(engine.view, rule, closed, fallback)]
