"""Which updates a restarted or joining simulated peer takes its model from
(FaultInjector._resync_inputs), on a chain state read through a stand-in keeper: its
neighbours' approved updates first, then, flagged ``fallback``, the next most reputable
approved ones (used only when none of the first verifies: the worker's restart_peer)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from bdfl.chain.protocol import Outcome
from bdfl.config import from_dict
from bdfl.experiment.faults import FaultInjector
from bdfl.peer.overlay_tracker import OverlayTracker

N = 10
ADDRS = [f"0x{i + 1:040x}" for i in range(N)]
SEED = b"\x05" * 32
REP = [0.3 + 0.05 * i for i in range(N)]


class FakeKeeper:
    def __init__(self, approved: set[int]) -> None:
        self.approved = approved

    def submissions(self, rnd: int) -> list[Any]:
        return [SimpleNamespace(peer=a, index=i, update_hash=bytes([i]) * 32,
                                outcome=Outcome.APPROVED if i in self.approved else Outcome.REJECTED)
                for i, a in enumerate(ADDRS)]

    def peer_states(self, addresses: list[str]) -> dict[str, dict[str, Any]]:
        return {a: {"reputation": REP[ADDRS.index(a)]} for a in addresses}

    def endpoints(self, addresses: list[str]) -> dict[str, str]:
        return {a: f"http://p{ADDRS.index(a)}/" for a in addresses}

    def round_seed(self, rnd: int) -> bytes:
        return SEED


def _injector(approved: set[int]) -> FaultInjector:
    tracker = OverlayTracker("expander", 3)
    tracker.update(ADDRS, SEED)
    orch = SimpleNamespace(cfg=from_dict({"peers": N, "overlay": {"degree": 3}}), addresses=ADDRS,
                           keeper=FakeKeeper(approved), overlay_tracker=tracker)
    return FaultInjector(orch)


def test_neighbours_first_then_the_most_reputable_others_as_fallback() -> None:
    inj = _injector(set(range(N)))
    me = 0
    nbs = inj.o.overlay_tracker.overlay.neighbours(ADDRS[me])
    rnd, cands = inj._resync_inputs(me, 4)
    assert rnd == 4
    first = [c["peer"] for c in cands if not c["fallback"]]
    fallback = [c["peer"] for c in cands if c["fallback"]]
    assert first == [next(a for a in ADDRS if a.lower() == n) for n in nbs]
    others = sorted((a for a in ADDRS if a.lower() not in nbs and a != ADDRS[me]), key=lambda a: -REP[ADDRS.index(a)])
    assert fallback == others[:3]  # degree 3
    assert all(c["weight"] == REP[ADDRS.index(c["peer"])] for c in cands)


def test_no_approved_neighbour_uses_the_most_reputable_and_falls_back_to_the_next() -> None:
    inj = _injector(set())
    nbs = {n for n in inj.o.overlay_tracker.overlay.neighbours(ADDRS[0])}
    inj.o.keeper.approved = {i for i, a in enumerate(ADDRS) if a.lower() not in nbs and i != 0}
    _rnd, cands = inj._resync_inputs(0, 2)
    ranked = sorted((ADDRS[i] for i in inj.o.keeper.approved), key=lambda a: -REP[ADDRS.index(a)])
    assert [c["peer"] for c in cands if not c["fallback"]] == ranked[:3]
    assert [c["peer"] for c in cands if c["fallback"]] == ranked[3:6]
