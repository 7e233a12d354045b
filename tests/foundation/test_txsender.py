"""TxSender: stale nonces and underpriced fees are repaired and retried, never lost."""

from __future__ import annotations

from typing import Any

import pytest

from bdfl.chain.accounts import derive_keys, devnet_account
from bdfl.chain.txsender import OutOfGasMoney, TxError, TxSender, transient_chain_errors


def _fund(devnet: Any, address: str) -> None:
    devnet.set_balance(address, 10**20)


def test_stale_nonce_after_another_sender_is_repaired(devnet: Any, w3: Any, chain_snapshot: None) -> None:
    """Two senders for one account (a peer restarted while its old process still ran):
    the second one's nonce goes stale, the error is caught, the nonce resynced, the
    transaction sent: both transfers land."""
    acct = derive_keys(99, 1)[0]
    _fund(devnet, acct.address)
    to = devnet_account(3).address
    a, b = TxSender(w3, acct), TxSender(w3, acct)
    before = w3.eth.get_balance(to)
    a.wait(a.send_transaction({"to": to, "value": 1}))
    b.resync_nonce()
    a.wait(a.send_transaction({"to": to, "value": 1}))  # b's cached nonce is now stale
    b.wait(b.send_transaction({"to": to, "value": 1}))
    assert w3.eth.get_balance(to) == before + 3
    assert w3.eth.get_transaction_count(acct.address) == 3


def test_restarted_sender_picks_up_the_chain_nonce(devnet: Any, w3: Any, chain_snapshot: None) -> None:
    acct = derive_keys(98, 1)[0]
    _fund(devnet, acct.address)
    first = TxSender(w3, acct)
    for _ in range(3):
        first.wait(first.send_transaction({"to": devnet_account(3).address, "value": 1}))
    again = TxSender(w3, acct)  # a new process: nothing cached
    receipt = again.wait(again.send_transaction({"to": devnet_account(3).address, "value": 1}))
    assert receipt["status"] == 1
    assert w3.eth.get_transaction(receipt["transactionHash"])["nonce"] == 3


def test_underpriced_fee_is_refreshed_and_retried(devnet: Any, w3: Any, chain_snapshot: None, monkeypatch: pytest.MonkeyPatch) -> None:
    acct = derive_keys(97, 1)[0]
    _fund(devnet, acct.address)
    sender = TxSender(w3, acct)
    real = sender._fee_params
    calls = {"n": 0}

    def cheap_first(refresh: bool = False) -> tuple[int, int]:
        calls["n"] += 1
        return (1, 0) if calls["n"] == 1 else real(refresh=True)  # 1 wei: below the base fee

    monkeypatch.setattr(sender, "_fee_params", cheap_first)
    receipt = sender.wait(sender.send_transaction({"to": devnet_account(3).address, "value": 1}))
    assert receipt["status"] == 1 and calls["n"] >= 2


def test_unsendable_transaction_is_reported_not_lost(devnet: Any, w3: Any, chain_snapshot: None) -> None:
    """No ETH for gas is said as such, with the account to fund, and is no transient chain error
    (an outside probe's peer retried it for 120 s as an outage, then was told to check the node);
    also when the transaction was signed earlier and held."""
    broke = derive_keys(96, 1)[0]  # no ETH at all
    sender = TxSender(w3, broke)
    with pytest.raises(OutOfGasMoney) as info:
        sender.send_transaction({"to": devnet_account(3).address, "value": 10**18})
    assert f"account {broke.address} has too little ETH to pay for gas: it holds 0 ETH" in str(info.value)
    assert info.value.fix is not None and f"send ETH to {broke.address}" in info.value.fix
    assert not isinstance(info.value, transient_chain_errors())
    assert sender.sent == 0
    sender.hold()
    sender.send_transaction({"to": devnet_account(3).address, "value": 1})
    with pytest.raises(OutOfGasMoney):
        sender.release()


def test_held_transactions_go_out_in_signing_order_and_batched_receipts_settle(devnet: Any, w3: Any, chain_snapshot: None) -> None:
    """hold/release (sign in parallel, send in a fixed order) and wait_many (receipts of
    many senders polled in batches): every transfer lands, in the order released, and the
    held hashes are the mined ones."""
    from bdfl.chain.txsender import FeeCache, wait_many

    accts = derive_keys(96, 3)
    for a in accts:
        _fund(devnet, a.address)
    fees = FeeCache(w3)
    senders = [TxSender(w3, a, fee_cache=fees) for a in accts]
    to = devnet_account(3).address
    held = {}
    for s in reversed(senders):  # signed in one order ...
        s.hold()
        held[s.address] = [s.send_transaction({"to": to, "value": v}) for v in (1, 2)]
        assert w3.eth.get_transaction_count(s.address) == 0  # nothing sent yet
    pending = [(s, h) for s in senders for h in s.release()]  # ... released in another
    assert [h for _s, h in pending] == [h for s in senders for h in held[s.address]]
    receipts = wait_many(pending)
    assert all(r["status"] == 1 for r in receipts)
    blocks = [int(r["blockNumber"]) for r in receipts]
    assert blocks == sorted(blocks)  # mined in release order
    assert all(s.sent == 2 and not s._pending for s in senders)


def test_held_transaction_with_a_stale_nonce_is_resigned_on_release(devnet: Any, w3: Any, chain_snapshot: None) -> None:
    from bdfl.chain.txsender import wait_many

    acct = derive_keys(95, 1)[0]
    _fund(devnet, acct.address)
    to = devnet_account(3).address
    held, other = TxSender(w3, acct), TxSender(w3, acct)
    held.hold()
    stale = [held.send_transaction({"to": to, "value": 1}) for _ in range(2)]
    other.wait(other.send_transaction({"to": to, "value": 1}))  # takes nonce 0 first
    hashes = held.release()
    assert hashes[0] != stale[0]  # re-signed with fresh nonces
    assert all(r["status"] == 1 for r in wait_many([(held, h) for h in hashes]))
    assert w3.eth.get_transaction_count(acct.address) == 3


def test_wait_many_reports_a_revert_per_transaction(devnet: Any, w3: Any, chain_snapshot: None) -> None:
    """A failed transaction among good ones comes back as its exception, in its place."""
    from bdfl.chain.txsender import TxReverted, wait_many

    acct = derive_keys(94, 1)[0]
    _fund(devnet, acct.address)
    sender = TxSender(w3, acct)
    good = sender.send_transaction({"to": devnet_account(3).address, "value": 1})
    # a contract creation whose init code reverts (PUSH1 0 PUSH1 0 REVERT): mined, status 0
    bad = sender.send_transaction({"data": "0x60006000fd", "gas": 100_000})
    results = wait_many([(sender, good), (sender, bad)], timeout=20)
    assert results[0]["status"] == 1
    assert isinstance(results[1], TxReverted)


def test_resync_nonces_loads_every_senders_chain_nonce_in_batches(devnet: Any, w3: Any, chain_snapshot: None) -> None:
    """Nonces read in JSON-RPC batches (page 2 over 3 senders) equal each account's chain
    nonce, and the senders then send without a request of their own first."""
    from bdfl.chain.txsender import resync_nonces

    accts = derive_keys(97, 3)
    for a in accts:
        _fund(devnet, a.address)
    to = devnet_account(3).address
    used = TxSender(w3, accts[1])
    for _ in range(2):
        used.wait(used.send_transaction({"to": to, "value": 1}))
    senders = [TxSender(w3, a) for a in accts]
    resync_nonces(senders, page=2)
    assert [s._nonce for s in senders] == [0, 2, 0]
    senders[1].wait(senders[1].send_transaction({"to": to, "value": 1}))
    assert w3.eth.get_transaction_count(accts[1].address) == 3
