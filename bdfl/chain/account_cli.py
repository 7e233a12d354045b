"""`bdfl account`: what a peer's account holds on chain, and the three things a peer does
outside its rounds: claim its rewards, leave the federation, withdraw its stake afterwards.

Rewards are credited as claimable (pull payments) and never sent by the rounds themselves;
leaving is ``requestLeave`` (the member takes part in the current round, and the round's
sweep removes it: slashes of that round still apply), withdrawing returns the stake once the
unbonding rounds passed. A `bdfl peer` process has no flag for any of these (docs/peer.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from bdfl.chain.accounts import load_key_file
from bdfl.chain.connection import Chain, open_account
from bdfl.chain.deploy import REP_MAX, Deployment, tokens_text
from bdfl.chain.protocol import ProtocolClient, Status
from bdfl.chain.txsender import eth_text
from bdfl.errors import BDFLError

__all__ = ["ACTIONS", "AccountState", "account_cli"]

#: What `bdfl account` may do besides showing the account.
ACTIONS = ("claim", "leave", "withdraw")


@dataclass(frozen=True)
class AccountState:
    """One account as the contracts hold it (token amounts in base units)."""

    address: str
    status: Status
    reputation: float
    stake: int
    claimable: int
    wallet: int
    reject_streak: int
    round: int
    withdrawable_from: int
    eth: int = 0  # wei: what pays the account's gas (a peer that runs out stops: OutOfGasMoney)

    def lines(self) -> list[str]:
        rows = [("account", self.address), ("status", self.status.name), ("reputation", f"{self.reputation:.3f}"),
                ("stake", f"{tokens_text(self.stake)} tokens"), ("rewards to claim", f"{tokens_text(self.claimable)} tokens"),
                ("wallet", f"{tokens_text(self.wallet)} tokens"), ("ETH for gas", eth_text(self.eth)),
                ("rejected in a row", str(self.reject_streak)), ("chain round", str(self.round))]
        if self.status == Status.LEFT:
            rows.append(("withdrawable from round", str(self.withdrawable_from)))
        return [f"{k + ':':24s} {v}" for k, v in rows]


def _state(rpc: Chain, chain: ProtocolClient) -> AccountState:
    info = chain.peer_info()
    return AccountState(address=chain.address, status=info.status, reputation=info.reputation / REP_MAX,
                        stake=chain.stake_of(), claimable=chain.claimable(), wallet=chain.token_balance(),
                        reject_streak=info.reject_streak, round=chain.current_round(),
                        withdrawable_from=chain.withdrawable_from(), eth=rpc.eth_balance(chain.address))


def account_cli(*, rpc_url: str, key_file: str, deployment_file: str, action: str | None = None) -> list[str]:
    """The account's state, after ``action`` (one of :data:`ACTIONS`, or None: only show it);
    the lines to print. A refused action is a :class:`BDFLError` saying why and what to do."""
    account = load_key_file(key_file)
    deployment = Deployment.load(deployment_file)
    rpc, chain = open_account(rpc_url, account, deployment, f"deployment file {deployment_file}")
    before = _state(rpc, chain)
    done: list[str] = []
    if action == "claim":
        if before.claimable == 0:
            raise BDFLError(f"account {before.address} has no rewards to claim",
                            fix="rewards are credited when the account's updates are approved and its votes counted")
        chain.claim()
        done.append(f"claimed {tokens_text(before.claimable)} tokens")
    elif action == "leave":
        if before.status not in (Status.ACTIVE, Status.INACTIVE):
            raise BDFLError(f"account {before.address} is {before.status.name}: only a member (ACTIVE, or INACTIVE) can leave",
                            fix="nothing to do" if before.status in (Status.EXITING, Status.LEFT) else "join first (bdfl peer)")
        chain.leave()
        done.append("leaving: a member takes part in the current round and leaves when it is finalized "
                    "(that round's slashes still apply); then `bdfl account --withdraw` once the unbonding rounds passed"
                    if before.status == Status.ACTIVE else "left (the account was inactive)")
    elif action == "withdraw":
        if before.status != Status.LEFT:
            raise BDFLError(f"account {before.address} is {before.status.name}: only an account that left can withdraw",
                            fix="`bdfl account --leave` first; the stake is withdrawable after the round it leaves in and the unbonding rounds"
                            if before.status in (Status.ACTIVE, Status.INACTIVE) else "wait until the current round is finalized"
                            if before.status == Status.EXITING else "nothing to withdraw")
        if before.round < before.withdrawable_from:
            raise BDFLError(f"account {before.address}'s stake is bonded until round {before.withdrawable_from} (the chain is at {before.round})",
                            fix="try again from that round")
        chain.withdraw()
        done.append(f"withdrew {tokens_text(before.stake)} tokens")
    elif action is not None:
        raise BDFLError(f"unknown account action {action!r}", fix=f"one of {', '.join(ACTIONS)}")
    return done + _state(rpc, chain).lines()
