"""A relayer's batches mined together (``chain.devnet.batch_mining``) on the simulation's anvil
(frozen clock, ``--order fifo``, base fee 0, 50M gas blocks) all land when one of them does
not fit in the block being built (issue 23).

Why this is a test: anvil 1.7's block builder skips a transaction that does not fit in the gas
left in the block, but still tries its sender's next one; a next one with a smaller gas limit
fits, fails the nonce check and is evicted from the pool without a trace. At N = 1000 the
relayer's last, smaller batch (4 entries after four full ones) was evicted that way in rounds
1 and 2, and its receipt waits took 360 of BDFL's 480 s to the target accuracy.
The fault is built here on purpose: other accounts first fill the block up to exactly the
room the small batch needs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from bdfl.chain.accounts import devnet_account
from bdfl.chain.devnet import batch_mining, rpc_call, start_devnet
from bdfl.chain.protocol import ProtocolClient
from bdfl.chain.relay import Relayer, RelayRequest, batch_gas, recorded_hashes
from bdfl.chain.txsender import TxDropped, TxSender
from bdfl.peer.stages.submit import check_relayed
from tests.chain.helpers import Env, Proto, setup_proto, update_hash

pytestmark = pytest.mark.chain

#: init code that loops until it runs out of gas: a creation that burns exactly its gas limit
BURN = "0x5b600056"  # JUMPDEST PUSH1 0 JUMP
TX_CAP = 2**24


@pytest.fixture(scope="module")
def proto(project_root: Any, artifacts: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proto]:
    """The test deployment on an anvil started as ``bdfl run`` starts it (frozen clock)."""
    log = tmp_path_factory.mktemp("frozen") / "anvil.log"
    with start_devnet("anvil", accounts=10, log_path=log, root=project_root, frozen_time=True) as dn:
        yield setup_proto(dn, artifacts)


class SmallBatches(Relayer):
    """The runner's relayer cutting batches of ``size`` entries, so that 8 members make a full
    batch and a smaller last one (at K = 9 in ``bdfl run``: 124 entries a batch)."""

    def __init__(self, client: ProtocolClient, size: int) -> None:
        super().__init__(client)
        self.size = size

    def batches(self, requests: Sequence[RelayRequest]) -> list[list[RelayRequest]]:
        return [list(requests[i:i + self.size]) for i in range(0, len(requests), self.size)]


def _fill(env: Env, gas: int) -> list[str]:
    """Send creations that burn ``gas`` in all, from devnet accounts 1.. (one each), not mined yet."""
    hashes = []
    for i, part in enumerate(_parts(gas), start=1):
        sender = devnet_account(i)
        nonce = env.w3.eth.get_transaction_count(sender.address, "pending")
        tx = {"nonce": nonce, "gas": part, "data": BURN, "value": 0, "chainId": env.dep.chain_id,
              "maxFeePerGas": 2_000_000_000, "maxPriorityFeePerGas": 0}
        hashes.append(env.w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction).hex())
    return hashes


def _parts(gas: int) -> list[int]:
    n = -(-gas // (TX_CAP - 1))
    return [gas // n + (1 if i < gas % n else 0) for i in range(n)]


def _receipt(env: Env, tx_hash: Any) -> Any:
    h = tx_hash if isinstance(tx_hash, str) else "0x" + bytes(tx_hash).hex()
    return rpc_call(env.proto.rpc_url, "eth_getTransactionReceipt", ["0x" + h.removeprefix("0x")])


def _block_gas(env: Env) -> int:
    return int(env.w3.eth.get_block("latest")["gasLimit"])


def test_every_batch_is_mined_when_one_does_not_fit_the_block(env: Env) -> None:
    members = env.join()
    r = env.deployer.current_round()
    relayer = SmallBatches(env.deployer, size=5)  # batches of 5 and 3 entries
    requests = [RelayRequest(c.address, c.sign_submission(r, update_hash(r, c.address), 10)) for c in members]
    room = batch_gas(env.deployer, 3)  # what the smaller batch alone would need
    assert batch_gas(env.deployer, 5) > room
    with batch_mining(env.w3):
        fillers = _fill(env, _block_gas(env) - room)  # the first block then has room for exactly that
        batches = relayer.send(r, requests)
    assert [len(b.requests) for b in batches] == [5, 3]
    filled = {int(_receipt(env, h)["blockNumber"], 16) for h in fillers}
    receipts = [_receipt(env, b.tx_hash) for b in batches]
    # the condition was there: the full batch did not fit in the fillers' block
    assert receipts[0] is not None and int(receipts[0]["blockNumber"], 16) > max(filled)
    assert receipts[1] is not None, "anvil evicted the smaller batch: accepted, never mined"
    assert [int(x["status"], 16) for x in receipts] == [1, 1]
    assert recorded_hashes(env.deployer, r) == {c.address: update_hash(r, c.address) for c in members}
    # and what the runner does next finds nothing to fall back on
    assert check_relayed(relayer, r, batches, {c.address: i for i, c in enumerate(members)}) == []


def test_an_evicted_transaction_is_reported_dropped_and_its_members_fall_back(env: Env) -> None:
    """The eviction itself (a sender's smaller transaction after one that does not fit), as a
    relayer that does not equalise its limits would cause it: the wait reports the batch
    dropped instead of waiting out its receipt timeout, the relayer re-reads its nonce, and
    the batch's members are named to submit directly."""
    members = env.join()
    r = env.deployer.current_round()
    client = ProtocolClient(env.w3, env.dep, env.proto.deployer,
                            TxSender(env.w3, env.proto.deployer, chain_id=env.dep.chain_id, receipt_timeout=300.0))
    relayer = Relayer(client)
    signed = {c.address: c.sign_submission(r, update_hash(r, c.address), 10) for c in members}
    room = batch_gas(client, 3)
    with batch_mining(env.w3):
        _fill(env, _block_gas(env) - room)
        big = client.submit_batch(r, [signed[c.address] for c in members[:5]], wait=False, gas=batch_gas(client, 5))
        small = client.submit_batch(r, [signed[c.address] for c in members[5:]], wait=False, gas=room)
    assert _receipt(env, big) is not None
    with pytest.raises(TxDropped):
        client.sender.wait(small)
    from bdfl.chain.relay import RelayBatch
    last = [RelayBatch([RelayRequest(c.address, signed[c.address]) for c in members[5:]], small)]
    fallbacks = check_relayed(relayer, r, last, {c.address: i for i, c in enumerate(members)})
    assert sorted(f.address for f in fallbacks) == sorted(c.address for c in members[5:])
    assert {f.reason for f in fallbacks} == {"not relayed"}
    # the relayer's nonce was re-read: its next batch is mined (no gap behind the lost one)
    again = relayer.send(r, [RelayRequest(c.address, signed[c.address]) for c in members[5:]])
    assert all(not isinstance(x, Exception) for x in relayer.wait(again))
    assert set(recorded_hashes(client, r)) == {c.address for c in members}
