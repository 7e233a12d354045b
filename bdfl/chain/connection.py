"""One JSON-RPC endpoint as the layers above :mod:`bdfl.chain` use it: :class:`Chain`.

The orchestrator, its workers, the keeper and ``bdfl peer`` hold a :class:`Chain`, never a web3
object: what they need of the node (its id, clock and block number, an account's ETH, a devnet's
time and mining controls, the token's transfers, the gas of a range of blocks) is a method here,
and what they build on it (senders, protocol clients, deployments, funding) comes from here. So
all JSON-RPC lives in this package, as docs/architecture.md says, and
``tests/foundation/test_layering.py`` checks that no module outside it touches a web3 object.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from bdfl.chain.accounts import check_key_allowed
from bdfl.chain.deploy import Deployment, ProtocolParams, deploy, devnet_methods, fund_peers
from bdfl.chain.devnet import batch_mining, connect, make_web3
from bdfl.chain import rpcbatch
from bdfl.chain.protocol import FINALIZE_GAS_LIMIT, ProtocolClient, submissions_closed_reader
from bdfl.chain.txsender import FeeCache, TxSender
from bdfl.errors import BDFLError

__all__ = ["Chain", "GasMoney", "gas_money", "open_account"]

#: Gas one simulated peer's transactions of a round use, budgeted generously: a submission
#: (130-250k used) and, on the committee, a commit and a reveal (the default experiment: 3.94 M gas
#: a round for 20 peers, the keeper's transactions included, about 200k per peer).
PEER_ROUND_GAS = 500_000
#: Gas of deploying the contracts (measured 9.76 M; with headroom).
DEPLOY_GAS = 15_000_000
#: Gas of the keeper's transactions a round (advances and finalize), per member.
KEEPER_ROUND_GAS_PER_PEER = 100_000
#: Gas of funding one peer: its stake tokens (an ERC-20 transfer, ~52k) and its ETH (21k), with headroom.
FUND_GAS_PER_PEER = 130_000


@dataclass(frozen=True)
class GasMoney:
    """What a simulated run on a chain without devnet methods pays in ETH (wei): each peer is
    topped up to ``per_peer``; the deployer needs ``deployer`` in all (deploying, funding, the
    keeper's rounds and the peers' money), at ``fee_cap`` wei per gas."""

    per_peer: int
    deployer: int
    fee_cap: int


def gas_money(fee_cap: int, *, peers: int, rounds: int, peer_gas_limit: int) -> GasMoney:
    """The budget of :class:`GasMoney` for ``peers`` peers (and relayers) over ``rounds`` rounds, whose
    largest transaction has gas limit ``peer_gas_limit`` (a node refuses a transaction unless its
    sender holds gas limit x fee cap)."""
    per_peer = fee_cap * (peer_gas_limit + rounds * PEER_ROUND_GAS)
    keeper = DEPLOY_GAS + FINALIZE_GAS_LIMIT + peers * FUND_GAS_PER_PEER + rounds * (peer_gas_limit + peers * KEEPER_ROUND_GAS_PER_PEER)
    return GasMoney(per_peer, fee_cap * keeper + peers * per_peer, fee_cap)


class Chain:
    """A connection to one JSON-RPC endpoint (``rpc_url``), with a per-request timeout."""

    def __init__(self, rpc_url: str, request_timeout: float = 30.0) -> None:
        self.rpc_url = rpc_url
        self.request_timeout = request_timeout
        self._w3 = make_web3(rpc_url, request_timeout)
        self._chain_id: int | None = None

    def reconnected(self, request_timeout: float | None = None) -> Chain:
        """Another connection to the same endpoint: for another thread (web3's HTTP sessions
        are not shared across threads), e.g. an endpoint's seal read from the event loop."""
        return Chain(self.rpc_url, self.request_timeout if request_timeout is None else request_timeout)

    # -- the node ---------------------------------------------------------------
    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = int(self._w3.eth.chain_id)
        return self._chain_id

    def block_number(self) -> int:
        return int(self._w3.eth.block_number)

    def timestamp(self) -> int:
        """The latest block's timestamp (the chain's clock: deadlines are compared with it)."""
        return int(self._w3.eth.get_block("latest")["timestamp"])

    def eth_balance(self, address: str) -> int:
        """``address``'s ETH, in wei (what pays its gas)."""
        return int(self._w3.eth.get_balance(address))

    def devnet_methods(self) -> bool:
        """Whether the node answers a devnet's own methods (balances set, blocks mined at will)."""
        return devnet_methods(self._w3)

    def fee_cap(self) -> int:
        """The max fee per gas (wei) senders on this connection offer now."""
        return self.fee_cache().get()[0]

    def mine_at(self, timestamp: int) -> None:
        """Local devnet only: mine one block with this timestamp (``evm_setNextBlockTimestamp``:
        on a frozen-clock anvil ``evm_increaseTime`` would be overridden by the interval)."""
        self._w3.provider.make_request("evm_setNextBlockTimestamp", [int(timestamp)])
        self._w3.provider.make_request("evm_mine", [])

    @contextmanager
    def mined_together(self) -> Iterator[None]:
        """Local anvil/Hardhat devnet: the transactions sent inside are mined together on leaving
        (:func:`bdfl.chain.devnet.batch_mining`, which says why and its one rule)."""
        with batch_mining(self._w3):
            yield

    def block_usage(self, first: int, last: int, page: int = rpcbatch.PAGE) -> tuple[int, int]:
        """(transactions, gas used) in blocks ``first..last``, read in JSON-RPC batches of ``page``
        blocks, raw: web3's block formatters (every field of every block) were most of the cost
        of a round's results bookkeeping, which the workers wait for (issue 23)."""
        txs = gas = 0
        numbers = range(first, last + 1)
        try:
            for n, reply in zip(numbers, rpcbatch.replies(
                    self._w3, [("eth_getBlockByNumber", [hex(n), False]) for n in numbers], page=page), strict=True):
                block = reply.get("result")
                if block is None:
                    raise BDFLError(f"block {n} could not be read: {reply.get('error', 'the node does not have it')}")
                txs += len(block["transactions"])
                gas += int(block["gasUsed"], 16)
        except rpcbatch.BatchFailed as exc:
            raise BDFLError(f"reading blocks {first + exc.first}..{first + exc.stop - 1} failed: {exc.error}") from exc
        return txs, gas

    def token_parties(self, token: str, first: int, last: int) -> set[str]:
        """Addresses that sent or received an ERC-20 ``Transfer`` of ``token`` (mints and burns
        included) in blocks ``first..last``."""
        if last < first:
            return set()
        topic = self._w3.keccak(text="Transfer(address,address,uint256)")
        logs = self._w3.eth.get_logs({"fromBlock": first, "toBlock": last, "address": token, "topics": [topic]})
        return {self._w3.to_checksum_address(bytes(t)[-20:]) for log in logs for t in log["topics"][1:3]}

    # -- what is built on it ----------------------------------------------------
    def fee_cache(self) -> FeeCache:
        """One fee read per ``ttl`` for many senders (a worker's peers)."""
        return FeeCache(self._w3)

    def sender(self, account: Any, *, fee_cache: FeeCache | None = None) -> TxSender:
        return TxSender(self._w3, account, chain_id=self.chain_id, fee_cache=fee_cache)

    def client(self, deployment: Deployment, account: Any, sender: TxSender | None = None) -> ProtocolClient:
        """``account``'s :class:`ProtocolClient` of ``deployment``."""
        return ProtocolClient(self._w3, deployment, account, sender)

    def load_deployment(self, path: str | os.PathLike[str]) -> Deployment:
        """A deployment file, refused unless it is for this chain and its contracts have code here."""
        return Deployment.load(path, w3=self._w3)

    def check_deployment(self, deployment: Deployment, source: str = "deployment") -> None:
        deployment.check_chain(self._w3, source=source)

    def submissions_closed(self, deployment: Deployment) -> Callable[[int], bool]:
        """``closed(r)`` of :func:`bdfl.chain.protocol.submissions_closed_reader` on this connection
        (give each thread its own: :meth:`reconnected`)."""
        return submissions_closed_reader(self._w3, deployment)

    def deploy(self, account: Any, artifacts: Mapping[str, Any], params: ProtocolParams, **kwargs: Any) -> Deployment:
        """:func:`bdfl.chain.deploy.deploy` here."""
        return deploy(self._w3, account, artifacts, params, **kwargs)

    def fund(self, deployment: Deployment, funder: TxSender, peers: Sequence[str], tokens: int,
             eth_wei: int | None = 10**20) -> list[Any]:
        """:func:`bdfl.chain.deploy.fund_peers` here."""
        return fund_peers(self._w3, deployment, funder, peers, tokens=tokens, eth_wei=eth_wei)


def open_account(rpc_url: str, account: Any, deployment: Deployment, source: str,
                 request_timeout: float = 30.0) -> tuple[Chain, ProtocolClient]:
    """What ``bdfl peer`` and ``bdfl account`` do before their first read: reach ``rpc_url`` (a
    clear error if it is no chain), refuse a well-known devnet key on any other chain, refuse a
    deployment made for another chain or without code at its addresses (``source`` names it in
    the message); ``account``'s client on it."""
    chain = Chain(connect(rpc_url).rpc_url, request_timeout)
    check_key_allowed(account, chain.chain_id)
    chain.check_deployment(deployment, source=source)
    return chain, chain.client(deployment, account, chain.sender(account))
