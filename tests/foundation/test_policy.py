"""The policy (bdfl.policy): what it holds, its canonical bytes and hash, and how a peer's
config is checked against and completed from a deployment's policy."""

from __future__ import annotations

import dataclasses
import json

import pytest

from bdfl.config import DefenseConfig, OverlayConfig, from_dict, load_config
from bdfl.policy import (
    POLICY_VERSION,
    PolicyMismatch,
    canonical_json,
    check_deployment_policy,
    config_with_policy,
    explicit_policy_fields,
    policy_hash,
    policy_of,
    resolve_policy,
)


def test_the_policy_is_every_defense_and_overlay_setting() -> None:
    p = policy_of(load_config(None))
    assert p["version"] == POLICY_VERSION
    assert set(p["defense"]) == {f.name for f in dataclasses.fields(DefenseConfig)}
    assert set(p["overlay"]) == {f.name for f in dataclasses.fields(OverlayConfig)}
    assert set(p) == {"version", "defense", "overlay"}  # protocol is on chain; task/attack/chain/net are not policy


def test_canonical_bytes_and_hash() -> None:
    p = policy_of(load_config(None))
    raw = canonical_json(p)
    assert b" " not in raw and json.loads(raw) == p
    shuffled = {k: dict(reversed(list(v.items()))) if isinstance(v, dict) else v for k, v in reversed(list(p.items()))}
    assert canonical_json(shuffled) == raw and policy_hash(shuffled) == policy_hash(p)  # key order does not matter
    assert len(policy_hash(p)) == 32
    other = policy_of(from_dict({"defense": {"detectors": {"accuracy": {"k": 3.5}}}}))
    assert policy_hash(other) != policy_hash(p)  # every detector setting is in the hashed policy
    assert policy_hash(policy_of(from_dict({"defense": {"detectors": {"trigger": {"patterns": 8}}}}))) != policy_hash(p)
    # an int written where a float is meant is the same policy once validated
    assert policy_hash(policy_of(from_dict({"defense": {"bdfl": {"dissent_limit": 1}}}))) == policy_hash(policy_of(from_dict({"defense": {"bdfl": {"dissent_limit": 1.0}}})))


def test_a_differing_local_setting_is_refused_naming_the_first_field_and_both_values() -> None:
    deployed = policy_of(from_dict({"defense": {"detectors": {"accuracy": {"k": 2.5}}, "bdfl": {"dissent_limit": 0.7}}}))
    local = from_dict({"defense": {"detectors": {"accuracy": {"k": 2.0}}, "bdfl": {"dissent_limit": 0.2}}})
    with pytest.raises(PolicyMismatch) as err:
        resolve_policy(local, deployed, {"defense.detectors.accuracy.k", "defense.bdfl.dissent_limit"})
    text = str(err.value)
    assert "defense.detectors.accuracy.k = 2.0 here, 2.5 in the deployment" in text and "dissent_limit" not in text
    # every field counts when the peer's whole config is its policy (explicit=None)
    with pytest.raises(PolicyMismatch, match="defense.detectors.accuracy.k"):
        resolve_policy(local, deployed)


def test_unset_fields_come_from_the_deployment() -> None:
    deployed = policy_of(from_dict({"defense": {"detectors": {"accuracy": {"k": 2.5}}, "bdfl": {"max_reject_share": 1.0}}, "overlay": {"degree": 2}}))
    local = from_dict({"task": {"local_epochs": 1}, "defense": {"detectors": {"accuracy": {"k": 2.5}}}})
    cfg = resolve_policy(local, deployed, {"defense.detectors.accuracy.k"})
    assert policy_of(cfg) == deployed
    assert cfg.task.local_epochs == 1  # not policy: the peer's own


def test_explicit_fields_are_what_the_file_sets(tmp_path) -> None:
    path = tmp_path / "peer.toml"
    path.write_text('seed = 1\n[task]\nlocal_epochs = 1\n[defense.detectors.shift]\nk = 3\n[overlay]\ndegree = 2\n')
    assert explicit_policy_fields(path) == {"defense.detectors.shift.k", "overlay.degree"}
    assert explicit_policy_fields(None) == set()


def test_a_deployment_file_whose_policy_was_edited_is_refused() -> None:
    p = policy_of(load_config(None))
    check_deployment_policy(p, policy_hash(p), "deployment file d.json")
    edited = json.loads(json.dumps(p))
    edited["defense"]["detectors"]["accuracy"]["k"] = 50.0  # an attacker-friendly rule under the original hash
    with pytest.raises(PolicyMismatch, match="hashes to 0x"):
        check_deployment_policy(edited, policy_hash(p), "deployment file d.json")
    with pytest.raises(PolicyMismatch, match="declares no policy"):
        check_deployment_policy(None, policy_hash(p), "deployment file d.json")


def test_a_policy_of_another_version_or_with_bad_values_is_refused() -> None:
    cfg = load_config(None)
    p = policy_of(cfg)
    with pytest.raises(PolicyMismatch, match="version 2"):
        config_with_policy(cfg, {**p, "version": 2})
    bad = json.loads(json.dumps(p))
    bad["defense"]["detectors"]["accuracy"]["k"] = 300.0
    with pytest.raises(Exception, match="defense.detectors.accuracy.k"):
        config_with_policy(cfg, bad)
