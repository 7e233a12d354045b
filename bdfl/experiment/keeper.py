"""The orchestrator's window on the chain: reads public state, drives time.

A keeper holds no privilege: ``advance`` and ``finalize`` are permissionless, and
everything else it does is reading public state. On a local devnet it may also
fast-forward block time to a phase deadline (:meth:`bdfl.chain.connection.Chain.mine_at`), which is how a
simulation skips the wait for an absent peer without changing any rule.
"""

from __future__ import annotations

import time
from typing import Any

from bdfl.chain.connection import Chain
from bdfl.chain.protocol import Outcome, Phase, ProtocolClient, Status
from bdfl.chain.txsender import TxReverted
from bdfl.errors import BDFLError
from bdfl.peer.view import REP_SCALE

TOKEN = 10**18


class Keeper:
    def __init__(self, chain: Chain, client: ProtocolClient, devnet: Any, from_block: int) -> None:
        self.chain = chain
        self.client = client
        self.devnet = devnet
        self.next_block = from_block + 1
        self.params = client.deployment.params

    # -- time ---------------------------------------------------------------------------
    def current_round(self) -> int:
        return self.client.current_round()

    def phase(self, rnd: int) -> Phase:
        return self.client.round_info(rnd).phase

    def advance(self, rnd: int, *, wait_deadline: bool = True) -> Phase:
        """End the current phase: at once if everyone expected acted; else, on a local
        devnet, jump to the deadline; on a real chain, wait for it."""
        try:
            self.client.advance(rnd)
        except TxReverted as exc:
            if exc.error_name != "PhaseNotOver" or not wait_deadline:
                raise
            self._reach_deadline(rnd)
            self.client.advance(rnd)
        return self.phase(rnd)

    def _reach_deadline(self, rnd: int) -> None:
        deadline = self.client.round_info(rnd).deadline
        if self.chain.timestamp() > deadline:
            return
        if self.devnet is not None and self.devnet.is_local:
            self.chain.mine_at(deadline + 1)
            return
        while self.chain.timestamp() <= deadline:
            time.sleep(1.0)

    def advance_to(self, rnd: int, target: Phase) -> None:
        """Advance until the round is in ``target`` (or later)."""
        for _ in range(5):
            ph = self.phase(rnd)
            if ph >= target:
                return
            self.advance(rnd)
        raise BDFLError(f"round {rnd} did not reach phase {target.name}")

    def close_round(self, rnd: int) -> None:
        self.advance_to(rnd, Phase.FINALIZE)
        self.client.finalize(rnd)

    # -- reads --------------------------------------------------------------------------
    def submissions(self, rnd: int) -> list[Any]:
        return self.client.submissions(rnd)

    def committee(self, rnd: int) -> list[str]:
        return self.client.committee(rnd)

    def peer_states(self, addresses: list[str]) -> dict[str, dict[str, Any]]:
        """Reputation (0..1), status, stake and claimable tokens of every peer, batched."""
        out = {}
        for info, stake, claimable in self.client.peer_states(addresses):
            out[info.address] = {
                "reputation": info.reputation / REP_SCALE,
                "active": info.status == Status.ACTIVE,
                "status": info.status.name,
                "stake": stake / TOKEN,
                "tokens": claimable / TOKEN,  # unclaimed rewards (claimable, not yet claimed)
            }
        return out

    def token_balances(self, addresses: list[str]) -> dict[str, float]:
        """Each address's wallet token balance (tokens; stake and unclaimed rewards not included)."""
        return {a: b / TOKEN for a, b in self.client.token_balances(addresses).items()}

    def token_holders_moved(self, from_block: int, to_block: int) -> set[str]:
        """Addresses whose wallet token balance a ``Transfer`` of the token (mint and burn
        included) touched in blocks ``[from_block, to_block]``: the only way a balance changes,
        so balances read once stay exact by re-reading just these."""
        return self.chain.token_parties(self.client.token.address, from_block, to_block)

    def active_members(self) -> list[str]:
        members = self.client.members()
        states = self.client.peer_states(members)
        return sorted(info.address for info, _s, _c in states if info.status == Status.ACTIVE)

    def approved_updates(self, rnd: int) -> dict[str, str]:
        return {peer: "0x" + h.hex() for peer, h in self.client.approved_updates(rnd)}

    def outcomes(self, rnd: int) -> dict[str, Outcome]:
        return {s.peer: s.outcome for s in self.submissions(rnd)}

    def chain_usage(self) -> tuple[int, int, int]:
        """(transactions, gas) in the blocks since the last call, and the last block number."""
        latest = self.chain.block_number()
        txs, gas = self.chain.block_usage(self.next_block, latest)
        self.next_block = latest + 1
        return txs, gas, latest

    def events(self, from_block: int, to_block: int) -> list[dict[str, Any]]:
        if to_block < from_block:
            return []
        return self.client.events(from_block, to_block)
