"""Shared helpers for tests/chain: deployment, clients, time travel, revert assertions."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from bdfl.chain.accounts import derive_keys, devnet_account
from bdfl.chain.deploy import TOKEN, Deployment, ProtocolParams, deploy, fund_peers
from bdfl.chain.devnet import rpc_call
from bdfl.chain.protocol import Phase, ProtocolClient, genesis_seed, new_salt
from bdfl.chain.txsender import TxReverted, TxSender
from tests.chain import model

@contextlib.contextmanager
def anvil_with_chain_id(chain_id: int, log: Any = None) -> Iterator[tuple[str, Any]]:
    """(URL, process) of an anvil node with ``chain_id`` (not a devnet's 31337 / 1337, for the
    rules that apply to other chains), killed on leaving; ``log`` a binary file for its output."""
    import os
    import signal
    import subprocess
    import time

    from bdfl.chain.devnet import free_port
    from bdfl.chain.toolchain import anvil_binary

    port = free_port()
    out = log if log is not None else subprocess.DEVNULL
    node = subprocess.Popen([anvil_binary(), "--host", "127.0.0.1", "--port", str(port), "--chain-id", str(chain_id)],
                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                rpc_call(url, "eth_chainId", timeout=1.0)
                break
            except Exception:  # noqa: BLE001 - not up yet
                assert time.monotonic() < deadline and node.poll() is None, "anvil did not start"
                time.sleep(0.05)
        yield url, node
    finally:
        os.killpg(node.pid, signal.SIGKILL)
        node.wait(timeout=10)


LONG = 1_000_000  # seconds: phases never expire unless a test jumps time
JUMP = LONG + 10  # one jump passes any open deadline

TEST_PARAMS = ProtocolParams(
    min_stake=100 * TOKEN,
    slash_amount=30 * TOKEN,  # four rejections exhaust a minimum stake
    update_reward=1 * TOKEN,
    vote_reward=TOKEN // 10,
    rep_initial=10**18 // 2,
    rep_threshold=3 * 10**17,
    rep_gain_update=2 * 10**16,
    rep_loss_update=2 * 10**17,
    rep_gain_vote=2 * 10**15,
    rep_loss_vote=2 * 10**16,
    rep_loss_no_reveal=10**17,
    rep_loss_absence=5 * 10**16,
    submit_duration=LONG,
    commit_duration=LONG,
    reveal_duration=LONG,
    max_missed_rounds=2,
    committee_size=4,
    auditors_per_update=3,
    quorum=2,
    max_samples=1000,
    # identity economics off here (tests/chain/test_identity.py deploys with them on)
    entry_fee=0,
    probation_rounds=0,
    unbonding_rounds=0,
    # every rejection confirmed (slashes at once), the rule these tests were written for;
    # tests/chain/test_slashing_line.py deploys with the default C = 3
    slash_after_rejections=1,
)
N_PEERS = 8
PEER_TOKENS = 10_000 * TOKEN


@dataclass
class Proto:
    """A deployment shared by a test module."""

    w3: Any
    rpc_url: str
    deployment: Deployment
    keys: list[Any]
    deployer: Any

    def rpc(self, method: str, params: list[Any] | None = None) -> Any:
        return rpc_call(self.rpc_url, method, params or [])


def setup_proto(devnet: Any, artifacts: Any, params: ProtocolParams = TEST_PARAMS, n: int = N_PEERS, **deploy_kwargs: Any) -> Proto:
    w3 = devnet.w3()
    # cache eth_chainId & co.: web3's validation middleware otherwise asks for the chain id
    # twice per call, tripling the requests of every view
    w3.provider.cache_allowed_requests = True
    deployer = devnet_account(0)
    sender = TxSender(w3, deployer)
    dep = deploy(w3, deployer, artifacts, params, sender=sender, **deploy_kwargs)
    keys = derive_keys(7, n, namespace="bdfl-chain-test")
    fund_peers(w3, dep, sender, [k.address for k in keys], PEER_TOKENS)
    for k in keys:
        ProtocolClient(w3, dep, k).approve(2**256 - 1)
    return Proto(w3, devnet.rpc_url, dep, keys, deployer)


class Env:
    """Per-test view: a client per peer (fresh nonces) plus an outsider and the deployer."""

    def __init__(self, proto: Proto) -> None:
        self.proto = proto
        self.w3 = proto.w3
        self.dep = proto.deployment
        self.params = proto.deployment.params
        cid = proto.deployment.chain_id
        self.peers = [ProtocolClient(self.w3, self.dep, k, TxSender(self.w3, k, chain_id=cid)) for k in proto.keys]
        self.deployer = ProtocolClient(self.w3, self.dep, proto.deployer, TxSender(self.w3, proto.deployer, chain_id=cid))
        self.by_addr = {c.address: c for c in self.peers}
        model.DOMAIN.update(chain_id=cid, contract=self.dep.round_manager)
        self.rounds = self.deployer.rounds
        self.registry = self.deployer.registry
        self.token = self.deployer.token

    # -- chain control -------------------------------------------------------------
    def rpc(self, method: str, params: list[Any] | None = None) -> Any:
        return self.proto.rpc(method, params)

    def jump(self, seconds: int = JUMP) -> None:
        self.rpc("evm_increaseTime", [seconds])
        self.rpc("evm_mine")

    def beacon_of(self, member: str, round_: int) -> tuple[bytes, bytes]:
        """The beacon (reveal, commit) a client of this env sends with its submission."""
        c = self.by_addr.get(member) or (self.deployer if member == self.deployer.address else None)
        if c is None:
            return b"\x00" * 32, b"\x01" * 32
        return c.beacon_args(round_)

    def model_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of a tests.chain.model.Model for this deployment."""
        return {
            "genesis_seed": genesis_seed(self.dep.chain_id, self.dep.round_manager),
            "beacon_of": self.beacon_of,
            "mint_budget_per_round": int(self.rounds.functions.mintBudgetPerRound().call()),
            "mint_cap": int(self.rounds.functions.mintCap().call()),
        }

    # -- common flows ------------------------------------------------------------------
    def join(self, peers: Sequence[ProtocolClient] | None = None) -> list[ProtocolClient]:
        peers = list(self.peers if peers is None else peers)
        for i, c in enumerate(peers):
            c.join(f"http://127.0.0.1:{9000 + i}/")
        return peers

    def submit(self, peers: Sequence[ProtocolClient], round_: int | None = None) -> dict[str, bytes]:
        r = self.deployer.current_round() if round_ is None else round_
        hashes = {}
        for c in peers:
            h = update_hash(r, c.address)
            c.submit_update(r, h, 10)
            hashes[c.address] = h
        return hashes

    def honest_votes(self, round_: int, bad: set[str] = frozenset()) -> dict[str, tuple[list[int], list[bool], bytes]]:
        """Votes of every committee member: reject updates of peers in ``bad``."""
        out = {}
        subs = self.deployer.submissions(round_)
        for a in self.deployer.committee(round_):
            idx = self.deployer.assignments_of(round_, a)
            out[a] = (idx, [subs[u].peer not in bad for u in idx], new_salt())
        return out

    def commit_all(self, round_: int, votes: dict[str, tuple[list[int], list[bool], bytes]]) -> None:
        for a, (idx, acc, salt) in votes.items():
            self.by_addr[a].commit_votes(round_, idx, acc, salt)

    def reveal_all(self, round_: int, votes: dict[str, tuple[list[int], list[bool], bytes]]) -> None:
        for a, (idx, acc, salt) in votes.items():
            self.by_addr[a].reveal_votes(round_, idx, acc, salt)

    def full_round(self, peers: Sequence[ProtocolClient], bad: set[str] = frozenset()) -> int:
        """Every given peer submits; the committee votes honestly; the round is finalized."""
        r = self.deployer.current_round()
        self.submit(peers, r)
        if self.deployer.round_info(r).phase == Phase.SUBMIT:
            if not self._submit_complete(r):
                self.jump()
            self.deployer.advance(r)
        votes = self.honest_votes(r, bad)
        self.commit_all(r, votes)
        if self.deployer.round_info(r).phase == Phase.COMMIT:
            self.jump()
            self.deployer.advance(r)
        self.reveal_all(r, votes)
        if self.deployer.round_info(r).phase == Phase.REVEAL:
            self.jump()
            self.deployer.advance(r)
        self.deployer.finalize(r)
        return r

    def _submit_complete(self, r: int) -> bool:
        return self.deployer.round_info(r).num_submissions >= self.deployer.member_count()


@contextlib.contextmanager
def snapshot_env(proto: Proto) -> Iterator[Env]:
    """Fresh clients on a chain snapshot of ``proto``; every change is reverted on exit."""
    snap = proto.rpc("evm_snapshot")
    try:
        yield Env(proto)
    finally:
        proto.rpc("evm_revert", [snap])


def update_hash(round_: int, peer: str, tag: int = 0) -> bytes:
    from eth_utils import keccak

    return keccak(f"update:{round_}:{peer}:{tag}".encode())


@contextlib.contextmanager
def reverts(error_name: str) -> Iterator[None]:
    """Assert the block raises TxReverted with the given custom error name."""
    with pytest.raises(TxReverted) as info:
        yield
    assert info.value.error_name == error_name, f"expected {error_name}, got {info.value.error_name}: {info.value}"
