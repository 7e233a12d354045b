"""`bdfl peer` under a deployment's policy (bdfl.policy): the policy in the deployment file,
its hash on chain, a peer with a different local policy refused with one error naming the
field, and a peer with no --config auditing and aggregating by the deployment's policy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from threadpoolctl import threadpool_info

from bdfl.config import from_dict
from bdfl.policy import policy_hash, policy_of

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.chain]

# a policy unlike the library's defaults, so that "audits by the deployment's policy" is visible
DEPLOYED = {"defense": {"detectors": {"accuracy": {"k": 2.5}, "trigger": {"enabled": False}}, "bdfl": {"dissent_limit": 0.7}},
            "overlay": {"degree": 2, "min_sources": 1}}


@pytest.fixture(scope="module")
def deployed(devnet: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from bdfl.chain.accounts import derive_keys
    from bdfl.chain.deploy_cli import deploy_to

    d = tmp_path_factory.mktemp("policy")
    policy = policy_of(from_dict(DEPLOYED))
    path = deploy_to(devnet, d / "deployment.json", policy=policy)
    key = d / "peer.key"
    key.write_text("0x" + bytes(derive_keys(11, 1, namespace="bdfl-test-policy")[0].key).hex())
    return {"dir": d, "deployment": str(path), "key": str(key), "rpc_url": devnet.rpc_url, "policy": policy}


def _args(f: dict[str, Any], *extra: str) -> list[str]:
    return ["peer", "--rpc-url", f["rpc_url"], "--key-file", f["key"], "--deployment", f["deployment"],
            "--listen", "127.0.0.1:0", "--data-shard", "0/4", *extra]


def _bdfl(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bdfl", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def _one_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return errors[0]


def test_the_deployment_carries_the_policy_and_the_chain_its_hash(deployed: dict[str, Any], devnet: Any) -> None:
    from bdfl.chain.accounts import devnet_account
    from bdfl.chain.deploy import Deployment
    from bdfl.chain.protocol import ProtocolClient

    data = json.loads(Path(deployed["deployment"]).read_text())
    assert data["policy"] == deployed["policy"]
    assert data["policy_hash"] == "0x" + policy_hash(deployed["policy"]).hex()
    w3 = devnet.w3()
    client = ProtocolClient(w3, Deployment.load(deployed["deployment"], w3), devnet_account(0))
    assert client.policy_hash() == policy_hash(deployed["policy"])


def test_a_peer_with_a_different_policy_is_refused(deployed: dict[str, Any]) -> None:
    cfg = deployed["dir"] / "other.toml"
    cfg.write_text("[task]\nlocal_epochs = 1\n[defense.detectors.accuracy]\nk = 2.0\n")
    error = _one_error(_bdfl(_args(deployed, "--config", str(cfg), "--rounds", "1")))
    assert "policy differs from the deployment's: defense.detectors.accuracy.k = 2.0 here, 2.5 in the deployment" in error
    cfg.write_text("[overlay]\ndegree = 4\n")
    assert "overlay.degree = 4 here, 2 in the deployment" in _one_error(_bdfl(_args(deployed, "--config", str(cfg))))


def test_an_edited_deployment_file_or_one_the_chain_disowns_is_refused(deployed: dict[str, Any]) -> None:
    data = json.loads(Path(deployed["deployment"]).read_text())
    data["policy"]["defense"]["detectors"]["accuracy"]["k"] = 50.0  # a lenient rule under the deployed hash
    edited = deployed["dir"] / "edited.json"
    edited.write_text(json.dumps(data))
    args = _args(deployed)
    args[args.index("--deployment") + 1] = str(edited)
    assert "its policy hashes to 0x" in _one_error(_bdfl(args))
    data["policy_hash"] = "0x" + policy_hash(data["policy"]).hex()  # consistent file, but not what the chain holds
    edited.write_text(json.dumps(data))
    assert "the chain holds 0x" + policy_hash(deployed["policy"]).hex() in _one_error(_bdfl(args))


def test_a_peer_without_config_audits_and_aggregates_by_the_deployments_policy(deployed: dict[str, Any]) -> None:
    from bdfl.cli import build_parser
    from bdfl.defense.audit import AuditRule
    from bdfl.peer.standalone import StandalonePeer

    peer = StandalonePeer(build_parser().parse_args(_args(deployed)))
    try:
        assert policy_of(peer.cfg) == deployed["policy"]
        rule = peer.peer.settings.audit_rule
        assert rule == AuditRule.from_defense(from_dict(DEPLOYED).defense)
        assert rule.detectors.accuracy.k == 2.5 and not rule.enabled("trigger")  # not the library's defaults (3, on)
        assert peer.cfg.defense.bdfl.dissent_limit == 0.7 and peer.cfg.overlay.degree == 2 and peer.cfg.overlay.min_sources == 1
        if not os.environ.get("OMP_NUM_THREADS"):  # one BLAS thread, as one torch thread (peers sharing a host)
            assert max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas") == 1
    finally:
        peer.close()
    # a --config that repeats part of the policy and sets its own task settings is accepted
    cfg = deployed["dir"] / "same.toml"
    cfg.write_text("[task]\nlocal_epochs = 2\n[defense.detectors.accuracy]\nk = 2.5\n")
    peer = StandalonePeer(build_parser().parse_args(_args(deployed, "--config", str(cfg))))
    try:
        assert policy_of(peer.cfg) == deployed["policy"] and peer.cfg.task.local_epochs == 2
    finally:
        peer.close()


def test_bdfl_deploy_writes_the_configs_policy_or_the_defaults(devnet: Any, tmp_path: Path) -> None:
    from bdfl.config import load_config

    cfg = tmp_path / "exp.toml"
    cfg.write_text("[defense.detectors.shift]\nk = 3.5\n[overlay]\nmin_sources = 3\n")
    for config, expected in [(str(cfg), policy_of(load_config(cfg))), (None, policy_of(load_config(None)))]:
        out = tmp_path / f"dep-{config is None}.json"
        proc = _bdfl(["deploy", "--rpc-url", devnet.rpc_url, "--out", str(out), *(["--config", config] if config else [])])
        assert proc.returncode == 0, proc.stderr
        data = json.loads(out.read_text())
        assert data["policy"] == expected and data["policy_hash"] == "0x" + policy_hash(expected).hex()
