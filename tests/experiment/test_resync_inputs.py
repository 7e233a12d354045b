"""Which updates a restarted or joining simulated peer takes its model from
(:func:`bdfl.peer.stages.aggregate.resync_plan`, run by the worker's ``restart_peer``), on a
chain state read through the chain view of a stand-in chain: the ones
it would aggregate (approved, topped up to ``overlay.min_sources``), then, flagged
``fallback``, the next ones by weight (used only when none of the first verifies: the
worker's restart_peer) — and the same choice ``bdfl peer`` makes (StandalonePeer.resync)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from bdfl.chain.protocol import Outcome, PeerInfo, Phase, RoundInfo, Status, Submission
from bdfl.config import from_dict
from bdfl.peer import stages
from bdfl.peer.engine import PeerEngine
from bdfl.peer.overlay_tracker import OverlayTracker
from bdfl.peer.round_state import ChainMemory, RoundState
from bdfl.peer.standalone import StandalonePeer
from bdfl.peer.view import ProtocolView

N = 10
ADDRS = [f"0x{i + 1:040x}" for i in range(N)]  # digits only: already checksummed
SEED = b"\x05" * 32
REP = [0.3 + 0.05 * i for i in range(N)]
SAMPLES = [40 + 7 * i for i in range(N)]


class FakeChain:
    """One chain state, read as the simulation's keeper and as ``bdfl peer``'s chain client.
    ``approved[rnd]``: the indices approved in closed round ``rnd`` (default: ``approved[-1]``)."""

    def __init__(self, approved: dict[int, set[int]]) -> None:
        self.approved = approved

    def _approved(self, rnd: int) -> set[int]:
        return self.approved.get(rnd, self.approved[-1])

    def submissions(self, rnd: int) -> list[Submission]:
        ok = self._approved(rnd)
        return [Submission(i, a, SAMPLES[i], True, Outcome.APPROVED if i in ok else Outcome.REJECTED,
                           bytes([16 * rnd + i]) * 32, 0, 0, *((8, 0) if i in ok else (0, 8)))
                for i, a in enumerate(ADDRS) if i != 0]  # peer 0 was down: no submission

    def peer_states(self, addresses: list[str]) -> Any:
        return [(PeerInfo(a, Status.ACTIVE, True, 0, int(REP[ADDRS.index(a)] * 10**18), 0, 1, ADDRS.index(a)), 0, 0)
                for a in addresses]

    def endpoints_of(self, addresses: list[str]) -> dict[str, str]:
        return {a: self.endpoint_of(a) for a in addresses}

    def members(self) -> list[str]:
        return list(ADDRS)

    def round_info(self, rnd: int) -> RoundInfo:
        return RoundInfo(rnd, Phase.CLOSED, 0, N - 1, 5, 5, 5, 3, 0, len(self._approved(rnd)), pool=N, seed=SEED,
                         beacon=b"\x00" * 32, minted=0, beacon_reveals=0)

    def current_round(self) -> int:
        return 5

    def endpoint_of(self, peer: str) -> str:
        return f"http://p{ADDRS.index(peer)}/"


CFG = {"peers": N, "overlay": {"degree": 3, "min_sources": 2}, "defense": {"bdfl": {"weighting": "reputation_samples"}}}


class _Injector:
    """A simulated restart of peer 0 after closed round 4: an engine of the restarting peer
    over the worker's chain view and round memory (which watched the rounds, its overlay
    built from the start); ``_resync_inputs`` returns the plan's tiers as flagged dicts."""

    def __init__(self, chain: FakeChain) -> None:
        cfg = from_dict(CFG)
        tracker = OverlayTracker("expander", 3)
        tracker.update(ADDRS, SEED)
        memory = ChainMemory(cfg, tracker)
        memory.observed = 4  # the worker watched the closed rounds
        self.engine = PeerEngine(SimpleNamespace(address=ADDRS[0]), view=ProtocolView(chain, members=ADDRS),  # type: ignore[arg-type]
                                 fetch=None, task="t", state=RoundState(memory), cfg=cfg)  # type: ignore[arg-type]

    def _resync_inputs(self, _peer: int, closed: int) -> tuple[int, list[dict[str, Any]]]:
        rnd, tiers = stages.aggregate.resync_plan(self.engine, closed)
        return rnd, [{"peer": c.peer, "hash": c.hash, "url": c.url, "weight": c.weight, "index": c.index, "fallback": tier == 1}
                     for tier, cands in enumerate(tiers) for c in cands]


def _injector(chain: FakeChain) -> _Injector:
    return _Injector(chain)


def _weight(i: int) -> float:
    return REP[i] * SAMPLES[i]  # reputation_samples (the contract's cap is far above these)


def _nbs() -> list[str]:
    tracker = OverlayTracker("expander", 3)
    tracker.update(ADDRS, SEED)
    return [next(a for a in ADDRS if a.lower() == n) for n in tracker.overlay.neighbours(ADDRS[0])]


def test_neighbours_first_then_the_next_by_weight_as_fallback() -> None:
    inj = _injector(FakeChain({-1: set(range(N))}))
    rnd, cands = inj._resync_inputs(0, 4)
    assert rnd == 4
    first = [c["peer"] for c in cands if not c["fallback"]]
    fallback = [c["peer"] for c in cands if c["fallback"]]
    assert first == _nbs()
    others = sorted((a for a in ADDRS[1:] if a not in first), key=lambda a: -_weight(ADDRS.index(a)))
    assert fallback == others[:3]  # degree 3
    assert all(c["weight"] == pytest.approx(_weight(ADDRS.index(c["peer"]))) for c in cands)
    assert all(c["hash"] == "0x" + (bytes([16 * 4 + c["index"]]) * 32).hex() for c in cands)


def test_no_approved_neighbour_takes_the_nearest_approved_then_the_next_by_weight() -> None:
    nbs = {ADDRS.index(a) for a in _nbs()}
    inj = _injector(FakeChain({-1: set(range(1, N)) - nbs}))
    _rnd, cands = inj._resync_inputs(0, 2)
    first = [c["peer"] for c in cands if not c["fallback"]]
    assert len(first) == 2 and not {ADDRS.index(a) for a in first} & nbs  # min_sources = 2, from further out
    ranked = sorted((ADDRS[i] for i in set(range(1, N)) - nbs if ADDRS[i] not in first), key=lambda a: -_weight(ADDRS.index(a)))
    assert [c["peer"] for c in cands if c["fallback"]] == ranked[:3]


def test_a_round_without_an_approved_update_looks_one_round_further_back() -> None:
    inj = _injector(FakeChain({4: set(), 3: {5, 6}, -1: set(range(N))}))
    rnd, cands = inj._resync_inputs(0, 4)
    assert rnd == 3
    assert {c["peer"] for c in cands} == {ADDRS[5], ADDRS[6]}
    inj = _injector(FakeChain({-1: set()}))
    assert inj._resync_inputs(0, 4) == (4, [])


@pytest.mark.parametrize("approved", [{-1: set(range(N))}, {-1: {2, 5, 7, 8, 9}}, {4: set(), -1: {1, 3, 4}}])
def test_bdfl_peer_resyncs_from_the_same_updates(monkeypatch: pytest.MonkeyPatch, approved: dict[int, set[int]]) -> None:
    """The simulation's restart and ``bdfl peer``'s resync pick the same updates, in the same
    tiers, with the same weights, from the same round."""
    sim_round, sim = _injector(FakeChain(approved))._resync_inputs(0, 4)

    chain = FakeChain(approved)
    p: Any = StandalonePeer.__new__(StandalonePeer)
    p.chain = chain
    p.tracker = OverlayTracker("expander", 3)
    p.cfg = from_dict(CFG)
    p.address = ADDRS[0]
    p.peer = SimpleNamespace(address=ADDRS[0])
    p.view = ProtocolView(chain)
    p.engine = PeerEngine(p.peer, view=p.view, fetch=None, task="t", state=RoundState(ChainMemory(p.cfg, p.tracker)), cfg=p.cfg)  # type: ignore[arg-type]
    p.state = SimpleNamespace(last_aggregated=1)
    p.trained_round = None
    p.fetcher = SimpleNamespace(fetch_many=lambda items: {})
    tried: list[tuple[int, list[tuple[str, str, float]]]] = []
    monkeypatch.setattr("bdfl.peer.rejoin.resync_model", lambda peer, rnd, cands, fetched: tried.append(
        (rnd, [(c.peer, c.hash, c.weight) for c in cands])) or [])  # nothing verifies: both tiers are tried
    p.resync()

    want = [[(c["peer"], c["hash"], pytest.approx(c["weight"])) for c in sim if c["fallback"] == fb] for fb in (False, True)]
    assert [rnd for rnd, _ in tried] == [sim_round] * len(tried)
    assert [c for _, c in tried] == want
