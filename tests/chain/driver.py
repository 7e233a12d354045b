"""Run every action on the contracts and on the Python model, and compare.

``Driver.act`` sends the transaction, then applies the same action to the model and asserts
both agree on success or on the custom error. ``Driver.check`` compares the whole state and
checks the invariants:

* solvency: the registry's token balance >= stakes + unclaimed rewards (and equals the model's);
* reputation within [0, REP_MAX] for every peer, equal to the model's;
* stakes, rewards, statuses, missed-round counters, member order, round, phase, committee;
* per update: at most one counted vote per (auditor, update) — the accept bits are a subset
  of the vote bits, the vote count equals the bit count, and only assigned seats voted;
* after a round closes: every outcome and the approved set follow from the revealed votes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bdfl.chain.protocol import Outcome, ProtocolClient
from bdfl.chain.txsender import TxReverted
from tests.chain.helpers import Env
from tests.chain.model import APPROVED, PROBATION, REJECTED, REP_MAX, UNDECIDED, Model, Revert


class Driver:
    def __init__(self, env: Env) -> None:
        self.env = env
        self.model = Model(env.params, **env.model_kwargs())
        self.addresses = [c.address for c in env.peers]
        self.actions = 0
        self.reverts = 0
        self.rounds_closed = 0

    # ------------------------------------------------------------------ actions
    def act(self, chain: Callable[[], Any], model: Callable[[], Any]) -> Any:
        """Run ``chain()`` then ``model()``; both must succeed or revert alike."""
        self.actions += 1
        try:
            chain()
            err = None
        except TxReverted as exc:
            err = exc.error_name or str(exc)
        try:
            result = model()
            merr = None
        except Revert as exc:
            result, merr = None, exc.name
        assert err == merr, f"chain reverted with {err!r} but the model says {merr!r}"
        if err is not None:
            self.reverts += 1
        return result

    def client(self, i: int) -> ProtocolClient:
        return self.env.peers[i]

    def finalize(self, batch: int, who: int = 0) -> bool:
        m = self.model
        r = m.round
        closed = self.act(lambda: self.client(who).finalize_batch(r, batch), lambda: m.finalize(r, batch))
        if closed:
            self.rounds_closed += 1
            self.check_closed_round(r)
        return bool(closed)

    # ------------------------------------------------------------------ checks
    def check(self) -> None:
        env, m = self.env, self.model
        d = env.deployer
        sol = d.solvency()
        assert sol.balance >= sol.liabilities, f"insolvent: {sol}"
        assert (sol.balance, sol.total_staked, sol.total_claimable) == (m.balance, m.total_staked, m.total_claimable)
        for info, stake, claimable in d.peer_states(self.addresses):
            a = info.address
            p = m.peer(a)
            assert 0 <= info.reputation <= REP_MAX
            got = (int(info.status), info.known, info.missed_rounds, info.reputation, info.last_submit_round, info.reject_streak)
            want = (p.status, p.known, p.missed, p.rep, p.last_submit, p.reject_streak)
            assert got == want, f"peer {a}: chain {got} != model {want}"
            if info.status in (1, 2):
                assert info.join_round == p.join_round
            assert (stake, claimable) == (p.stake, p.claimable), f"stake/claimable of {a}"
        assert d.members() == m.members
        assert d.current_round() == m.round
        info = d.round_info(m.round)
        r = m.cur
        assert int(info.phase) == r.phase
        assert (info.num_submissions, info.commits, info.reveals) == (len(r.subs), r.commits, r.reveals)
        if r.phase >= 1:
            assert d.committee(m.round) == r.committee
            assert info.seed == r.seed
        self._check_tallies(m.round)

    def _check_tallies(self, round_: int) -> None:
        d, m = self.env.deployer, self.model
        r = m.rounds[round_]
        chain_subs = d.submissions(round_)  # one read for all (per-index reads were half the stateful test's time)
        assert len(chain_subs) == len(r.subs)
        for u, sub in enumerate(r.subs):
            s = chain_subs[u]
            assert s.peer == sub.peer and s.update_hash == sub.update_hash and s.eligible == sub.eligible
            voted = sum(1 << seat for seat in sub.votes)
            accepted = sum(1 << seat for seat, v in sub.votes.items() if v)
            assert (s.voted_mask, s.accept_mask) == (voted, accepted)
            # at most one counted vote per (auditor, update)
            assert s.accept_mask & ~s.voted_mask == 0
            assert s.accepts + s.rejects == bin(s.voted_mask).count("1")
            assert s.accepts == bin(s.accept_mask).count("1")
            if r.committee:
                allowed = sum(1 << x for x in m.audit_seats(round_, u))
                assert s.voted_mask & ~allowed == 0, "a seat voted on an update not assigned to it"
                if sub.peer in r.committee:
                    assert not s.voted_mask >> r.committee.index(sub.peer) & 1, "an auditor judged its own update"

    def check_closed_round(self, round_: int) -> None:
        """Outcomes and approved set follow from the revealed votes (recomputed here from the
        chain's own tallies, not from the model) and equal the model's."""
        d, m = self.env.deployer, self.model
        q = self.env.params.quorum
        self._check_tallies(round_)
        expect_approved = []
        for s, sub in zip(d.submissions(round_), m.rounds[round_].subs, strict=True):
            votes = s.accepts + s.rejects
            if votes >= q and 2 * s.accepts > votes:
                want = Outcome.APPROVED if s.eligible else Outcome.PROBATION
            elif votes >= q and 2 * s.rejects > votes:
                want = Outcome.REJECTED
            else:
                want = Outcome.UNDECIDED
            assert s.outcome == want
            assert int(s.outcome) == sub.outcome
            assert sub.outcome in (APPROVED, PROBATION, REJECTED, UNDECIDED)
            if want == Outcome.APPROVED:
                expect_approved.append((s.peer, s.update_hash))
            assert d.is_approved(round_, s.peer) == (want == Outcome.APPROVED)
        assert d.approved_updates(round_) == expect_approved == m.approved_set(round_)
