"""Every round costs what a steady round costs (issue 23: gas per peer per round <= 100k in
*every* round, not only from round ROUNDS_KEPT on).

The RoundManager rewrites per-index slots every ROUNDS_KEPT rounds (hash and record rings,
the duplicate-hash table, the auditors' vote words) and one slot per member. Before issue
23's join-time warming, rounds 0 .. ROUNDS_KEPT - 1 wrote those slots for the first time
(20k gas instead of 2.9k each): at N = 1000 the relayed rounds cost 172k-138k per peer against
~90k from round ROUNDS_KEPT on. ``join`` now makes them non-zero (RoundManager.warmMember, paid
by the joiner), so no round writes a fresh per-peer slot.

What this asserts, structurally (counts of fresh slots and gas ratios, not seconds):
- a submission that is neither the round's first nor its last writes no storage slot from
  zero to non-zero, in every round from round 0 on (anvil's prestateTracer diff);
- a reveal writes at most one fresh slot (its seat's `revealed` flag: per-round committee
  state, paid once per seat), never a vote word;
- each of those submissions costs at most STEADY_SLACK more gas than the median one of round
  ROUNDS_KEPT + 1 (a steady round), and the whole round's gas is within ROUND_SLACK of the
  steady round's;
- a join warms exactly one more submission index (``warmedIndices``).
"""

from __future__ import annotations

from typing import Any

import pytest

from bdfl.chain.protocol import ROUNDS_KEPT, Phase, new_salt
from tests.chain.helpers import Env, update_hash

pytestmark = pytest.mark.chain

#: A submission in rounds 0 .. ROUNDS_KEPT may cost this much more than the steady round's
#: median one: its record slot changes from the join's placeholder (2.9k) where round
#: ROUNDS_KEPT + 1 may rewrite the same record (same peer, index and sample count: 0.1k), and
#: up to two more duplicate-table probes (2.4k each: where a hash lands in the 16-slot table
#: of 8 peers is random). One fresh slot costs 17.1k more; the unwarmed rounds paid ~35-50k.
STEADY_SLACK = 8_000
#: Whole-round gas of an early round over the steady round's, at most (measured with the
#: warming: round 0 +3.8 % at 8 peers, K = 4, from its first submission and the probes).
ROUND_SLACK = 1.06


def _fresh_slots(env: Env, receipt: Any) -> list[tuple[str, str]]:
    """(contract, slot) written from zero to non-zero by the transaction (anvil's
    prestateTracer in diff mode)."""
    res = env.rpc(
        "debug_traceTransaction",
        [env.w3.to_hex(receipt["transactionHash"]), {"tracer": "prestateTracer", "tracerConfig": {"diffMode": True}}],
    )
    pre, post = res["pre"], res["post"]
    out = []
    for addr, state in post.items():
        for slot, value in (state.get("storage") or {}).items():
            old = (pre.get(addr, {}).get("storage") or {}).get(slot)
            if int(value, 16) != 0 and (old is None or int(old, 16) == 0):
                out.append((addr, slot))
    return out


def _play_round(env: Env) -> tuple[int, dict[str, Any], list[Any], int]:
    """One round: every peer submits (in peer order), the committee votes honestly, the
    round is finalized. Returns the round, the submission receipts by peer, the reveal
    receipts and the round's total gas."""
    d = env.deployer
    r = d.current_round()
    subs = {}
    total = 0
    for c in env.peers:
        rc = c.submit_update(r, update_hash(r, c.address), 10)
        subs[c.address] = rc
        total += int(rc["gasUsed"])
    assert d.round_info(r).phase == Phase.COMMIT, "the last submission draws the committee"
    votes = env.honest_votes(r)
    for a, (idx, acc, salt) in votes.items():
        total += int(env.by_addr[a].commit_votes(r, idx, acc, salt)["gasUsed"])
    reveals = [env.by_addr[a].reveal_votes(r, idx, acc, salt) for a, (idx, acc, salt) in votes.items()]
    total += sum(int(rc["gasUsed"]) for rc in reveals)
    assert d.round_info(r).phase == Phase.FINALIZE
    total += sum(int(rc["gasUsed"]) for rc in d.finalize(r))
    return r, subs, reveals, total


def test_no_round_writes_fresh_per_peer_slots_and_early_rounds_cost_the_steady_round(env: Env) -> None:
    rm = env.rounds
    assert int(rm.functions.warmedIndices().call()) == 0
    for i, c in enumerate(env.peers):
        c.join(f"http://127.0.0.1:{9000 + i}/")
        assert int(rm.functions.warmedIndices().call()) == i + 1, "each join warms one submission index"
    n = len(env.peers)
    rounds = [_play_round(env) for _ in range(ROUNDS_KEPT + 2)]
    steady_r, steady_subs, _, steady_total = rounds[-1]
    assert steady_r == ROUNDS_KEPT + 1
    steady = sorted(int(steady_subs[c.address]["gasUsed"]) for c in env.peers[1:-1])[(n - 2) // 2]
    for r, subs, reveals, total in rounds:
        # the round's first submission writes the round's own state (slot 0 of RoundState)
        # and the last draws the committee (per-round committee slots): both per round,
        # not per peer; every other one must write no fresh slot
        for c in env.peers[1:-1]:
            rc = subs[c.address]
            assert _fresh_slots(env, rc) == [], f"round {r}: a submission wrote a fresh slot"
            gas = int(rc["gasUsed"])
            assert gas <= steady + STEADY_SLACK, f"round {r}: submission {gas} vs steady median {steady}"
        for rc in reveals:
            assert len(_fresh_slots(env, rc)) <= 1, f"round {r}: a reveal wrote a fresh vote word"
        assert total <= ROUND_SLACK * steady_total, f"round {r}: {total / n:.0f} gas per peer vs steady {steady_total / n:.0f}"


def test_reveal_of_no_votes_keeps_its_words_warm_and_reads_as_no_vote(env: Env) -> None:
    """A seat that reveals no vote stores its words as the non-zero placeholder, which reads
    as no vote (its assigned updates count as abstentions, never as rejects)."""
    env.join()
    d = env.deployer
    r = d.current_round()
    env.submit(env.peers, r)
    votes = env.honest_votes(r)
    silent = next(iter(votes))
    votes[silent] = ([], [], new_salt())
    env.commit_all(r, votes)
    env.reveal_all(r, votes)
    seat = d.committee(r).index(silent)
    for u in d.assignments_of(r, silent):
        s = d.submission(r, u)
        assert not (s.voted_mask >> seat) & 1, "the silent seat's placeholder word read as a vote"
    d.finalize(r)
    info = d.rounds.functions.seatInfo(r, seat).call()
    assert info[4] == len(d.assignments_of(r, silent)) and info[2] == 0 and info[3] == 0
