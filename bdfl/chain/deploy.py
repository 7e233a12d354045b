"""Deploy the protocol contracts and read/write the deployment file.

Three contracts, wired once and then frozen (docs/protocol.md):

* ``BDFLToken``     – ERC-20 stake/reward token; the deployer gets ``initial_supply``.
* ``PeerRegistry``  – membership, stake, reputation, pull payments; holds the tokens.
* ``RoundManager``  – rounds, committee, commit-reveal votes, tally; the only caller of
  the registry's protocol functions.

:func:`deploy` grants the registry MINTER_ROLE on the token and the round manager
PROTOCOL_ROLE on the registry, then (by default) renounces the deployer's admin
roles, so afterwards nobody can mint or move stake except through the protocol rules.

A :class:`Deployment` records chain id, addresses, ABIs and their hashes, the block
of deployment and the parameters; :meth:`Deployment.load` refuses a file written for
another chain.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_utils import is_address, is_checksum_address, is_checksum_formatted_address

from bdfl.chain.devnet import batch_mining
from bdfl.chain.txsender import TxSender, wait_many
from bdfl.errors import BDFLError, ConfigError

REP_MAX = 10**18
MAX_COMMITTEE = 64
MAX_AUDITORS = 16  # ParamsLib.MAX_AUDITORS (kept from the window bitmaps issue 23 replaced)
MAX_IDENTITY_ROUNDS = 1000  # ParamsLib.MAX_IDENTITY_ROUNDS: bound on probation and unbonding
MAX_SLASH_AFTER = 255  # ParamsLib.MAX_SLASH_AFTER: bound on slash_after_rejections
TOKEN = 10**18  # one whole token in base units (18 decimals)
CONTRACTS = ("BDFLToken", "PeerRegistry", "RoundManager")
DEPLOYMENT_FORMAT = 1


@dataclass(frozen=True)
class ProtocolParams:
    """Mirror of the Solidity ``Params`` struct (contracts/ProtocolParams.sol).

    Token amounts are in base units (1 token = 10**18); reputation is fixed point with
    ``REP_MAX = 10**18``; durations are seconds. docs/protocol.md gives the reasoning for
    each default.
    """

    #: Minimum stake to join or reactivate (100 tokens).
    min_stake: int = 100 * TOKEN
    #: Stake burned per confirmed rejection (10 tokens: ten confirmed rejections exhaust a
    #: minimum stake; see ``slash_after_rejections``).
    slash_amount: int = 10 * TOKEN
    #: Reward per approved, aggregated update (1 token).
    update_reward: int = 1 * TOKEN
    #: Reward per vote agreeing with the final majority (0.1 token; m votes/round expected).
    vote_reward: int = TOKEN // 10
    #: Reputation of a fresh address (0.5): below established honest peers.
    rep_initial: int = REP_MAX // 2
    #: Committee / aggregation threshold (0.3): two rejections from the start fall below.
    rep_threshold: int = 3 * REP_MAX // 10
    #: Gain per approved update (+0.02: slow rise, 25 approved rounds from 0.5 to 1.0).
    rep_gain_update: int = 2 * REP_MAX // 100
    #: Loss per rejected update (-0.2 = ten approved rounds); a rejection that is not yet
    #: confirmed (fewer than ``slash_after_rejections`` in a row) stops at ``rep_threshold``.
    rep_loss_update: int = 2 * REP_MAX // 10
    #: Gain per vote agreeing with the majority (+0.002).
    rep_gain_vote: int = 2 * REP_MAX // 1000
    #: Loss per vote against the majority or assigned update left unvoted (-0.02).
    rep_loss_vote: int = 2 * REP_MAX // 100
    #: Loss of a committee member that commits but does not reveal, or never commits (-0.1).
    rep_loss_no_reveal: int = REP_MAX // 10
    #: Loss per missed round (-0.05).
    rep_loss_absence: int = 5 * REP_MAX // 100
    #: Submit phase length, seconds (ends early once every member submitted).
    submit_duration: int = 600
    #: Commit phase length, seconds (ends early once the whole committee committed).
    commit_duration: int = 120
    #: Reveal phase length, seconds (ends early once every committer revealed).
    reveal_duration: int = 120
    #: Consecutive missed rounds before a member is marked inactive.
    max_missed_rounds: int = 3
    #: Committee seats K per round (<= 64).
    committee_size: int = 32
    #: Auditors m per update (1 <= m < K).
    auditors_per_update: int = 3
    #: Revealed votes needed before the majority decides (1 <= quorum <= m).
    quorum: int = 2
    #: Accepts must exceed this percentage of the revealed votes to approve (50 = simple
    #: majority); above 50 an update the committee is split on stays Undecided (not aggregated).
    approve_percent: int = 50
    #: Rejections must exceed this percentage of the revealed votes (50 = simple majority).
    #: 66: two thirds, so a rejection (which slashes) needs a supermajority and a colluding
    #: minority of auditors cannot reject honest updates; with m <= 4 it equals a majority.
    reject_percent: int = 66
    #: Cap on the self-reported sample count.
    max_samples: int = 100_000
    # -- identity economics (docs/protocol.md, "Identity costs") --
    #: Tokens of a fresh address's first join burned instead of staked (10 tokens: a
    #: non-refundable entry cost per identity; the bond is the joining amount minus this).
    entry_fee: int = 10 * TOKEN
    #: Rounds a fresh address (joining after round 0) spends on probation: no committee seat,
    #: accepted updates not aggregated and unpaid (Probation outcome).
    probation_rounds: int = 3
    #: Rounds a departed member's stake stays bonded (and slashable) after its last round.
    unbonding_rounds: int = 1
    # -- slashing line (docs/protocol.md, "Rejection and slashing") --
    #: C: the stake is slashed only from the C-th rejection in a row of a peer's updates (3);
    #: an approval resets the count. An honest peer with odd data, rejected now and then,
    #: keeps its stake; a persistent attacker is slashed from its C-th round on.
    slash_after_rejections: int = 3

    def __post_init__(self) -> None:
        self.validate()

    # -- validation (mirrors ParamsLib.validate, with messages) ----------------------
    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first field outside its range."""
        u128 = 2**128 // 1024

        def need(ok: bool, name: str, allowed: str) -> None:
            if not ok:
                raise ConfigError(f"protocol.{name}", f"value {getattr(self, name)!r} is out of range", allowed)

        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if not isinstance(v, int) or isinstance(v, bool):
                raise ConfigError(f"protocol.{f.name}", f"must be an integer, got {type(v).__name__}")
        need(0 < self.min_stake <= u128, "min_stake", f"1 .. {u128} base units")
        need(0 <= self.slash_amount <= self.min_stake, "slash_amount", f"0 .. min_stake ({self.min_stake})")
        need(0 <= self.update_reward <= u128, "update_reward", f"0 .. {u128}")
        need(0 <= self.vote_reward <= u128, "vote_reward", f"0 .. {u128}")
        need(0 <= self.rep_initial <= REP_MAX, "rep_initial", f"0 .. {REP_MAX}")
        need(
            0 <= self.rep_threshold <= self.rep_initial,
            "rep_threshold",
            f"0 .. rep_initial ({self.rep_initial}); above it no fresh peer could ever sit on a committee",
        )
        for name in (
            "rep_gain_update",
            "rep_loss_update",
            "rep_gain_vote",
            "rep_loss_vote",
            "rep_loss_no_reveal",
            "rep_loss_absence",
        ):
            need(0 <= getattr(self, name) <= REP_MAX, name, f"0 .. {REP_MAX}")
        for name in ("submit_duration", "commit_duration", "reveal_duration"):
            need(0 < getattr(self, name) < 2**32, name, "1 .. 2**32-1 seconds")
        need(0 < self.max_missed_rounds < 2**16, "max_missed_rounds", "1 .. 65535")
        need(2 <= self.committee_size <= MAX_COMMITTEE, "committee_size", f"2 .. {MAX_COMMITTEE}")
        need(
            1 <= self.auditors_per_update < self.committee_size and self.auditors_per_update <= MAX_AUDITORS,
            "auditors_per_update",
            f"1 .. min(committee_size - 1, {MAX_AUDITORS}) ({min(self.committee_size - 1, MAX_AUDITORS)})",
        )
        need(1 <= self.quorum <= self.auditors_per_update, "quorum", f"1 .. auditors_per_update ({self.auditors_per_update})")
        need(50 <= self.approve_percent <= 99, "approve_percent", "50 .. 99 (50 = simple majority)")
        need(50 <= self.reject_percent <= 99, "reject_percent", "50 .. 99 (50 = simple majority)")
        need(0 < self.max_samples < 2**32, "max_samples", "1 .. 2**32-1")
        need(0 <= self.entry_fee < self.min_stake, "entry_fee", f"0 .. min_stake - 1 ({self.min_stake - 1})")
        need(0 <= self.probation_rounds <= MAX_IDENTITY_ROUNDS, "probation_rounds", f"0 .. {MAX_IDENTITY_ROUNDS} rounds")
        need(0 <= self.unbonding_rounds <= MAX_IDENTITY_ROUNDS, "unbonding_rounds", f"0 .. {MAX_IDENTITY_ROUNDS} rounds")
        need(1 <= self.slash_after_rejections <= MAX_SLASH_AFTER, "slash_after_rejections", f"1 .. {MAX_SLASH_AFTER} rejections in a row")

    # -- conversion ---------------------------------------------------------------
    def as_tuple(self) -> tuple[int, ...]:
        """The constructor argument (Solidity struct field order = dataclass field order)."""
        return tuple(getattr(self, f.name) for f in dataclasses.fields(self))

    def to_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ProtocolParams":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"protocol.{unknown[0]}", "unknown protocol parameter", ", ".join(sorted(known)))
        return cls(**{k: int(v) for k, v in data.items()})

    @classmethod
    def from_config(cls, p: Any) -> "ProtocolParams":
        """From an experiment's ``[protocol]`` table (:class:`bdfl.config.ProtocolConfig`: whole
        tokens, ``*_seconds``), as ``bdfl run`` and ``bdfl deploy --config`` deploy it. Any failure is
        a ConfigError (a field of ``protocol``, or ``protocol`` itself)."""
        try:
            return cls(
                min_stake=p.min_stake * TOKEN, committee_size=p.committee_size, auditors_per_update=p.auditors_per_update,
                quorum=p.quorum, approve_percent=p.approve_percent, reject_percent=p.reject_percent,
                submit_duration=p.submit_seconds, commit_duration=p.commit_seconds, reveal_duration=p.reveal_seconds,
                max_missed_rounds=p.max_missed_rounds, entry_fee=p.entry_fee * TOKEN, probation_rounds=p.probation_rounds,
                unbonding_rounds=p.unbonding_rounds,
            )
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - the field is in its message
            raise ConfigError("protocol", str(getattr(exc, "message", exc))) from None

    @classmethod
    def from_chain(cls, values: Sequence[int]) -> "ProtocolParams":
        """From the tuple returned by ``PeerRegistry.params()``."""
        names = [f.name for f in dataclasses.fields(cls)]
        return cls(**dict(zip(names, (int(v) for v in values), strict=True)))


def _policy_hash(value: Any) -> bytes:
    """32 bytes from bytes or 0x-hex; raises ValueError otherwise."""
    raw = bytes(value) if isinstance(value, (bytes, bytearray)) else bytes.fromhex(str(value).removeprefix("0x"))
    if len(raw) != 32:
        raise ValueError(f"policy_hash must be 32 bytes, got {len(raw)}")
    return raw


def tokens_text(amount: int) -> str:
    """Base units as whole tokens for a message: 1,000,000 (not 1e+06), 0.5."""
    whole, rest = divmod(int(amount), TOKEN)
    return f"{whole:,}" if rest == 0 else f"{amount / TOKEN:,.6f}".rstrip("0")


def abi_hash(abi: list[dict[str, Any]]) -> str:
    """sha256 of the canonical ABI JSON (same definition as ``compiler.Artifact.abi_hash``)."""
    return "0x" + hashlib.sha256(json.dumps(abi, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


#: The fix of a deployment file that is not one: most often another file given by mistake (a key
#: file), which must not be deleted; only a file that `bdfl deploy` wrote is to be written again.
_WRONG_FILE = ("check that --deployment names the file `bdfl deploy` wrote (not a key or config file); "
               "if it is that file and was damaged, deploy again")


@dataclass
class Deployment:
    """Where the protocol lives on one chain."""

    chain_id: int
    addresses: dict[str, str]
    abis: dict[str, list[dict[str, Any]]]
    abi_hashes: dict[str, str]
    block_number: int
    params: ProtocolParams
    deployer: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    #: ``PeerRegistry.policyHash``: hash of the off-chain policy, fixed at deployment (zero = none).
    policy_hash: bytes = bytes(32)
    #: the policy itself (bdfl.policy.policy_of: the [defense] and [overlay] settings), whose
    #: keccak256 of bdfl.policy.canonical_json is policy_hash; None in files that declare none
    policy: dict[str, Any] | None = None
    _contracts: Any = field(default_factory=weakref.WeakKeyDictionary, repr=False, compare=False)

    @property
    def token(self) -> str:
        return self.addresses["BDFLToken"]

    @property
    def registry(self) -> str:
        return self.addresses["PeerRegistry"]

    @property
    def round_manager(self) -> str:
        return self.addresses["RoundManager"]

    def contract(self, w3: Any, name: str) -> Any:
        """A web3 contract object for ``name`` (one of :data:`CONTRACTS`)."""
        if name not in self.addresses:
            raise BDFLError(f"deployment has no contract {name!r}", fix=f"expected one of {', '.join(CONTRACTS)}")
        # building a web3 contract object parses the ABI (~10 ms); share one per (w3, name)
        try:
            per_w3 = self._contracts.setdefault(w3, {})
        except TypeError:  # a w3 that cannot be weakly referenced: no cache
            per_w3 = {}
        if name not in per_w3:
            per_w3[name] = w3.eth.contract(address=self.addresses[name], abi=self.abis[name])
        return per_w3[name]

    # -- file ---------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "format": DEPLOYMENT_FORMAT,
            "chainId": self.chain_id,
            "blockNumber": self.block_number,
            "deployer": self.deployer,
            "addresses": self.addresses,
            "abiHashes": self.abi_hashes,
            "params": self.params.to_dict(),
            "policy_hash": "0x" + bytes(self.policy_hash).hex(),
            "policy": self.policy,
            "abis": self.abis,
            "extra": self.extra,
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the deployment file atomically; returns its path."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=1))
        tmp.replace(p)
        return p

    @classmethod
    def load(cls, path: str | os.PathLike[str], w3: Any | None = None) -> "Deployment":
        """Read a deployment file; with ``w3``, refuse it unless it is for the connected chain
        and the contracts have code there."""
        p = Path(path)
        try:
            data = json.loads(p.read_text())
        except OSError as exc:
            raise BDFLError(f"cannot read deployment file {p}: {exc.strerror or exc}", fix="run `bdfl deploy` first or check the path") from None
        except ValueError:
            raise BDFLError(f"deployment file {p} is not valid JSON", fix=_WRONG_FILE) from None
        try:
            if data.get("format") != DEPLOYMENT_FORMAT:
                raise BDFLError(f"deployment file {p} has format {data.get('format')!r}, expected {DEPLOYMENT_FORMAT}", fix="deploy again with this version of BDFL")
            dep = cls(
                chain_id=int(data["chainId"]),
                addresses={k: str(v) for k, v in data["addresses"].items()},
                abis=data["abis"],
                abi_hashes=data["abiHashes"],
                block_number=int(data["blockNumber"]),
                params=ProtocolParams.from_dict(data["params"]),
                deployer=str(data.get("deployer", "")),
                extra=dict(data.get("extra", {})),
                policy_hash=_policy_hash(data.get("policy_hash", "0x" + "00" * 32)),
                policy=dict(data["policy"]) if data.get("policy") is not None else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BDFLError(f"deployment file {p} is incomplete or malformed ({exc})", fix=_WRONG_FILE) from None
        for name in CONTRACTS:
            if name not in dep.addresses or name not in dep.abis:
                raise BDFLError(f"deployment file {p} lacks contract {name}", fix=_WRONG_FILE)
            addr = dep.addresses[name]
            if not is_address(addr):
                raise BDFLError(f"deployment file {p}: addresses.{name} {addr!r} is not a 20-byte hex address",
                                fix="copy the file `bdfl deploy` wrote, unedited")
            if is_checksum_formatted_address(addr) and not is_checksum_address(addr):  # mixed case: EIP-55
                raise BDFLError(f"deployment file {p}: addresses.{name} {addr} fails its EIP-55 checksum (a typo?)",
                                fix="copy the file `bdfl deploy` wrote, unedited")
            if abi_hash(dep.abis[name]) != dep.abi_hashes.get(name):
                raise BDFLError(f"deployment file {p}: the ABI of {name} does not match its recorded hash", fix="the file was edited or corrupted; deploy again")
        if w3 is not None:
            dep.check_chain(w3, source=str(p))
        return dep

    def check_chain(self, w3: Any, source: str = "deployment") -> None:
        """Raise BDFLError unless ``w3`` is connected to this deployment's chain and the
        contracts have code at their addresses."""
        actual = int(w3.eth.chain_id)
        if actual != self.chain_id:
            raise BDFLError(
                f"{source} was made for chain id {self.chain_id}, but the connected chain has id {actual}",
                fix="connect to the chain it was deployed on (--rpc-url), or deploy again on this chain",
            )
        for name, addr in self.addresses.items():
            if len(w3.eth.get_code(addr)) == 0:
                raise BDFLError(
                    f"{source}: no contract code for {name} at {addr} on chain {actual} "
                    "(a devnet restarted since the deployment?)",
                    fix="deploy again on this chain",
                )

    def check_artifacts(self, artifacts: Mapping[str, Any]) -> None:
        """Raise BDFLError if the local compiled ABIs differ from the deployed ones."""
        for name in CONTRACTS:
            local = abi_hash(artifacts[name].abi)
            if local != self.abi_hashes[name]:
                raise BDFLError(
                    f"the local build of {name} has ABI hash {local[:12]}…, the deployment {self.abi_hashes[name][:12]}…",
                    fix="check out the BDFL version that made the deployment, or deploy again",
                )


#: Members the default per-round minting budget is sized for.
MINT_BUDGET_MEMBERS = 1000


def default_mint_budget_per_round(params: ProtocolParams) -> int:
    """Per-round minting budget: what a round of MINT_BUDGET_MEMBERS members mints when every
    update is approved and every auditor agrees (update reward + m vote rewards each)."""
    return MINT_BUDGET_MEMBERS * (params.update_reward + params.auditors_per_update * params.vote_reward) or 1


def deploy(
    w3: Any,
    deployer_account: Any,
    artifacts: Mapping[str, Any],
    params: ProtocolParams | None = None,
    *,
    initial_supply: int = 10**9 * TOKEN,
    renounce_admin: bool = True,
    sender: Any | None = None,
    policy_hash: bytes = bytes(32),
    mint_budget_per_round: int | None = None,
    mint_cap: int | None = None,
) -> Deployment:
    """Deploy token, registry and round manager; wire roles; return the :class:`Deployment`.

    ``artifacts`` maps contract names to objects with ``abi`` and ``bytecode`` (as from
    :func:`bdfl.chain.compiler.build`). The deployer receives ``initial_supply`` tokens to fund
    peers (see :func:`fund_peers`). ``policy_hash`` (32 bytes) becomes the registry's
    immutable ``policyHash`` and the deployment file's ``policy_hash``. Seven transactions.

    Minting is bounded (docs/protocol.md, "Minting bound"): at most ``mint_budget_per_round``
    reward tokens per round (default :func:`default_mint_budget_per_round`) and ``mint_cap``
    in total (default ``initial_supply // 10``), enforced by the RoundManager; the token's
    supply cap is ``initial_supply + mint_cap``.
    """

    params = params or ProtocolParams()
    params.validate()
    try:
        policy = _policy_hash(policy_hash)
    except ValueError as exc:
        raise ConfigError("policy_hash", str(exc), "32 bytes (e.g. a keccak256 digest)") from None
    missing = [n for n in CONTRACTS if n not in artifacts]
    if missing:
        raise BDFLError(f"compiled artifacts lack {', '.join(missing)}", fix="run the build (bdfl.chain.compiler.build) on this checkout")
    tx = sender or TxSender(w3, deployer_account)
    me = deployer_account.address
    per_round = default_mint_budget_per_round(params) if mint_budget_per_round is None else int(mint_budget_per_round)
    cap = max(1, initial_supply // 10) if mint_cap is None else int(mint_cap)
    if not 0 < per_round < 2**128 or cap <= 0:
        raise ConfigError("mint bounds", f"per round {per_round}, total {cap}", "both > 0, per round < 2**128")

    blocks: list[int] = []

    def create(name: str, *args: Any) -> str:
        art = artifacts[name]
        factory = w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
        receipt = tx.transact(factory.constructor(*args))
        addr = receipt["contractAddress"]
        if not addr:
            raise BDFLError(f"deploying {name} produced no contract address")
        blocks.append(int(receipt["blockNumber"]))
        return str(addr)

    token_addr = create("BDFLToken", me, me, initial_supply, initial_supply + cap)
    registry_addr = create("PeerRegistry", token_addr, params.as_tuple(), policy, me)
    rm_addr = create("RoundManager", registry_addr, per_round, cap)
    token = w3.eth.contract(address=token_addr, abi=artifacts["BDFLToken"].abi)
    registry = w3.eth.contract(address=registry_addr, abi=artifacts["PeerRegistry"].abi)
    tx.transact(registry.functions.grantRole(registry.functions.PROTOCOL_ROLE().call(), rm_addr))
    tx.transact(token.functions.grantRole(token.functions.MINTER_ROLE().call(), registry_addr))
    if renounce_admin:
        admin_role = b"\x00" * 32
        tx.transact(registry.functions.renounceRole(admin_role, me))
        tx.transact(token.functions.renounceRole(admin_role, me))
    abis = {n: list(artifacts[n].abi) for n in CONTRACTS}
    return Deployment(
        chain_id=int(w3.eth.chain_id),
        addresses={"BDFLToken": token_addr, "PeerRegistry": registry_addr, "RoundManager": rm_addr},
        abis=abis,
        abi_hashes={n: abi_hash(a) for n, a in abis.items()},
        block_number=blocks[0],
        params=params,
        deployer=me,
        extra={"adminRenounced": renounce_admin, "initialSupply": str(initial_supply),
               "mintBudgetPerRound": str(per_round), "mintCap": str(cap)},
        policy_hash=policy,
    )


def set_eth_balance(w3: Any, address: str, wei: int) -> None:
    """Give ``address`` ``wei`` on a local devnet (anvil_setBalance, else hardhat_setBalance)."""
    for method in ("anvil_setBalance", "hardhat_setBalance"):
        resp = w3.provider.make_request(method, [address, hex(wei)])
        if "error" not in resp:
            return
    raise BDFLError(f"the chain refused to set the balance of {address} ({resp.get('error')})", fix="fund peers with real ETH transfers on non-devnet chains")


#: Transfers :func:`fund_peers` sends (and has mined) at a time.
FUND_CHUNK = 2_000


def fund_peers(
    w3: Any,
    deployment: Deployment,
    funder: Any,
    peers: Sequence[str],
    tokens: int,
    *,
    eth_wei: int | None = 10**20,
) -> list[Any]:
    """Simulation helper: give each peer ``tokens`` stake tokens (ERC-20 transfers from the
    funder, sent without waiting, then awaited together) and ``eth_wei`` of gas money: on a
    devnet via ``anvil_setBalance`` / ``hardhat_setBalance``, on any other chain by ETH
    transfers from the funder topping each peer up to ``eth_wei`` (an outside probe's run on a
    chain without those methods stopped after deploying, told to "fund peers with real ETH
    transfers", which it could not do). ``funder`` is a TxSender of a token holder (the
    deployer). Returns the token transfer receipts."""
    token = deployment.contract(w3, "BDFLToken")
    have = int(token.functions.balanceOf(funder.address).call())
    if have < tokens * len(peers):
        raise BDFLError(
            f"the funder {funder.address} holds {have} token units, needs {tokens * len(peers)} for {len(peers)} peers",
            fix="deploy with a larger initial_supply or fund fewer peers",
        )
    automine = _automine_setting(w3)  # None: no devnet methods (a testnet, geth)
    if eth_wei is not None:
        if automine is not None:
            for p in peers:
                set_eth_balance(w3, p, eth_wei)
        else:
            _top_up_eth(w3, funder, peers, eth_wei)
    if tokens == 0:
        return []
    gas = None
    receipts: list[Any] = []
    # on an automining devnet the transfers are mined together (as few blocks as the gas limit allows):
    # anvil 1.7 rehashes its whole state for every block, so one block per transfer made
    # funding quadratic in N (12 s at 1,000 peers, 40 s at 2,500, 5,700 of 10,000 in 7 min).
    # In chunks of FUND_CHUNK: anvil's pool silently dropped the transfers of one sender past
    # ~8,700 pending (10,000 peers, issue 23), leaving their receipts to time out.
    for start in range(0, len(peers), FUND_CHUNK):
        hashes = []
        with batch_mining(w3) if automine else contextlib.nullcontext():  # batch_mining restores automine
            for p in peers[start : start + FUND_CHUNK]:
                call = token.functions.transfer(p, tokens)
                if gas is None:
                    gas = funder.estimate(call)
                hashes.append(funder.send(call, gas=gas))
        # receipts in JSON-RPC batches (wait_many): one request per receipt took minutes at 10,000
        receipts += wait_many([(funder, h) for h in hashes], timeout=max(120.0, 0.05 * len(hashes)))
    failed = next((r for r in receipts if isinstance(r, Exception)), None)
    if failed is not None:
        raise failed
    return receipts


def _top_up_eth(w3: Any, funder: Any, peers: Sequence[str], wei: int) -> None:
    """ETH transfers from ``funder`` bringing each of ``peers`` to ``wei`` (those below it)."""
    for start in range(0, len(peers), FUND_CHUNK):
        hashes = []
        for p in peers[start : start + FUND_CHUNK]:
            short = wei - int(w3.eth.get_balance(p))
            if short > 0:
                hashes.append(funder.send_transaction({"to": p, "value": short}))
        receipts = wait_many([(funder, h) for h in hashes], timeout=max(300.0, 0.05 * len(hashes)))
        failed = next((r for r in receipts if isinstance(r, Exception)), None)
        if failed is not None:
            raise failed


def _automine_setting(w3: Any) -> bool | None:
    """A devnet's automine setting (anvil's or Hardhat's ``*_getAutomine``); None on a chain
    that knows neither method (a testnet, geth)."""
    for method in ("anvil_getAutomine", "hardhat_getAutomine"):
        try:
            resp = w3.provider.make_request(method, [])
        except Exception:  # noqa: BLE001 - a chain without the method may answer with an HTTP error
            continue
        if "error" not in resp:
            return bool(resp.get("result"))
    return None


def devnet_methods(w3: Any) -> bool:
    """Whether the chain answers a devnet's own methods (anvil's or Hardhat's): balances can be
    set and blocks mined at will."""
    return _automine_setting(w3) is not None

