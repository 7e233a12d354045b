"""Minting bounds (per round and in total) and the no-reveal penalty (issue 19).

* A committee that approves everything (captured, or simply unanimous) mints at most
  ``mintBudgetPerRound`` per round and ``mintCap`` over the deployment's life; rewards past
  the bound are cut (``RewardCapped``), the round still closes, the token supply never
  exceeds its cap.
* An auditor that commits, watches the others reveal and withholds its own reveal loses
  more reputation than revealing every assigned vote against the majority would cost.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bdfl.chain.deploy import TOKEN
from bdfl.chain.protocol import Phase
from tests.chain.helpers import TEST_PARAMS, Env, Proto, setup_proto, snapshot_env

pytestmark = pytest.mark.chain

BUDGET = 5 * TOKEN  # per round; 8 approved updates + their agreeing votes would mint 10.4
CAP = 12 * TOKEN


@pytest.fixture(scope="module")
def capped_proto(devnet: Any, artifacts: Any) -> Proto:
    return setup_proto(devnet, artifacts, TEST_PARAMS, mint_budget_per_round=BUDGET, mint_cap=CAP)


@pytest.fixture()
def cenv(capped_proto: Proto) -> Iterator[Env]:
    with snapshot_env(capped_proto) as env:
        yield env


def test_a_captured_committee_cannot_mint_beyond_the_round_budget_or_the_cap(cenv: Env) -> None:
    env = cenv
    peers = env.join()
    supply0 = int(env.token.functions.totalSupply().call())
    cap = int(env.token.functions.cap().call())
    assert cap == supply0 + CAP
    assert int(env.rounds.functions.mintBudgetPerRound().call()) == BUDGET
    minted = []
    for _ in range(4):
        before = int(env.token.functions.totalSupply().call())
        r = env.full_round(peers)  # every vote accepts: everything approved, every vote agrees
        assert len(env.deployer.approved_updates(r)) == len(peers)
        info = env.deployer.round_info(r)
        assert info.phase == Phase.CLOSED
        grown = int(env.token.functions.totalSupply().call()) - before
        assert grown == info.minted <= BUDGET
        minted.append(grown)
    assert minted == [BUDGET, BUDGET, CAP - 2 * BUDGET, 0]
    assert int(env.rounds.functions.totalMinted().call()) == CAP
    assert int(env.token.functions.totalSupply().call()) == supply0 + CAP <= cap
    sol = env.deployer.solvency()
    assert sol.solvent and sol.total_claimable == CAP


def test_withholding_a_reveal_after_seeing_the_others_costs_more_than_dissent(env: Env) -> None:
    peers = env.join()
    r = env.deployer.current_round()
    env.submit(peers, r)
    votes = env.honest_votes(r)
    env.commit_all(r, votes)
    committee = env.deployer.committee(r)
    withholder = committee[-1]
    for a in committee[:-1]:
        env.by_addr[a].reveal_votes(r, *votes[a])
    # it has now seen every other vote, and keeps its own
    assigned = len(votes[withholder][0])
    assert assigned > 0
    rep0 = env.deployer.reputation_of(withholder)
    gain_own_update = env.params.rep_gain_update  # its own update is approved
    env.jump()
    env.deployer.advance(r)
    env.deployer.finalize(r)
    loss = rep0 + gain_own_update - env.deployer.reputation_of(withholder)
    p = env.params
    assert loss == p.rep_loss_no_reveal + assigned * p.rep_loss_vote
    # revealing every assigned vote against the majority costs at most assigned * repLossVote
    assert loss > assigned * p.rep_loss_vote and loss > p.rep_loss_no_reveal


def test_gas_limits_of_large_transactions_stay_under_the_eip7825_cap() -> None:
    """Finalize batches are sized by worst-case gas per item; every gas limit the client
    asks for is at most 2**24 (Hardhat and post-Fusaka Ethereum refuse more)."""
    from bdfl.chain import protocol as pr

    assert pr.TX_GAS_CAP == 16_777_216
    assert pr.FINALIZE_GAS_LIMIT <= pr.TX_GAS_CAP
    for m in range(1, 64):
        batch = pr.finalize_batch_size(m)
        assert 1 <= batch <= pr.MAX_FINALIZE_ITEMS
        assert batch * (pr.FINALIZE_ITEM_GAS + pr.FINALIZE_ITEM_GAS_PER_AUDITOR * m) <= pr.FINALIZE_GAS_TARGET
    assert max(pr.reveal_gas_bound(v) for v in (0, 10, 1000, 10**6)) <= pr.TX_GAS_CAP
    assert pr.draw_gas_bound(64) <= pr.TX_GAS_CAP
