"""RoundManager: phases, submissions, committee, commit-reveal, tally, finalize.

Every transaction is checked for the wrong caller, the wrong phase, a repeated call and
the protocol-specific abuses (replay across rounds, voting on one's own update, voting on
an unassigned update, copying another auditor's commitment, revealing late).
"""

from __future__ import annotations

import pytest
from eth_abi import encode
from eth_utils import keccak

from bdfl.chain.protocol import (
    Outcome,
    Phase,
    audit_seats,
    genesis_seed,
    new_salt,
    round_seed,
    trainer_bookings,
    vote_commitment,
)
from tests.chain.helpers import Env, reverts, update_hash
from tests.chain.model import Model

pytestmark = pytest.mark.chain


def _submitted_round(env: Env, n: int = 5) -> tuple[int, list]:
    peers = env.join(env.peers[:n])
    r = env.deployer.current_round()
    env.submit(peers, r)
    assert env.deployer.phase() == Phase.COMMIT  # everyone submitted: early advance
    return r, peers


# ------------------------------------------------------------------------ submit


def test_submit_reverts_for_non_member_repeat_empty_wrong_round_and_phase(env: Env) -> None:
    peers = env.join(env.peers[:3])
    a, outsider = peers[0], env.peers[6]
    with reverts("NotActiveMember"):
        outsider.submit_update(0, update_hash(0, outsider.address), 1)
    with reverts("WrongRound"):
        a.submit_update(1, update_hash(1, a.address), 1)
    with reverts("EmptyHash"):
        a.submit_update(0, b"\x00" * 32, 1)
    a.submit_update(0, update_hash(0, a.address), 1)
    with reverts("AlreadySubmitted"):
        a.submit_update(0, update_hash(0, a.address, 1), 1)
    env.jump()  # Submit deadline passes: late submissions revert even before anyone advances
    with reverts("DeadlinePassed"):
        peers[1].submit_update(0, update_hash(0, peers[1].address), 1)
    env.deployer.advance(0)
    with reverts("WrongPhase"):
        peers[1].submit_update(0, update_hash(0, peers[1].address), 1)


def test_num_samples_is_capped(env: Env) -> None:
    a = env.join(env.peers[:2])[0]
    a.submit_update(0, update_hash(0, a.address), 10**9)
    assert env.deployer.submission(0, 0).num_samples == env.params.max_samples


def test_seed_committee_and_assignments_match_the_documented_rules(env: Env) -> None:
    peers = env.join(env.peers[:8])
    for c in peers:
        c.submit_update(0, update_hash(0, c.address), 5)
    info = env.deployer.round_info(0)
    # round 0: nobody has a beacon commitment yet; the seed follows from the genesis seed
    genesis = genesis_seed(env.dep.chain_id, env.dep.round_manager)
    assert info.phase == Phase.COMMIT and info.beacon == b"\x00" * 32 and info.pool == 8
    assert info.seed == round_seed(genesis, b"\x00" * 32, 0)
    # committee: rejection sampling weighted by capped stake among members at or above the
    # reputation threshold, recomputed by the Python model
    model = Model(env.params)
    model.members = list(env.deployer.members())
    for m in model.members:
        model.peer(m).rep = env.deployer.reputation_of(m)
        model.peer(m).stake = env.deployer.stake_of(m)
    committee = env.deployer.committee(0)
    assert committee == model.draw_committee(info.seed, env.params.committee_size)
    assert len(committee) == len(set(committee)) <= env.params.committee_size
    # assignments: m seats per update, never the submitter's own seat
    k, m = len(committee), env.params.auditors_per_update
    subs = env.deployer.submissions(0)
    per_auditor: dict[str, list[int]] = {a: [] for a in committee}
    for s in subs:
        own = committee.index(s.peer) if s.peer in committee else None
        seats = audit_seats(info.seed, s.index, k, m, own)
        assert len(seats) == len(set(seats)) == min(m, k - (own is not None and m >= k))
        assert own not in seats
        auditors = env.deployer.auditors_of(0, s.index)
        assert auditors == [committee[x] for x in seats]
        assert s.peer not in auditors
        for a in auditors:
            per_auditor[a].append(s.index)
    for a in committee:
        assert env.deployer.assignments_of(0, a) == per_auditor[a]
    outside = [c.address for c in peers if c.address not in committee]
    assert outside and env.deployer.assignments_of(0, outside[0]) == []


# ------------------------------------------------------------------------ advance


def test_advance_needs_deadline_or_everyone(env: Env) -> None:
    peers = env.join(env.peers[:3])
    peers[0].submit_update(0, update_hash(0, peers[0].address), 1)
    with reverts("PhaseNotOver"):
        env.deployer.advance(0)
    with reverts("WrongRound"):
        env.deployer.advance(1)
    env.jump()
    env.peers[7].advance(0)  # anyone, even a non-member, may advance after the deadline
    assert env.deployer.phase() == Phase.COMMIT
    with reverts("PhaseNotOver"):
        env.deployer.advance(0)  # the Commit phase just started


def test_round_without_members_closes_by_deadline(env: Env) -> None:
    env.jump()
    env.deployer.advance(0)
    info = env.deployer.round_info(0)
    assert info.phase == Phase.FINALIZE and info.committee_size == 0  # empty committee: straight through
    with reverts("WrongPhase"):
        env.deployer.advance(0)
    env.deployer.finalize(0)
    assert env.deployer.current_round() == 1 and env.deployer.phase() == Phase.SUBMIT


# ------------------------------------------------------------------------ commit


def test_commit_reverts_for_outsider_wrong_phase_repeat_empty_and_late(env: Env) -> None:
    peers = env.join(env.peers[:5])
    a = peers[0]
    with reverts("WrongPhase"):
        a.commit(0, b"\x01" * 32)  # Submit phase
    env.submit(peers, 0)
    committee = env.deployer.committee(0)
    non_committee = [c for c in env.peers if c.address not in committee]
    with reverts("NotInCommittee"):
        non_committee[0].commit(0, b"\x01" * 32)
    aud = env.by_addr[committee[0]]
    with reverts("EmptyHash"):
        aud.commit(0, b"\x00" * 32)
    with reverts("WrongRound"):
        aud.commit(1, b"\x01" * 32)
    aud.commit(0, b"\x01" * 32)
    with reverts("AlreadyCommitted"):
        aud.commit(0, b"\x02" * 32)
    env.jump()
    with reverts("DeadlinePassed"):
        env.by_addr[committee[1]].commit(0, b"\x01" * 32)
    env.deployer.advance(0)
    assert env.deployer.phase() == Phase.REVEAL
    with reverts("WrongPhase"):
        env.by_addr[committee[1]].commit(0, b"\x01" * 32)


# ------------------------------------------------------------------------ reveal


def test_reveal_checks_commitment_caller_phase_and_repeat(env: Env) -> None:
    r, peers = _submitted_round(env)
    committee = env.deployer.committee(r)
    votes = env.honest_votes(r)
    first, second = committee[0], committee[1]
    idx, acc, salt = votes[first]
    with reverts("WrongPhase"):
        env.by_addr[first].reveal_votes(r, idx, acc, salt)  # still Commit
    env.by_addr[first].commit_votes(r, idx, acc, salt)
    for a in committee[2:]:
        env.by_addr[a].commit_votes(r, *votes[a])
    env.jump()  # `second` never commits
    env.deployer.advance(r)
    with reverts("NotInCommittee"):
        env.peers[7].reveal_votes(r, idx, acc, salt)
    with reverts("NotCommitted"):
        env.by_addr[second].reveal_votes(r, *votes[second])
    with reverts("LengthMismatch"):
        env.by_addr[first].reveal_votes(r, idx, acc + [True], salt)
    if idx:
        with reverts("CommitmentMismatch"):
            env.by_addr[first].reveal_votes(r, idx, [not acc[0]] + acc[1:], salt)  # changed vote
    with reverts("CommitmentMismatch"):
        env.by_addr[first].reveal_votes(r, idx, acc, new_salt())  # wrong salt
    env.by_addr[first].reveal_votes(r, idx, acc, salt)
    with reverts("AlreadyRevealed"):
        env.by_addr[first].reveal_votes(r, idx, acc, salt)
    env.jump()
    with reverts("DeadlinePassed"):  # a late reveal reverts even before anyone advances
        env.by_addr[committee[2]].reveal_votes(r, *votes[committee[2]])
    env.deployer.advance(r)
    with reverts("WrongPhase"):
        env.by_addr[committee[2]].reveal_votes(r, *votes[committee[2]])


def test_reveal_rejects_own_unassigned_duplicate_and_out_of_range_votes(env: Env) -> None:
    r, peers = _submitted_round(env, n=8)
    committee = env.deployer.committee(r)
    assert len(committee) == 4
    subs = env.deployer.submissions(r)
    own_of = {s.peer: s.index for s in subs}
    assign = {a: env.deployer.assignments_of(r, a) for a in committee}
    unassigned = [(a, u) for a in committee for u in range(len(subs)) if u not in assign[a] and u != own_of[a]]
    assert unassigned, "every auditor is assigned every other update (improbable)"
    a_un, u_un = unassigned[0]
    others = [a for a in committee if a != a_un]
    plans = {
        a_un: ([*assign[a_un], u_un], "NotAssigned"),
        others[0]: ([own_of[others[0]], *assign[others[0]]], "OwnUpdate"),
        others[1]: ([*assign[others[1]], assign[others[1]][0]], "DuplicateVote"),
        others[2]: ([*assign[others[2]], len(subs)], "IndexOutOfRange"),
    }
    salts = {a: new_salt() for a in committee}
    for a, (idx, _) in plans.items():
        env.by_addr[a].commit_votes(r, idx, [True] * len(idx), salts[a])
    assert env.deployer.phase() == Phase.REVEAL
    for a, (idx, err) in plans.items():
        with reverts(err):
            env.by_addr[a].reveal_votes(r, idx, [True] * len(idx), salts[a])
    # nothing was counted: the reverted reveals left every tally empty
    assert all(s.voted_mask == 0 for s in env.deployer.submissions(r))


def test_vote_copying_is_useless(env: Env) -> None:
    r, peers = _submitted_round(env, n=8)
    committee = env.deployer.committee(r)
    leader, copier = committee[0], committee[1]
    idx, acc, salt = env.honest_votes(r)[leader]
    c_leader = env.by_addr[leader].vote_commitment(r, idx, acc, salt)
    env.by_addr[leader].commit(r, c_leader)
    env.by_addr[copier].commit(r, c_leader)  # copies the leader's commitment bytes
    env.jump()
    env.deployer.advance(r)
    env.by_addr[leader].reveal_votes(r, idx, acc, salt)
    # the copier now knows the leader's votes and salt, yet cannot open the copied commitment
    with reverts("CommitmentMismatch"):
        env.by_addr[copier].reveal_votes(r, idx, acc, salt)
    assert env.by_addr[copier].vote_commitment(r, idx, acc, salt) != c_leader


def test_replayed_commitment_and_reveal_from_an_earlier_round_revert(env: Env) -> None:
    peers = env.join(env.peers[:4])  # 4 members, K = 4: everyone audits every round
    r0 = env.deployer.current_round()
    env.submit(peers, r0)
    votes0 = env.honest_votes(r0)
    env.commit_all(r0, votes0)
    env.reveal_all(r0, votes0)
    env.deployer.finalize(r0)
    r1 = env.deployer.current_round()
    env.submit(peers, r1)
    both = [a for a in env.deployer.committee(r1) if a in votes0]
    assert both
    a = both[0]
    idx, acc, salt = votes0[a]
    with reverts("WrongRound"):
        env.by_addr[a].reveal_votes(r0, idx, acc, salt)  # round r0 is closed
    env.by_addr[a].commit(r1, env.by_addr[a].vote_commitment(r0, idx, acc, salt))  # replayed commitment
    env.jump()
    env.deployer.advance(r1)
    with reverts("CommitmentMismatch"):
        env.by_addr[a].reveal_votes(r1, idx, acc, salt)


# ------------------------------------------------------------------------ finalize


def test_finalize_reverts_out_of_phase_bad_batch_and_after_close(env: Env) -> None:
    r, peers = _submitted_round(env)
    with reverts("WrongPhase"):
        env.deployer.finalize_batch(r, 10)
    votes = env.honest_votes(r)
    env.commit_all(r, votes)
    env.reveal_all(r, votes)
    with reverts("BadBatchSize"):
        env.deployer.finalize_batch(r, 0)
    with reverts("BadBatchSize"):
        env.deployer.finalize_batch(r, 201)
    receipts = env.deployer.finalize(r, batch=1)  # one item per transaction
    assert len(receipts) >= 5 + 4 + 5 - 1
    with reverts("WrongRound"):
        env.deployer.finalize_batch(r, 10)


def test_honest_round_approves_good_updates_and_slashes_the_bad_one(env: Env) -> None:
    r, peers = _submitted_round(env, n=6)
    bad = peers[2].address
    stake_bad = env.deployer.stake_of(bad)
    supply = env.token.functions.totalSupply().call()
    votes = env.honest_votes(r, bad={bad})
    env.commit_all(r, votes)
    env.reveal_all(r, votes)
    rc = env.deployer.finalize(r)
    approved = env.deployer.approved_updates(r)
    assert {p for p, _ in approved} == {c.address for c in peers} - {bad}
    assert all(h == update_hash(r, p) for p, h in approved)
    assert not env.deployer.is_approved(r, bad) and env.deployer.is_approved(r, peers[0].address)
    assert env.deployer.stake_of(bad) == stake_bad - env.params.slash_amount
    sub_bad = next(s for s in env.deployer.submissions(r) if s.peer == bad)
    assert sub_bad.outcome == Outcome.REJECTED and sub_bad.accepts == 0 and sub_bad.rejects >= env.params.quorum
    events = env.deployer.events(rc[0]["blockNumber"], rc[-1]["blockNumber"])
    fin = [e for e in events if e["event"] == "UpdateFinalized"]
    assert len(fin) == 6 and sum(e["args"]["approved"] for e in fin) == 5
    closed = [e for e in events if e["event"] == "RoundFinalized"]
    assert closed and closed[0]["args"]["approved"] == 5
    # minted rewards minus burned slash = change of total supply; registry stays solvent
    minted = sum(e["args"]["amount"] for e in events if e["event"] == "RewardCredited")  # auditors
    minted += sum(b.reward for b in trainer_bookings(env.deployer.events(0), r, env.params.update_reward))
    assert env.token.functions.totalSupply().call() == supply + minted - env.params.slash_amount
    assert env.deployer.solvency().margin == 0


def test_commit_without_reveal_is_penalized_and_no_quorum_means_undecided(env: Env) -> None:
    r, peers = _submitted_round(env)
    votes = env.honest_votes(r)
    env.commit_all(r, votes)  # everyone commits, nobody reveals
    env.jump()
    env.deployer.advance(r)
    assert env.deployer.phase() == Phase.FINALIZE
    stakes = {c.address: c.stake_of() for c in peers}
    rc = env.deployer.finalize(r)
    subs = env.deployer.submissions(r)
    assert all(s.outcome == Outcome.UNDECIDED for s in subs)
    assert env.deployer.approved_updates(r) == []
    assert {c.address: c.stake_of() for c in peers} == stakes  # undecided: nobody slashed
    events = env.deployer.events(rc[0]["blockNumber"], rc[-1]["blockNumber"])
    settled = [e for e in events if e["event"] == "AuditorSettled"]
    assert len(settled) == len(votes) and not any(e["args"]["revealed"] for e in settled)
    drops = [e for e in events if e["event"] == "ReputationChanged"]
    for a in votes:
        mine = [e for e in drops if e["args"]["peer"] == a]
        assert len(mine) == 1
        assigned = len(env.deployer.assignments_of(r, a))
        p = env.params
        assert mine[0]["args"]["oldReputation"] - mine[0]["args"]["newReputation"] == p.rep_loss_no_reveal + assigned * p.rep_loss_vote
    assert not any(e["event"] == "RewardCredited" for e in events)


def test_below_threshold_update_is_probation_not_aggregated(env: Env) -> None:
    peers = env.join(env.peers[:6])
    bad = peers[0]
    env.full_round(peers, bad={bad.address})
    env.full_round(peers, bad={bad.address})  # 0.5 -> 0.3 -> 0.1 (+ small audit effects)
    assert bad.reputation_of() < env.params.rep_threshold and not bad.eligible()
    claim0 = bad.claimable()
    rep0 = bad.reputation_of()
    r = env.full_round(peers)  # now it behaves; auditors accept its update
    sub = next(s for s in env.deployer.submissions(r) if s.peer == bad.address)
    assert not sub.eligible and sub.outcome == Outcome.PROBATION
    assert bad.address not in [p for p, _ in env.deployer.approved_updates(r)]
    assert bad.claimable() == claim0  # no token reward
    assert bad.reputation_of() == rep0 + env.params.rep_gain_update  # it is on no committee
    assert bad.address not in env.deployer.committee(r)


def test_view_helpers_agree_with_raw_abi_encoding(env: Env) -> None:
    salt = b"\x07" * 32
    a = env.peers[0].address
    cid, rm = env.dep.chain_id, env.dep.round_manager
    expect = keccak(encode(["uint256", "address", "uint256", "address", "uint256[]", "bool[]", "bytes32"],
                           [cid, rm, 3, a, [1, 5], [True, False], salt]))
    assert vote_commitment(3, a, [1, 5], [True, False], salt, chain_id=cid, contract=rm) == expect
    assert env.rounds.functions.voteCommitment(3, a, [1, 5], [True, False], salt).call() == expect
