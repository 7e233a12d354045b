"""Finalize and reveal under the library's default policy (committee 9, 8 auditors per update,
quorum 5, two-thirds rejections) with more than 128 updates, so that the auditors' vote words
(128 updates each) and the finalize batches straddle each other.

Since the gas work on the default policy (docs/results/gas.md, top section) a finalize batch
keeps each seat's current vote word and the agreement counts in memory ({Tally} in
RoundManager.sol) and decodes each update's auditors in one packed loop; a reveal checks its
assignments inline. These tests recompute, in Python and from the votes actually cast, what
every update and every seat must be booked with, for a committee with adversarial members (a
seat that commits and never reveals, a seat that reveals only part of its assignments, a seat
that votes against the honest majority on every update), and compare it with the chain: the
finalize path (UpdateFinalized events, seat agreement counts) and the view path
(``submission``: votes read from storage directly) must both agree with the recomputation.
The gas tests pin the per-update and per-vote costs (regression bounds, see below).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest

from bdfl.chain.protocol import Outcome, Phase, audit_seats, new_salt
from tests.chain.helpers import TEST_PARAMS, Env, Proto, setup_proto, snapshot_env, update_hash

pytestmark = pytest.mark.chain

N = 140  # > 128: two vote words per seat
PARAMS = dataclasses.replace(TEST_PARAMS, committee_size=9, auditors_per_update=8, quorum=5, approve_percent=50, reject_percent=66)
#: Finalize gas per update of one transaction that decides all N updates (its 21k base and
#: the batch's seat reads and writes included). Measured 17,771 with this file's change
#: (viaIR, vote words cached per batch, packed auditor loop), 17,874 since c13de91 (the
#: auditor loop calls Sortition.auditSeatAt, the views' rule); 23,124 at 447296b (legacy
#: pipeline, a mapping lookup and storage read per vote, memory arrays per update).
FINALIZE_GAS_PER_UPDATE = 19_500
#: Reveal gas per vote of the largest reveal (its 21k base and its two vote words included).
#: Measured 1,941 (126 votes); 2,442 at 447296b (130 votes).
REVEAL_GAS_PER_VOTE = 2_150


@pytest.fixture(scope="module")
def proto(devnet: Any, artifacts: Any) -> Proto:
    return setup_proto(devnet, artifacts, PARAMS, n=N)


@pytest.fixture()
def env(proto: Proto) -> Iterator[Env]:
    with snapshot_env(proto) as env:
        yield env


@dataclasses.dataclass
class Played:
    round: int
    seed: bytes
    committee: list[str]
    plans: dict[str, tuple[list[int], list[bool], bytes]]
    revealed: set[str]
    peer_of: dict[int, str]
    reveal_receipts: list[Any]


def _play_to_finalize(env: Env) -> Played:
    """Everyone joins and submits; every seventh peer's update is bad. Seat 0 commits and
    never reveals, seat 1 reveals only every other assignment, seat 2 votes against the
    honest verdict on every assignment, the others vote honestly."""
    d = env.deployer
    env.join()
    r = d.current_round()
    bad = {c.address for i, c in enumerate(env.peers) if i % 7 == 3}
    for c in env.peers:
        c.submit_update(r, update_hash(r, c.address), 10)
    assert d.round_info(r).phase == Phase.COMMIT
    committee = d.committee(r)
    assert len(committee) == 9
    subs = d.submissions(r)
    assert len(subs) == N
    peer_of = {s.index: s.peer for s in subs}
    plans = {}
    for seat, a in enumerate(committee):
        idx = d.assignments_of(r, a)
        acc = [peer_of[u] not in bad for u in idx]
        if seat == 1:
            idx, acc = idx[::2], acc[::2]
        if seat == 2:
            acc = [not x for x in acc]
        plans[a] = (idx, acc, new_salt())
        env.by_addr[a].commit_votes(r, *plans[a])
    revealed = set(committee[1:])
    receipts = [env.by_addr[a].reveal_votes(r, *plans[a]) for a in committee[1:]]
    assert d.round_info(r).phase == Phase.REVEAL, "seat 0 has not revealed"
    env.jump()
    d.advance(r)
    assert d.round_info(r).phase == Phase.FINALIZE
    return Played(r, bytes(d.round_info(r).seed), committee, plans, revealed, peer_of, receipts)


def _expected(p: Played) -> tuple[dict[int, tuple[Outcome, int, int]], list[tuple[int, int, int]]]:
    """Each update's (outcome, accepts, rejects) and each seat's (agree, disagree, abstain),
    recomputed from the votes cast (every member is eligible: fresh reputation 0.5 >= 0.3)."""
    k, m = len(p.committee), PARAMS.auditors_per_update
    seat_of = {a: s for s, a in enumerate(p.committee)}
    cast = {a: dict(zip(p.plans[a][0], p.plans[a][1])) for a in p.revealed}
    updates = {}
    seats = [[0, 0, 0] for _ in range(k)]
    for u, peer in p.peer_of.items():
        votes = []
        for s in audit_seats(p.seed, u, k, m, seat_of.get(peer)):
            a = p.committee[s]
            v = cast.get(a, {}).get(u)
            votes.append((s, v))
        acc = sum(1 for _, v in votes if v is True)
        rej = sum(1 for _, v in votes if v is False)
        n = acc + rej
        out = Outcome.UNDECIDED
        if n >= PARAMS.quorum:
            if 100 * acc > n * PARAMS.approve_percent:
                out = Outcome.APPROVED
            elif 100 * rej > n * PARAMS.reject_percent:
                out = Outcome.REJECTED
        updates[u] = (out, acc, rej)
        for s, v in votes:
            if v is None:
                seats[s][2] += 1
            elif out != Outcome.UNDECIDED:
                seats[s][0 if v == (out == Outcome.APPROVED) else 1] += 1
    return updates, [tuple(x) for x in seats]


def _finalized_events(env: Env, receipts: list[Any]) -> dict[int, tuple[Outcome, int, int]]:
    ev = env.rounds.events.UpdateFinalized()
    out = {}
    for rc in receipts:
        for log in ev.process_receipt(rc, errors=__import__("web3").logs.DISCARD):
            a = log["args"]
            assert int(a["index"]) not in out, "an update was finalized twice"
            out[int(a["index"])] = (Outcome(int(a["outcome"])), int(a["accepts"]), int(a["rejects"]))
    return out


def test_batches_across_vote_words_book_what_the_votes_say_with_adversarial_seats(env: Env) -> None:
    p = _play_to_finalize(env)
    d = env.deployer
    want_updates, want_seats = _expected(p)
    outcomes = {o for o, _, _ in want_updates.values()}
    assert {Outcome.APPROVED, Outcome.REJECTED} <= outcomes, "the workload must decide both ways"
    # batches of 37: they start and end inside vote words (128 updates) and straddle the
    # update -> seat -> member stages, so every batch rebuilds its per-seat word cache
    receipts = d.finalize(p.round, batch=37)
    assert d.round_info(p.round).phase == Phase.CLOSED
    got = _finalized_events(env, receipts)
    assert got == want_updates
    for u, (out, acc, rej) in want_updates.items():
        s = d.submission(p.round, u)  # the view path reads the vote words itself
        assert (s.outcome, s.accepts, s.rejects) == (out, acc, rej), u
    for seat, want in enumerate(want_seats):
        info = d.seat_info(p.round, seat)
        assert (info.agree, info.disagree, info.abstain) == want, seat
        assert info.revealed == (seat != 0)
    # the silent seat is booked every assignment as an abstention (its penalty), and its
    # words (placeholders) gave no vote to anyone
    assert want_seats[0][2] == len(d.assignments_of(p.round, p.committee[0])) and want_seats[0][:2] == (0, 0)


def test_one_batch_and_many_batches_book_the_same(env: Env) -> None:
    """The same round finalized in one transaction per stage and in batches of 5 (a cache of
    at most 5 updates) ends with the same outcomes and seat counts."""
    p = _play_to_finalize(env)
    d = env.deployer
    snap = env.rpc("evm_snapshot")
    big = d.finalize(p.round, batch=200)
    one = (_finalized_events(env, big), [d.seat_info(p.round, s) for s in range(9)])
    env.rpc("evm_revert", [snap])
    d = Env(env.proto).deployer  # fresh nonces after the revert
    small = d.finalize(p.round, batch=5)
    many = (_finalized_events(env, small), [d.seat_info(p.round, s) for s in range(9)])
    assert one == many
    assert len(one[0]) == N


def test_finalize_and_reveal_gas_under_the_default_policy(env: Env) -> None:
    """Regression bounds: the finalize gas per update of a transaction that decides all N
    updates, and the reveal gas per vote of the largest reveal."""
    p = _play_to_finalize(env)
    d = env.deployer
    rc = d.finalize_batch(p.round, N)  # exactly the N updates: the seat stage starts next call
    assert d.round_info(p.round).stage == 1 and d.round_info(p.round).cursor == 0
    per_update = int(rc["gasUsed"]) / N
    assert per_update <= FINALIZE_GAS_PER_UPDATE, f"finalize {per_update:.0f} gas per update"
    votes = {a: len(p.plans[a][0]) for a in p.revealed}
    biggest = max(p.reveal_receipts, key=lambda rc: int(rc["gasUsed"]))
    auditor = biggest["from"]
    per_vote = int(biggest["gasUsed"]) / votes[auditor]
    assert per_vote <= REVEAL_GAS_PER_VOTE, f"reveal {per_vote:.0f} gas per vote"
    print(f"finalize {per_update:.0f} gas/update, reveal {per_vote:.0f} gas/vote ({votes[auditor]} votes)")
