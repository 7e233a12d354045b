"""`bdfl deploy` and `bdfl devnet --deploy`: deploy the contracts to an endpoint.

The deployer key comes from ``--key-file`` (hex or JSON keystore) or
``$BDFL_PRIVATE_KEY``; on a local devnet it defaults to the devnet's first
account. The well-known devnet keys are refused on any other chain.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bdfl.chain.accounts import DEVNET_CHAIN_IDS, check_key_allowed, devnet_account, key_from_env, load_key_file
from bdfl.chain.compiler import build
from bdfl.chain.deploy import Deployment, ProtocolParams, deploy
from bdfl.chain.devnet import Devnet, connect
from bdfl.config import load_config, read_toml
from bdfl.errors import BDFLError, ConfigError
from bdfl.policy import policy_hash as hash_policy
from bdfl.policy import policy_of


def library_params() -> ProtocolParams:
    """The contracts' parameters of the library's defaults (the default experiment's [protocol]:
    committee 9, 8 auditors per update, quorum 5, two-thirds to reject, 600 s phases), what
    ``bdfl deploy`` and ``bdfl devnet --deploy`` deploy unless told otherwise. Not
    ``ProtocolParams()``, the contracts' own constructor defaults (32 seats, 3 auditors per
    update, quorum 2: two colluders decide an update), which an outside probe found deployed."""
    return ProtocolParams.from_config(load_config(None).protocol)


def _params(params_file: str) -> ProtocolParams:
    data = read_toml(params_file, "--params")
    table: Any = data.get("protocol", data)
    if not isinstance(table, dict):
        raise ConfigError("--params", "expected a [protocol] table")
    return ProtocolParams.from_dict(table)


def deploy_to(
    devnet: Devnet,
    out: Path,
    *,
    key_file: str | None = None,
    params: ProtocolParams | None = None,
    policy: Mapping[str, Any] | None = None,
) -> Path:
    """Deploy to ``devnet`` and write the deployment file; returns its path. ``params``: the
    contracts' parameters (default: :func:`library_params`). ``policy``
    (:func:`bdfl.policy.policy_of`; default: the library's defaults, the default experiment's)
    goes into the file, its keccak256 into the registry's immutable ``policyHash``."""
    policy = dict(policy) if policy is not None else policy_of(load_config(None))
    account = load_key_file(key_file) if key_file else key_from_env()
    if account is None:
        if devnet.chain_id not in DEVNET_CHAIN_IDS:
            raise BDFLError(
                f"no deployer key for chain id {devnet.chain_id}",
                fix="pass --key-file (hex key or JSON keystore) or set BDFL_PRIVATE_KEY",
            )
        account = devnet_account(0)
    check_key_allowed(account, devnet.chain_id)
    w3 = devnet.w3()
    deployment: Deployment = deploy(w3, account, build(), params or library_params(), policy_hash=hash_policy(policy))
    deployment.policy = policy
    out.parent.mkdir(parents=True, exist_ok=True)
    return deployment.save(out)


def deploy_cli(
    *, rpc_url: str, key_file: str | None, out: Path, params_file: str | None, config_file: str | None = None
) -> Path:
    """``bdfl deploy``: the policy from ``config_file``'s [defense] and [overlay] tables
    (an experiment TOML; default: the library's defaults), the protocol parameters from
    ``params_file`` or else the experiment's (its [protocol] table, the rest derived for its
    ``peers`` as ``bdfl run`` would deploy it; default: the library's, :func:`library_params`).
    ``params_file`` and a config's [protocol] table at once are refused."""
    cfg = load_config(config_file)
    if params_file and config_file and isinstance(read_toml(config_file, "--config").get("protocol"), dict):
        raise ConfigError("--params", f"both --params and {config_file}'s [protocol] table set the protocol",
                          "one of them: --params, or the experiment's [protocol]")
    # validated before anything is sent
    params = _params(params_file) if params_file else ProtocolParams.from_config(cfg.protocol)
    policy = policy_of(cfg)
    return deploy_to(connect(rpc_url), out, key_file=key_file, params=params, policy=policy)
