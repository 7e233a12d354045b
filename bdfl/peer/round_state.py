"""What a peer carries from one round to the next: :class:`RoundState`.

Two parts. :class:`ChainMemory` is derived from public chain state alone — the overlay
(:class:`~bdfl.peer.overlay_tracker.OverlayTracker`), the replay cache (update hashes of
the last ``defense.replay_window`` closed rounds), the start recipes of the next round and
the move history (:mod:`bdfl.peer.sources`) — so peers that watched the same rounds hold
the same memory, and a simulation worker lets all its peers share one. The rest is the
peer's own: the votes and salts it committed and must reveal, and the rounds in which its
task's client failed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bdfl.peer.overlay_tracker import OverlayTracker
from bdfl.peer.sources import AggregationRule, MoveHistory, StartSource, aggregation_rule, rebuilds_starts, start_recipes
from bdfl.peer.view import ChainView, ClosedRound


@dataclass(frozen=True)
class Votes:
    """An auditor's votes of one round: the update indices voted on, the verdicts, the salt."""

    indices: list[int]
    accept: list[bool]
    salt: bytes


@dataclass(frozen=True)
class OverlayChange:
    """The overlay was built or repaired after a closed round (for the run's events)."""

    before: Any  # bdfl.net.overlay.Overlay | None
    after: Any  # bdfl.net.overlay.Overlay


class ChainMemory:
    """The chain-derived part of a peer's round state (module docstring). ``cfg``: the
    experiment config (its ``defense`` and ``overlay`` tables)."""

    def __init__(self, cfg: Any, tracker: OverlayTracker | None = None) -> None:
        self.cfg = cfg
        o = cfg.overlay
        self.tracker = tracker or OverlayTracker(o.topology, o.degree, o.edge_probability if o.topology == "erdos_renyi" else None)
        d = cfg.defense
        self.moves = MoveHistory(d.consistency_window if rebuilds_starts(d) else 0)
        self.recipes: tuple[int, dict[str, list[StartSource]]] | None = None  # (round they start, trainer -> recipe)
        self.replay: dict[int, frozenset[str]] = {}  # closed round -> its submitted update hashes (lowercase 0x)
        self.observed = -1  # the latest closed round observed
        self.last_change: OverlayChange | None = None
        self._rule: tuple[tuple[int, Any, Any], AggregationRule] | None = None  # the latest rule (rule())

    def rule(self, closed: ClosedRound) -> AggregationRule:
        """The aggregation rule of a closed round (:func:`bdfl.peer.sources.aggregation_rule`),
        built once for the very submissions and reputation read (a worker's peers all ask for
        it: building it for each was quadratic in N)."""
        key = (closed.round, closed.submissions, closed.reputation)
        cached = self._rule
        if cached is not None and cached[0][0] == key[0] and cached[0][1] is key[1] and cached[0][2] is key[2]:
            return cached[1]
        rule = aggregation_rule(self.cfg, closed.submissions, closed.reputation)
        self._rule = (key, rule)  # holds the objects compared by identity, so their ids stay theirs
        return rule

    def observe(self, closed: ClosedRound) -> AggregationRule:
        """After round ``closed.round`` closed: bring the overlay up to date (active members,
        the round's seed), remember its update hashes (replay check) and, when auditors rebuild
        starts, its moves and the next round's start recipes. Once per round: observing a
        round again (another peer of the same worker, a resync) changes nothing."""
        rule = self.rule(closed)
        rnd = closed.round
        if rnd <= self.observed:
            return rule
        self.observed = rnd
        before = self.tracker.overlay
        if closed.active:
            self.tracker.update(closed.active, closed.seed)
        self.last_change = OverlayChange(before, self.tracker.overlay) if self.tracker.overlay is not before else None
        self.replay[rnd] = frozenset("0x" + s.update_hash.hex() for s in closed.submissions)
        if rebuilds_starts(self.cfg.defense) and self.tracker.overlay is not None:
            if self.recipes is not None and self.recipes[0] == rnd:
                self.moves.record(rnd, closed.submissions, self.recipes[1])
            self.recipes = (rnd + 1, start_recipes(rule, self.tracker.overlay, closed.submissions))
        return rule

    def earlier_hashes(self, rnd: int, view: ChainView) -> frozenset[str]:
        """Update hashes submitted in the ``defense.replay_window`` rounds before ``rnd``; a
        round not observed (before this peer started) is read from ``view``."""
        first = max(0, rnd - self.cfg.defense.replay_window)
        for old in [x for x in self.replay if x < first]:
            del self.replay[old]
        for past in range(first, rnd):
            if past not in self.replay:
                self.replay[past] = frozenset("0x" + s.update_hash.hex() for s in view.submissions(past))
        return frozenset().union(*(self.replay[p] for p in range(first, rnd)))

    def recipes_for(self, rnd: int, view: ChainView) -> Mapping[str, list[StartSource]]:
        """The trainers' start recipes of round ``rnd``: remembered from round ``rnd - 1``'s
        close, or (a peer that did not observe it, e.g. after a restart) rebuilt from it."""
        if not rebuilds_starts(self.cfg.defense) or rnd == 0 or self.tracker.overlay is None:
            return {}
        if self.recipes is not None and self.recipes[0] == rnd:
            return self.recipes[1]
        closed = view.closed(rnd - 1)
        return start_recipes(self.rule(closed), self.tracker.overlay, closed.submissions)


@dataclass
class RoundState:
    """Everything a peer's round engine carries between rounds (module docstring)."""

    memory: ChainMemory
    votes: dict[int, Votes] = field(default_factory=dict)  # committed, not yet revealed
    client_failures: set[int] = field(default_factory=set)  # rounds in which the task's client raised
