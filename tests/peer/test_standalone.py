"""`bdfl peer`: real, separate peer processes against a real anvil devnet.

* four `python -m bdfl peer` processes on distinct loopback ports run three rounds; the
  chain shows both rounds finalized, every peer submitting, the committee's votes revealed
  and approved updates; the peers' logs show bytes fetched over HTTP, hash-checked and
  aggregated;
* where the test runs as root with `ip netns`, the same with every peer in its own network
  namespace at its own address (10.200.0.0/24, only inside namespaces this test creates
  and removes: a hub namespace holding the chain and a bridge, one namespace per peer);
* set-up mistakes (bad key file, unreachable RPC, wrong-chain deployment, unknown client
  module, a well-known devnet key on a non-devnet chain) give one `error:` line, exit 1.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
N_PEERS = 4
ROUNDS = 3
PEER_TIMEOUT = 150.0
PROTOCOL = {
    "committee_size": 3,
    "auditors_per_update": 2,
    "quorum": 1,
    "submit_duration": 120,
    "commit_duration": 40,
    "reveal_duration": 40,
}
PEER_CONFIG = """\
seed = 0

[task]
client = "clients.digits"
partition = "iid"
local_epochs = 1

[defense]
name = "bdfl"

[overlay]
topology = "expander"
degree = 2
"""

pytestmark = [pytest.mark.chain]


# ------------------------------------------------------------------ helpers (also run inside a namespace)


def setup_federation(rpc_url: str, workdir: Path, n: int = N_PEERS, protocol: dict[str, int] | None = None) -> dict[str, Any]:
    """Deploy with a small committee, fund ``n`` peer accounts, write their key files and the
    peers' config. Returns JSON-ready paths and addresses."""
    from web3 import Web3

    from bdfl.chain.accounts import derive_keys, devnet_account
    from bdfl.chain.compiler import build
    from bdfl.chain.deploy import ProtocolParams, deploy, fund_peers
    from bdfl.chain.txsender import TxSender

    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 30}))
    deployer = devnet_account(0)
    sender = TxSender(w3, deployer)
    dep = deploy(w3, deployer, build(ROOT), ProtocolParams(**{**PROTOCOL, **(protocol or {})}), sender=sender)
    dep_path = dep.save(workdir / "deployment.json")
    accounts = derive_keys(4242, n, namespace="bdfl-test-standalone")
    fund_peers(w3, dep, sender, [a.address for a in accounts], tokens=dep.params.min_stake * 2)
    keys = []
    for i, acct in enumerate(accounts):
        kf = workdir / f"peer{i}.key"
        kf.write_text("0x" + bytes(acct.key).hex() + "\n")
        kf.chmod(0o600)
        keys.append(str(kf))
    cfg = workdir / "peer.toml"
    cfg.write_text(PEER_CONFIG)
    return {
        "rpc_url": rpc_url,
        "deployment": str(dep_path),
        "keys": keys,
        "addresses": [a.address for a in accounts],
        "config": str(cfg),
        "min_stake": dep.params.min_stake,
        "entry_fee": dep.params.entry_fee,
    }


def chain_report(rpc_url: str, deployment_path: str, addresses: list[str], rounds: int) -> dict[str, Any]:
    """What the chain says about the first ``rounds`` rounds (JSON-ready)."""
    from web3 import Web3

    from bdfl.chain.accounts import devnet_account
    from bdfl.chain.deploy import Deployment
    from bdfl.chain.protocol import ProtocolClient

    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 30}))
    client = ProtocolClient(w3, Deployment.load(deployment_path, w3=w3), devnet_account(0))
    out: dict[str, Any] = {"current_round": client.current_round(), "rounds": []}
    for r in range(rounds):
        info = client.round_info(r)
        subs = client.submissions(r)
        committee = client.committee(r)
        seats = [client.seat_info(r, s) for s in range(len(committee))]
        out["rounds"].append({
            "phase": info.phase.name,
            "submitters": sorted(s.peer for s in subs),
            "outcomes": [s.outcome.name for s in subs],
            "committee": committee,
            "commits": info.commits,
            "reveals": info.reveals,
            "revealed_seats": sum(1 for s in seats if s.revealed),
            "approved": sorted(p for p, _h in client.approved_updates(r)),
        })
    out["endpoints"] = {a: client.endpoint_of(a) for a in addresses}
    out["reputation"] = {a: client.reputation_of(a) / 1e18 for a in addresses}
    return out


def peer_command(fed: dict[str, Any], i: int, listen: str, rounds: int) -> list[str]:
    return [
        sys.executable, "-m", "bdfl", "peer",
        "--rpc-url", fed["rpc_url"],
        "--key-file", fed["keys"][i],
        "--listen", listen,
        "--deployment", fed["deployment"],
        "--client", "clients.digits",
        "--data-shard", f"{i}/{len(fed['keys'])}",
        "--config", fed["config"],
        "--rounds", str(rounds),
    ]


def run_peers(commands: list[list[str]], logdir: Path, timeout: float = PEER_TIMEOUT) -> tuple[list[int], list[str], float]:
    """Start every command as its own process (own session), wait for all; on timeout stop
    them and fail with their logs' tails. Returns exit codes, logs and the wall time."""
    procs = []
    logs = []
    t0 = time.monotonic()
    try:
        for i, cmd in enumerate(commands):
            path = logdir / f"peer{i}.log"
            logs.append(path)
            with open(path, "wb") as fh:
                procs.append(subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True))
        deadline = t0 + timeout
        for p in procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                break
        if any(p.poll() is None for p in procs):
            tails = "\n".join(f"--- peer{i}:\n" + "\n".join(path.read_text(errors="replace").splitlines()[-15:]) for i, path in enumerate(logs))
            pytest.fail(f"peers did not finish within {timeout:.0f} s\n{tails}")
    finally:
        for p in procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                    p.wait(timeout=10)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    try:
                        os.killpg(p.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    p.wait(timeout=10)
    return [p.returncode for p in procs], [path.read_text(errors="replace") for path in logs], time.monotonic() - t0


def check_federation(fed: dict[str, Any], report: dict[str, Any], codes: list[int], logs: list[str], rounds: int) -> None:
    """The assertions both federation tests share."""
    tails = "\n".join(f"--- peer{i} (rc {c}):\n" + "\n".join(t.splitlines()[-12:]) for i, (c, t) in enumerate(zip(codes, logs)))
    assert codes == [0] * len(codes), tails
    addresses = sorted(fed["addresses"])
    assert report["current_round"] >= rounds
    for r, rr in enumerate(report["rounds"]):
        assert rr["phase"] == "CLOSED", (r, rr)
        assert rr["submitters"] == addresses, f"round {r}: not every peer submitted: {rr}"
        assert 1 <= len(rr["committee"]) <= PROTOCOL["committee_size"], rr
        assert rr["commits"] == rr["reveals"] == rr["revealed_seats"] == len(rr["committee"]), f"round {r}: votes not all revealed: {rr}"
        assert rr["approved"], f"round {r}: no approved update: {rr}"
        assert set(rr["approved"]) <= set(addresses)
    for i, text in enumerate(logs):
        for r in range(rounds):
            assert re.search(rf"round {r}: trained on \d+ samples", text), f"peer{i} round {r}: no training\n{text[-3000:]}"
            assert re.search(rf"round {r}: submitted the update hash", text), f"peer{i} round {r}: no submission"
            m = re.search(rf"round {r}: fetched (\d+) of (\d+) approved neighbour update\(s\) over HTTP \((\d+) bytes.*hash-verified against the chain; aggregated (\d+)", text)
            assert m, f"peer{i} round {r}: no aggregation line\n{text[-3000:]}"
            fetched, wanted, nbytes, aggregated = map(int, m.groups())
            assert fetched == wanted == aggregated, m.group(0)
            assert re.search(rf"round {r} done: accuracy 0\.\d+", text), f"peer{i} round {r}: no round summary"
        assert "Traceback" not in text, f"peer{i}:\n{text[-3000:]}"
        key = Path(fed["keys"][i]).read_text().strip()
        for other in logs:
            assert key[2:] not in other and key[2:].upper() not in other, "a private key appeared in a log"
    # every peer in a committee audited: fetched its assigned updates and checked their hashes
    committee_logs = "\n".join(logs)
    audits = re.findall(r"round \d+: audit: fetched (\d+) of (\d+) assigned update\(s\) over HTTP \((\d+) bytes, [\d.]+ s\); (\d+) verified against their on-chain hash", committee_logs)
    assert len(audits) == sum(len(rr["committee"]) for rr in report["rounds"]), audits
    assert sum(int(a[0]) for a in audits) > 0 and all(a[0] == a[1] == a[3] for a in audits), audits
    # after the first round every auditor rebuilt where each assigned trainer started (round r-1's
    # updates on chain, fetched from the peers and hash-checked): none in round 0, all later
    found = re.findall(r"round (\d+): audit: fetched (\d+) of \d+ .*; (\d+) trainer start\(s\) and (\d+) earlier move\(s\) rebuilt", committee_logs)
    assert len(found) == len(audits), found
    rebuilt = [(r, f, n) for r, f, n, _m in found]
    assert all(int(n) == 0 for r, _f, n in rebuilt if r == "0"), rebuilt
    assert rounds == 1 or any(r != "0" for r, _f, _n in rebuilt), rebuilt
    assert all(n == f for r, f, n in rebuilt if r != "0"), rebuilt
    # from round 2 on also each trainer's earlier move (its round r-1 update minus the start it
    # had then) for the consistency test; none before (round 0 has no start recipes)
    assert all(int(m) == 0 for r, _f, _n, m in found if int(r) < 2), found
    assert all(int(m) <= int(n) for _r, _f, n, m in found), found
    assert rounds < 3 or any(int(m) > 0 for r, _f, _n, m in found if int(r) >= 2), found
    # at least one peer aggregated a neighbour's bytes in every round
    for r in range(rounds):
        assert re.search(rf"round {r}: fetched [1-9]\d* of \d+ approved neighbour update\(s\) over HTTP \([1-9]\d* bytes", committee_logs), f"round {r}: nobody aggregated a neighbour"


def round_seconds(logs: list[str]) -> dict[int, list[float]]:
    out: dict[int, list[float]] = {}
    for text in logs:
        for r, s in re.findall(r"round (\d+) done: .*\| ([\d.]+) s \(aggregation", text):
            out.setdefault(int(r), []).append(float(s))
    return out


# ------------------------------------------------------------------ four peers on loopback


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A devnet of this module's own: the peers' deadlines follow its clock, which other
    tests' time jumps on the shared devnet must not move."""
    from bdfl.chain.devnet import start_devnet

    log = tmp_path_factory.mktemp("peer-devnet") / "anvil.log"
    with start_devnet("anvil", accounts=2, log_path=log, root=ROOT) as d:
        yield d


@pytest.fixture(scope="module")
def federation(devnet: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return setup_federation(devnet.rpc_url, tmp_path_factory.mktemp("federation"))


@pytest.mark.slow
def test_four_peer_processes_run_three_rounds(federation: dict[str, Any], tmp_path: Path) -> None:
    from bdfl.chain.devnet import free_port

    fed = federation
    ports = []
    while len(ports) < N_PEERS:
        p = free_port()
        if p not in ports:
            ports.append(p)
    commands = [peer_command(fed, i, f"127.0.0.1:{ports[i]}", ROUNDS) for i in range(N_PEERS)]
    codes, logs, wall = run_peers(commands, tmp_path)
    report = chain_report(fed["rpc_url"], fed["deployment"], fed["addresses"], ROUNDS)
    check_federation(fed, report, codes, logs, ROUNDS)
    assert report["endpoints"] == {a: f"http://127.0.0.1:{ports[i]}" for i, a in enumerate(fed["addresses"])}
    for i, text in enumerate(logs):
        assert f"serving updates on 127.0.0.1:{ports[i]}" in text
        # min_stake joined, less the entry fee burned on a fresh identity (docs/protocol.md)
        assert f"joined with a stake of {(fed['min_stake'] - fed['entry_fee']) // 10**18} tokens" in text
    secs = round_seconds(logs)
    print(f"\n4 peer processes, {ROUNDS} rounds in {wall:.1f} s wall; round seconds per peer: {secs}")
    # the votes were persisted before committing, next to the key file, owner-only
    states = list(Path(fed["keys"][0]).parent.glob("peer*.key.bdfl-state/*/state.json"))
    assert len(states) == N_PEERS
    assert all(oct(p.stat().st_mode & 0o777) == "0o600" for p in states)
    assert all(oct(p.parent.stat().st_mode & 0o777) == "0o700" for p in states)
    # each peer's history stays in its state folder (it was only ever on the terminal)
    import csv

    for p in states:
        rows = list(csv.DictReader((p.parent / "rounds.csv").open()))
        assert [int(r["chain_round"]) for r in rows] == list(range(ROUNDS))
        assert all(0.0 <= float(r["accuracy"]) <= 1.0 and float(r["stake_tokens"]) > 0 for r in rows)
        assert all(int(r["approved_on_chain"]) <= int(r["submissions"]) == N_PEERS for r in rows)


def _spawn(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with open(log, "wb") as fh:
        return subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, **(env or {})})


def _stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(timeout=10)


def _free_ports(n: int) -> list[int]:
    from bdfl.chain.devnet import free_port

    ports: list[int] = []
    while len(ports) < n:
        p = free_port()
        if p not in ports:
            ports.append(p)
    return ports


@pytest.mark.slow
def test_auditor_restarted_after_commit_still_reveals(devnet: Any, tmp_path: Path) -> None:
    """Every committee member dies right after its commit (test hook), before the others
    fetched its update. Restarted at once on another port, each serves its saved update
    again from the new endpoint (the other auditors retry and re-read the endpoint), reveals
    the votes it persisted before committing, and the round closes with every vote revealed
    and every update approved."""
    fed = setup_federation(devnet.rpc_url, tmp_path)
    ports = _free_ports(2 * N_PEERS)
    procs = [_spawn(peer_command(fed, i, f"127.0.0.1:{ports[i]}", 1), tmp_path / f"first{i}.log", {"BDFL_PEER_TEST_CRASH": "after-commit"})
             for i in range(N_PEERS)]
    restarted: dict[int, subprocess.Popen[bytes]] = {}
    try:
        deadline = time.monotonic() + 120
        while True:
            for i, p in enumerate(procs):
                if i not in restarted and p.poll() == 3:  # crashed after its commit: restart it
                    restarted[i] = _spawn(peer_command(fed, i, f"127.0.0.1:{ports[N_PEERS + i]}", 1), tmp_path / f"again{i}.log")
            finals = [restarted.get(i, p) for i, p in enumerate(procs)]
            if all(f.poll() is not None for f in finals):
                break
            assert time.monotonic() < deadline, "peers did not finish"
            time.sleep(0.1)
        logs = {f: (tmp_path / f).read_text() for f in sorted(os.listdir(tmp_path)) if f.endswith(".log")}
        assert [f.returncode for f in finals] == [0] * N_PEERS, {k: v[-1500:] for k, v in logs.items()}
    finally:
        _stop_all(procs + list(restarted.values()))
    report = chain_report(fed["rpc_url"], fed["deployment"], fed["addresses"], 1)
    rr = report["rounds"][0]
    assert rr["phase"] == "CLOSED" and rr["submitters"] == sorted(fed["addresses"])
    assert sorted(fed["addresses"][i] for i in restarted) == sorted(rr["committee"])
    assert rr["commits"] == rr["reveals"] == rr["revealed_seats"] == len(rr["committee"])
    assert rr["approved"] == sorted(fed["addresses"]), (rr, logs)
    for i in restarted:
        text = logs[f"again{i}.log"]
        assert "test hook: exiting" in logs[f"first{i}.log"]
        assert "round 0: serving the saved update" in text and "already a member (ACTIVE); endpoint updated" in text, text
        assert re.search(r"round 0: revealed \d+ vote", text), text
        assert "round 0 done: accuracy" in text, text
        assert report["endpoints"][fed["addresses"][i]] == f"http://127.0.0.1:{ports[N_PEERS + i]}"
    for name, text in logs.items():
        for fetched, wanted in re.findall(r"round 0: fetched (\d+) of (\d+) approved neighbour", text):
            assert fetched == wanted, (name, text)


@pytest.mark.slow
def test_deadlines_are_advanced_when_a_member_is_silent(devnet: Any, tmp_path: Path) -> None:
    """A fourth member joined but never runs: the Submit phase (and the Commit phase if it
    holds a seat) can only end at the deadline, so a live peer calls ``advance``; the round
    still closes and the three live peers aggregate."""
    from web3 import Web3

    from bdfl.chain.accounts import load_key_file
    from bdfl.chain.deploy import Deployment
    from bdfl.chain.protocol import ProtocolClient

    fed = setup_federation(devnet.rpc_url, tmp_path, protocol={"submit_duration": 20, "commit_duration": 8, "reveal_duration": 8})
    w3 = Web3(Web3.HTTPProvider(fed["rpc_url"]))
    silent = ProtocolClient(w3, Deployment.load(fed["deployment"], w3=w3), load_key_file(fed["keys"][3]))
    silent.approve_and_join("http://127.0.0.1:9")
    live = {**fed, "keys": fed["keys"][:3]}  # --data-shard i/3: the barrier sees 4 >= 3 members
    ports = _free_ports(3)
    codes, logs, _wall = run_peers([peer_command(live, i, f"127.0.0.1:{ports[i]}", 1) for i in range(3)], tmp_path, timeout=120)
    assert codes == [0, 0, 0], [t[-2000:] for t in logs]
    report = chain_report(fed["rpc_url"], fed["deployment"], fed["addresses"], 1)
    rr = report["rounds"][0]
    assert rr["phase"] == "CLOSED" and rr["submitters"] == sorted(fed["addresses"][:3]), rr
    assert rr["approved"], rr
    joined = "\n".join(logs)
    assert "round 0: the SUBMIT phase passed its deadline; advanced it" in joined, joined[-4000:]
    if fed["addresses"][3] in rr["committee"]:
        assert "round 0: the COMMIT phase passed its deadline; advanced it" in joined, joined[-4000:]
        assert rr["reveals"] == rr["commits"] == len(rr["committee"]) - 1
    assert len(re.findall(r"advanced it", joined)) <= 3  # the stagger keeps the race small
    for text in logs:
        assert "round 0 done: accuracy" in text


def _peer_alone_until(peer_files: dict[str, Any], log: Path, line: str, *flags: str) -> subprocess.Popen[Any]:
    """A `bdfl peer` on shard 0 of 2 (alone, so it waits for the others), started with ``flags``,
    once its log holds ``line``."""
    cmd = [sys.executable, "-m", "bdfl", "peer", "--rpc-url", peer_files["rpc_url"], "--key-file", peer_files["key"],
           *flags, "--deployment", peer_files["deployment"], "--data-shard", "0/2"]
    proc = _spawn(cmd, log)
    deadline = time.monotonic() + 60
    while line not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            _stop_all([proc])
            raise AssertionError(log.read_text())
        time.sleep(0.1)
    return proc


def test_sigterm_stops_cleanly_and_frees_the_port(peer_files: dict[str, Any], tmp_path: Path) -> None:
    """A peer waiting for the federation (shard 0 of 2, alone) stops on SIGTERM: exit 0,
    endpoint closed, port free again."""
    import socket

    port = _free_ports(1)[0]
    log = tmp_path / "peer.log"
    proc = _peer_alone_until(peer_files, log, "waiting for the others", "--listen", f"127.0.0.1:{port}")
    try:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0, log.read_text()
    finally:
        _stop_all([proc])
    text = log.read_text()
    assert "SIGTERM received" in text and "stopped after 0 round(s)" in text and "endpoint closed" in text, text
    assert "does not answer from this host" not in text  # it advertises the endpoint it serves
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))


def test_an_advertised_endpoint_that_does_not_answer_is_said(peer_files: dict[str, Any], tmp_path: Path) -> None:
    """A wrong --advertise went unsaid: nobody could fetch the peer's updates, they stayed undecided
    round after round, and every round waited on the fetches (an outside probe)."""
    port, nowhere = _free_ports(2)
    log = tmp_path / "peer.log"
    proc = _peer_alone_until(peer_files, log, "does not answer from this host", "--listen", f"127.0.0.1:{port}",
                             "--advertise", f"http://127.0.0.1:{nowhere}")
    try:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 130, log.read_text()
    finally:
        _stop_all([proc])
    assert f"the advertised endpoint http://127.0.0.1:{nowhere} does not answer" in log.read_text()


# ------------------------------------------------------------------ peers in network namespaces


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)


def _netns_available() -> str | None:
    """None if this test can make network namespaces, else why not."""
    if sys.platform != "linux":
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "creating network namespaces needs root"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    probe = f"bdflprobe{os.getpid()}"
    try:
        _ip("netns", "add", probe)
    except (subprocess.CalledProcessError, OSError, subprocess.TimeoutExpired) as exc:
        return f"`ip netns add` failed here ({getattr(exc, 'stderr', b'') or exc!s})"
    try:
        _ip("netns", "del", probe)
    except subprocess.CalledProcessError:
        pass
    return None


def _netns_driver(workdir: str) -> None:
    """Runs inside the hub namespace: devnet on the bridge address, deployment, funding;
    then waits for ``go`` and writes the chain report."""
    from bdfl.chain.devnet import start_devnet

    wd = Path(workdir)
    with start_devnet("anvil", host="10.200.0.1", port=8545, accounts=2, log_path=wd / "anvil.log", root=ROOT) as d:
        fed = setup_federation(d.rpc_url, wd)
        (wd / "fed.json").write_text(json.dumps(fed))
        deadline = time.monotonic() + PEER_TIMEOUT + 60
        while not (wd / "go").exists():
            if time.monotonic() > deadline:
                raise SystemExit("no go")
            time.sleep(0.2)
        rounds = int((wd / "go").read_text())
        report = chain_report(d.rpc_url, fed["deployment"], fed["addresses"], rounds)
        (wd / "report.json").write_text(json.dumps(report))


@pytest.mark.slow
def test_peers_in_separate_network_namespaces(tmp_path: Path) -> None:
    why = _netns_available()
    if why is not None:
        pytest.skip(f"peers in network namespaces: {why}")
    rounds = 1
    tag = f"bt{os.getpid() % 100000}"
    hub = f"{tag}h"
    peers = [f"{tag}p{i}" for i in range(N_PEERS)]
    driver = None
    try:
        # hub namespace: a bridge at 10.200.0.1 (the chain listens there); each peer namespace
        # has one veth end at 10.200.0.1x, the other end enslaved to the hub's bridge.
        _ip("netns", "add", hub)
        _ip("-n", hub, "link", "set", "lo", "up")
        _ip("-n", hub, "link", "add", "br0", "type", "bridge")
        _ip("-n", hub, "addr", "add", "10.200.0.1/24", "dev", "br0")
        _ip("-n", hub, "link", "set", "br0", "up")
        for i, ns in enumerate(peers):
            _ip("netns", "add", ns)
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("link", "add", "name", f"v{i}", "netns", hub, "type", "veth", "peer", "name", "eth0", "netns", ns)
            _ip("-n", hub, "link", "set", f"v{i}", "master", "br0", "up")
            _ip("-n", ns, "addr", "add", f"10.200.0.{11 + i}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
        code = f"from tests.peer.test_standalone import _netns_driver; _netns_driver({str(tmp_path)!r})"
        with open(tmp_path / "driver.log", "wb") as fh:
            driver = subprocess.Popen(["ip", "netns", "exec", hub, sys.executable, "-c", code], cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 90
        while not (tmp_path / "fed.json").exists():
            if driver.poll() is not None or time.monotonic() > deadline:
                pytest.fail("hub driver failed:\n" + (tmp_path / "driver.log").read_text(errors="replace")[-3000:])
            time.sleep(0.2)
        fed = json.loads((tmp_path / "fed.json").read_text())
        assert fed["rpc_url"] == "http://10.200.0.1:8545"
        commands = [["ip", "netns", "exec", ns, *peer_command(fed, i, f"10.200.0.{11 + i}:8600", rounds)] for i, ns in enumerate(peers)]
        logdir = tmp_path / "logs"
        logdir.mkdir()
        codes, logs, wall = run_peers(commands, logdir)
        (tmp_path / "go").write_text(str(rounds))
        driver.wait(timeout=60)
        assert driver.returncode == 0, (tmp_path / "driver.log").read_text(errors="replace")[-3000:]
        report = json.loads((tmp_path / "report.json").read_text())
        check_federation(fed, report, codes, logs, rounds)
        assert report["endpoints"] == {a: f"http://10.200.0.{11 + i}:8600" for i, a in enumerate(fed["addresses"])}
        print(f"\n4 peers in 4 network namespaces, {rounds} round in {wall:.1f} s wall; round seconds: {round_seconds(logs)}")
    finally:
        if driver is not None and driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait(timeout=10)
        for ns in [*peers, hub]:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)


# ------------------------------------------------------------------ clear set-up errors


def _bdfl_peer(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bdfl", "peer", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def _assert_one_error(proc: subprocess.CompletedProcess[str], *fragments: str, code: int = 1) -> str:
    err = proc.stderr
    assert proc.returncode == code, (proc.returncode, err)
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, err
    assert "Traceback" not in err, err
    for f in fragments:
        assert f in errors[0], (f, errors[0])
    return errors[0]


@pytest.fixture(scope="module")
def peer_files(devnet: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A deployment file and a funded, valid key file (the peers never start)."""
    from bdfl.chain.accounts import derive_keys
    from bdfl.chain.compiler import build
    from bdfl.chain.accounts import devnet_account
    from bdfl.chain.deploy import ProtocolParams, deploy, fund_peers
    from bdfl.chain.txsender import TxSender

    d = tmp_path_factory.mktemp("errors")
    w3 = devnet.w3()
    dep = deploy(w3, devnet_account(0), build(ROOT), ProtocolParams(**PROTOCOL))
    acct = derive_keys(7, 1, namespace="bdfl-test-errors")[0]
    fund_peers(w3, dep, TxSender(w3, devnet_account(0)), [acct.address], tokens=dep.params.min_stake)
    key = d / "peer.key"
    key.write_text("0x" + bytes(acct.key).hex())
    return {"dir": d, "deployment": str(dep.save(d / "deployment.json")), "key": str(key), "rpc_url": devnet.rpc_url}


def test_bad_key_file_is_one_clear_error(peer_files: dict[str, Any]) -> None:
    bad = peer_files["dir"] / "bad.key"
    secret_looking = "deadbeef" * 7
    bad.write_text(secret_looking)
    proc = _bdfl_peer("--rpc-url", peer_files["rpc_url"], "--key-file", str(bad), "--deployment", peer_files["deployment"])
    _assert_one_error(proc, f"key file {bad}", "does not hold")
    assert secret_looking not in proc.stderr + proc.stdout
    proc = _bdfl_peer("--rpc-url", peer_files["rpc_url"], "--key-file", str(peer_files["dir"] / "missing.key"), "--deployment", peer_files["deployment"])
    _assert_one_error(proc, "cannot read key file")


def test_wrong_chain_deployment_is_one_clear_error(peer_files: dict[str, Any]) -> None:
    data = json.loads(Path(peer_files["deployment"]).read_text())
    data["chainId"] = 999
    other = peer_files["dir"] / "other-chain.json"
    other.write_text(json.dumps(data))
    proc = _bdfl_peer("--rpc-url", peer_files["rpc_url"], "--key-file", peer_files["key"], "--deployment", str(other))
    _assert_one_error(proc, "made for chain id 999", "has id 31337")


def test_deployment_listing_another_contract_is_one_clear_error(peer_files: dict[str, Any]) -> None:
    """A deployment file whose PeerRegistry address holds the token (code, but another contract):
    one error naming the contract, not web3's bare revert from the start-up."""
    data = json.loads(Path(peer_files["deployment"]).read_text())
    data["addresses"]["PeerRegistry"] = data["addresses"]["BDFLToken"]
    swapped = peer_files["dir"] / "swapped.json"
    swapped.write_text(json.dumps(data))
    proc = _bdfl_peer("--rpc-url", peer_files["rpc_url"], "--key-file", peer_files["key"], "--deployment", str(swapped))
    _assert_one_error(proc, "the PeerRegistry address", "does not answer PeerRegistry.policyHash()", "holds another contract")


def _saved_state(peer_files: dict[str, Any], folder: Path, last_aggregated: int) -> None:
    """A state folder as `bdfl peer` leaves it, written without opening it (which would lock it)."""
    from eth_account import Account

    from bdfl.chain.deploy import Deployment
    from bdfl.peer.state import state_folder

    dep = Deployment.load(Path(peer_files["deployment"]))
    address = Account.from_key(Path(peer_files["key"]).read_text().strip()).address
    ident = {"address": address.lower(), "chain_id": 31337, "round_manager": dep.round_manager.lower()}
    target = state_folder(folder, 31337, dep.round_manager, address)
    target.mkdir(parents=True)
    (target / "state.json").write_text(json.dumps({"format": 1, "identity": ident, "last_aggregated": last_aggregated,
                                                   "rounds": {}, "overlay": None}))


def test_state_from_a_restarted_devnet_is_one_clear_error(peer_files: dict[str, Any], tmp_path: Path) -> None:
    """A devnet started again deploys to the same addresses, so an old state folder matches its
    identity: a state saved after chain round 12 on a chain at round 0 is refused (it made peers
    skip aggregation for 12 rounds, silently)."""
    _saved_state(peer_files, tmp_path, 12)
    proc = _bdfl_peer("--rpc-url", peer_files["rpc_url"], "--key-file", peer_files["key"], "--deployment", peer_files["deployment"],
                      "--state-dir", str(tmp_path))
    _assert_one_error(proc, "is from chain round 12, but the chain is at round 0", "restarted devnet")


def test_a_second_peer_on_the_same_state_folder_is_refused(peer_files: dict[str, Any], tmp_path: Path) -> None:
    """Two `bdfl peer` processes with one key and state folder would overwrite each other's saved
    votes and salts: the second is refused while the first holds the folder."""
    from eth_account import Account

    from bdfl.chain.deploy import Deployment
    from bdfl.peer.state import PeerState

    dep = Deployment.load(Path(peer_files["deployment"]))
    address = Account.from_key(Path(peer_files["key"]).read_text().strip()).address
    PeerState.open(tmp_path, address=address, chain_id=31337, round_manager=dep.round_manager).hold()  # this process holds it
    proc = _bdfl_peer("--rpc-url", peer_files["rpc_url"], "--key-file", peer_files["key"], "--deployment", peer_files["deployment"],
                      "--state-dir", str(tmp_path))
    _assert_one_error(proc, "is in use by another process", f"(pid {os.getpid()})")


def test_a_second_peer_with_the_same_key_and_another_state_folder_is_refused(devnet: Any, peer_files: dict[str, Any], tmp_path: Path) -> None:
    """The adversary is a mistake: a second `bdfl peer` started with a member's key and another
    state folder (another host) registered its own endpoint over the first's, and the two took
    turns (an outside probe). While the registered endpoint answers, the second is refused; once
    it is down (a crashed peer restarted on another port or host) the new one takes over, as
    test_auditor_restarted_after_commit_still_reveals checks."""
    from bdfl.chain.accounts import derive_keys, devnet_account
    from bdfl.chain.deploy import Deployment, fund_peers
    from bdfl.chain.protocol import ProtocolClient
    from bdfl.chain.txsender import TxSender
    from bdfl.net.blobserver import BlobHost

    w3 = devnet.w3()
    dep = Deployment.load(Path(peer_files["deployment"]))
    acct = derive_keys(7, 1, namespace="bdfl-test-same-key")[0]
    fund_peers(w3, dep, TxSender(w3, devnet_account(0)), [acct.address], tokens=dep.params.min_stake)
    key = tmp_path / "member.key"
    key.write_text("0x" + bytes(acct.key).hex())
    with BlobHost() as host:
        first = host.add_endpoint(max_blob_bytes=1024)  # the first peer's endpoint, up
        ProtocolClient(w3, dep, acct).approve_and_join(first.url)
        proc = _bdfl_peer("--rpc-url", peer_files["rpc_url"], "--key-file", str(key), "--deployment", peer_files["deployment"],
                          "--state-dir", str(tmp_path / "other-host"))
        _assert_one_error(proc, f"registered endpoint {first.url} answers", "another bdfl peer with this key is running")
    assert ProtocolClient(w3, dep, acct).endpoint_of(acct.address) == first.url  # nothing was sent


def test_unreachable_rpc_and_unknown_client_are_one_clear_error(peer_files: dict[str, Any]) -> None:
    from bdfl.chain.devnet import free_port

    url = f"http://127.0.0.1:{free_port()}"
    proc = _bdfl_peer("--rpc-url", url, "--key-file", peer_files["key"], "--deployment", peer_files["deployment"])
    _assert_one_error(proc, "cannot reach a JSON-RPC endpoint", url)
    proc = _bdfl_peer("--rpc-url", peer_files["rpc_url"], "--key-file", peer_files["key"], "--deployment", peer_files["deployment"], "--client", "no_such_pkg.task")
    # a config error now (exit 2), found before the chain is reached: the task's TASK_DEFAULTS are read with the config
    _assert_one_error(proc, "config field 'task.client'", "task module 'no_such_pkg.task' not found", code=2)
    proc = _bdfl_peer("--rpc-url", peer_files["rpc_url"], "--key-file", peer_files["key"], "--deployment", peer_files["deployment"], "--data-shard", "4/4")
    _assert_one_error(proc, "--data-shard")


def test_advertised_url_the_registry_would_refuse_is_refused_before_any_transaction(tmp_path: Path) -> None:
    """An --advertise URL that passes the fetcher's check but not PeerRegistry's endpoint rule
    (no port, upper-case scheme, longer than 256 bytes) is one error naming the rule, before
    the key, the deployment or the chain are touched; an accepted URL gets past this check."""
    files = ("--rpc-url", "http://127.0.0.1:1", "--key-file", str(tmp_path / "no.key"), "--deployment", str(tmp_path / "no.json"))
    for url, rule in (("http://203.0.113.7", "port"), ("HTTP://203.0.113.7:8600", "scheme"),
                      ("http://203.0.113.7:8600/" + "a" * 300, "length")):
        _assert_one_error(_bdfl_peer(*files, "--advertise", url), "--advertise", f"rule '{rule}'")
    err = _assert_one_error(_bdfl_peer(*files, "--advertise", "http://203.0.113.7:8600/bdfl/"))
    assert "--advertise" not in err, err


def test_well_known_key_refused_off_devnet(peer_files: dict[str, Any]) -> None:
    """A chain id that is not a devnet's: the public devnet keys are refused before anything."""
    from bdfl.chain.accounts import devnet_account
    from tests.chain.helpers import anvil_with_chain_id

    with anvil_with_chain_id(4242) as (url, _node):
        key = peer_files["dir"] / "devnet0.key"
        key.write_text("0x" + bytes(devnet_account(0).key).hex())
        proc = _bdfl_peer("--rpc-url", url, "--key-file", str(key), "--deployment", peer_files["deployment"])
        _assert_one_error(proc, "refusing to use a well-known devnet account", "chain id 4242")
        assert bytes(devnet_account(0).key).hex() not in proc.stderr


# ------------------------------------------------------------------ pure helpers


def test_shard_matches_the_simulation_split() -> None:
    """Shard I of N is the data a simulation with N peers gives its peer I."""
    import numpy as np

    from bdfl.config import load_config
    from bdfl.experiment.setup import peer_data
    from bdfl.learning.task import load_task
    from bdfl.peer.standalone import shard_data

    task = load_task("clients.digits")
    for part in ("iid", "dirichlet", "iid_sample"):
        cfg = load_config(None, {"peers": 5, "protocol.committee_size": 4, "task.partition": part, "task.samples_per_peer": 30 if part == "iid_sample" else 0, "seed": 3})
        _ds, shards = peer_data(task, cfg)
        for i in (0, 4):
            _d, train, val = shard_data(task, cfg, i, 5)
            for a, b in zip((*train, *val), (*shards[i][0], *shards[i][1])):
                assert np.array_equal(a, b)


def test_argument_parsing() -> None:
    from bdfl.errors import BDFLError
    from bdfl.peer.standalone import parse_listen, parse_shard

    assert parse_shard("2/10") == (2, 10)
    assert parse_listen("0.0.0.0:8600") == ("0.0.0.0", 8600)
    assert parse_listen("[::1]:0") == ("::1", 0)
    for bad in ("10", "10/10", "-1/3", "a/b", "1/0"):
        with pytest.raises(BDFLError) as err:
            parse_shard(bad)
        assert err.value.fix  # every refusal says what to give instead
    for bad in ("8600", ":8600", "host:port", "h:70000"):
        with pytest.raises(BDFLError) as err:
            parse_listen(bad)
        assert "--listen 0.0.0.0:8600" in err.value.fix


def test_state_keeps_votes_and_refuses_another_identity(tmp_path: Path) -> None:
    from bdfl.errors import BDFLError
    from bdfl.peer.state import PeerState

    ident = {"address": "0xAbC0000000000000000000000000000000000001", "chain_id": 31337, "round_manager": "0x00000000000000000000000000000000000000Ff"}
    st = PeerState.open(tmp_path, **ident)
    salt = os.urandom(32)
    st.record_votes(3, [0, 2], [True, False], salt)
    st.save_blob(3, b"bytes")
    again = PeerState.open(tmp_path, **ident)
    assert again.votes(3) == ([0, 2], [True, False], salt)
    assert again.load_blob(3) == b"bytes"
    assert oct(again.path.stat().st_mode & 0o777) == "0o600"
    again.prune(10)
    assert again.votes(3) is None and again.load_blob(3) is None
    (again.folder / "state.json").write_text(json.dumps({"format": 1, "identity": {**again.identity, "chain_id": 1}}))
    with pytest.raises(BDFLError, match="another account or deployment"):
        PeerState.open(tmp_path, **ident)


def test_rounds_csv_appends_across_restarts_and_keeps_another_header_aside(tmp_path: Path) -> None:
    import csv

    from bdfl.peer.state import ROUNDS_FILE, PeerState

    ident = {"address": "0xAbC0000000000000000000000000000000000001", "chain_id": 31337, "round_manager": "0x00000000000000000000000000000000000000Ff"}
    st = PeerState.open(tmp_path, **ident)
    st.append_round({"chain_round": 0, "accuracy": 0.5})
    again = PeerState.open(tmp_path, **ident)  # a restart
    again.append_round({"chain_round": 1, "accuracy": 0.6})
    path = again.folder / ROUNDS_FILE
    assert [r["chain_round"] for r in csv.DictReader(path.open())] == ["0", "1"]
    again.append_round({"chain_round": 2, "accuracy": 0.7, "loss": 1.0})  # another version's columns
    assert [r["chain_round"] for r in csv.DictReader(path.open())] == ["2"]
    assert [r["chain_round"] for r in csv.DictReader(path.with_name(ROUNDS_FILE + ".old").open())] == ["0", "1"]


def test_overlay_tracker_builds_once_and_repairs() -> None:
    from bdfl.net.overlay import build_overlay, repair_overlay
    from bdfl.peer.overlay_tracker import OverlayTracker

    members = [f"0x{i:040x}" for i in range(1, 9)]
    seed1, seed2 = b"\x01" * 32, b"\x02" * 32
    t = OverlayTracker("expander", 3)
    o1 = t.update(members, seed1)
    assert o1 == build_overlay("expander", members, seed1, degree=3)
    assert t.update(list(reversed(members)), seed2) is o1  # same members: unchanged
    o2 = t.update(members[:-1], seed2)
    assert o2 == repair_overlay(o1, members[:-1], seed2, degree=3)
    restored = OverlayTracker.from_json("expander", 3, None, t.to_json())
    assert restored.overlay == o2
    assert OverlayTracker.from_json("expander", 4, None, t.to_json()).overlay is None


def test_token_amounts_in_messages_are_written_out() -> None:
    from bdfl.chain.deploy import tokens_text

    assert tokens_text(10**24) == "1,000,000"  # was "1e+06"
    assert tokens_text(5 * 10**17) == "0.5" and tokens_text(0) == "0" and tokens_text(123456789 * 10**12) == "123.456789"


def test_a_federation_below_the_quorum_is_told_once_per_round(caplog: pytest.LogCaptureFixture) -> None:
    """Three `bdfl peer`s against the library's committee (quorum 5) approved nothing, round after
    round, without a word (an outside probe); now each round with too few members says why."""
    import dataclasses

    from bdfl.chain.deploy import ProtocolParams
    from bdfl.peer.standalone import StandalonePeer

    sp: Any = StandalonePeer.__new__(StandalonePeer)
    sp.params, sp._said = dataclasses.replace(ProtocolParams(), committee_size=9, auditors_per_update=8, quorum=5), set()
    with caplog.at_level("WARNING", logger="bdfl.peer.standalone"):
        for rnd in (0, 0, 1):
            sp.warn_small_federation(3, rnd)
        sp.warn_small_federation(6, 2)  # quorum + 1 members: approvals are possible
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 2 and all("3 members: an update needs 5 votes from other members" in m and "at least 6 are active" in m
                                  for m in said), said



def test_a_lone_member_is_told_once_about_the_quorum_when_it_joins_and_submits(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Joining says it for the round it joins in; that round's first submission does not say it
    again (an outside probe saw the warning twice in a row)."""
    import dataclasses
    import types

    import bdfl.peer.standalone as standalone
    from bdfl.chain.deploy import ProtocolParams
    from bdfl.chain.protocol import Status

    url = "http://127.0.0.1:9"
    chain = types.SimpleNamespace(
        status_of=lambda: Status.ACTIVE, endpoint_of=lambda _a: url, stake_of=lambda: 90 * 10**18,
        peer_info=lambda: types.SimpleNamespace(known=True, reputation=500_000), member_count=lambda: 1,
        current_round=lambda: 4)
    monkeypatch.setattr(standalone, "ensure_membership", lambda *_a, **_k: set())
    sp: Any = standalone.StandalonePeer.__new__(standalone.StandalonePeer)
    sp.params, sp._said = dataclasses.replace(ProtocolParams(), committee_size=9, auditors_per_update=8, quorum=5), set()
    sp.chain, sp.endpoint, sp.address, sp.args = chain, types.SimpleNamespace(url=url), "0x" + "11" * 20, types.SimpleNamespace(stake=0)
    with caplog.at_level("WARNING", logger="bdfl.peer.standalone"):
        sp.ensure_member()
        sp.warn_small_federation(1, 4)  # the round loop's check in the round it joined
        sp.warn_small_federation(1, 5)
    said = [r.getMessage() for r in caplog.records if "votes from other members" in r.getMessage()]
    assert len(said) == 2, said


def test_a_waiting_peer_says_what_it_waits_for(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A member that stopped without leaving held the others for 10 minutes without a log line."""
    import logging
    import types

    from bdfl.chain.protocol import Phase
    from bdfl.peer import standalone

    info = types.SimpleNamespace(phase=Phase.SUBMIT, num_submissions=4, pool=5, commits=0, committee_size=4, reveals=0,
                                 deadline=1_000_600)
    text = standalone.waiting_text(info, now=1_000_000)
    assert "4 update(s) submitted of 5 members" in text and "(in 600 s)" in text and "stopped without leaving" in text
    assert "2 of 4 committee seat(s)" in standalone.waiting_text(types.SimpleNamespace(**{**vars(info), "phase": Phase.COMMIT, "commits": 2}), 0)

    clock = [100.0]
    monkeypatch.setattr(standalone.time, "monotonic", lambda: clock[0])
    peer = object.__new__(standalone.StandalonePeer)
    peer._not_before = {}
    with caplog.at_level(logging.INFO, logger=standalone.log.name):
        peer._say_waiting(7, info)  # the phase just began for this peer: nothing yet
        clock[0] += standalone.WAITING_LOG_SECONDS - 1
        peer._say_waiting(7, info)
        assert "waiting" not in caplog.text
        clock[0] += 1
        peer._say_waiting(7, info)
        peer._say_waiting(7, info)  # once per WAITING_LOG_SECONDS, not per poll
    assert caplog.text.count("chain round 7: waiting in the SUBMIT phase: 4 update(s) submitted of 5 members") == 1


def test_the_configs_task_is_the_peers_unless_client_is_given(tmp_path: Path) -> None:
    """`bdfl peer --config` with another task trained digits: --client's default always won. Now
    --client overrides the config's task.client only when given, and the task's TASK_DEFAULTS fill
    what neither sets (as in bdfl run)."""
    from bdfl import cli
    from bdfl.peer import standalone

    assert cli.build_parser().parse_args(["peer", "--key-file", "k", "--deployment", "d", "--rpc-url", "http://x:1"]).client is None
    path = tmp_path / "mnist.toml"
    path.write_text('[task]\nclient = "clients.mnist"\n')
    assert standalone.peer_config(str(path), None)[0].task.client == "clients.mnist"
    assert standalone.peer_config(str(path), "clients.digits")[0].task.client == "clients.digits"
    assert standalone.peer_config(None, None)[0].task.client == "clients.digits"
    cfg, notes = standalone.peer_config(None, "clients.torch_clientapp")
    assert cfg.task.learning_rate == 0.01 and any("TASK_DEFAULTS" in n for n in notes)
