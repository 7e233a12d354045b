"""Workers as Ray actors (config ``cluster``, bdfl.experiment.ray_pool): on a local two-node
Ray cluster (Ray's own ``ray.cluster_utils.Cluster``), the same seed gives the same metrics as
local worker processes, the two workers sit on two different nodes, the peers advertise their
node's address, and the cluster's processes are gone afterwards. The default path imports no Ray."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import ray
from ray.cluster_utils import Cluster

from bdfl.config import load_config
from bdfl.errors import BDFLError, ConfigError
from bdfl.experiment import ray_pool
from bdfl.experiment.ray_pool import RayPool, join_cluster
from bdfl.experiment.worker import WorkerSpec

ROOT = Path(__file__).resolve().parents[2]
# 6 peers on 2 workers, 2 rounds of digits, one label-flipping attacker, a drawn committee
SMALL = ["--peers", "6", "--workers", "2", "--rounds", "2", "--seed", "5", "--attackers", "0.2",
         "--set", "protocol.committee_size=4", "--set", "protocol.auditors_per_update=3", "--set", "protocol.quorum=2",
         "--set", "task.local_epochs=1", "--quiet"]


def _run(out: Path, *extra: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("BDFL_PRIVATE_KEY", "RAY_ADDRESS")}
    proc = subprocess.run([sys.executable, "-m", "bdfl", "run", *SMALL, *extra, "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def _chain_columns(out: Path) -> list[tuple[str, ...]]:
    with open(out / "rounds.csv", newline="") as fh:
        return [tuple(r[k] for k in r if not k.startswith("seconds")) for r in csv.DictReader(fh)]


def _submission_batches(out: Path) -> list[int]:
    """Entries of each transaction that carried submissions (``UpdateSubmitted`` events), in
    chain order: more than one is a relayer's ``submitBatch`` (chain.submission = "relayed")."""
    per_tx: dict[str, int] = {}
    with open(out / "events.jsonl") as fh:
        for line in fh:
            e = json.loads(line)
            if e.get("event") == "UpdateSubmitted":
                per_tx[e["tx"]] = per_tx.get(e["tx"], 0) + 1
    return list(per_tx.values())


def _tree(pids: list[int]) -> list[psutil.Process]:
    procs = []
    for pid in pids:
        try:
            p = psutil.Process(pid)
            procs += [p, *p.children(recursive=True)]
        except psutil.NoSuchProcess:
            pass
    return procs


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.chain
@pytest.mark.slow
def test_two_node_ray_cluster_gives_the_local_metrics_with_workers_on_both_nodes(tmp_path: Path) -> None:
    local, spread = tmp_path / "local", tmp_path / "ray"
    _run(local)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    started: list[psutil.Process] = []
    try:
        worker_node = cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        nodes = [cluster.head_node, worker_node]
        node_ids = {n.node_id for n in nodes}
        _run(spread, "--cluster", cluster.address)
        # more workers than the cluster has CPUs: one error naming both, before any actor starts
        specs = [WorkerSpec(worker_id=i, config={}, rpc_url="http://127.0.0.1:1", deployment_path="-", peers=[], attackers=[]) for i in range(3)]
        with pytest.raises(BDFLError, match=r"has 2 CPUs for 3 workers"):
            RayPool(specs, cluster.address)
        assert not ray.is_initialized()  # and this process left the cluster it joined
        # every process of the two nodes (raylets, GCS, the actors' worker processes), to check they end
        started = _tree([info.process.pid for n in nodes for infos in n.all_processes.values() for info in infos])
        assert started
    finally:
        cluster.shutdown()

    # the same seed, the same results: metrics, per-round chain usage (transactions and gas)
    assert (spread / "metrics.csv").read_text() == (local / "metrics.csv").read_text()
    assert _chain_columns(spread) == _chain_columns(local)
    assert len((spread / "metrics.csv").read_text().splitlines()) > 6  # a header and 6 peers x 2 rounds
    # the default relayed submissions: each Ray worker's relayer posted its peers' entries in
    # submitBatch transactions that reached the chain from its node, as the local workers did
    assert _submission_batches(spread) == _submission_batches(local)
    assert max(_submission_batches(spread)) > 1
    assert '"RelayFallback"' not in (spread / "events.jsonl").read_text()  # every entry landed relayed

    # the two workers sat on the cluster's two different nodes
    log = (spread / "run.log").read_text()
    line = next(x for x in log.splitlines() if "Ray workers:" in x)
    placed = {nid for nid in node_ids if nid[:12] in line}
    assert placed == node_ids, line

    # the chain and the peers' endpoints (as published on chain) listen on the node's address, not loopback
    node_ip = nodes[0].node_ip_address
    assert node_ip not in ("127.0.0.1", "localhost")
    assert f"chain http://{node_ip}:" in log
    assert line.count(f"endpoints on {node_ip})") == 2, line
    assert "chain http://127.0.0.1:" in (local / "run.log").read_text()

    # nothing of the cluster is left running
    deadline = time.monotonic() + 20
    while any(map(_alive, started)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert [p.pid for p in started if _alive(p)] == []


def test_the_default_path_imports_no_ray() -> None:
    code = ("import sys, bdfl.cli, bdfl.experiment.runner, bdfl.experiment.orchestrator, bdfl.experiment.pool; "
            "assert not [m for m in sys.modules if m == 'ray' or m.startswith('ray.')], 'ray imported'")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("address", ["", "auto", "10.0.0.5:6379", "ray://head.example:10001", "[::1]:6379"])
def test_cluster_addresses_accepted(address: str) -> None:
    assert load_config(None, {"cluster": address}).cluster == address


@pytest.mark.parametrize("address", ["10.0.0.5", "ray://head", "http://10.0.0.5:6379", "head:0", "head:99999", ":6379", "local"])
def test_cluster_addresses_refused_naming_the_field(address: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, {"cluster": address})
    assert info.value.field == "cluster" and "HOST:PORT" in str(info.value)


def test_a_cluster_without_ray_installed_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ray_pool, "ray", None)
    with pytest.raises(BDFLError, match=r"needs Ray, which is not installed") as info:
        join_cluster("auto")
    assert "bdfl[ray]" in (info.value.fix or "")


def test_no_ray_instance_is_said_in_bdfl_words_not_rays_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ray's own text for ``address="auto"`` with nothing running names its CLI's ``--address``
    flag and ``RAY_ADDRESS``; `bdfl run` reads neither (an outside probe followed the hint)."""
    def no_instance(**_kwargs: object) -> None:
        raise ConnectionError("Could not find any running Ray instance. Please specify the one to connect to by "
                              "setting `--address` flag or `RAY_ADDRESS` environment variable.")

    monkeypatch.setattr(ray_pool.ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray_pool.ray, "init", no_instance)
    with pytest.raises(BDFLError) as info:
        join_cluster("auto")
    text = f"{info.value} {info.value.fix}"
    assert "no running Ray instance was found on this host" in text
    assert "--address" not in text and "RAY_ADDRESS" not in text
    assert "ray start --head" in text and "--cluster HOST:PORT" in text
    # only Ray's hint is replaced, whichever of the two it names; any other text of Ray's stays
    assert ray_pool._in_our_words("set RAY_ADDRESS to connect", "auto") == "no running Ray instance was found on this host"
    assert ray_pool._in_our_words("pass --address", "10.0.0.1:6379") == "no running Ray instance was found"
    assert ray_pool._in_our_words("Version mismatch: the cluster runs Ray 2.50", "auto") == "Version mismatch: the cluster runs Ray 2.50"


def test_a_dead_cluster_address_fails_at_once() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
        with pytest.raises(BDFLError, match=r"no Ray cluster answers at"):
            join_cluster(address)
    assert time.monotonic() - started < 30
    assert not ray.is_initialized()
