"""Property-based stateful test: random sequences of joins, leaves, withdrawals,
reactivations, claims, submissions, commits, reveals (honest, inverted, random, partial,
malformed, tampered), deadline jumps, advances and batched finalizes, run on the contracts
and on the independent Python model (tests/chain/model.py) side by side.

After every step: same success/revert (by custom-error name) on both, same state, and the
invariants of tests/chain/driver.py (solvency, bounded reputation, one counted vote per
(auditor, update), approved set consistent with the revealed votes). Each example starts
from an ``evm_snapshot`` and is reverted afterwards.

Size: ``BDFL_STATEFUL_EXAMPLES`` (default 40) examples of up to ``BDFL_STATEFUL_STEPS``
(default 50) steps each; the totals are printed at the end.
"""

from __future__ import annotations

import os
import random
from typing import Any

import pytest
from eth_utils import keccak
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test
from web3.logs import DISCARD

from bdfl.chain.protocol import new_salt
from tests.chain.driver import Driver
from tests.chain.helpers import N_PEERS, Env, Proto, update_hash
from tests.chain.model import COMMIT, FINALIZE, REVEAL, SUBMIT, Revert, commitment

pytestmark = [pytest.mark.chain, pytest.mark.slow]

EXAMPLES = int(os.environ.get("BDFL_STATEFUL_EXAMPLES", "40"))
STEPS = int(os.environ.get("BDFL_STATEFUL_STEPS", "50"))
STRATEGIES = ("honest", "honest", "inverted", "random", "partial", "own", "unassigned", "duplicate")
MEMBERSHIP = ("join", "join", "join_more", "join_too_little", "leave", "withdraw", "reactivate", "reactivate_topup", "claim")

peer_idx = st.integers(0, N_PEERS - 1)


def _error_selectors(abis: dict[str, list[dict[str, Any]]]) -> dict[bytes, str]:
    """4-byte selector -> custom-error name, over the deployed contracts' ABIs."""
    out: dict[bytes, str] = {}
    for abi in abis.values():
        for item in abi:
            if item.get("type") == "error":
                sig = f"{item['name']}({','.join(i['type'] for i in item['inputs'])})"
                out[keccak(sig.encode())[:4]] = item["name"]
    return out


def make_machine(proto: Proto, totals: dict[str, int]) -> type[RuleBasedStateMachine]:
    class ProtocolMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.snap = proto.rpc("evm_snapshot")
            self.env = Env(proto)
            self.d = Driver(self.env)
            self.m = self.d.model
            self.good: dict[tuple[int, str], bool] = {}  # (round, peer) -> honest update?
            self.plans: dict[tuple[int, str], tuple[list[int], list[bool], bytes]] = {}
            totals["examples"] += 1

        def teardown(self) -> None:
            totals["steps"] += self.d.actions
            totals["reverts"] += self.d.reverts
            totals["rounds"] += self.d.rounds_closed
            proto.rpc("evm_revert", [self.snap])

        def addr(self, i: int) -> str:
            return self.d.addresses[i]

        # ---------------------------------------------------------------- membership
        @initialize(n=st.integers(3, N_PEERS))
        def start(self, n: int) -> None:
            for i in range(n):
                self._join(i, 0)

        def _join(self, i: int, extra: int) -> None:
            p = self.env.params
            amount = p.min_stake - 1 if extra < 0 else p.min_stake + extra
            c, a = self.d.client(i), self.addr(i)
            self.d.act(lambda: c.join(f"http://peer{i}:8000/", amount), lambda: self.m.join(a, amount, f"http://peer{i}:8000/"))

        @rule(i=peer_idx, action=st.sampled_from(MEMBERSHIP))
        def membership(self, i: int, action: str) -> None:
            c, a = self.d.client(i), self.addr(i)
            if action == "join":
                self._join(i, 0)
            elif action == "join_more":
                self._join(i, 50 * 10**18)
            elif action == "join_too_little":
                self._join(i, -1)
            elif action == "leave":
                self.d.act(c.leave, lambda: self.m.request_leave(a))
            elif action == "withdraw":
                self.d.act(c.withdraw, lambda: self.m.withdraw(a))
            elif action == "reactivate":
                self.d.act(lambda: c.reactivate(0), lambda: self.m.reactivate(a, 0))
            elif action == "reactivate_topup":
                add = self.env.params.min_stake
                self.d.act(lambda: c.reactivate(add), lambda: self.m.reactivate(a, add))
            else:
                self.d.act(c.claim, lambda: self.m.claim(a))

        # ---------------------------------------------------------------- submissions
        def _submit(self, i: int, good: bool, round_: int | None = None) -> None:
            r = self.m.round if round_ is None else round_
            c, a = self.d.client(i), self.addr(i)
            h = update_hash(r, a, 0 if good else 1)
            self.d.act(lambda: c.submit_update(r, h, 7), lambda: self.m.submit(a, r, h, 7))
            if r == self.m.round and any(s.peer == a and s.update_hash == h for s in self.m.cur.subs):
                self.good[(r, a)] = good

        @rule(i=peer_idx, good=st.booleans(), wrong_round=st.integers(0, 9))
        def submit(self, i: int, good: bool, wrong_round: int) -> None:
            self._submit(i, good, self.m.round + 1 if wrong_round == 0 else None)

        @rule(idx=st.lists(peer_idx, min_size=1, max_size=4), good=st.booleans())
        def submit_relayed(self, idx: list[int], good: bool) -> None:
            """Signed submissions relayed in one ``submitBatch`` (repeats included: replays);
            the model applies them one by one as direct submissions, and the entries it
            refuses must be exactly the ones the contract skipped, for the same error."""
            r = self.m.round
            entries, model_skips = [], {}
            for pos, i in enumerate(idx):
                c, a = self.d.client(i), self.addr(i)
                h = update_hash(r, a, 0 if good else 1)
                entries.append(c.sign_submission(r, h, 7))
                try:
                    self.m.submit(a, r, h, 7)
                    self.good[(r, a)] = good
                except Revert as exc:
                    model_skips[pos] = exc.name
            self.d.actions += 1
            rc = self.env.deployer.submit_batch(r, entries)
            logs = self.env.rounds.events.SubmissionSkipped().process_receipt(rc, errors=DISCARD)
            chain_skips = {int(e["args"]["position"]): _error_selectors(self.env.dep.abis).get(bytes(e["args"]["reason"])[:4], "?") for e in logs}
            assert chain_skips == model_skips, f"relayed batch: chain skipped {chain_skips}, model {model_skips}"
            self.d.reverts += len(chain_skips)

        # ---------------------------------------------------------------- votes
        def _plan(self, a: str, strategy: str, rng: random.Random) -> tuple[list[int], list[bool], bytes]:
            r = self.m.round
            cur = self.m.cur
            assigned = self.m.assignments(r, a)
            good = [self.good.get((r, cur.subs[u].peer), True) for u in assigned]
            idx = list(assigned)
            if strategy == "honest":
                acc = good
            elif strategy == "inverted":
                acc = [not g for g in good]
            elif strategy == "random":
                acc = [rng.random() < 0.5 for _ in idx]
            elif strategy == "partial":
                keep = [j for j in range(len(idx)) if rng.random() < 0.5]
                idx, acc = [idx[j] for j in keep], [good[j] for j in keep]
            elif strategy == "own":
                own = [u for u, s in enumerate(cur.subs) if s.peer == a]
                idx, acc = idx + own, good + [True] * len(own)
            elif strategy == "unassigned":
                extra = [u for u, s in enumerate(cur.subs) if u not in assigned and s.peer != a][:1]
                idx, acc = idx + extra, good + [True] * len(extra)
            else:  # duplicate
                idx, acc = idx + idx[:1], good + good[:1]
            order = list(range(len(idx)))
            rng.shuffle(order)  # any order is accepted
            return [idx[j] for j in order], [acc[j] for j in order], new_salt()

        def _commit(self, a: str, strategy: str, rng: random.Random) -> None:
            r = self.m.round
            plan = self._plan(a, strategy, rng) if a in self.m.cur.committee else ([0], [True], new_salt())
            c = commitment(r, a, *plan)
            client = self.env.by_addr[a]
            self.d.act(lambda: client.commit(r, c), lambda: self.m.commit(a, r, c))
            rd = self.m.rounds[r]
            if a in rd.committee and rd.seats[rd.committee.index(a)].commitment == c:
                self.plans[(r, a)] = plan

        @rule(i=peer_idx, strategy=st.sampled_from(STRATEGIES), seed=st.integers(0, 2**16))
        def commit(self, i: int, strategy: str, seed: int) -> None:
            com = self.m.cur.committee
            a = com[i % len(com)] if com and i < N_PEERS - 1 else self.addr(i)
            self._commit(a, strategy, random.Random(seed))

        def _reveal(self, a: str, tamper: int) -> None:
            r = self.m.round
            idx, acc, salt = self.plans.get((r, a), ([0], [True], b"\x01" * 32))
            if tamper == 1 and acc:
                acc = [not acc[0], *acc[1:]]
            elif tamper == 2:
                salt = new_salt()
            client = self.env.by_addr[a]
            self.d.act(lambda: client.reveal_votes(r, idx, acc, salt), lambda: self.m.reveal(a, r, idx, acc, salt))

        @rule(i=peer_idx, tamper=st.sampled_from([0, 0, 0, 1, 2]))
        def reveal(self, i: int, tamper: int) -> None:
            com = self.m.cur.committee
            a = com[i % len(com)] if com and i < N_PEERS - 1 else self.addr(i)
            self._reveal(a, tamper)

        # ---------------------------------------------------------------- time and phases
        @rule()
        def deadline_passes(self) -> None:
            self.env.jump()
            self.m.time_passes()

        @rule(i=peer_idx, stale=st.integers(0, 9))
        def advance(self, i: int, stale: int) -> None:
            r = self.m.round + 1 if stale == 0 else self.m.round
            c = self.d.client(i)
            self.d.act(lambda: c.advance(r), lambda: self.m.advance(r))

        @rule(batch=st.sampled_from([1, 2, 3, 5, 200, 0, 201]), i=peer_idx)
        def finalize(self, batch: int, i: int) -> None:
            self.d.finalize(batch, i)

        # ---------------------------------------------------------------- progress
        def _progress(self, bad: set[int], strategy: str, skip: set[int], seed: int, batch: int) -> None:
            """Move the current phase on the way well-behaved peers would (with ``bad`` peers
            submitting poisoned updates, seat 0 voting with ``strategy`` and ``skip`` seats
            staying silent)."""
            cur, rng = self.m.cur, random.Random(seed)
            phase0 = cur.phase
            if cur.phase == SUBMIT:
                done = {x.peer for x in cur.subs}
                for i, a in enumerate(self.d.addresses):
                    if a in self.m.members and a not in done and self.m.cur.phase == SUBMIT:
                        self._submit(i, i not in bad)
            elif cur.phase == COMMIT:
                for s_i, a in enumerate(list(cur.committee)):
                    if s_i not in skip and self.m.cur.phase == COMMIT and cur.seats[s_i].commitment is None:
                        self._commit(a, strategy if s_i == 0 else "honest", rng)
            elif cur.phase == REVEAL:
                for s_i, a in enumerate(list(cur.committee)):
                    seat = cur.seats[s_i]
                    if s_i in skip or self.m.cur.phase != REVEAL or seat.commitment is None or seat.revealed:
                        continue
                    self._reveal(a, 0)
            elif cur.phase == FINALIZE:
                while self.m.cur.phase == FINALIZE:
                    self.d.finalize(batch)
            if self.m.cur is cur and cur.phase == phase0 and phase0 in (SUBMIT, COMMIT, REVEAL) and rng.random() < 0.7:
                self.deadline_passes()  # stragglers: let the deadline end the phase
                self.d.act(lambda: self.d.client(0).advance(self.m.round), lambda: self.m.advance(self.m.round))

        @rule(bad=st.sets(peer_idx, max_size=3), strategy=st.sampled_from(STRATEGIES),
              skip=st.sets(st.integers(0, 3), max_size=1), seed=st.integers(0, 2**16), batch=st.integers(1, 6))
        def progress(self, bad: set[int], strategy: str, skip: set[int], seed: int, batch: int) -> None:
            self._progress(bad, strategy, skip, seed, batch)

        @rule(bad=st.sets(peer_idx, max_size=2), seed=st.integers(0, 2**16))
        def progress_honestly(self, bad: set[int], seed: int) -> None:
            self._progress(bad, "honest", set(), seed, 200)

        # ---------------------------------------------------------------- invariants
        @invariant()
        def consistent(self) -> None:
            self.d.check()

    return ProtocolMachine


def test_protocol_state_machine(proto: Proto) -> None:
    totals = {"examples": 0, "steps": 0, "reverts": 0, "rounds": 0}
    machine = make_machine(proto, totals)
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
            database=None,
        ),
    )
    print(
        f"\nstateful: {totals['examples']} examples, {totals['steps']} chain actions "
        f"({totals['reverts']} expected reverts), {totals['rounds']} rounds finalized"
    )
    assert totals["rounds"] > 0 and totals["steps"] > EXAMPLES
