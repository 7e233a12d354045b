"""Per-index storage reused every ROUNDS_KEPT rounds (issue 23, docs/protocol.md "Storage
and gas"): update hashes and the auditors' vote words live in slots keyed by the round
modulo ``RoundManager.ROUNDS_KEPT``, so a submission and a reveal rewrite slots instead of
creating them.

What must hold: a round that reuses the slots of an older one decides exactly what the
model decides (a stale vote word of the older round is never counted: seats that abstain
on a whole word, seats that never reveal), views of a pruned round refuse with
``RoundPruned`` instead of returning another round's data, and the client rebuilds a
pruned round's submissions from its events.
"""

from __future__ import annotations

import pytest
from eth_utils import keccak
from web3.exceptions import ContractCustomError

from bdfl.chain.protocol import ROUNDS_KEPT, Outcome, new_salt
from tests.chain.driver import Driver
from tests.chain.helpers import Env, reverts, update_hash
from tests.chain.model import REVEAL, commitment

pytestmark = pytest.mark.chain


def test_reused_slots_decide_what_the_model_decides_and_pruned_rounds_come_from_events(env: Env) -> None:
    """ROUNDS_KEPT + 2 rounds with 8 peers, the votes changing every round (a seat that
    votes on nothing, one that votes on half its assignments, one that commits and never
    reveals, two poisoned trainers rejected in alternate rounds), compared with the model
    after every transaction; then the views of a pruned round and its event-built copy."""
    d = Driver(env)
    m = d.model
    assert env.deployer.rounds.functions.ROUNDS_KEPT().call() == ROUNDS_KEPT
    for i in range(8):
        a = d.addresses[i]
        d.act(lambda i=i: d.client(i).join(f"http://p{i}:8000/"), lambda a=a, i=i: m.join(a, env.params.min_stake, f"http://p{i}:8000/"))
    seen: dict[int, list] = {}
    for rnd in range(ROUNDS_KEPT + 2):
        r = m.round
        bad = {d.addresses[1]} if rnd % 2 else {d.addresses[5]}
        for i, a in enumerate(d.addresses):
            h = update_hash(r, a, int(a in bad))
            d.act(lambda i=i, h=h: d.client(i).submit_update(r, h, 50), lambda a=a, h=h: m.submit(a, r, h, 50))
        if m.cur.phase == 0:
            env.jump()
            m.time_passes()
            d.act(lambda: d.client(0).advance(r), lambda: m.advance(r))
        plans = {}
        for s_i, a in enumerate(m.cur.committee):
            idx = m.assignments(r, a)
            acc = [m.cur.subs[u].peer not in bad for u in idx]
            k = len(m.cur.committee)
            if s_i == (rnd // 2) % k:  # a seat that voted ROUNDS_KEPT rounds ago, whose words it reuses
                idx, acc = [], []  # votes on nothing: its (rewritten) words must read as no vote
            elif s_i == (rnd // 2 + 1) % k and rnd % 2:
                idx, acc = idx[::2], acc[::2]
            plans[a] = (idx, acc, new_salt())
            c = commitment(r, a, *plans[a])
            d.act(lambda a=a, c=c: env.by_addr[a].commit(r, c), lambda a=a, c=c: m.commit(a, r, c))
        silent = m.cur.committee[(rnd // 2 + 3) % len(m.cur.committee)] if rnd % 3 == 0 else None  # commits, never reveals
        for a, plan in plans.items():
            if a != silent:
                d.act(lambda a=a, plan=plan: env.by_addr[a].reveal_votes(r, *plan), lambda a=a, plan=plan: m.reveal(a, r, *plan))
        if m.cur.phase == REVEAL:
            env.jump()
            m.time_passes()
            d.act(lambda: d.client(0).advance(r), lambda: m.advance(r))
        d.check()
        while not d.finalize(5):
            d.check()
        d.check()
        seen[r] = env.deployer.submissions(r)
    cur = env.deployer.current_round()
    assert cur == ROUNDS_KEPT + 2
    old = cur - ROUNDS_KEPT  # the newest pruned round
    assert env.deployer.pruned(old) and not env.deployer.pruned(old + 1)
    selector = "0x" + keccak(text="RoundPruned(uint256,uint256)")[:4].hex()
    for view in (lambda: env.deployer.rounds.functions.submission(old, 0).call(),
                 lambda: env.deployer.rounds.functions.approvedUpdates(old).call()):
        with pytest.raises(ContractCustomError, match=selector):
            view()
    with reverts("RoundPruned"):  # a transaction calling the view refuses the same way
        env.deployer.sender.transact(env.deployer.rounds.functions.submissionsSlice(old, 0, 8))
    rebuilt = env.deployer.submissions(old)
    kept = seen[old]
    assert [(s.index, s.peer, s.update_hash, s.outcome, s.accepts, s.rejects, s.num_samples) for s in rebuilt] == [
        (s.index, s.peer, s.update_hash, s.outcome, s.accepts, s.rejects, s.num_samples) for s in kept
    ]
    assert {s.outcome for r in seen for s in seen[r]} >= {Outcome.APPROVED, Outcome.REJECTED}
    assert env.deployer.approved_updates(old) == [(s.peer, s.update_hash) for s in kept if s.outcome == Outcome.APPROVED]
    # a kept round is still read from storage, with its seat masks
    assert env.deployer.submissions(old + 1) == seen[old + 1]
