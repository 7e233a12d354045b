"""The policy: every setting that decides a vote or what a peer aggregates.

Auditors that judge by different rules disagree, lose reputation for it and aggregate
different sets, so the rule is part of the deployment, not of each peer's local config:

* the whole ``[defense]`` table: the aggregation rule (``name``: ``bdfl`` = approved updates
  only, or a baseline; each strategy's own table: ``[defense.bdfl]`` (``weighting``,
  ``max_reject_share``, ``dissent_limit``), ``[defense.trimmed_mean]``, ...) and the
  audit rule with its thresholds (``[defense.detectors]``, ``replay_window``, ``rebuild_starts``,
  ``consistency_window``);
* the whole ``[overlay]`` table: whose updates a peer aggregates (``topology``, ``degree``,
  ``edge_probability``) and how it tops up (``min_sources``).

``[protocol]`` is on chain already (the contracts' parameters); ``[task]``, ``[attack]``,
``[chain]``, ``[net]`` and the run's size are a peer's or an experiment's own business.

The policy is serialized canonically (:func:`canonical_json`: sorted keys, no spaces, a
``version``), hashed with keccak256 (:func:`policy_hash`), written into the deployment file
(``"policy"``) and its hash fixed on chain at deployment (``PeerRegistry.policyHash``). A
peer checks its own policy against the deployment's before it starts
(:func:`resolve_policy`). This module sits in the config layer: it imports nothing above it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from eth_utils import keccak

from bdfl.config import ExperimentConfig, from_dict, read_toml
from bdfl.errors import BDFLError

#: Bumped when the meaning of a policy field changes; part of the hashed bytes.
POLICY_VERSION = 1
#: The config tables that make up the policy (every field of each).
POLICY_TABLES = ("defense", "overlay")


class PolicyMismatch(BDFLError):
    """A peer's policy differs from the deployment's (or the deployment's is inconsistent)."""


def policy_of(cfg: ExperimentConfig) -> dict[str, Any]:
    """The policy of a validated config: ``{"version": 1, "defense": {...}, "overlay": {...}}``."""
    out: dict[str, Any] = {"version": POLICY_VERSION}
    for table in POLICY_TABLES:
        out[table] = dataclasses.asdict(getattr(cfg, table))
    return out


def canonical_json(policy: Mapping[str, Any]) -> bytes:
    """The bytes that are hashed: JSON with sorted keys and no whitespace (floats as Python
    writes them, the shortest repr that reads back to the same value)."""
    return json.dumps(policy, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def policy_hash(policy: Mapping[str, Any]) -> bytes:
    """keccak256 of :func:`canonical_json` (32 bytes), the value fixed on chain."""
    return bytes(keccak(canonical_json(policy)))


def _dotted(prefix: str, table: Mapping[str, Any]) -> dict[str, Any]:
    """A table as dotted keys, sub-tables (``[defense.krum]``) flattened too."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, Mapping):
            out.update(_dotted(f"{prefix}{key}.", value))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _flat(policy: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"version": policy.get("version")}
    for table in POLICY_TABLES:
        out.update(_dotted(f"{table}.", policy.get(table) or {}))
    return out


def config_with_policy(cfg: ExperimentConfig, policy: Mapping[str, Any]) -> ExperimentConfig:
    """``cfg`` with its policy tables replaced by ``policy``'s (validated like any config)."""
    if policy.get("version") != POLICY_VERSION:
        raise PolicyMismatch(f"the deployment's policy has version {policy.get('version')!r}; this BDFL reads version {POLICY_VERSION}",
                             fix="use the BDFL version the deployment was made with")
    data = cfg.to_dict()
    for table in POLICY_TABLES:
        data[table] = dict(policy.get(table) or {})
    return from_dict(data)


def explicit_policy_fields(config_path: str | Path | None) -> set[str]:
    """The policy fields a config file sets itself (``"defense.audit_margin"``,
    ``"defense.krum.malicious"``, ...)."""
    if not config_path:
        return set()
    data = read_toml(config_path, "--config")
    return {k for t in POLICY_TABLES if isinstance(data.get(t), dict) for k in _dotted(f"{t}.", data[t])}


def check_deployment_policy(policy: Mapping[str, Any] | None, declared_hash: bytes, source: str) -> None:
    """The deployment file's policy must hash to the hash it declares (and that the chain
    holds: the caller compares ``declared_hash`` with ``PeerRegistry.policyHash``)."""
    if policy is None:
        raise PolicyMismatch(f"{source} declares no policy (no \"policy\" entry)",
                             fix="deploy again with this version of BDFL (`bdfl deploy` writes the policy)")
    actual = policy_hash(policy)
    if actual != bytes(declared_hash):
        raise PolicyMismatch(f"{source}: its policy hashes to 0x{actual.hex()}, but the deployment declares 0x{bytes(declared_hash).hex()}",
                             fix="the file was edited or belongs to another deployment; use the deployment's original file")


def resolve_policy(cfg: ExperimentConfig, deployed: Mapping[str, Any], explicit: set[str] | None = None) -> ExperimentConfig:
    """The config a peer runs with under a deployment's policy ``deployed``.

    Fields the peer's config sets itself (``explicit``: dotted names, e.g. from
    :func:`explicit_policy_fields`; None = every field) must equal the deployment's: the first
    that differs raises :class:`PolicyMismatch` naming it and both values. Every other policy
    field is taken from the deployment, so a peer with no config audits and aggregates by the
    deployment's policy.
    """
    local = policy_of(cfg)
    flat_local = _flat(local)
    if explicit is not None:
        flat_local = {k: v for k, v in flat_local.items() if k in explicit}
        flat_deployed = {k: v for k, v in _flat(deployed).items() if k in explicit}
    else:
        flat_deployed = _flat(deployed)
    for key in flat_local:
        if flat_local[key] != flat_deployed.get(key, "<missing>"):
            raise PolicyMismatch(
                f"this peer's policy differs from the deployment's: {key} = {flat_local[key]!r} here, "
                f"{flat_deployed.get(key, '<missing>')!r} in the deployment",
                fix=f"remove {key} from --config (the deployment's policy is used) or set it to the deployment's value",
            )
    return config_with_policy(cfg, deployed)
