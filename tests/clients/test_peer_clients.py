"""`bdfl peer` with a Flower ClientApp (Message API), one of whose peers raises: the other
peers complete the round; the failing peer logs task, step and traceback, submits nothing,
and keeps running."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.peer.test_standalone import _free_ports, chain_report, peer_command, setup_federation

ROOT = Path(__file__).resolve().parents[2]
TASK = "tests/clients/tasks/flaky_clientapp.py"

pytestmark = [pytest.mark.chain]


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A devnet of this module's own (the peers' deadlines follow its clock)."""
    from bdfl.chain.devnet import start_devnet

    with start_devnet("anvil", accounts=2, log_path=tmp_path_factory.mktemp("devnet") / "anvil.log", root=ROOT) as d:
        yield d


def test_clientapp_peers_and_a_failing_peer(devnet: Any, tmp_path: Path) -> None:
    fed = setup_federation(devnet.rpc_url, tmp_path, n=3, protocol={"submit_duration": 25, "commit_duration": 10, "reveal_duration": 10})
    ports = _free_ports(3)
    procs, logs = [], []
    try:
        for i in range(3):
            cmd = peer_command(fed, i, f"127.0.0.1:{ports[i]}", 1)
            cmd[cmd.index("--client") + 1] = TASK
            env = {**os.environ, "BDFL_TEST_RAISE": "fit:all" if i == 1 else ""}
            logs.append(tmp_path / f"peer{i}.log")
            with open(logs[-1], "wb") as fh:
                procs.append(subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT,
                                              start_new_session=True, env=env))
        deadline = time.monotonic() + 180
        for i in (0, 2):  # the healthy peers finish their round and exit
            procs[i].wait(timeout=max(1.0, deadline - time.monotonic()))
        texts = [p.read_text(errors="replace") for p in logs]
        assert [procs[0].returncode, procs[2].returncode] == [0, 0], [t[-3000:] for t in texts]
        assert procs[1].poll() is None, texts[1][-3000:]  # the failing peer is still running
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait(timeout=10)
    texts = [p.read_text(errors="replace") for p in logs]
    for i in (0, 2):  # the Message API app trained, submitted and aggregated in `bdfl peer`
        assert re.search(r"chain round 0: trained on \d+ samples", texts[i]), texts[i][-3000:]
        assert re.search(r"chain round 0 done: accuracy 0\.\d+", texts[i]), texts[i][-3000:]
        assert "Traceback" not in texts[i]
    failing = texts[1]
    assert re.search(rf"chain round 0: task {re.escape(TASK)} fit raised ValueError: .*batch_size.*sits the round out \(no update\)", failing), failing[-3000:]
    assert "Traceback (most recent call last)" in failing and "load_data" in failing
    rr = chain_report(fed["rpc_url"], fed["deployment"], fed["addresses"], 1)["rounds"][0]
    assert rr["phase"] == "CLOSED" and rr["submitters"] == sorted([fed["addresses"][0], fed["addresses"][2]]), rr


def test_bdfl_peer_refuses_a_contract_breaking_client_before_joining(devnet: Any, tmp_path: Path) -> None:
    """The sklearn client's float32 fit in `bdfl peer`: one error, exit 1, and the peer never
    joined (no stake moved)."""
    from web3 import Web3

    from bdfl.chain.accounts import devnet_account
    from bdfl.chain.deploy import Deployment
    from bdfl.chain.protocol import ProtocolClient

    fed = setup_federation(devnet.rpc_url, tmp_path, n=1)
    cmd = peer_command(fed, 0, f"127.0.0.1:{_free_ports(1)[0]}", 1)
    cmd[cmd.index("--client") + 1] = "clients.sklearn_logreg"
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: task clients.sklearn_logreg: fit() returned array 0 with dtype float32, expected float64 "
                      "(the initial parameters' dtype)"], proc.stderr[-3000:]
    assert "task.cast_dtypes = true" in proc.stderr and "Traceback" not in proc.stderr
    w3 = Web3(Web3.HTTPProvider(fed["rpc_url"]))
    assert ProtocolClient(w3, Deployment.load(fed["deployment"], w3=w3), devnet_account(0)).members() == []
