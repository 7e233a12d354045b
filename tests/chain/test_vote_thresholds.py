"""``approvePercent`` / ``rejectPercent``: an approval needs more than the first share of
the revealed votes, a rejection (which slashes) more than the second; in between, or below
the quorum, the update is Undecided.

A deployment with K = 6 seats and m = 5 auditors per update, so 3 of 5 is a simple majority
but not two thirds. Run with the contract defaults (approve 50, reject 66), with simple
majorities for both (50 / 50), and with a consensus needed to approve (70 / 66).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest

from bdfl.chain.protocol import Outcome, Phase, new_salt
from tests.chain.helpers import TEST_PARAMS, Env, setup_proto, snapshot_env

pytestmark = pytest.mark.chain


@pytest.fixture(scope="module", params=[(50, 66), (50, 50), (70, 66)], ids=["defaults", "majorities", "consensus"])
def env5(request: Any, devnet: Any, artifacts: Any) -> Iterator[Env]:
    approve, reject = request.param
    params = dataclasses.replace(
        TEST_PARAMS, committee_size=6, auditors_per_update=5, quorum=3, approve_percent=approve, reject_percent=reject
    )
    proto = setup_proto(devnet, artifacts, params)
    with snapshot_env(proto) as env:
        yield env


def test_outcome_needs_more_than_the_percentages_of_the_votes(env5: Env) -> None:
    env = env5
    pct, approve = env.params.reject_percent, env.params.approve_percent
    peers = env.join(env.peers)
    r = env.deployer.current_round()
    env.submit(peers, r)
    assert env.deployer.phase() == Phase.COMMIT
    committee = env.deployer.committee(r)
    assert len(committee) == 6
    subs = env.deployer.submissions(r)
    # four target updates and how many of their 5 auditors reject each
    targets = {subs[0].index: 3, subs[1].index: 4, subs[2].index: 2, subs[3].index: 1}
    auditors = {u: env.deployer.auditors_of(r, u) for u in targets}
    assert all(len(a) == 5 for a in auditors.values())
    votes = {}
    for a in committee:
        idx = env.deployer.assignments_of(r, a)
        acc = [not (u in targets and auditors[u].index(a) < targets[u]) for u in idx]
        votes[a] = (idx, acc, new_salt())
    env.commit_all(r, votes)
    env.reveal_all(r, votes)
    stakes = {s.peer: env.deployer.stake_of(s.peer) for s in subs}
    env.deployer.finalize(r)
    after = {s.index: s for s in env.deployer.submissions(r)}
    for u, rejects in targets.items():
        s = after[u]
        assert (s.accepts, s.rejects) == (5 - rejects, rejects)
        if 100 * (5 - rejects) > 5 * approve:
            expected = Outcome.APPROVED
        elif 100 * rejects > 5 * pct:
            expected = Outcome.REJECTED
        else:
            expected = Outcome.UNDECIDED
        assert s.outcome == expected, (u, rejects, pct)
        slashed = stakes[s.peer] - env.deployer.stake_of(s.peer)
        assert slashed == (env.params.slash_amount if expected == Outcome.REJECTED else 0)
    # 3 of 5 rejects: slashed under a simple majority, not under two thirds
    assert after[subs[0].index].outcome == (Outcome.UNDECIDED if pct == 66 else Outcome.REJECTED)
    assert after[subs[1].index].outcome == Outcome.REJECTED
    # 3 of 5 accepts: approved by a simple majority, not when 70 % must accept
    assert after[subs[2].index].outcome == (Outcome.UNDECIDED if approve == 70 else Outcome.APPROVED)
    assert after[subs[3].index].outcome == Outcome.APPROVED
    assert {p for p, _h in env.deployer.approved_updates(r)}.isdisjoint(
        {after[u].peer for u in targets if after[u].outcome != Outcome.APPROVED})
