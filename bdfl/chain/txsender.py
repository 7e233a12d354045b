"""Fast, safe transaction sending for one account.

Why not ``contract.functions.f().transact()``: web3 then makes ~7 RPC calls per
transaction (nonce, gas, fees, chain id, ...) and polls receipts every 100 ms.
:class:`TxSender` keeps the nonce locally, signs locally (coincurve), caches fee
parameters, and polls receipts at a few milliseconds, which is what makes a
round of 1,000 peers practical on anvil.

Failures are never silent: a revert raises :class:`TxReverted` with the decoded
custom-error name; a stale nonce or an underpriced fee is repaired and retried
a bounded number of times, then reported.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from hexbytes import HexBytes

from bdfl.chain import fastabi, rpcbatch
from bdfl.errors import BDFLError

_RETRYABLE_NONCE = ("nonce too low", "nonce too high", "invalid nonce", "already known", "replacement transaction")
_RETRYABLE_FEE = ("underpriced", "fee cap", "max fee per gas less than block base fee", "maxfeepergas")


class TxError(BDFLError):
    """A transaction could not be sent or confirmed."""


class OutOfGasMoney(BDFLError):
    """The node refused a transaction because its sender holds too little ETH for its gas limit
    at its fee cap. Not a :class:`TxError`: no retry mends it (an outside probe's peer retried it
    for 120 s as a chain outage, then was told to "check the node"); the fix is to fund the account."""


_INSUFFICIENT_FUNDS = ("insufficient funds", "insufficient balance")


def eth_text(wei: int) -> str:
    """Wei as ETH for a message: 0.001 ETH, 1.23457 ETH (6 significant digits)."""
    return f"{int(wei) / 10**18:.6g} ETH"


class TxDropped(TxError):
    """A sent transaction has no receipt and the node no longer knows it (neither mined nor in
    its pool): it will not be mined, and its nonce is free again (:meth:`TxSender.resync_nonce`)."""


class TxReverted(TxError):
    """A transaction (or its gas estimate) reverted; ``error_name`` is the Solidity custom error."""

    def __init__(self, message: str, error_name: str | None = None, error_args: tuple[Any, ...] = ()) -> None:
        super().__init__(message)
        self.error_name = error_name
        self.error_args = error_args


class DuplicateHashError(TxReverted):
    """``submitUpdate`` refused with ``DuplicateHash``: the update hash was already submitted
    in this round by another member (a copier front-running it). ``error_args`` = (round, hash)."""


#: custom errors raised as their own TxReverted subclass, so callers outside bdfl.chain can
#: catch them by type
TYPED_REVERTS: dict[str, type[TxReverted]] = {"DuplicateHash": DuplicateHashError}


def error_selectors(abi: list[dict[str, Any]]) -> dict[bytes, dict[str, Any]]:
    """Map 4-byte selectors to the custom-error ABI entries of ``abi``."""
    out: dict[bytes, dict[str, Any]] = {}
    for entry in abi:
        if entry.get("type") == "error":
            sig = f"{entry['name']}({','.join(_abi_type(i) for i in entry.get('inputs', []))})"
            out[keccak(text=sig)[:4]] = entry
    return out


def _abi_type(param: dict[str, Any]) -> str:
    if param["type"].startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in param["components"]) + ")" + param["type"][5:]
    return str(param["type"])


def decode_revert(abi: list[dict[str, Any]] | None, data: Any) -> tuple[str | None, tuple[Any, ...]]:
    """Decode revert data into (error name, args); (None, ()) when unknown."""
    from eth_abi import decode

    if isinstance(data, dict):
        data = data.get("data")
    if not isinstance(data, (str, bytes)) or not data:
        return None, ()
    raw = HexBytes(data)
    if len(raw) < 4:
        return None, ()
    if raw[:4] == keccak(text="Error(string)")[:4]:
        try:
            return "Error", tuple(decode(["string"], raw[4:]))
        except Exception:  # noqa: BLE001 - malformed revert data: report it undecoded
            return "Error", ()
    entry = error_selectors(abi or []).get(bytes(raw[:4]))
    if entry is None:
        return None, ()
    try:
        args = tuple(decode([_abi_type(i) for i in entry.get("inputs", [])], raw[4:]))
    except Exception:  # noqa: BLE001
        args = ()
    return str(entry["name"]), args


class FeeCache:
    """EIP-1559 fee parameters read from the latest block, cached for ``ttl`` seconds.

    One cache can serve many senders on the same chain (a worker's hundreds of peers),
    so fees cost one ``eth_getBlockByNumber`` per ``ttl`` instead of one per account."""

    def __init__(self, w3: Any, ttl: float = 10.0) -> None:
        self.w3 = w3
        self.ttl = ttl
        self._lock = threading.Lock()
        self._fees: tuple[int, int] | None = None
        self._at = 0.0

    def get(self, refresh: bool = False) -> tuple[int, int]:
        with self._lock:
            if refresh or self._fees is None or time.monotonic() - self._at > self.ttl:
                block = self.w3.eth.get_block("latest")
                base = int(block.get("baseFeePerGas", 0) or 0)
                tip = 1_000_000_000 if base else 0
                # 3x headroom over the base fee: EIP-1559 raises it at most 12.5 % per full block.
                self._fees = (max(3 * base + tip, 2_000_000_000), tip)
                self._at = time.monotonic()
            return self._fees


@dataclass
class _Pending:
    call: Any  # the ContractFunction (for revert decoding), or None
    tx: dict[str, Any]


class TxSender:
    """Sends transactions for one local account with a local nonce counter.

    Thread-safe: a lock serialises nonce allocation and sending.
    """

    def __init__(
        self,
        w3: Any,
        account: LocalAccount,
        *,
        chain_id: int | None = None,
        poll_interval: float = 0.005,
        receipt_timeout: float = 120.0,
        drop_grace: float = 1.0,
        gas_multiplier: float = 1.25,
        max_retries: int = 3,
        fee_cache: FeeCache | None = None,
    ) -> None:
        self.w3 = w3
        self.account = account
        self.address = account.address
        self.chain_id = chain_id if chain_id is not None else int(w3.eth.chain_id)
        self.poll_interval = poll_interval
        self.receipt_timeout = receipt_timeout
        self.drop_grace = drop_grace
        self.gas_multiplier = gas_multiplier
        self.max_retries = max_retries
        self._lock = threading.Lock()
        self._nonce: int | None = None
        self.fees = fee_cache or FeeCache(w3)
        self._held: list[tuple[HexBytes, bytes, Any, dict[str, Any]]] | None = None
        self._pending: dict[bytes, _Pending] = {}
        self.sent = 0
        self.gas_used = 0

    # -- nonce and fees -------------------------------------------------------
    def resync_nonce(self) -> int:
        """Reload the nonce from the chain (after a restart or a nonce error)."""
        self._nonce = int(self.w3.eth.get_transaction_count(self.address, "pending"))
        return self._nonce

    def _fee_params(self, refresh: bool = False) -> tuple[int, int]:
        return self.fees.get(refresh)

    # -- sending --------------------------------------------------------------
    def estimate(self, call: Any, value: int = 0) -> int:
        """Gas estimate with headroom; raises TxReverted (decoded) if the call would revert."""
        from web3.exceptions import ContractLogicError

        try:
            gas = int(call.estimate_gas({"from": self.address, "value": value}))
        except ContractLogicError as exc:
            raise self._reverted(call, exc.data, str(exc.message or exc)) from None
        return int(gas * self.gas_multiplier) + 10_000

    def _reverted(self, call: Any, data: Any, fallback: str) -> TxReverted:
        abi = getattr(call, "contract_abi", None)
        name, args = decode_revert(abi, data)
        fn = getattr(call, "fn_name", None) or getattr(call, "abi_element_identifier", "transaction")
        label = f"{name}{args if args else ''}" if name else fallback
        return TYPED_REVERTS.get(name or "", TxReverted)(f"{fn} by {self.address} reverted: {label}", name, args)

    def send(self, call: Any, *, gas: int | None = None, value: int = 0) -> HexBytes:
        """Sign and send a contract call without waiting; returns the transaction hash."""
        if gas is None:
            gas = self.estimate(call, value)
        base = {"from": self.address, "gas": gas, "value": value, "chainId": self.chain_id}
        return self._send_signed(call, base)

    def send_transaction(self, tx: dict[str, Any]) -> HexBytes:
        """Sign and send a plain transaction dict (e.g. an ETH transfer); ``gas`` defaults to 21,000."""
        base = {"from": self.address, "gas": 21_000, "value": 0, "chainId": self.chain_id, **tx}
        return self._send_signed(None, base)

    # -- holding: sign now, send later ----------------------------------------------
    def hold(self) -> None:
        """From now on, :meth:`send` signs (allocating nonces) but does not send: the signed
        transactions wait for :meth:`release`. This lets a simulation sign in parallel and
        send in a fixed order, which is what decides update indices on chain."""
        with self._lock:
            if self._held is None:
                self._held = []

    def release(self) -> list[HexBytes]:
        """Send the held transactions in the order they were signed and stop holding.
        Returns their final hashes (a transaction re-signed after a nonce or fee error gets
        a new hash). Raises TxError when one cannot be sent; later ones are then not sent."""
        with self._lock:
            held, self._held = self._held or [], None
        hashes: list[HexBytes] = []
        for n, (tx_hash, raw, call, base) in enumerate(held):
            try:
                self.w3.eth.send_raw_transaction(raw)
                hashes.append(tx_hash)
                continue
            except Exception as exc:  # noqa: BLE001 - retried through the normal path below
                text = str(exc).lower()
                if not (any(k in text for k in _RETRYABLE_NONCE) or _is_fee_error(exc)):
                    signed = self._pending.get(bytes(tx_hash))
                    for h, *_ in held[n:]:
                        self._pending.pop(bytes(h), None)
                    self._refuse_if_out_of_gas_money(exc, signed.tx if signed is not None else base)
                    raise TxError(f"sending a transaction from {self.address} failed: {exc}") from None
            # this and every later held transaction are re-signed with fresh nonces
            with self._lock:
                for h, *_ in held[n:]:
                    self._pending.pop(bytes(h), None)
                self.resync_nonce()
            for _h, _raw, c, b in held[n:]:
                hashes.append(self._send_signed(c, b))
            break
        return hashes

    def _send_signed(self, call: Any, base: dict[str, Any]) -> HexBytes:
        last: Exception | None = None
        for attempt in range(self.max_retries + 1):
            with self._lock:
                if self._nonce is None:
                    self.resync_nonce()
                max_fee, tip = self._fee_params(refresh=attempt > 0 and last is not None and _is_fee_error(last))
                tx = {**base, "nonce": self._nonce, "maxFeePerGas": max_fee, "maxPriorityFeePerGas": tip}
                if call is not None:
                    # the call's data from cached ABI types (bdfl.chain.fastabi: the bytes web3's
                    # build_transaction encodes, without its per-call ABI processing)
                    data = fastabi.calldata(call)
                    tx = call.build_transaction(tx) if data is None else {**tx, "to": call.address, "data": "0x" + data.hex()}
                signed = self.account.sign_transaction(tx)
                if self._held is not None:
                    held_hash = HexBytes(signed.hash)
                    self._held.append((held_hash, signed.raw_transaction, call, base))
                    self._nonce += 1
                    self.sent += 1
                    self._pending[bytes(held_hash)] = _Pending(call, tx)
                    return held_hash
                try:
                    tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
                except Exception as exc:  # noqa: BLE001 - classified below, re-raised if not retryable
                    last = exc
                    text = str(exc).lower()
                    if any(k in text for k in _RETRYABLE_NONCE):
                        self.resync_nonce()
                        continue
                    if _is_fee_error(exc):
                        continue
                    self._refuse_if_out_of_gas_money(exc, tx)
                    raise TxError(f"sending a transaction from {self.address} failed: {exc}") from None
                self._nonce += 1
                self.sent += 1
                self._pending[bytes(tx_hash)] = _Pending(call, tx)
                return HexBytes(tx_hash)
        raise TxError(f"sending a transaction from {self.address} failed after {self.max_retries} retries: {last}")

    def _refuse_if_out_of_gas_money(self, exc: Exception, tx: dict[str, Any]) -> None:
        """Raise :class:`OutOfGasMoney` when the node refused ``tx`` for want of ETH."""
        if not any(k in str(exc).lower() for k in _INSUFFICIENT_FUNDS):
            return
        need = int(tx.get("gas", 0)) * int(tx.get("maxFeePerGas", 0)) + int(tx.get("value", 0))
        try:
            have = eth_text(self.w3.eth.get_balance(self.address))
        except Exception:  # noqa: BLE001 - the refusal is the news; the balance only helps
            have = "an unknown amount"
        raise OutOfGasMoney(
            f"account {self.address} has too little ETH to pay for gas: it holds {have}, a transaction of gas limit "
            f"{int(tx.get('gas', 0)):,} at a fee cap of {int(tx.get('maxFeePerGas', 0)) / 1e9:.3g} gwei needs "
            f"{eth_text(need)} ({exc})",
            fix=f"send ETH to {self.address} (a restarted peer resumes from its state folder)") from None

    def wait(self, tx_hash: bytes, *, timeout: float | None = None) -> Any:
        """Poll for the receipt; raise TxReverted (decoded) if the transaction failed, and
        TxDropped once the node has not known the transaction (no receipt, not in its pool)
        for ``drop_grace`` seconds, instead of waiting out the whole timeout for it."""
        start = time.monotonic()
        deadline = start + (timeout or self.receipt_timeout)
        key = bytes(tx_hash)
        check_at, unknown_since = start, None  # the node is asked whether it knows the tx every 0.25 s
        while True:
            receipt = self._receipt(tx_hash)
            if receipt is not None:
                break
            now = time.monotonic()
            if now >= check_at:
                check_at = now + 0.25
                if self._known(tx_hash):
                    unknown_since = None
                elif unknown_since is None:
                    unknown_since = now
                elif now - unknown_since >= self.drop_grace and self._receipt(tx_hash) is None:
                    self._pending.pop(key, None)
                    raise TxDropped(f"transaction 0x{key.hex()} from {self.address} was dropped: no receipt, and the node "
                                    f"has not known it for {now - unknown_since:.1f} s", fix="send it again with a fresh nonce")
            if now > deadline:
                raise TxError(f"no receipt for transaction 0x{key.hex()} after {timeout or self.receipt_timeout:.0f} s", fix="is the chain mining blocks?")
            time.sleep(self.poll_interval)
        return self._settle(key, receipt)

    def _known(self, tx_hash: bytes) -> bool:
        """Does the node know the transaction (pending in its pool, or mined)? Asked with
        ``eth_getRawTransactionByHash`` (web3's request cache validates an
        ``eth_getTransactionByHash`` of a pending transaction with a failing block read); a
        node without the method counts as knowing it (no drop is reported there)."""
        try:
            reply = self.w3.provider.make_request("eth_getRawTransactionByHash", ["0x" + bytes(tx_hash).hex()])
        except Exception:  # noqa: BLE001 - the node cannot tell: assume it knows the transaction
            return True
        return "error" in reply or reply.get("result") not in (None, "0x")

    def _settle(self, key: bytes, receipt: Any) -> Any:
        pending = self._pending.pop(key, None)
        self.gas_used += int(receipt["gasUsed"])
        if receipt["status"] != 1:
            raise self._explain_failure(pending, receipt)
        return receipt

    def _receipt(self, tx_hash: bytes) -> Any:
        from web3.exceptions import TransactionNotFound

        try:
            return self.w3.eth.get_transaction_receipt(tx_hash)
        except TransactionNotFound:
            return None

    def _explain_failure(self, pending: _Pending | None, receipt: Any) -> TxReverted:
        """Replay a failed transaction to recover the revert data: on the state before its
        block, then (if that passes: a transaction earlier in the same block made it fail, as
        a front-runner's does) on the state after its block."""
        from web3.exceptions import ContractLogicError

        if pending is None or pending.call is None:
            return TxReverted(f"transaction 0x{bytes(receipt['transactionHash']).hex()} reverted")
        tx = {k: pending.tx[k] for k in ("from", "to", "data", "value", "gas") if k in pending.tx}
        block = int(receipt["blockNumber"])
        for at in (block - 1, block):
            try:
                self.w3.eth.call(tx, block_identifier=at)
            except ContractLogicError as exc:
                return self._reverted(pending.call, exc.data, str(exc.message or exc))
            except Exception:  # noqa: BLE001 - replay not possible (pruned node): report undecoded
                break
        return self._reverted(pending.call, None, "reverted (reason unavailable; out of gas?)")

    def transact(self, call: Any, *, gas: int | None = None, value: int = 0, timeout: float | None = None) -> Any:
        """Send and wait for the receipt."""
        return self.wait(self.send(call, gas=gas, value=value), timeout=timeout)

    def wait_all(self, tx_hashes: list[bytes], *, timeout: float | None = None) -> list[Any]:
        """Receipts for many transactions sent earlier (raises on the first failure after collecting all)."""
        receipts: list[Any] = []
        first_error: Exception | None = None
        for h in tx_hashes:
            try:
                receipts.append(self.wait(h, timeout=timeout))
            except TxError as exc:
                receipts.append(None)
                first_error = first_error or exc
        if first_error is not None:
            raise first_error
        return receipts


def resync_nonces(senders: list[TxSender], *, page: int = rpcbatch.PAGE) -> None:
    """Load the pending nonce of many senders on one chain in JSON-RPC batches of ``page``
    (instead of one request per sender at its first transaction: at N = 10,000 those
    requests were two thirds of the time a worker spent signing its peers' joins)."""
    if not senders:
        return
    try:
        for sender, reply in zip(senders, rpcbatch.replies(
                senders[0].w3, [("eth_getTransactionCount", [s.address, "pending"]) for s in senders], page=page),
                strict=True):
            if reply.get("result") is not None:
                sender._nonce = int(reply["result"], 16)
    except rpcbatch.BatchFailed:  # leave the rest to resync one by one at their first transaction
        return


def wait_many(
    pending: list[tuple[TxSender, bytes]], *, timeout: float = 120.0, poll_interval: float = 0.005, page: int = rpcbatch.PAGE
) -> list[Any]:
    """Receipts of many transactions, possibly from many senders on one chain.

    Polls only the *last* outstanding transaction (one small request per poll, backing off
    from ``poll_interval`` to 50 ms): transactions sent one after another are mined in that
    order, so once the last has a receipt the others have too, and all are then read in
    JSON-RPC batches of ``page``. (Polling every outstanding receipt in each poll made a
    node answering 1,000-receipt batches every few ms too busy to mine.) Returns, per
    transaction in order, its receipt or the exception :meth:`TxSender.wait` would have
    raised (a decoded revert, a timeout)."""
    from web3.datastructures import AttributeDict

    results: list[Any] = [None] * len(pending)
    todo = list(range(len(pending)))
    deadline = time.monotonic() + timeout
    delay = poll_interval

    def fetch(indices: list[int]) -> list[Any]:
        w3 = pending[indices[0]][0].w3
        requests = [("eth_getTransactionReceipt", ["0x" + bytes(pending[i][1]).hex()]) for i in indices]
        try:
            return [r.get("result") for r in rpcbatch.replies(w3, requests, page=page)]
        except rpcbatch.BatchFailed as exc:  # e.g. a node error
            raise TxError(f"receipt batch failed: {exc.error}") from exc

    while todo:
        if fetch(todo[-1:])[0] is not None:
            waiting: list[int] = []
            for i, raw in zip(todo, fetch(todo), strict=True):
                if raw is None:
                    waiting.append(i)
                    continue
                sender, tx_hash = pending[i]
                receipt = AttributeDict({
                    "transactionHash": HexBytes(raw["transactionHash"]),
                    "blockNumber": int(raw["blockNumber"], 16),
                    "gasUsed": int(raw["gasUsed"], 16),
                    "status": int(raw["status"], 16),
                })
                try:
                    results[i] = sender._settle(bytes(tx_hash), receipt)
                except TxError as exc:
                    results[i] = exc
            todo = waiting
            if not todo:
                break
        if time.monotonic() > deadline:
            for i in todo:
                results[i] = TxError(
                    f"no receipt for transaction 0x{bytes(pending[i][1]).hex()} after {timeout:.0f} s",
                    fix="is the chain mining blocks?",
                )
            break
        time.sleep(delay)
        delay = min(delay * 1.5, 0.05)
    return results


def transient_chain_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "the node or the network hiccuped, try again later"
    (connection errors, RPC errors, a transaction that could not be sent): callers
    outside the chain layer catch these without importing web3 or requests."""
    import requests
    from web3.exceptions import Web3Exception

    return (requests.RequestException, OSError, Web3Exception, TxError)


def _is_fee_error(exc: Exception) -> bool:
    text = str(exc).lower()
    return any(k in text for k in _RETRYABLE_FEE)
