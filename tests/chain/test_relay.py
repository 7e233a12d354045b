"""Relayed submissions (``RoundManager.submitBatch``, issue 23): members sign their
``submitUpdate`` arguments and anyone relays many in one transaction. Each entry must be
exactly what the signer could have submitted itself: the adversary tests below forge, alter,
replay (same round, next round, another deployment), copy a hash, and open a wrong beacon
secret, inside one batch; every bad entry is skipped with its revert reason and the good ones
stand."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from eth_utils import keccak
from web3.logs import DISCARD

from bdfl.chain.protocol import MAX_SUBMIT_BATCH, Outcome, Phase, ProtocolClient, submit_batch_size
from bdfl.errors import BDFLError
from tests.chain.helpers import Env, reverts, update_hash

pytestmark = pytest.mark.chain


def _selector(signature: str) -> bytes:
    return keccak(signature.encode())[:4]


ALREADY = _selector("AlreadySubmitted(uint256,address)")
DUPLICATE = _selector("DuplicateHash(uint256,bytes32)")
NOT_MEMBER = _selector("NotActiveMember(address)")
BEACON = _selector("BeaconMismatch(uint256,address)")


def _skipped(env: Env, receipt: Any) -> dict[int, bytes]:
    """Position -> revert selector of every entry the batch skipped."""
    return {position: reason[:4] for position, reason in env.deployer.skipped_entries(receipt).items()}


def _submitted(env: Env, receipt: Any) -> list[tuple[str, bytes]]:
    return [(str(e["args"]["peer"]), bytes(e["args"]["updateHash"]))
            for e in env.rounds.events.UpdateSubmitted().process_receipt(receipt, errors=DISCARD)]


def test_relayed_batch_records_each_signer_and_costs_less_per_entry(env: Env) -> None:
    peers = env.join()
    r = env.deployer.current_round()
    direct = peers[0].sender.estimate(peers[0]._submit_call(r, update_hash(r, peers[0].address), 10, None))
    entries = [c.sign_submission(r, update_hash(r, c.address), 10) for c in peers[:-1]]
    rc = env.deployer.submit_batch(r, entries)  # relayed by an account that is no member
    assert _skipped(env, rc) == {}
    assert _submitted(env, rc) == [(c.address, update_hash(r, c.address)) for c in peers[:-1]]
    subs = env.deployer.submissions(r)
    assert [s.peer for s in subs] == [c.address for c in peers[:-1]]
    assert all(s.num_samples == 10 for s in subs)
    per_entry = int(rc["gasUsed"]) / len(entries)
    assert per_entry < direct - 15_000, (per_entry, direct)  # the 21k base and the warm slots, once
    # the last member submits directly: the round runs on as before (draw, votes, finalize)
    peers[-1].submit_update(r, update_hash(r, peers[-1].address), 10)
    assert env.deployer.phase() == Phase.COMMIT
    votes = env.honest_votes(r)
    env.commit_all(r, votes)
    env.reveal_all(r, votes)
    env.deployer.finalize(r)
    assert all(s.outcome == Outcome.APPROVED for s in env.deployer.submissions(r))


def test_relay_skips_forged_altered_replayed_copied_and_foreign_entries(env: Env) -> None:
    peers = env.join()
    a, b, c, d, e = peers[:5]
    r = env.deployer.current_round()
    good = a.sign_submission(r, update_hash(r, a.address), 10)
    outsider = ProtocolClient(env.w3, env.dep, env.proto.deployer)  # no member: its signature recovers a non-member
    forged = outsider.sign_submission(r, update_hash(r, "outsider"), 10)
    altered = list(b.sign_submission(r, update_hash(r, b.address), 10))
    altered[0] = update_hash(r, b.address, tag=1)  # the hash changed after signing: recovers another address
    copy = c.sign_submission(r, update_hash(r, a.address), 10)  # a's hash, properly signed by c
    other_dep = ProtocolClient(env.w3, dataclasses.replace(env.dep, addresses={**env.dep.addresses, "RoundManager": env.dep.registry}), d.account)
    foreign = other_dep.sign_submission(r, update_hash(r, d.address), 10)  # signed for another contract
    ok = e.sign_submission(r, update_hash(r, e.address), 10)
    rc = env.deployer.submit_batch(r, [good, forged, tuple(altered), copy, good, foreign, ok])
    skipped = _skipped(env, rc)
    assert skipped.keys() == {1, 2, 3, 4, 5}
    assert skipped[1] == NOT_MEMBER and skipped[2] == NOT_MEMBER and skipped[5] == NOT_MEMBER
    assert skipped[3] == DUPLICATE  # a copied hash is refused as from any direct submitter
    assert skipped[4] == ALREADY  # the same signed entry twice in a round
    assert _submitted(env, rc) == [(a.address, update_hash(r, a.address)), (e.address, update_hash(r, e.address))]
    # the refused members are untouched: they still submit (directly or relayed) in this round
    rc2 = env.deployer.submit_batch(r, [b.sign_submission(r, update_hash(r, b.address), 10)])
    assert _skipped(env, rc2) == {}
    c.submit_update(r, update_hash(r, c.address), 10)
    assert env.deployer.submission_count(r) == 4
    # a signature opens nowhere else than through the batch
    with reverts("OnlyBatch"):
        env.peers[5].sender.transact(env.rounds.functions.submitSigned(r, good))
    with reverts("BadBatchSize"):
        env.deployer._tx(env.rounds.functions.submitBatch(r, []), True, 500_000)
    with reverts("BadBatchSize"):
        env.deployer._tx(env.rounds.functions.submitBatch(r, [good] * (MAX_SUBMIT_BATCH + 1)), True, 16_000_000)
    with pytest.raises(BDFLError):  # the client sizes batches under the 2^24 cap
        env.deployer.submit_batch(r, [good] * (submit_batch_size(env.params.committee_size) + 1))


def test_relay_replay_in_the_next_round_and_a_wrong_beacon_are_skipped(env: Env) -> None:
    peers = env.join()
    r = env.deployer.current_round()
    entries = {c.address: c.sign_submission(r, update_hash(r, c.address), 10) for c in peers}
    rc = env.deployer.submit_batch(r, list(entries.values()))
    assert _skipped(env, rc) == {}
    votes = env.honest_votes(r)
    env.commit_all(r, votes)
    env.reveal_all(r, votes)
    env.deployer.finalize(r)
    r1 = r + 1
    a, b, c = peers[:3]
    reveal, commit = b.beacon_args(r1)
    wrong = b.sign_submission(r1, update_hash(r1, b.address), 10, beacon=(keccak(b"not the secret"), commit))
    fresh = c.sign_submission(r1, update_hash(r1, c.address), 10)  # opens its round-r commitment
    rc = env.deployer.submit_batch(r1, [entries[a.address], wrong, fresh])
    skipped = _skipped(env, rc)
    # the round-r entry recovers another address under round r1's digest: a non-member
    assert skipped == {0: NOT_MEMBER, 1: BEACON}
    assert _submitted(env, rc) == [(c.address, update_hash(r1, c.address))]
    info = env.deployer.round_info(r1)
    assert info.beacon_reveals == 1 and info.num_submissions == 1
    b.submit_update(r1, update_hash(r1, b.address), 10, beacon=(reveal, commit))
    assert env.deployer.round_info(r1).beacon_reveals == 2
