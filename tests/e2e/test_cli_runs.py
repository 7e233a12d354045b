"""`bdfl run` as a user runs it: small peer counts just work, two same-seed runs at once on
one machine give identical results, a devnet reached by URL needs no key, and the end of a
run is a summary and one clean `results:` line."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bdfl.chain.devnet import rpc_call, start_devnet

from tests.chain.helpers import anvil_with_chain_id
from tests.e2e.events import reproducible_events

ROOT = Path(__file__).resolve().parents[2]
# committee smaller than the peer count, so the draw (and the seats per update) matter
DRAWN = ["--peers", "8", "--rounds", "2", "--set", "protocol.committee_size=5",
         "--set", "protocol.auditors_per_update=3", "--set", "protocol.quorum=2", "--set", "task.local_epochs=1"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "BDFL_PRIVATE_KEY"}
    env.update(extra)
    return env


def _bdfl_run(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bdfl", "run", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env or _env())


def _check_end_of_run(proc: subprocess.CompletedProcess[str], out: Path) -> None:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.rstrip("\n").split("\n")
    assert lines[-1] == f"results: {out}"  # a clean last line (no status line in front of it)
    text = proc.stdout
    for label in ("final honest accuracy:", "attackers below every honest peer:", "honest updates falsely rejected:",
                  "attackers' updates approved:", "per round:", "time:"):
        assert label in text, label
    assert "ETA" not in proc.stderr.rstrip("\n").split("\n")[-1]


@pytest.mark.parametrize("peers", [4, 6])
def test_small_peer_counts_just_work(peers: int, tmp_path: Path) -> None:
    out = tmp_path / f"p{peers}"
    proc = _bdfl_run("--peers", str(peers), "--rounds", "2", "--set", "task.local_epochs=1", "--out", str(out))
    _check_end_of_run(proc, out)
    log = (out / "run.log").read_text()
    assert log.count(f"scaled down for {peers} peers") == 1  # said once
    assert len((out / "rounds.csv").read_text().strip().splitlines()) == 3  # header + 2 rounds


def test_two_same_seed_runs_at_once_complete_identically(tmp_path: Path) -> None:
    """Ports are any free ones, bound by the workers (no probe-then-bind race), and the URL's
    value reaches no result: the same seed gives the same metrics.csv, chain usage and events."""
    outs = [tmp_path / "a", tmp_path / "b"]
    procs = [subprocess.Popen([sys.executable, "-m", "bdfl", "run", *DRAWN, "--seed", "3", "--out", str(o), "--quiet"],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env())
             for o in outs]
    texts = [p.communicate(timeout=600)[0] for p in procs]
    for p, text in zip(procs, texts):
        assert p.returncode == 0, text
    a, b = outs
    assert (a / "metrics.csv").read_text() == (b / "metrics.csv").read_text()
    assert _chain_columns(a) == _chain_columns(b)  # the same transactions and gas, round by round
    # the same events in the same blocks; only what the random vote salts make differ
    # (commitments, and with them transaction hashes) is left out
    assert reproducible_events(a) == reproducible_events(b)


def _chain_columns(out: Path) -> list[tuple[str, ...]]:
    with open(out / "rounds.csv", newline="") as fh:
        return [tuple(r[k] for k in r if not k.startswith("seconds")) for r in csv.DictReader(fh)]


def test_run_on_a_devnet_url_needs_no_key(tmp_path: Path) -> None:
    out = tmp_path / "url"
    with start_devnet("anvil", log_path=tmp_path / "anvil.log", root=ROOT) as devnet:
        proc = _bdfl_run("--chain", devnet.rpc_url, "--peers", "4", "--rounds", "2", "--set", "task.local_epochs=1",
                         "--out", str(out))
        _check_end_of_run(proc, out)
        assert "is a devnet: deploying and funding from its well-known account 0" in (out / "run.log").read_text()


def test_other_chain_ids_still_need_a_key(tmp_path: Path) -> None:
    with open(tmp_path / "anvil.log", "wb") as log, anvil_with_chain_id(4242, log) as (url, _node):
        assert int(rpc_call(url, "eth_chainId"), 16) == 4242
        proc = _bdfl_run("--chain", url, "--peers", "4", "--rounds", "1", "--out", str(tmp_path / "x"), timeout=120)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "error: no deployer key for chain id 4242" in proc.stderr and "BDFL_PRIVATE_KEY" in proc.stderr


class _NoDevnetMethods:
    """A JSON-RPC proxy in front of ``upstream`` that answers every anvil_ / hardhat_ / evm_
    method "does not exist", as a testnet's node or geth would."""

    BLOCKED = ("anvil_", "hardhat_", "evm_")

    def __init__(self, upstream: str) -> None:
        import json
        import threading
        import urllib.request
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        blocked = self.BLOCKED

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                req = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                reqs = [req] if isinstance(req, dict) else req
                out = []
                for r in reqs:
                    if str(r.get("method", "")).startswith(blocked):
                        out.append({"jsonrpc": "2.0", "id": r.get("id"),
                                    "error": {"code": -32601, "message": f"the method {r['method']} does not exist"}})
                    else:
                        data = json.dumps(r).encode()
                        with urllib.request.urlopen(urllib.request.Request(upstream, data=data, headers={"Content-Type": "application/json"}),
                                                    timeout=60) as resp:
                            out.append(json.loads(resp.read()))
                payload = json.dumps(out[0] if isinstance(req, dict) else out).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_run_on_a_chain_without_devnet_methods_funds_its_peers_by_transfer(tmp_path: Path) -> None:
    """An outside probe ran `bdfl run --chain URL` on a chain without anvil_/hardhat_ methods (a
    testnet, geth): it deployed, paid, then stopped, unable to give its peers gas money. Now a
    deployer that cannot pay the run's budget is refused before any transaction, and one that can
    funds each peer by transfer; the run completes."""
    from eth_account import Account

    with open(tmp_path / "anvil.log", "wb") as log, anvil_with_chain_id(4242, log) as (upstream, _node):
        proxy = _NoDevnetMethods(upstream)
        try:
            key = Account.create()
            env = _env(BDFL_PRIVATE_KEY=bytes(key.key).hex())
            rpc_call(upstream, "anvil_setBalance", [key.address, hex(10**15)])  # 0.001 ETH: not enough
            proc = _bdfl_run("--chain", proxy.url, "--peers", "4", "--rounds", "2", "--set", "task.local_epochs=1",
                             "--out", str(tmp_path / "poor"), env=env, timeout=120)
            assert proc.returncode == 1, proc.stdout + proc.stderr
            assert f"the deployer {key.address} holds 0.001 ETH; this run needs about" in proc.stderr, proc.stderr
            assert int(rpc_call(upstream, "eth_getTransactionCount", [key.address, "latest"]), 16) == 0  # nothing sent
            rpc_call(upstream, "anvil_setBalance", [key.address, hex(10**22)])
            out = tmp_path / "funded"
            proc = _bdfl_run("--chain", proxy.url, "--peers", "4", "--rounds", "2", "--set", "task.local_epochs=1",
                             "--out", str(out), env=env, timeout=300)
            _check_end_of_run(proc, out)
            assert "no devnet methods on this chain: each peer gets" in (out / "run.log").read_text()
        finally:
            proxy.close()
