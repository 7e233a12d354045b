"""Devnet launcher: start, answer, stop the whole process group, never leave orphans."""

from __future__ import annotations

import http.server
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from bdfl.chain.devnet import connect, rpc_call, start_devnet
from bdfl.errors import BDFLError


def _gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("backend", ["anvil", "hardhat"])
def test_devnet_starts_answers_and_stops(backend: str, project_root: Path, tmp_path: Path) -> None:
    d = start_devnet(backend, accounts=3, log_path=tmp_path / "log", root=project_root)
    pid = d.pid
    assert pid is not None
    assert d.chain_id == 31337
    assert d.rpc_url.startswith("http://127.0.0.1:")
    w3 = d.w3()
    assert w3.eth.block_number >= 0
    assert len(w3.eth.accounts) == 3
    d.set_balance("0x" + "11" * 20, 10**18)
    assert w3.eth.get_balance("0x" + "11" * 20) == 10**18
    d.stop()
    assert _gone(pid)
    assert not d.alive()
    d.stop()  # idempotent


def test_devnet_dies_with_a_killed_parent(project_root: Path, tmp_path: Path) -> None:
    """SIGKILL the Python process that started anvil: anvil must not survive it."""
    pidfile = tmp_path / "pid"
    code = (
        "import time, sys\n"
        "from bdfl.chain.devnet import start_devnet\n"
        f"d = start_devnet('anvil', root={str(project_root)!r})\n"
        f"open({str(pidfile)!r}, 'w').write(str(d.pid))\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "BDFL_ROOT": str(project_root)})
    deadline = time.monotonic() + 20
    while not pidfile.exists() or not pidfile.read_text():
        assert time.monotonic() < deadline, "child devnet never started"
        time.sleep(0.05)
    child = int(pidfile.read_text())
    assert psutil.pid_exists(child)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    assert _gone(child), "anvil survived its parent's SIGKILL"


def test_unreachable_rpc_url_is_one_clear_message() -> None:
    with pytest.raises(BDFLError) as info:
        connect("http://127.0.0.1:9")
    assert "cannot reach a JSON-RPC endpoint at http://127.0.0.1:9" in info.value.message
    assert info.value.fix


def test_rpc_url_that_is_not_a_chain(tmp_path: Path) -> None:
    class Html(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server naming
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"<html>hello</html>")

        def log_message(self, *a: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Html)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(BDFLError, match="not with JSON-RPC"):
            connect(f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()


def test_non_http_url_refused() -> None:
    with pytest.raises(BDFLError, match="http"):
        connect("ws://127.0.0.1:8545")


def test_unknown_backend_refused() -> None:
    with pytest.raises(BDFLError, match="unknown devnet backend"):
        start_devnet("ganache")


def test_connect_to_running_devnet(devnet: object) -> None:
    ext = connect(devnet.rpc_url)  # type: ignore[attr-defined]
    assert ext.chain_id == 31337 and not ext.is_local
    ext.stop()  # must not stop someone else's node
    assert rpc_call(devnet.rpc_url, "eth_chainId") == "0x7a69"  # type: ignore[attr-defined]
