"""What a peer aggregates after a round (the aggregate stage's plan, :func:`bdfl.peer.stages.aggregate.plan`,
which ``bdfl peer`` and the simulation's workers both run), read from a fake chain through
``bdfl peer``'s chain view (:class:`bdfl.peer.view.ProtocolView`) —
approved updates only, topped up to ``overlay.min_sources``, weights from reputation (and
the capped on-chain sample count), its own weight by the same formula even when its own
update was not approved — and the same plan for the resync after missed rounds."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace
from typing import Any

import pytest

from bdfl.chain.protocol import Outcome, PeerInfo, Phase, RoundInfo, Status, Submission
from bdfl.defense.audited import update_weight
from bdfl.peer import stages
from bdfl.peer.engine import PeerEngine
from bdfl.peer.overlay_tracker import OverlayTracker
from bdfl.peer.round_state import ChainMemory, RoundState
from bdfl.peer.view import ProtocolView

ADDRS = [f"0x{i:040x}" for i in range(1, 9)]  # 8 members (digits only: already checksummed)
REP = {a: 0.3 + 0.05 * i for i, a in enumerate(ADDRS)}
SAMPLES = {a: 40 + 10 * i for i, a in enumerate(ADDRS)}
SEED = b"\x11" * 32
ME = ADDRS[0]
# the ring the peer builds from the round seed: its two neighbours, then the two at distance 2
RING = OverlayTracker("ring", 2).update(ADDRS, SEED)
NB = sorted(RING.neighbours(ME))
FAR = sorted({m for n in NB for m in RING.neighbours(n)} - {ME, *NB})


class FakeChain:
    """Five committee seats vote on every update. ``contested``: seat 4 rejects these approved
    updates; ``dissenter``: seat 4 votes against the outcome on every update."""

    def __init__(self, approved: set[str], contested: set[str] = frozenset(), dissenter: bool = False) -> None:
        self.approved = approved
        self.contested = contested
        self.dissenter = dissenter

    def members(self) -> list[str]:
        return list(ADDRS)

    def peer_states(self, members: list[str]) -> list[tuple[PeerInfo, int, int]]:
        return [(PeerInfo(a, Status.ACTIVE, True, 0, int(REP[a] * 10**18), 0, 1, i), 0, 0) for i, a in enumerate(members)]

    def round_info(self, rnd: int) -> RoundInfo:
        return RoundInfo(rnd, Phase.CLOSED, 0, len(ADDRS), 5, 5, 5, 3, 0, len(self.approved), pool=len(ADDRS), seed=SEED,
                         beacon=b"\x00" * 32, minted=0, beacon_reveals=0)

    def submissions(self, rnd: int) -> list[Submission]:
        # approved 5-0 (or 4-1 when contested or with the dissenter), rejected 0-5 (1-4)
        out = []
        for i, a in enumerate(ADDRS):
            ok = a in self.approved
            accept = 0b11111 if ok else 0
            if (ok and a in self.contested) or self.dissenter:
                accept ^= 0b10000  # seat 4 votes the other way
            accepts = bin(accept).count("1")
            out.append(Submission(i, a, SAMPLES[a], True, Outcome.APPROVED if ok else Outcome.REJECTED,
                                  bytes([i + 1]) * 32, 0b11111, accept, accepts, 5 - accepts))
        return out

    def endpoint_of(self, peer: str) -> str:
        return f"http://{peer[-4:]}.example/"

    def committee(self, rnd: int) -> list[str]:
        return [ME]

    def assignments_of_many(self, rnd: int, members: list[str]) -> dict[str, list[int]]:
        return {ME: list(self.assigned)}

    assigned: list[int] = []


def _peer(defense: str, weighting: str, approved: set[str], min_sources: int = 2,
          contested: set[str] = frozenset(), max_reject_share: float = 1.0, dissenter: bool = False,
          dissent_limit: float = 1.0, memory: ChainMemory | None = None, chain: FakeChain | None = None) -> PeerEngine:
    """ME's round engine over ``bdfl peer``'s chain view of a fake chain."""
    audited = SimpleNamespace(weighting=weighting, max_reject_share=max_reject_share, dissent_limit=dissent_limit)
    cfg = SimpleNamespace(defense=SimpleNamespace(name=defense, bdfl=audited, rebuild_starts=False, consistency_window=5,
                                                  replay_window=1),
                          overlay=SimpleNamespace(min_sources=min_sources, degree=2, topology="ring", edge_probability=0.0))
    chain = chain or FakeChain(approved, contested, dissenter)
    return PeerEngine(SimpleNamespace(address=ME), view=ProtocolView(chain), fetch=None, task="t",  # type: ignore[arg-type]
                      state=RoundState(memory or ChainMemory(cfg)), cfg=cfg)


def _plan(engine: PeerEngine, rnd: int) -> Any:
    engine.view.refresh()
    return stages.aggregate.plan(engine, rnd)


def test_tops_up_to_min_sources_and_weighs_its_own_unapproved_model_by_samples_too() -> None:
    # its own update and one neighbour's were rejected: one approved neighbour, so the plan
    # adds the nearest approved peer at distance 2 (the lower address first)
    assert len(NB) == 2 and len(FAR) == 2
    approved = set(ADDRS) - {ME, NB[1]}
    plan = _plan(_peer("bdfl", "reputation_samples", approved), 3)
    got = {c.peer: c.weight for c in plan.candidates}
    assert set(got) == {NB[0], FAR[0]}
    assert got == {a: pytest.approx(update_weight(REP[a], SAMPLES[a], "reputation_samples")) for a in got}
    assert plan.own_weight == pytest.approx(REP[ME] * SAMPLES[ME])  # not reputation alone
    assert len(plan.candidates) == 2 and plan.closed.reputation[ME] == pytest.approx(REP[ME])
    assert all(c.hash == "0x" + (bytes([ADDRS.index(c.peer) + 1]) * 32).hex() for c in plan.candidates)
    assert all(c.url.endswith(".example/") for c in plan.candidates)


def test_reputation_weighting_and_no_top_up_when_enough_neighbours_are_approved() -> None:
    plan = _plan(_peer("bdfl", "reputation", set(ADDRS)), 3)
    assert {c.peer: c.weight for c in plan.candidates} == {a: pytest.approx(REP[a]) for a in NB}
    assert plan.own_weight == pytest.approx(REP[ME])


def test_baseline_takes_every_neighbour_submission_with_weight_one() -> None:
    plan = _plan(_peer("fedavg", "reputation", set()), 3)  # nothing approved: irrelevant
    assert {c.peer: c.weight for c in plan.candidates} == {a: 1.0 for a in NB}
    assert plan.own_weight == 1.0


def test_resync_uses_the_same_plan_then_the_fallbacks() -> None:
    """Resync after missed rounds takes the same sources as aggregation (min_sources top-up
    included), not only the direct neighbours; when none of them verifies (say their
    endpoints are down), the next usable updates by weight."""
    approved = set(ADDRS) - set(NB)  # both ring neighbours rejected
    e = _peer("bdfl", "reputation", approved)
    rnd, tiers = stages.aggregate.resync_plan(e, 3)
    rest = sorted(set(approved) - {ME, *FAR}, key=lambda a: (-REP[a], a))[:2]
    assert rnd == 3 and [[c.peer for c in t] for t in tiers] == [FAR, rest]


def test_a_contested_approval_is_left_out_under_max_reject_share_and_replaced() -> None:
    """Approved 4-1: aggregated by default, left out with max_reject_share = 0, and then
    the top-up brings the nearest clearly approved update instead."""
    plan = _plan(_peer("bdfl", "reputation", set(ADDRS), contested={NB[1]}), 3)
    assert {c.peer for c in plan.candidates} == set(NB)
    plan = _plan(_peer("bdfl", "reputation", set(ADDRS), contested={NB[1]}, max_reject_share=0.0), 3)
    assert {c.peer for c in plan.candidates} == {NB[0], FAR[0]}


def test_a_seat_that_votes_against_every_outcome_does_not_veto_under_dissent_limit() -> None:
    """Seat 4 rejects every approved update and accepts every rejected one (a colluding
    auditor). Under max_reject_share = 0 each of its vetoes keeps an update out: the peer
    aggregates nothing. With dissent_limit = 0.5 its votes do not count, while an honest seat
    that rejects one update in eight (a dissent share of 1/8) still keeps that one out."""
    approved = set(ADDRS) - {FAR[1]}
    veto = _plan(_peer("bdfl", "reputation", approved, max_reject_share=0.0, dissenter=True), 3)
    assert veto.candidates == []
    plan = _plan(_peer("bdfl", "reputation", approved, max_reject_share=0.0, dissenter=True, dissent_limit=0.5), 3)
    assert {c.peer for c in plan.candidates} == set(NB)
    plan = _plan(_peer("bdfl", "reputation", approved, contested={NB[1]}, max_reject_share=0.0, dissent_limit=0.5), 3)
    assert {c.peer for c in plan.candidates} == {NB[0], FAR[0]}


def test_replay_window_hashes_are_read_once_per_closed_round() -> None:
    """The audit's replay check needs the hashes of the last ``replay_window`` rounds; each
    closed round's submissions are read from the chain once, then kept while in the window."""
    chain = FakeChain(set(ADDRS))
    reads: list[int] = []
    subs = chain.submissions

    def counting(rnd: int) -> list[Submission]:
        reads.append(rnd)
        return [dataclasses.replace(s, update_hash=bytes([rnd + 1, s.index]) * 16) for s in subs(rnd)]

    chain.submissions = counting  # type: ignore[method-assign]
    e = _peer("bdfl", "reputation", set(ADDRS), chain=chain)
    e.cfg.defense.replay_window = 3
    m = e.memory
    want = {r: {"0x" + (bytes([r + 1, i]) * 16).hex() for i in range(len(ADDRS))} for r in range(6)}
    assert m.earlier_hashes(0, e.view) == frozenset()
    assert m.earlier_hashes(2, e.view) == want[0] | want[1]
    assert m.earlier_hashes(3, e.view) == want[0] | want[1] | want[2]
    e.view.refresh()  # a new phase: the view reads again, the round memory keeps closed rounds
    assert m.earlier_hashes(5, e.view) == want[2] | want[3] | want[4]
    assert m.earlier_hashes(5, e.view) == want[2] | want[3] | want[4]
    assert reads == [0, 1, 2, 3, 4]  # every closed round read once
    assert sorted(m.replay) == [2, 3, 4]  # rounds that left the window are dropped


def test_auditor_rebuilds_trainer_starts_and_earlier_moves_by_the_same_rule() -> None:
    """Round 4's auditor asks for each assigned trainer's recipe from closed round 3 (own
    update first, then the updates the shared rule lets it aggregate), fetched from the
    trainers' endpoints, and for its round-3 move: its round-3 update and the recipe it
    started round 3 from (remembered at round 2's close). A trainer rejected in round 3 has
    no such move. After a restart the closed round is read from the chain again and there
    is no history yet."""
    from bdfl.peer.sources import PastMove, start_recipes

    approved = set(ADDRS) - {NB[1]}
    chain = FakeChain(approved)
    trainers = [*ADDRS[2:6], NB[1]]
    chain.assigned = [ADDRS.index(a) for a in trainers]
    reads: list[int] = []
    subs_of = chain.submissions
    chain.submissions = lambda rnd: reads.append(rnd) or subs_of(rnd)  # type: ignore[method-assign]
    e = _peer("bdfl", "reputation", approved, chain=chain)
    e.cfg.defense.rebuild_starts = True
    e.cfg.defense.replay_window = 0  # the fake's hashes repeat every round: no replay check here
    e.state.memory = m = ChainMemory(e.cfg)
    _plan(e, 2)
    _plan(e, 3)
    e.view.refresh()
    inputs = stages.audit.audit_inputs(e, 4)
    assert reads == [2, 3, 4]  # the aggregations' reads and the open round's submissions, nothing more
    rule = m.rule(e.view.closed(3))
    expected = start_recipes(rule, m.tracker.overlay, subs_of(3))
    assert [c.peer for c in inputs.candidates] == trainers
    # each candidate carries the sample count its trainer claims on chain (the no-work test's step credit)
    assert [c.num_samples for c in inputs.candidates] == [SAMPLES[a] for a in trainers]
    assert inputs.recipes == {a: expected[a] for a in trainers}
    # the round-3 moves: same FakeChain hashes every round, recipes of round 3 from round 2's close
    started = start_recipes(m.rule(e.view.closed(2)), m.tracker.overlay, subs_of(2))
    want_past = {a: PastMove(3, expected[a][0].hash, started[a]) for a in trainers if a in approved}
    assert NB[1] in trainers and inputs.past == want_past
    assert {h for _u, h in stages.audit.wanted(inputs)} == {src.hash for a in trainers for src in [*expected[a], *started[a]]}
    by_hash = {"0x" + s.update_hash.hex(): s.peer for s in subs_of(3)}
    assert all(u == chain.endpoint_of(by_hash[h]) for u, h in stages.audit.wanted(inputs))
    # a second plan for the same closed round (a resync) keeps what the first one recorded
    _plan(e, 3)
    assert stages.audit.audit_inputs(e, 4).past == want_past
    # after a restart (its overlay saved): the closed round is read from the chain, no earlier moves are known
    e.state.memory = ChainMemory(e.cfg, OverlayTracker("ring", 2, overlay=m.tracker.overlay))
    e.view = ProtocolView(chain)
    reads.clear()
    again = stages.audit.audit_inputs(e, 4)
    assert sorted(reads) == [3, 4] and again.recipes == inputs.recipes and again.past == {}
    # nothing to rebuild in a first round, when switched off, or under a baseline
    assert stages.audit.audit_inputs(e, 0).recipes == {}
    e.cfg.defense.rebuild_starts = False
    assert stages.audit.audit_inputs(e, 4).recipes == {}
