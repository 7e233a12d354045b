"""`bdfl devnet` and `bdfl deploy` as a user runs them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from bdfl.chain.deploy import Deployment


def test_bdfl_devnet_with_deploy_then_ctrl_c(project_root: Path, tmp_path: Path) -> None:
    dep = tmp_path / "deployment.json"
    proc = subprocess.Popen([sys.executable, "-m", "bdfl", "devnet", "--deploy", str(dep)], cwd=project_root,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert "anvil devnet: http://127.0.0.1:" in first and "chain id 31337" in first, first
        url = first.split("devnet: ")[1].split()[0]
        second = proc.stdout.readline()
        assert "deployment file" in second, second
        third = proc.stdout.readline()  # what the library's committee needs of a federation, as `bdfl deploy` says
        assert "updates can be approved once at least 6 members are active" in third, third
        children = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
        data = json.loads(dep.read_text())
        assert data["chainId"] == 31337
        from bdfl.chain.devnet import make_web3

        w3 = make_web3(url)
        d = Deployment.load(dep, w3=w3)
        assert set(d.addresses) == {"BDFLToken", "PeerRegistry", "RoundManager"}
        assert all(len(w3.eth.get_code(a)) > 0 for a in d.addresses.values())
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0
    deadline = time.monotonic() + 10
    while any(psutil.pid_exists(p) for p in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in children)


def test_bdfl_deploy_to_a_running_chain(devnet: object, project_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "dep.json"
    proc = subprocess.run([sys.executable, "-m", "bdfl", "deploy", "--rpc-url", devnet.rpc_url, "--out", str(out)],  # type: ignore[attr-defined]
                          cwd=project_root, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    d = Deployment.load(out)
    assert d.chain_id == 31337 and len(d.abi_hashes) == 3
    # the smallest federation that can approve anything is said (an outside probe's 3 peers against a deployment
    # with quorum 5 approved nothing, without a word)
    # the library's committee (the default experiment's), not the contracts' constructor defaults (32 seats, 3 auditors
    # per update, quorum 2: two colluders decide an update), which a probe found `bdfl deploy` deploying
    assert ("committee of up to 9 seats (never more than the members), 8 auditors per update, quorum 5: updates can be approved "
            "once at least 6 members are active") in proc.stdout
    p = d.params
    assert (p.committee_size, p.auditors_per_update, p.quorum, p.approve_percent, p.reject_percent) == (9, 8, 5, 50, 66)
    assert (p.submit_duration, p.commit_duration, p.reveal_duration) == (600, 600, 600)


def test_bdfl_deploy_unreachable_rpc_is_one_clear_error(project_root: Path, tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "bdfl", "deploy", "--rpc-url", "http://127.0.0.1:9", "--out", str(tmp_path / "d.json")],
                          cwd=project_root, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith("error: cannot reach a JSON-RPC endpoint at http://127.0.0.1:9")
    assert lines[1].startswith("fix: ")
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "d.json").exists()


def test_bdfl_deploy_refuses_a_bad_key_file_without_echoing_it(devnet: object, project_root: Path, tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("0xnot-a-key-SECRETMATERIAL")
    proc = subprocess.run([sys.executable, "-m", "bdfl", "deploy", "--rpc-url", devnet.rpc_url, "--key-file", str(key), "--out", str(tmp_path / "d.json")],  # type: ignore[attr-defined]
                          cwd=project_root, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "does not hold a 32-byte hex private key" in proc.stderr
    assert "SECRETMATERIAL" not in proc.stderr + proc.stdout


def test_bdfl_devnet_says_so_when_its_chain_dies(project_root: Path, tmp_path: Path) -> None:
    """The devnet process dies on its own (killed): `bdfl devnet` exits non-zero with a message
    at once, instead of sitting there while peers fail minutes later."""
    proc = subprocess.Popen([sys.executable, "-m", "bdfl", "devnet"], cwd=project_root,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        assert proc.stdout is not None
        assert "anvil devnet: http://127.0.0.1:" in proc.stdout.readline()
        chain = [c for c in psutil.Process(proc.pid).children(recursive=True) if "anvil" in c.name()]
        assert chain, psutil.Process(proc.pid).children(recursive=True)
        chain[0].kill()
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 1, out
    assert "the anvil devnet exited on its own (exit code -9)" in out and "start it again" in out, out


def test_bdfl_deploy_takes_the_experiments_protocol_table(devnet: object, project_root: Path, tmp_path: Path) -> None:
    """`bdfl deploy --config exp.toml` deploys that experiment's [protocol] (its own names, as
    `bdfl run` would): it was ignored silently. Together with --params it is refused."""
    exp = tmp_path / "exp.toml"
    exp.write_text("peers = 4\n[protocol]\nsubmit_seconds = 45\ncommittee_size = 4\nauditors_per_update = 3\nquorum = 2\n")
    out = tmp_path / "d.json"
    proc = subprocess.run([sys.executable, "-m", "bdfl", "deploy", "--rpc-url", devnet.rpc_url, "--config", str(exp), "--out", str(out)],  # type: ignore[attr-defined]
                          cwd=project_root, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    params = json.loads(out.read_text())["params"]
    assert params["submit_duration"] == 45 and params["committee_size"] == 4 and params["quorum"] == 2, params
    assert "committee of up to 4 seats (never more than the members), 3 auditors per update, quorum 2: updates can be approved once at least 3 members are active" in proc.stdout
    small = tmp_path / "small.toml"  # only phase lengths: the experiment's committee for its 20 peers (quorum 5)
    small.write_text("[protocol]\nsubmit_seconds = 45\n")
    proc = subprocess.run([sys.executable, "-m", "bdfl", "deploy", "--rpc-url", devnet.rpc_url, "--config", str(small),  # type: ignore[attr-defined]
                           "--out", str(tmp_path / "s.json")], cwd=project_root, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "quorum 5: updates can be approved once at least 6 members are active" in proc.stdout, proc.stdout
    forty = tmp_path / "forty.toml"  # no [protocol] table: the committee the experiment derives for its 40 peers
    forty.write_text("peers = 40\n")
    proc = subprocess.run([sys.executable, "-m", "bdfl", "deploy", "--rpc-url", devnet.rpc_url, "--config", str(forty),  # type: ignore[attr-defined]
                           "--out", str(tmp_path / "f.json")], cwd=project_root, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "committee of up to 17 seats (never more than the members), 8 auditors per update, quorum 5" in proc.stdout, proc.stdout
    both = tmp_path / "p.toml"
    both.write_text("[protocol]\nsubmit_duration = 30\n")
    proc = subprocess.run([sys.executable, "-m", "bdfl", "deploy", "--rpc-url", devnet.rpc_url, "--config", str(exp), "--params", str(both),  # type: ignore[attr-defined]
                           "--out", str(tmp_path / "e.json")], cwd=project_root, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "both --params and" in proc.stderr and "[protocol] table set the protocol" in proc.stderr, proc.stderr


def test_bdfl_account_shows_claims_leaves_and_refuses_with_a_fix(devnet: object, project_root: Path, tmp_path: Path) -> None:
    """A real peer's account outside its rounds (an outside probe could not see its rewards, and
    leaving had no command): shown, a refused claim and withdrawal say why, leaving works."""
    from bdfl.chain.accounts import derive_keys, devnet_account
    from bdfl.chain.deploy import TOKEN, fund_peers
    from bdfl.chain.protocol import ProtocolClient
    from bdfl.chain.txsender import TxSender

    dep_file = tmp_path / "dep.json"
    rpc = devnet.rpc_url  # type: ignore[attr-defined]
    subprocess.run([sys.executable, "-m", "bdfl", "deploy", "--rpc-url", rpc, "--out", str(dep_file)], cwd=project_root,
                   check=True, capture_output=True, timeout=120)
    w3 = devnet.w3()  # type: ignore[attr-defined]
    dep = Deployment.load(dep_file, w3=w3)
    key = derive_keys(77, 1)[0]
    fund_peers(w3, dep, TxSender(w3, devnet_account(0)), [key.address], tokens=dep.params.min_stake * 2)
    key_file = tmp_path / "peer.key"
    key_file.touch(mode=0o600)
    key_file.write_text("0x" + bytes(key.key).hex())

    def account(*flags: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "bdfl", "account", "--rpc-url", rpc, "--key-file", str(key_file),
                               "--deployment", str(dep_file), *flags], cwd=project_root, capture_output=True, text=True, timeout=120)

    out = account()
    assert out.returncode == 0, out.stderr
    assert "status:" in out.stdout and "NONE" in out.stdout and f"wallet:{' ' * 18}{2 * dep.params.min_stake // TOKEN:,} tokens" in out.stdout
    assert f"ETH for gas:{' ' * 13}100 ETH" in out.stdout  # fund_peers' devnet gas money (what a peer out of it lacks)
    ProtocolClient(w3, dep, key).approve_and_join("http://127.0.0.1:9/")
    out = account()
    assert "ACTIVE" in out.stdout and "stake:" in out.stdout and "rewards to claim:        0 tokens" in out.stdout
    refused = account("--claim")
    assert refused.returncode == 1 and "no rewards to claim" in refused.stderr and "fix:" in refused.stderr
    refused = account("--withdraw")
    assert refused.returncode == 1 and "only an account that left can withdraw" in refused.stderr and "--leave" in refused.stderr
    left = account("--leave")
    assert left.returncode == 0, left.stderr
    assert left.stdout.startswith("leaving:") and "EXITING" in left.stdout
    again = account("--leave")
    assert again.returncode == 1 and "EXITING" in again.stderr
