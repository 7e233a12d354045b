"""Contract calls encoded and decoded with ``eth_abi`` directly, from cached ABI types.

web3's contract-function machinery re-derives a function's ABI and runs its Python
normalisers (``map_abi_data`` / ``recursive_map``) on every call: two thirds of the time
of a batched read of 100 submissions, and half of signing a transaction
(``build_transaction``), went there (docs/results/time-to-accuracy.md). Here a
function's selector, input types and output ABI are computed once per contract ABI and
reused; the values are the ones web3 gives (addresses checksummed, structs as tuples,
arrays as lists; ``tests/chain/test_fastabi.py`` compares them). Anything this path does
not handle (keyword arguments, a revert, a node error) returns None or raises nothing
here: callers then take web3's own path, which raises web3's usual exceptions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eth_abi import decode, encode
from eth_utils import is_checksum_address, keccak, to_checksum_address

from bdfl.chain import rpcbatch
from bdfl.errors import BDFLError


def _type_string(entry: dict[str, Any]) -> str:
    """The canonical type of an ABI input/output entry (tuples expanded: ``(uint256,bytes32)[]``)."""
    t = str(entry["type"])
    if t.startswith("tuple"):
        return "(" + ",".join(_type_string(c) for c in entry.get("components", [])) + ")" + t[len("tuple"):]
    return t


def _normalise(entry: dict[str, Any], value: Any) -> Any:
    """``value`` decoded by eth_abi as web3 returns it: addresses checksummed, arrays as lists,
    structs as tuples (of normalised fields)."""
    t = str(entry["type"])
    if t.endswith("]"):
        inner = {**entry, "type": t[: t.rindex("[")]}
        return [_normalise(inner, v) for v in value]
    if t == "tuple":
        return tuple(_normalise(c, v) for c, v in zip(entry.get("components", []), value, strict=True))
    if t == "address":
        return to_checksum_address(value)
    return value


class _Function:
    """One function's selector, input types and output entries."""

    __slots__ = ("selector", "inputs", "outputs", "output_types")

    def __init__(self, abi: dict[str, Any]) -> None:
        self.inputs = [_type_string(i) for i in abi.get("inputs", [])]
        self.selector = keccak(text=f"{abi['name']}({','.join(self.inputs)})")[:4]
        self.outputs = list(abi.get("outputs", []))
        self.output_types = [_type_string(o) for o in self.outputs]

    def calldata(self, args: Sequence[Any]) -> bytes:
        """Selector + encoded ``args``; ValueError for an address web3 would refuse (web3 takes
        checksummed addresses only, eth_abi any spelling) or one inside a tuple (not checked here)."""
        for t, a in zip(self.inputs, args, strict=True):
            if "address" in t:
                if t.startswith("(") or not all(isinstance(x, str) and is_checksum_address(x) for x in (a if t.endswith("]") else [a])):
                    raise ValueError(f"{t} argument left to web3")
        return self.selector + encode(self.inputs, list(args))

    def result(self, data: bytes) -> Any:
        """The return data decoded as web3's ``call()`` returns it (one output: the value itself)."""
        values = decode(self.output_types, data)
        out = [_normalise(e, v) for e, v in zip(self.outputs, values, strict=True)]
        return out[0] if len(out) == 1 else out


_FUNCTIONS: dict[tuple[int, str], _Function | None] = {}


def function(contract_abi: Any, name: str) -> _Function | None:
    """The cached :class:`_Function` named ``name`` in ``contract_abi`` (None when the name is
    absent or overloaded: web3's path then resolves it)."""
    key = (id(contract_abi), name)
    if key not in _FUNCTIONS:
        entries = [e for e in contract_abi if e.get("type") == "function" and e.get("name") == name]
        _FUNCTIONS[key] = _Function(entries[0]) if len(entries) == 1 else None
    return _FUNCTIONS[key]


def calldata(call: Any) -> bytes | None:
    """The transaction data of a bound web3 contract call (``contract.functions.f(*args)``), or
    None when this path does not handle it (keyword arguments, overloads, arguments eth_abi
    refuses as given)."""
    if getattr(call, "kwargs", None) or getattr(call, "contract_abi", None) is None:
        return None
    fn = function(call.contract_abi, call.fn_name)
    if fn is None:
        return None
    try:
        return fn.calldata(call.args or ())
    except Exception:  # noqa: BLE001 - e.g. an ENS name or a hex string for bytes: web3 normalises those
        return None


def call_many(w3: Any, address: str, contract_abi: Any, name: str, arg_lists: Sequence[Sequence[Any]], *,
              page: int = rpcbatch.PAGE) -> list[Any] | None:
    """``contract.functions.<name>(*args).call()`` (the contract at ``address`` with ABI
    ``contract_abi``) for every ``args`` of ``arg_lists``, in
    JSON-RPC batches of ``page`` ``eth_call`` requests at the latest block, decoded here.
    None when any call fails or cannot be encoded (the caller then makes web3's calls, which
    raise the decoded revert)."""
    fn = function(contract_abi, name)
    if fn is None:
        return None
    try:
        data = ["0x" + fn.calldata(a).hex() for a in arg_lists]
    except Exception:  # noqa: BLE001 - see calldata()
        return None
    out: list[Any] = []
    try:
        for r in rpcbatch.replies(w3, [("eth_call", [{"to": address, "data": d}, "latest"]) for d in data], page=page):
            res = r.get("result")
            if not isinstance(res, str) or r.get("error") is not None:
                return None
            if res in ("0x", "") and fn.outputs and not _has_code(w3, address):
                raise NoContractCode(address)
            out.append(fn.result(bytes.fromhex(res[2:])))
    except rpcbatch.BatchFailed:
        return None
    return out


class NoContractCode(BDFLError):
    """A view of a deployment's contract answered nothing because no code is there any more: the
    chain was restarted or reset under the peers (a devnet's state is not kept). A running peer
    died on it with a decoding traceback (an outside probe); now one message and its fix."""

    def __init__(self, address: str) -> None:
        super().__init__(f"the chain no longer holds the deployment: no contract code at {address} (a devnet restarted "
                         "or reset since it was deployed?)",
                         fix="deploy again (bdfl deploy, or bdfl devnet --deploy) and start the peers with the new "
                             "deployment file; their state folders belong to the old deployment")
        self.address = address


def _has_code(w3: Any, address: str) -> bool:
    try:
        return len(w3.eth.get_code(address)) > 0
    except Exception:  # noqa: BLE001 - the node failing now is the caller's transient error, not this one
        return True


def call(w3: Any, contract: Any, name: str, *args: Any) -> Any:
    """One call through :func:`call_many`; None when it fails (see there)."""
    out = call_many(w3, contract.address, contract.abi, name, [args])
    return None if out is None else out[0]
