"""The in-memory chain of the mirror (:mod:`bdfl.peer.memory_chain`) follows the deployed
contracts: driven side by side with them on the devnet for five rounds, it draws the same
committees from the same seeds, assigns the same updates, reaches the same outcomes and
settles the same reputation, stake and reject streaks (the slashing line included), and its
draw equals ``PeerRegistry.drawCommitteeAmong`` on arbitrary seeds. The parameters are the
deployment's, built from the config like a run's (``setup.protocol_params``).

Adversary: a coalition holding reputation 1.0 gets no more seats than its head count (its
stake) gives it; reputation is only a floor.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from eth_utils import keccak

from bdfl.chain.deploy import ProtocolParams
from bdfl.chain.protocol import Outcome, genesis_seed, new_salt
from bdfl.config import from_dict
from bdfl.experiment.setup import protocol_params
from bdfl.peer.memory_chain import MemoryChain, Revert
from bdfl.peer.view import REP_SCALE
from tests.chain.helpers import LONG, Env, Proto, setup_proto, snapshot_env, update_hash

CFG = from_dict({"peers": 8, "overlay": {"degree": 4}, "protocol": {"committee_size": 5, "auditors_per_update": 3, "quorum": 2}})
#: the run's parameters (entry fee, probation, slashing line C = 3 ...) with phases that never
#: expire unless the test jumps time
PARAMS = dataclasses.replace(protocol_params(CFG), submit_duration=LONG, commit_duration=LONG, reveal_duration=LONG)


@pytest.fixture(scope="module")
def proto(devnet: Any, artifacts: Any) -> Proto:
    return setup_proto(devnet, artifacts, params=PARAMS)


@pytest.fixture()
def env(proto: Proto) -> Iterator[Env]:
    with snapshot_env(proto) as env:
        yield env


def _same_state(env: Env, mem: MemoryChain) -> None:
    d = env.deployer
    assert d.members() == mem.members
    assert d.current_round() == mem.round
    for info, stake, _claimable in d.peer_states([c.address for c in env.peers]):
        m = mem.member(info.address)
        assert (int(info.status), info.reputation, info.reject_streak, info.missed_rounds, stake) == \
            (int(m.status), m.reputation, m.reject_streak, m.missed, m.stake), info.address
        assert mem.view.reputation[info.address] == info.reputation / REP_SCALE


@pytest.mark.chain
def test_draw_assignment_outcome_and_settlement_match_the_contracts(env: Env) -> None:
    d = env.deployer
    mem = MemoryChain(env.params, genesis_seed(env.dep.chain_id, env.dep.round_manager))
    for i, c in enumerate(env.peers):
        url = f"http://127.0.0.1:{9000 + i}/"
        c.join(url)
        mem.join(c.address, env.params.min_stake, url)
    _same_state(env, mem)
    addrs = [c.address for c in env.peers]
    bad = {addrs[1], addrs[5]}
    outcomes_seen: set[Outcome] = set()
    # the genesis seed depends on the RoundManager's address (the devnet's nonce, so the suite's
    # order): run until both bad peers crossed the slashing line, at least five rounds, at most 12
    for rnd in range(12):
        if rnd >= 5 and all(mem.member(a).stake < env.params.min_stake - env.params.entry_fee for a in bad):
            break
        r = d.current_round()
        assert r == rnd == mem.round
        for c in env.peers:
            if c.address not in mem.members or (rnd == 3 and c.address == addrs[7]):  # peer 7 misses round 3
                continue
            h = update_hash(r, c.address, int(c.address in bad))
            beacon = c.beacon_args(r)
            c.submit_update(r, h, 50, beacon=beacon)
            mem.submit(c.address, h, 50, beacon)
        if mem.phase == 0:  # not every member submitted: the deadline passes
            env.jump()
            d.advance(r)
            mem.close_submissions()
        assert d.round_info(r).seed == mem.seed
        committee = d.committee(r)
        assert committee == mem.committee and len(committee) >= 3
        assert d.assignments_of_many(r, committee) == {a: mem.assignments(a) for a in committee}
        assert mem.view.assigned[r] == {a: mem.assignments(a) for a in committee}
        subs = d.submissions(r)
        silent = committee[-1] if rnd == 2 else None  # commits, never reveals
        plans = {}
        for s, a in enumerate(committee):
            idx = mem.assignments(a)
            acc = [subs[u].peer not in bad for u in idx]
            if s == 0:
                acc = [not x for x in acc]  # against the majority
            if s == 1:
                idx, acc = idx[: len(idx) // 2], acc[: len(acc) // 2]  # abstains on the rest
            plans[a] = (idx, acc, new_salt())
            env.by_addr[a].commit_votes(r, *plans[a])
        for a, (idx, acc, salt) in plans.items():
            if a != silent:
                env.by_addr[a].reveal_votes(r, idx, acc, salt)
                mem.reveal(a, idx, acc)
        if d.round_info(r).phase != 3:
            env.jump()
            d.advance(r)
        d.finalize(r)
        outcomes = mem.finalize()
        chain_subs = d.submissions(r)
        assert [s.outcome for s in chain_subs] == outcomes
        assert [(s.voted_mask, s.accept_mask, s.accepts, s.rejects, s.eligible) for s in chain_subs] == \
            [(s.voted_mask, s.accept_mask, s.accepts, s.rejects, s.eligible) for s in mem.view.subs[r]]
        outcomes_seen |= set(outcomes)
        _same_state(env, mem)
    # the scenario reached the slashing line (C = 3 rejections in a row) and the absence rule
    assert Outcome.REJECTED in outcomes_seen and Outcome.APPROVED in outcomes_seen
    assert all(mem.member(a).stake < env.params.min_stake - env.params.entry_fee for a in bad)
    assert mem.member(addrs[7]).missed == 0 and any(m.reputation < env.params.rep_threshold for m in mem.peers.values())
    # the draw itself, on seeds no round used, over the state the rounds left (two members below the threshold)
    for j in range(24):
        seed = keccak(b"draw %d" % j)
        for k, pool in ((5, 8), (8, 8), (3, 5)):
            assert [a for a in env.registry.functions.drawCommitteeAmong(seed, k, pool).call()] == mem.draw_committee(seed, k, pool)


def test_the_contracts_refusals_are_kept() -> None:
    mem = MemoryChain(ProtocolParams(committee_size=4, auditors_per_update=3, quorum=2))
    a, b = "0x" + "aa" * 20, "0x" + "bb" * 20
    with pytest.raises(Revert) as info:
        mem.join(a, mem.p.min_stake - 1)
    assert info.value.name == "StakeTooLow"
    mem.join(a, mem.p.min_stake)
    mem.join(b, mem.p.min_stake)
    h = keccak(b"u")
    mem.submit(a, h, 10)
    with pytest.raises(Revert) as info:
        mem.submit(b, h, 10)  # the same bytes twice in a round
    assert info.value.name == "DuplicateHash"
    with pytest.raises(Revert) as info:
        mem.submit(a, keccak(b"v"), 10)
    assert info.value.name == "AlreadySubmitted"


def test_a_high_reputation_coalition_gets_no_more_seats_than_its_stake_share() -> None:
    """Adversary: 4 of 10 members hold reputation 1.0 (earned, say, by updates that slipped
    through), the 6 others sit at the threshold; all hold the minimum stake. Over 400 seeds
    the coalition's share of seats stays at its head count (40 %), not its share of reputation
    (4 / (4 + 1.8) = 69 %); a member with half the stake gets half the seats."""
    params = protocol_params(from_dict({"peers": 10, "overlay": {"degree": 4}, "protocol": {"committee_size": 5, "auditors_per_update": 3, "quorum": 2}}))
    mem = MemoryChain(params)
    addrs = [f"0x{i:040x}" for i in range(1, 11)]
    for a in addrs:
        mem.join(a, params.min_stake + params.entry_fee)  # stake = min_stake after the fee
    coalition = set(addrs[:4])
    for a in addrs:
        mem.member(a).reputation = REP_SCALE if a in coalition else params.rep_threshold
    seats = {a: 0 for a in addrs}
    for j in range(400):
        for a in mem.draw_committee(keccak(b"seed %d" % j), params.committee_size):
            seats[a] += 1
    total = sum(seats.values())
    share = sum(seats[a] for a in coalition) / total
    assert total == 400 * params.committee_size
    assert 0.34 < share < 0.46, share  # head count 0.40; reputation-weighted would be ~0.69
    # stake, not reputation, weighs: an honest member with half the stake (below min_stake)
    half = addrs[9]
    mem.member(half).stake = params.min_stake // 2
    mem.member(addrs[0]).stake = 5 * params.min_stake  # stake above the minimum buys nothing more
    seats = {a: 0 for a in addrs}
    for j in range(400):
        for a in mem.draw_committee(keccak(b"seed %d" % j), params.committee_size):
            seats[a] += 1
    others = [seats[a] for a in addrs[4:9]]
    assert seats[half] < 0.8 * min(others)
    assert seats[addrs[0]] < 1.25 * max(others)
    # below the threshold: never drawn, whatever its stake
    mem.member(addrs[8]).reputation = params.rep_threshold - 1
    assert all(addrs[8] not in mem.draw_committee(keccak(b"x %d" % j), params.committee_size) for j in range(100))
