"""What each simulated peer aggregates (the aggregate stage's plan, :func:`bdfl.peer.stages.aggregate.plan`,
for every peer of a worker sharing one round memory), on a chain state held in memory:
approved updates only, reputation (x samples) weights, and the top-up from beyond the
neighbours when too few of them were approved."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from bdfl.chain.protocol import Outcome
from bdfl.config import from_dict
from bdfl.defense.audited import update_weight
from bdfl.peer import stages
from bdfl.peer.engine import PeerEngine
from bdfl.peer.overlay_tracker import OverlayTracker
from bdfl.peer.round_state import ChainMemory, RoundState
from bdfl.peer.view import MemoryChainView

N = 12
ADDRS = [f"0x{i + 1:040X}".replace("0X", "0x") for i in range(N)]


class SimWorker:
    """The peers of one worker: one engine each over one in-memory chain view and one shared
    round memory (as :class:`bdfl.experiment.worker.Worker` holds them)."""

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg
        self.memory = ChainMemory(cfg)
        self.view = MemoryChainView(endpoints={a: f"http://p{i}/" for i, a in enumerate(ADDRS)},
                                    reputation={a: 0.3 + 0.05 * i for i, a in enumerate(ADDRS)})
        self.engines = [PeerEngine(SimpleNamespace(address=a), view=self.view, fetch=None, task="t",  # type: ignore[arg-type]
                                   state=RoundState(self.memory), cfg=cfg) for a in ADDRS]

    def _inputs(self, rnd: int, subs: list[Any]) -> tuple[dict[str, list[dict[str, Any]]], dict[str, float]]:
        """Close round ``rnd`` with ``subs``; each peer's plan: (candidates by peer, own weights)."""
        self.view.subs[rnd] = subs
        self.view.seeds[rnd] = b"\x07" * 32
        plans = {e.address: stages.aggregate.plan(e, rnd) for e in self.engines}
        return ({a: [{"peer": c.peer, "hash": c.hash, "url": c.url, "weight": c.weight, "index": c.index} for c in p.candidates]
                 for a, p in plans.items()}, {a: p.own_weight for a, p in plans.items()})


def _worker(**overrides: Any) -> SimWorker:
    # every approved update aggregated unless a test sets the clear-approval filter (the
    # default experiment's max_reject_share 0 / dissent_limit 0.5 need votes the fakes lack)
    defense = dict(overrides.pop("defense", {}))
    defense["bdfl"] = {"max_reject_share": 1.0, "dissent_limit": 1.0, **defense.get("bdfl", {})}
    return SimWorker(from_dict({"peers": N, "overlay": {"degree": 4}, "defense": defense, **overrides}))


def _subs(rejected: set[int], contested: set[int] = frozenset()) -> list[Any]:
    """Rejected: 1 accept, 7 rejects; contested: approved 6-2; the others approved 8-0."""
    def votes(i: int) -> tuple[int, int]:
        return (1, 7) if i in rejected else (6, 2) if i in contested else (8, 0)

    return [SimpleNamespace(peer=a, index=i, num_samples=10 + i, update_hash=bytes([i]) * 32,
                            outcome=Outcome.REJECTED if i in rejected else Outcome.APPROVED,
                            accepts=votes(i)[0], rejects=votes(i)[1]) for i, a in enumerate(ADDRS)]


def _graph() -> Any:
    t = OverlayTracker("expander", 4)
    return t.update(ADDRS, b"\x07" * 32)


@pytest.mark.parametrize("min_sources", [0, 2])
def test_only_approved_updates_with_reputation_weights(min_sources: int) -> None:
    o = _worker(overlay={"degree": 4, "min_sources": min_sources})
    g = _graph()
    me = ADDRS[0]
    nbs = [next(a for a in ADDRS if a.lower() == x) for x in g.neighbours(me)]
    rejected = {ADDRS.index(nbs[0])}  # one of four neighbours rejected: still 3 >= min_sources
    inputs, own = o._inputs(0, _subs(rejected))
    got = [c["peer"] for c in inputs[me]]
    assert got == nbs[1:]  # the approved neighbours, nobody else
    for c in inputs[me]:
        assert c["weight"] == pytest.approx(0.3 + 0.05 * ADDRS.index(c["peer"]))
        assert c["hash"] == "0x" + (bytes([ADDRS.index(c["peer"])]) * 32).hex()
    assert own[me] == pytest.approx(0.3)


def test_a_peer_whose_neighbours_were_rejected_tops_up_from_further_out() -> None:
    g = _graph()
    me = ADDRS[0]
    rejected = {i for i, a in enumerate(ADDRS) if a.lower() in g.neighbours(me)}
    inputs0, _ = _worker(overlay={"degree": 4, "min_sources": 0})._inputs(0, _subs(rejected))
    assert inputs0[me] == []  # neighbours only: nothing to aggregate
    inputs2, _ = _worker(overlay={"degree": 4, "min_sources": 2})._inputs(0, _subs(rejected))
    got = [c["peer"].lower() for c in inputs2[me]]
    two_hop = sorted({m for n in g.neighbours(me) for m in g.neighbours(n)} - {me.lower(), *g.neighbours(me)})
    assert got == two_hop[:2]  # the nearest approved updates, in address order


def test_weights_by_reputation_times_capped_samples() -> None:
    o = _worker(defense={"bdfl": {"weighting": "reputation_samples"}})
    inputs, own = o._inputs(0, _subs(set()))
    me = ADDRS[3]
    for c in inputs[me]:
        i = ADDRS.index(c["peer"])
        assert c["weight"] == pytest.approx(update_weight(0.3 + 0.05 * i, 10 + i, "reputation_samples"))
    assert own[me] == pytest.approx((0.3 + 0.15) * 13)


def test_baselines_take_every_neighbour_unweighted() -> None:
    o = _worker(defense={"name": "median"})
    g = _graph()
    inputs, own = o._inputs(0, _subs({1, 2, 3}))
    me = ADDRS[0]
    assert sorted(c["peer"].lower() for c in inputs[me]) == list(g.neighbours(me))
    assert all(c["weight"] == 1.0 for c in inputs[me]) and own[me] == 1.0


@pytest.mark.parametrize(("share", "kept"), [(1.0, True), (0.25, True), (0.2, False), (0.0, False)])
def test_max_reject_share_keeps_contested_approvals_out(share: float, kept: bool) -> None:
    """An update approved 6-2 is aggregated only when 2/8 of rejecting votes is tolerated;
    a unanimous approval always is. Baselines ignore votes."""
    g = _graph()
    me = ADDRS[0]
    nbs = [next(a for a in ADDRS if a.lower() == x) for x in g.neighbours(me)]
    contested = {ADDRS.index(nbs[0])}
    o = _worker(overlay={"degree": 4, "min_sources": 0}, defense={"bdfl": {"max_reject_share": share}})
    inputs, _ = o._inputs(0, _subs(set(), contested))
    assert [c["peer"] for c in inputs[me]] == (nbs if kept else nbs[1:])
    base = _worker(overlay={"degree": 4, "min_sources": 0}, defense={"name": "median", "bdfl": {"max_reject_share": 0.0}})
    assert len(base._inputs(0, _subs(set(), contested))[0][me]) == len(nbs)


def test_dissent_limit_discounts_a_colluding_seats_vetoes() -> None:
    """Eight seats; seat 7 rejects every approved update and accepts the rejected one (dissent
    share 1), seat 6 rejects one neighbour's update only (1/12). Under max_reject_share = 0
    the colluding seat's vetoes keep every update out; with dissent_limit = 0.5 only the
    update seat 6 rejected stays out."""
    g = _graph()
    me = ADDRS[0]
    nbs = [next(a for a in ADDRS if a.lower() == x) for x in g.neighbours(me)]
    rejected = {next(i for i in range(1, N) if ADDRS[i] not in nbs)}
    contested = ADDRS.index(nbs[0])

    def accept_mask(i: int) -> int:
        if i in rejected:
            return 0b1000_0000
        return 0b0011_1111 if i == contested else 0b0111_1111

    subs = [SimpleNamespace(peer=a, index=i, num_samples=10, update_hash=bytes([i]) * 32,
                            outcome=Outcome.REJECTED if i in rejected else Outcome.APPROVED,
                            voted_mask=0xFF, accept_mask=accept_mask(i),
                            accepts=bin(accept_mask(i)).count("1"), rejects=8 - bin(accept_mask(i)).count("1"))
            for i, a in enumerate(ADDRS)]
    got = {}
    for limit in (1.0, 0.5):
        o = _worker(overlay={"degree": 4, "min_sources": 0}, defense={"bdfl": {"max_reject_share": 0.0, "dissent_limit": limit}})
        got[limit] = [c["peer"] for c in o._inputs(0, subs)[0][me]]
    assert got == {1.0: [], 0.5: nbs[1:]}
