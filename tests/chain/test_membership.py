"""PeerRegistry and BDFLToken: join, leave, withdraw, reactivate, claim, endpoints, roles.

Each state-changing function is checked for the wrong caller, the wrong state and a
repeated call; the happy paths check events, balances and reputation persistence.
"""

from __future__ import annotations

import pytest

from bdfl.chain.deploy import TOKEN
from bdfl.chain.protocol import Phase, Status
from tests.chain.helpers import Env, reverts

pytestmark = pytest.mark.chain


def test_join_records_member_stake_endpoint_and_initial_reputation(env: Env) -> None:
    a = env.peers[0]
    before = a.token_balance()
    rc = a.join("http://peer-a:8000/", 150 * TOKEN)
    info = a.peer_info()
    assert info.status == Status.ACTIVE and info.known
    assert a.reputation_of() == env.params.rep_initial
    assert a.stake_of() == 150 * TOKEN
    assert a.token_balance() == before - 150 * TOKEN
    assert a.endpoint_of(a.address) == "http://peer-a:8000/"
    assert a.members() == [a.address]
    assert env.deployer.solvency().margin == 0
    ev = [e for e in a.events(rc["blockNumber"], rc["blockNumber"]) if e["event"] == "PeerJoined"]
    assert ev and ev[0]["args"]["peer"] == a.address and ev[0]["args"]["stake"] == 150 * TOKEN


def test_join_reverts_when_repeated_underfunded_or_bad_endpoint(env: Env) -> None:
    a, b = env.peers[0], env.peers[1]
    a.join("http://a:8000/")
    with reverts("AlreadyMember"):
        a.join("http://a:8000/")
    with reverts("StakeTooLow"):
        b.join("http://b:8000/", env.params.min_stake - 1)
    with reverts("EndpointInvalid"):
        b.join("")
    with reverts("EndpointInvalid"):
        b.join("x" * 257)


def test_join_without_allowance_reverts_with_erc20_error(env: Env) -> None:
    b = env.peers[1]
    b.approve(0)
    with reverts("ERC20InsufficientAllowance"):
        b.join("http://b:8000/")


def test_update_endpoint_member_only(env: Env) -> None:
    a, outsider = env.peers[0], env.peers[1]
    with reverts("NotActiveMember"):
        outsider.update_endpoint("http://x:8000/")
    a.join("http://a:8000/")
    a.update_endpoint("http://a2:8000/")
    assert a.endpoint_of(a.address) == "http://a2:8000/"
    with reverts("EndpointInvalid"):
        a.update_endpoint("")


def test_leave_takes_effect_after_the_round_and_returns_stake(env: Env) -> None:
    peers = env.join(env.peers[:5])
    leaver = peers[0]
    with reverts("NotActiveMember"):
        env.peers[6].leave()  # non-member
    leaver.leave()
    assert leaver.status_of() == Status.EXITING
    with reverts("AlreadyLeaving"):
        leaver.leave()  # repeated
    with reverts("NotLeft"):
        leaver.withdraw()  # round not over yet
    # an exiting member is still a member for the current round
    env.full_round(peers)
    assert leaver.status_of() == Status.LEFT
    assert leaver.address not in env.deployer.members()
    before = leaver.token_balance()
    stake = leaver.stake_of()
    assert stake == env.params.min_stake  # nothing slashed
    leaver.withdraw()
    assert leaver.token_balance() == before + stake
    assert leaver.status_of() == Status.NONE
    with reverts("NotLeft"):
        leaver.withdraw()  # repeated
    assert env.deployer.solvency().margin == 0


def test_withdraw_and_claim_revert_for_outsiders(env: Env) -> None:
    with reverts("NotLeft"):
        env.peers[3].withdraw()
    with reverts("NothingToClaim"):
        env.peers[3].claim()


def test_claim_pays_rewards_once(env: Env) -> None:
    peers = env.join(env.peers[:5])
    env.full_round(peers)
    a = next(c for c in peers if c.claimable() > 0)
    owed = a.claimable()
    bal = a.token_balance()
    sol = env.deployer.solvency()
    a.claim()
    assert a.token_balance() == bal + owed
    assert a.claimable() == 0
    with reverts("NothingToClaim"):
        a.claim()
    after = env.deployer.solvency()
    assert after.total_claimable == sol.total_claimable - owed and after.margin == 0


def test_reputation_survives_leave_and_rejoin_whitewashing(env: Env) -> None:
    peers = env.join(env.peers[:5])
    bad = peers[0]
    env.full_round(peers, bad={bad.address})  # honest committee rejects bad's update
    assert bad.reputation_of() < env.params.rep_initial
    bad.leave()
    env.full_round(peers, bad={bad.address})  # still a member (and audited) this round
    rep_after = bad.reputation_of()
    assert rep_after < env.params.rep_initial
    bad.withdraw()
    assert bad.status_of() == Status.NONE
    bad.join("http://again:8000/")  # same address: no reset
    assert bad.reputation_of() == rep_after
    # a brand-new address starts at rep_initial, below the honest peers that earned more
    fresh = env.peers[7]
    fresh.join("http://fresh:8000/")
    assert fresh.reputation_of() == env.params.rep_initial
    honest_best = max(c.reputation_of() for c in peers[1:])
    assert honest_best > fresh.reputation_of()


def test_missed_rounds_make_a_member_inactive_then_reactivate_or_leave(env: Env) -> None:
    peers = env.join(env.peers[:5])
    lazy = peers[4]
    active = peers[:4]
    env.full_round(active)  # round 0: lazy joined in round 0 -> not expected yet
    assert lazy.peer_info().missed_rounds == 0
    env.full_round(active)  # round 1: absent once
    assert lazy.peer_info().missed_rounds == 1
    # the absence penalty is the ReputationChanged right after the Absent event
    evs = [e for e in env.deployer.events(env.dep.block_number) if e["args"].get("peer") == lazy.address]
    i = next(i for i, e in enumerate(evs) if e["event"] == "Absent")
    change = evs[i + 1]
    assert change["event"] == "ReputationChanged" and change["tx"] == evs[i]["tx"]
    assert change["args"]["oldReputation"] - change["args"]["newReputation"] == env.params.rep_loss_absence
    r = env.full_round(active)  # round 2: absent twice = max_missed_rounds -> inactive
    assert lazy.status_of() == Status.INACTIVE
    assert lazy.address not in env.deployer.members()
    names = [e["event"] for e in env.deployer.events(env.dep.block_number) if e["args"].get("peer") == lazy.address]
    assert "PeerInactive" in names and names.count("Absent") == 2
    # an inactive peer cannot submit
    with reverts("NotActiveMember"):
        lazy.submit_update(r + 1, b"\x01" * 32, 1)
    with reverts("NotInactive"):
        peers[0].reactivate()  # only inactive members may reactivate
    lazy.reactivate()
    assert lazy.status_of() == Status.ACTIVE and lazy.peer_info().missed_rounds == 0
    assert lazy.address in env.deployer.members()
    # inactive -> leave is immediate
    env.full_round(active)  # joinRound = current: not expected this round
    env.full_round(active)
    env.full_round(active)
    assert lazy.status_of() == Status.INACTIVE
    lazy.leave()
    assert lazy.status_of() == Status.LEFT
    lazy.withdraw()


def test_protocol_only_functions_reject_other_callers(env: Env) -> None:
    reg = env.registry.functions
    a = env.peers[0]
    for call in (
        reg.onSubmit(a.address, 0, 0),
        reg.settle(a.address, 10**17, 10 * TOKEN, 0),
        reg.settleUpdate(a.address, False, 0),
        reg.recordOutcomes(0, 0, 2),
        reg.recordRewardCut(0, 0, TOKEN),
        reg.flushMint(),
        reg.sweep(0, 10),
        reg.openRound(5),
    ):
        with reverts("AccessControlUnauthorizedAccount"):
            a.sender.transact(call)
        with reverts("AccessControlUnauthorizedAccount"):
            env.deployer.sender.transact(call)  # the deployer renounced its admin role


def test_roles_are_frozen_after_deployment(env: Env) -> None:
    tok, reg = env.token.functions, env.registry.functions
    d = env.deployer
    with reverts("AccessControlUnauthorizedAccount"):
        d.sender.transact(tok.mint(d.address, 1))
    with reverts("AccessControlUnauthorizedAccount"):
        d.sender.transact(tok.grantRole(tok.MINTER_ROLE().call(), d.address))
    with reverts("AccessControlUnauthorizedAccount"):
        d.sender.transact(reg.grantRole(reg.PROTOCOL_ROLE().call(), d.address))
    assert tok.hasRole(tok.MINTER_ROLE().call(), env.dep.registry).call()
    assert reg.hasRole(reg.PROTOCOL_ROLE().call(), env.dep.round_manager).call()


def test_slashing_exhausts_stake_then_removes_member(env: Env) -> None:
    peers = env.join(env.peers[:5])
    bad = peers[0]
    slash = env.params.slash_amount
    rounds = 0
    while bad.status_of() == Status.ACTIVE and rounds < 6:
        stake = bad.stake_of()
        env.full_round(peers if bad.status_of() == Status.ACTIVE else peers[1:], bad={bad.address})
        rounds += 1
        if bad.stake_of() < stake:
            assert bad.stake_of() == max(0, stake - slash)
        assert env.deployer.solvency().margin == 0
    assert bad.stake_of() == 0
    assert bad.status_of() == Status.INACTIVE
    with reverts("StakeTooLow"):
        bad.reactivate(env.params.min_stake - 1)
    bad.reactivate(env.params.min_stake)
    assert bad.stake_of() == env.params.min_stake
    # burned, not paid to anyone: token supply shrank by the slashed total
    burned = [e for e in env.deployer.events(env.dep.block_number) if e["event"] == "StakeSlashed"]
    assert sum(e["args"]["amount"] for e in burned) == env.params.min_stake


def test_current_phase_is_submit_after_deploy(env: Env) -> None:
    assert env.deployer.current_round() == 0
    assert env.deployer.phase() == Phase.SUBMIT
