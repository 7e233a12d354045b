"""submissions_closed_reader: the chain's answer to "may round r's updates be served yet?"
(the endpoints' Submit-phase seal, bdfl.net.blobserver.SubmitSeal). It must never say yes while a
submission of round r can still land, and must say yes as soon as none can."""

from __future__ import annotations

from bdfl.chain.protocol import Phase, submissions_closed_reader
from tests.chain.helpers import Env, reverts, update_hash


def test_closed_exactly_when_no_submission_of_the_round_can_land(env: Env) -> None:
    closed = submissions_closed_reader(env.w3, env.dep)
    a, b, c = env.join(env.peers[:3])
    assert not closed(0) and not closed(1)  # open; a later round is not closed either
    a.submit_update(0, update_hash(0, a.address), 1)
    assert not closed(0)  # b and c may still submit
    env.jump()  # the deadline passes: submitUpdate reverts before anyone advances
    assert closed(0)
    with reverts("DeadlinePassed"):
        b.submit_update(0, update_hash(0, b.address), 1)
    env.deployer.advance(0)
    assert closed(0) and not closed(1)


def test_closed_once_everyone_submitted_and_the_phase_advanced_and_for_every_earlier_round(env: Env) -> None:
    closed = submissions_closed_reader(env.w3, env.dep)
    peers = env.join(env.peers[:3])
    for p in peers[:2]:
        p.submit_update(0, update_hash(0, p.address), 1)
        assert not closed(0)
    peers[2].submit_update(0, update_hash(0, peers[2].address), 1)  # the last member's submission ends the phase
    assert closed(0) and env.deployer.round_info(0).phase != Phase.SUBMIT
    votes = env.honest_votes(0)  # round 0 finishes
    env.commit_all(0, votes)
    env.reveal_all(0, votes)
    if env.deployer.round_info(0).phase == Phase.REVEAL:
        env.jump()
        env.deployer.advance(0)
    env.deployer.finalize(0)
    assert env.deployer.current_round() == 1
    assert closed(0) and not closed(1)
