"""experiments/audit_rule_eval.py's ``SplitTrustChain`` (a what-if of the contracts, measured in
docs/results/robustness.md): votes against the outcome move an auditor's trust, not the reputation
that admits its updates; the draw still drops a member whose trust fell below the threshold.

Adversary: a colluding auditor that rejects every honest update it audits must still lose its
seat; an honest auditor outvoted on the same number of updates must keep its updates eligible."""

from __future__ import annotations

import dataclasses

import pytest

from bdfl.chain.protocol import Outcome, audit_seats
from bdfl.config import from_dict
from bdfl.experiment.setup import protocol_params
from tests.experiment.scripts import experiment_script

CFG = from_dict({"peers": 8, "overlay": {"degree": 4}, "protocol": {"committee_size": 5, "auditors_per_update": 4, "quorum": 2}})
PARAMS = dataclasses.replace(protocol_params(CFG), probation_rounds=0)
PEERS = [f"0x{i + 1:040x}" for i in range(8)]


@pytest.fixture(scope="module")
def are():
    with experiment_script("audit_rule_eval") as mod:
        yield mod


def _round(chain, dissent: bool = False) -> tuple[list[Outcome], str]:
    """Every peer submits; every seat accepts every update, except (``dissent``) the first seat,
    which rejects all. Returns the outcomes and the first seat."""
    for i, p in enumerate(PEERS):
        chain.submit(p, bytes([chain.round + 1, i + 1]) * 16, 10)
    first = chain.committee[0]
    for a in chain.committee:
        idx = chain.assignments(a)
        chain.reveal(a, idx, [not (dissent and a == first)] * len(idx))
    return chain.finalize(), first


def _chain(cls, **kw):
    chain = cls(PARAMS, **kw)
    for p in PEERS:
        chain.join(p, PARAMS.min_stake)
    return chain


def test_votes_against_the_outcome_move_trust_not_reputation(are):
    split, plain = _chain(are.SplitTrustChain), _chain(are.MemoryChain)
    _round(split), _round(plain)
    before = {p: split.member(p).reputation for p in PEERS}
    outcomes, dissenter = _round(split, dissent=True)
    _, same = _round(plain, dissent=True)
    assert dissenter == same  # same seeds, same draws while nothing differs
    rep_before = before[dissenter]
    assert Outcome.APPROVED in outcomes  # the others outvoted it: it voted against decided outcomes
    m_split, m_plain = split.member(dissenter), plain.member(dissenter)
    assert m_plain.reputation < rep_before  # the contracts' rule: the votes cost reputation
    assert m_split.reputation > rep_before  # what-if: its own approved update still gains
    assert split.trust_of(dissenter) < PARAMS.rep_initial  # ... and the votes cost trust instead


def test_a_member_with_trust_below_the_threshold_is_not_drawn_but_its_update_counts(are):
    chain = _chain(are.SplitTrustChain)
    _round(chain)
    low = PEERS[0]
    chain.trust[low] = PARAMS.rep_threshold - 1
    for _ in range(4):
        outcomes, _ = _round(chain)
        assert low not in chain.view.committee(chain.round - 1)
        assert outcomes[PEERS.index(low)] == Outcome.APPROVED  # eligible: its reputation is untouched
    # the contracts' chain, same state on reputation, puts the same update on probation
    plain = _chain(are.MemoryChain)
    _round(plain)
    plain.member(low).reputation = PARAMS.rep_threshold - 1
    assert _round(plain)[0][PEERS.index(low)] == Outcome.PROBATION


def test_dissent_mode_keeps_the_reputation_penalty_for_seats_that_mostly_dissent(are):
    """``mode="dissent"``: a seat against most decided outcomes (a colluder's pattern) pays with its
    reputation as in the contracts; one outvoted on a single update (an honest miss) pays trust only."""
    split, plain = _chain(are.SplitTrustChain, mode="dissent"), _chain(are.MemoryChain)
    _round(split), _round(plain)
    before = {p: split.member(p).reputation for p in PEERS}
    before_plain = {p: plain.member(p).reputation for p in PEERS}
    _, dissenter = _round(split, dissent=True)
    _round(plain, dissent=True)
    lost = before[dissenter] - split.member(dissenter).reputation
    assert lost == before_plain[dissenter] - plain.member(dissenter).reputation > 0  # as the contracts
    assert split.trust_of(dissenter) < PARAMS.rep_initial

    # one seat rejects a single update, approved by the others: it mostly agreed
    for i, p in enumerate(PEERS):
        split.submit(p, bytes([split.round + 1, i + 1]) * 16, 10)
    seat = split.committee[1]
    idx = split.assignments(seat)
    for a in split.committee:
        votes = [True] * len(split.assignments(a))
        if a == seat:
            votes[0] = False
        split.reveal(a, split.assignments(a), votes)
    rep, trust = split.member(seat).reputation, split.trust_of(seat)
    outcomes = split.finalize()
    assert outcomes[idx[0]] == Outcome.APPROVED
    assert split.trust_of(seat) < trust + (len(idx) - 1) * PARAMS.rep_gain_vote  # the miss cost trust
    assert split.member(seat).reputation >= rep  # ... not reputation (its own approved update may add)


def test_an_unknown_mode_is_refused(are):
    with pytest.raises(ValueError, match="split-trust mode"):
        are.SplitTrustChain(PARAMS, mode="some")


def test_excess_mode_charges_reputation_only_beyond_the_median_seat(are):
    """``mode="excess"``: the round's median seat sets the honest miss rate; a seat pays reputation
    for its votes against the outcome beyond it, and trust for all of them."""
    chain = _chain(are.SplitTrustChain, mode="excess")
    _round(chain)
    before = {p: chain.member(p).reputation for p in PEERS}
    trust_before = {p: chain.trust_of(p) for p in PEERS}
    outcomes, dissenter = _round(chain, dissent=True)
    seats = chain.view.committee(chain.round - 1)
    gain = PARAMS.rep_gain_update  # every update here is approved
    assert all(o == Outcome.APPROVED for o in outcomes)
    against = len([u for u in range(len(PEERS)) if seats.index(dissenter) in chain_seats(chain, seats, u)])
    assert before[dissenter] - chain.member(dissenter).reputation == against * PARAMS.rep_loss_vote - gain
    for a in seats:
        if a != dissenter:  # at the median (0 against): reputation moves by the update alone
            assert chain.member(a).reputation - before[a] == gain
            assert chain.trust_of(a) > trust_before[a]
    assert chain.trust_of(dissenter) == trust_before[dissenter] - against * PARAMS.rep_loss_vote


def chain_seats(chain, seats, u):
    """The seats that audited update ``u`` of the round just closed (its seed is in the view)."""
    own = seats.index(PEERS[u]) if PEERS[u] in seats else None
    return audit_seats(chain.view.seeds[chain.round - 1], u, len(seats), PARAMS.auditors_per_update, own)
