"""The orchestrator reads every peer's wallet balance once, then only the holders a token
``Transfer`` touched (Keeper.token_holders_moved): at N = 10,000 reading N balances every round
was most of its own time (docs/results/scale.md). The tracked balances must equal a full read."""

from __future__ import annotations

from typing import Any

import pytest

from bdfl.chain.accounts import derive_keys, devnet_account
from bdfl.chain.connection import Chain
from bdfl.chain.deploy import Deployment, fund_peers
from bdfl.chain.deploy_cli import deploy_to
from bdfl.chain.protocol import ProtocolClient
from bdfl.chain.txsender import TxSender
from bdfl.experiment.keeper import Keeper

pytestmark = [pytest.mark.chain]


def test_transfers_name_exactly_the_holders_whose_balance_changed(devnet: Any, chain_snapshot: None, tmp_path: Any) -> None:
    w3 = devnet.w3()
    deployment = Deployment.load(str(deploy_to(devnet, tmp_path / "deployment.json")), w3=w3)
    funder = devnet_account(0)
    sender = TxSender(w3, funder)
    keeper = Keeper(Chain(devnet.rpc_url), ProtocolClient(w3, deployment, funder, sender), devnet, int(w3.eth.block_number))
    peers = [a.address for a in derive_keys(5, 6, namespace="bdfl-test-balances")]
    start = int(w3.eth.block_number)
    before = keeper.token_balances(peers)
    fund_peers(w3, deployment, sender, peers[:4], tokens=7 * 10**18, eth_wei=None)
    end = int(w3.eth.block_number)
    moved = keeper.token_holders_moved(start + 1, end)
    assert set(peers[:4]) <= moved and not moved & set(peers[4:])  # the funder is in it too
    assert keeper.token_holders_moved(end + 1, end) == set()
    tracked = dict(before)
    tracked.update(keeper.token_balances(sorted(moved & set(peers))))
    assert tracked == keeper.token_balances(peers)
    assert all(tracked[p] == before[p] + 7 for p in peers[:4])
