"""The slashing line (issue 22, docs/protocol.md "Rejection and slashing").

A rejected update is kept out of aggregation, earns nothing and lowers its trainer's
reputation; the stake is slashed only for a reversal confirmed over rounds: the trainer's
``slash_after_rejections`` (C = 3 here, the default) rejections in a row. Before that the
reputation loss stops at the threshold, so an honest peer with odd data stays eligible.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from bdfl.chain.protocol import Outcome
from tests.chain.helpers import TEST_PARAMS, Env, Proto, setup_proto

pytestmark = pytest.mark.chain

C = 3
SLASH_LINE_PARAMS = dataclasses.replace(TEST_PARAMS, slash_after_rejections=C)


@pytest.fixture(scope="module")
def proto(devnet: Any, artifacts: Any) -> Proto:
    """This module's deployment: TEST_PARAMS with the default slashing line C = 3."""
    return setup_proto(devnet, artifacts, SLASH_LINE_PARAMS)


def _outcome(env: Env, r: int, peer: str) -> Outcome:
    return next(s.outcome for s in env.deployer.submissions(r) if s.peer == peer)


def test_honest_outlier_rejected_now_and_then_keeps_its_stake_and_eligibility(env: Env) -> None:
    """An honest peer whose update is rejected in two rounds of every three (never C in a row)
    over nine rounds: never slashed, never below the threshold, still drawn to committees;
    each rejection is counted (streak) and reset by the next approval; its rejected updates
    are not aggregated and earn nothing."""
    p = env.params
    peers = env.join(env.peers[:6])
    outlier = peers[0]
    stake0 = outlier.stake_of()
    streaks = []
    for i in range(9):
        rejected = i % 3 != 2
        claim0 = outlier.claimable()
        r = env.full_round(peers, bad={outlier.address} if rejected else set())
        assert _outcome(env, r, outlier.address) == (Outcome.REJECTED if rejected else Outcome.APPROVED)
        if rejected:
            assert outlier.address not in [a for a, _ in env.deployer.approved_updates(r)]
        if rejected and outlier.address not in env.deployer.committee(r):
            assert outlier.claimable() == claim0  # no update reward (nor vote reward off the committee)
        streaks.append(outlier.peer_info().reject_streak)
        assert outlier.stake_of() == stake0, f"slashed in round {r}"
        assert outlier.reputation_of() >= p.rep_threshold and outlier.eligible()
    assert streaks == [1, 2, 0] * 3
    assert env.deployer.events(env.dep.block_number) and not [
        e for e in env.deployer.events(env.dep.block_number) if e["event"] == "StakeSlashed"
    ]


def test_persistent_attacker_is_slashed_from_its_c_th_rejection_in_a_row(env: Env) -> None:
    """Rejected every round: rounds 1 .. C-1 cost reputation down to the threshold and no stake;
    from the C-th rejection in a row on, every rejection burns ``slash_amount`` and the full
    reputation loss applies (it falls below the threshold: no committee seat, not aggregated)."""
    p = env.params
    peers = env.join(env.peers[:6])
    bad = peers[0]
    stake0 = bad.stake_of()
    block0 = env.w3.eth.block_number
    for i in range(1, C + 2):
        env.full_round(peers, bad={bad.address})
        info = bad.peer_info()
        assert info.reject_streak == i
        confirmed = max(0, i - C + 1)
        assert bad.stake_of() == stake0 - confirmed * p.slash_amount
        if i < C:
            assert bad.reputation_of() >= p.rep_threshold
    assert bad.reputation_of() < p.rep_threshold and not bad.eligible()
    events = env.deployer.events(block0)
    counted = [(e["args"]["streak"], e["args"]["confirmed"]) for e in events
               if e["event"] == "RejectionCounted" and e["args"]["peer"] == bad.address]
    assert counted == [(i, i >= C) for i in range(1, C + 2)]
    slashed = [e["args"]["amount"] for e in events if e["event"] == "StakeSlashed"]
    assert slashed == [p.slash_amount, p.slash_amount]  # rounds C and C + 1, nobody else


def _rejection_rep(env: Env, block0: int, peer: str) -> list[tuple[int, int]]:
    """(old, new) reputation booked by each rejection of ``peer`` since ``block0``: the
    ReputationChanged that follows its RejectionCounted in the same transaction (none when
    the rejection changed nothing: reported as (rep, rep))."""
    out = []
    events = env.deployer.events(block0)
    for i, e in enumerate(events):
        if e["event"] != "RejectionCounted" or e["args"]["peer"] != peer:
            continue
        nxt = next((f for f in events[i + 1 :] if f["args"].get("peer") == peer), None)
        if nxt is not None and nxt["event"] == "ReputationChanged" and nxt["tx"] == e["tx"]:
            out.append((nxt["args"]["oldReputation"], nxt["args"]["newReputation"]))
        else:
            out.append((-1, -1))  # no change booked
    return out


def test_unconfirmed_rejection_stops_at_the_threshold_and_an_approval_resets_the_count(env: Env) -> None:
    """Reputation arithmetic of the line: each unconfirmed rejection costs repLossUpdate but
    stops at the threshold (nothing at all once there); an approval resets the streak, so
    the next two rejections are unconfirmed again and the stake is never touched. (Vote
    rewards of committee seats move reputation too; only the rejections' own bookings are
    checked.)"""
    p = env.params
    peers = env.join(env.peers[:6])
    x = peers[0]
    stake0 = x.stake_of()
    block0 = env.w3.eth.block_number
    for bad in (True, True, False, True, True):
        env.full_round(peers, bad={x.address} if bad else set())
        if not bad:
            assert x.peer_info().reject_streak == 0
    booked = _rejection_rep(env, block0, x.address)
    assert len(booked) == 4 and booked[0] != (-1, -1)  # the first one, from repInitial, books a loss
    for old, new in booked:
        if old == -1:
            continue  # already at (or below) the threshold: nothing more to lose
        assert new == max(p.rep_threshold, old - p.rep_loss_update)
    assert x.reputation_of() >= p.rep_threshold and x.peer_info().reject_streak == 2
    assert x.stake_of() == stake0


def test_attacker_cannot_dodge_its_booking_by_leaving_during_the_round(env: Env) -> None:
    """Adversary of the sweep booking (issue 23: trainers are booked by the member sweep,
    not by the update stage of finalize). An attacker rejected C-1 times in a row submits
    again and, before the round is finalized, asks to leave, hoping the sweep removes it
    before it books its C-th rejection. The sweep books a member's update before it handles
    the exit: the C-th rejection is booked in the round it was decided, the stake is slashed,
    and the withdrawal after unbonding returns the stake minus the slash."""
    p = env.params
    peers = env.join(env.peers[:6])
    bad = peers[0]
    stake0 = bad.stake_of()
    for _ in range(C - 1):
        env.full_round(peers, bad={bad.address})
    assert bad.peer_info().reject_streak == C - 1 and bad.stake_of() == stake0
    rep_before = bad.reputation_of()
    r = env.deployer.current_round()
    env.submit(peers, r)  # its C-th rejected update: the Submit phase ends with the last one
    bad.leave()  # Exiting from now on; the sweep of round r removes it
    votes = env.honest_votes(r, {bad.address})
    env.commit_all(r, votes)
    env.reveal_all(r, votes)
    env.deployer.finalize(r)
    assert _outcome(env, r, bad.address) == Outcome.REJECTED
    info = bad.peer_info()
    assert info.status.name == "LEFT" and info.reject_streak == C
    assert bad.stake_of() == stake0 - p.slash_amount, "the confirmed rejection was not slashed"
    assert bad.reputation_of() < rep_before
    for _ in range(p.unbonding_rounds + 1):
        env.full_round(peers[1:])
    before = bad.token_balance()
    bad.withdraw()
    assert bad.token_balance() - before == stake0 - p.slash_amount
