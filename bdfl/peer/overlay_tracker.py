"""The overlay rule shared by every driver of a peer: build once, repair on membership change.

Every peer derives the graph itself from public chain state, with no coordinator:

* the first time it needs the overlay (after the first round it aggregates), it builds
  ``build_overlay(topology, active_members, seed_of_that_round)``;
* afterwards, whenever the set of active members differs from the graph's members, it
  calls ``repair_overlay(previous, active_members, seed_of_the_current_round)``, which
  changes few edges (docs/net.md, "Overlay repair rule");
* otherwise the graph stays as it is.

Peers that start together (same first round) and see the same member sets after each
round's close therefore hold the same graph. A peer that starts later (or restarts without
its saved graph) builds from a later round's seed and may hold a different graph than the
peers that were there from the start: see docs/peer.md, "Limitations". The graph can be
saved (:meth:`OverlayTracker.to_json`) so that a restarted peer keeps it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bdfl.net.overlay import Overlay, build_overlay, canonical_members, repair_overlay


class OverlayTracker:
    """Holds one peer's current overlay and applies the build-once / repair rule."""

    def __init__(self, topology: str, degree: int | None, p: float | None = None, overlay: Overlay | None = None) -> None:
        self.topology = topology
        self.degree = degree
        self.p = p
        self.overlay = overlay
        self.rebuilt = 0  # builds + repairs, for logs and tests

    def update(self, members: Iterable[str], seed: bytes | str) -> Overlay:
        """The overlay over ``members`` (the active members after a round's close), built
        or repaired from ``seed`` (that round's seed) only when needed."""
        ms = canonical_members(members)
        if self.overlay is None:
            self.overlay = build_overlay(self.topology, ms, seed, degree=self.degree, p=self.p)
            self.rebuilt += 1
        elif tuple(self.overlay.members) != ms:
            self.overlay = repair_overlay(self.overlay, ms, seed, degree=self.degree)
            self.rebuilt += 1
        return self.overlay

    def neighbours(self, address: str) -> tuple[str, ...]:
        """Lowercase neighbour addresses of ``address`` (empty if it is not in the graph)."""
        if self.overlay is None or address not in self.overlay:
            return ()
        return self.overlay.neighbours(address)

    # -- persistence ----------------------------------------------------------------
    def to_json(self) -> dict[str, Any] | None:
        o = self.overlay
        if o is None:
            return None
        return {"kind": o.kind, "degree": o.degree, "p": o.p, "adjacency": {m: list(ns) for m, ns in o.as_dict().items()}}

    @classmethod
    def from_json(cls, topology: str, degree: int | None, p: float | None, data: dict[str, Any] | None) -> "OverlayTracker":
        """A tracker holding a saved graph; a graph saved under other settings is dropped."""
        overlay = None
        if data and data.get("kind") == topology and (topology != "expander" or data.get("degree") == degree):
            try:
                overlay = Overlay(str(data["kind"]), int(data["degree"]), {str(k): [str(x) for x in v] for k, v in data["adjacency"].items()}, p=data.get("p"))
            except (KeyError, TypeError, ValueError):
                overlay = None
        return cls(topology, degree, p, overlay)
