"""fund_peers on an automining devnet: the transfers are mined together, not a block each."""

from __future__ import annotations

from typing import Any

import pytest

from bdfl.chain.accounts import derive_keys, devnet_account
from bdfl.chain.deploy import TOKEN, deploy, fund_peers
from bdfl.chain.txsender import TxSender

from .helpers import TEST_PARAMS

pytestmark = pytest.mark.chain


def test_funding_mines_the_transfers_together_and_automine_is_back(devnet: Any, artifacts: Any, chain_snapshot: None) -> None:
    w3 = devnet.w3()
    deployer = devnet_account(0)
    sender = TxSender(w3, deployer)
    dep = deploy(w3, deployer, artifacts, TEST_PARAMS, sender=sender)
    token = dep.contract(w3, "BDFLToken")
    peers = [k.address for k in derive_keys(3, 30, namespace="bdfl-funding-test")]
    before = int(w3.eth.block_number)
    receipts = fund_peers(w3, dep, sender, peers, 5 * TOKEN)
    assert len(receipts) == 30 and all(r["status"] == 1 for r in receipts)
    assert len({int(r["blockNumber"]) for r in receipts}) == 1  # one block, not 30
    assert int(w3.eth.block_number) == before + 1
    assert all(int(token.functions.balanceOf(p).call()) == 5 * TOKEN for p in peers)
    assert all(int(w3.eth.get_balance(p)) == 10**20 for p in peers)
    assert w3.provider.make_request("anvil_getAutomine", [])["result"] is True  # automine restored
