"""Start, reach and stop an Ethereum JSON-RPC endpoint.

:func:`start_devnet` launches anvil or a Hardhat 2 node as a child process on
``127.0.0.1`` and a free port, waits until JSON-RPC answers, and guarantees the
whole process group ends with us:

* :meth:`Devnet.stop` (also on ``with`` exit, ``atexit`` and garbage collection)
  sends SIGTERM, then SIGKILL, to the child's process group;
* the child is started in its own session, with ``PR_SET_PDEATHSIG=SIGKILL``
  so that it dies even when this Python process is killed with SIGKILL.

:func:`connect` wraps an existing endpoint (a user's geth, a testnet) in the same
interface; stopping it does nothing.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bdfl.chain import toolchain
from bdfl.errors import BDFLError

BACKENDS = ("anvil", "hardhat")
#: Chain ids of local development chains; well-known test keys are allowed only here.
DEVNET_CHAIN_IDS = frozenset({31337, 1337})
BLOCK_GAS_LIMIT = 30_000_000
#: Genesis time of a frozen-clock devnet (2023-11-14): any fixed value works.
FROZEN_GENESIS = 1_700_000_000


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the child may still lose a race; we retry)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def rpc_call(url: str, method: str, params: list[Any] | None = None, timeout: float = 5.0) -> Any:
    """One raw JSON-RPC call; raises BDFLError naming the URL on any failure."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - URL given by the user on purpose
            raw = resp.read(1 << 20)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise BDFLError(
            f"cannot reach a JSON-RPC endpoint at {url}: {reason}",
            fix="check the URL and that the node is running and listening there",
        ) from None
    try:
        data = json.loads(raw)
    except ValueError:
        raise BDFLError(
            f"{url} answered, but not with JSON-RPC (is it an Ethereum node?)",
            fix="give the HTTP JSON-RPC URL of an Ethereum node, e.g. http://127.0.0.1:8545",
        ) from None
    if not isinstance(data, dict) or ("result" not in data and "error" not in data):
        raise BDFLError(f"{url} answered with something that is not a JSON-RPC response", fix="give the URL of an Ethereum JSON-RPC endpoint")
    if "error" in data:
        raise BDFLError(f"{url} refused {method}: {data['error']}")
    return data["result"]


class KeepAliveSessions:
    """Posts JSON-RPC requests over persistent ``http.client`` connections, one per thread.

    Stands in for web3's ``requests``-based session manager inside ``HTTPProvider``: a
    call through ``requests`` costs ~2.4 ms here against ~0.6 ms through ``http.client``
    (measured on anvil, 200 ``eth_sendRawTransaction``), and a round of 1,000 peers makes
    thousands of calls. Errors are raised as ``requests`` exceptions, which is what web3
    and the rest of BDFL expect from an HTTP provider."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._local = threading.local()

    def _connection(self, uri: str, timeout: float) -> Any:
        import http.client
        from urllib.parse import urlsplit

        conn = getattr(self._local, "conn", None)
        if conn is None or self._local.uri != uri:
            parts = urlsplit(uri)
            cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
            conn = cls(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
            self._local.conn, self._local.uri = conn, uri
            self._local.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            self._local.fresh = True
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
        self._local.conn = None

    def make_post_request(self, endpoint_uri: str, data: bytes, **kwargs: Any) -> bytes:
        import http.client

        import requests

        timeout = float(kwargs.get("timeout") or self.timeout)
        headers = dict(kwargs.get("headers") or {"Content-Type": "application/json"})
        for attempt in (0, 1):
            conn = self._connection(str(endpoint_uri), timeout)
            reused = not self._local.fresh
            self._local.fresh = False
            try:
                conn.request("POST", self._local.path, body=data, headers=headers)
                response = conn.getresponse()
                body = response.read()
            except TimeoutError as exc:
                self._drop()
                raise requests.Timeout(f"{endpoint_uri}: no answer within {timeout:g} s") from exc
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                self._drop()
                if attempt == 0 and reused:
                    continue  # the server closed an idle keep-alive connection: reconnect once
                raise requests.ConnectionError(f"{endpoint_uri}: {exc}") from exc
            except (http.client.HTTPException, OSError) as exc:
                self._drop()
                raise requests.ConnectionError(f"{endpoint_uri}: {exc}") from exc
            if response.will_close:
                self._drop()
            if response.status >= 400:
                raise requests.HTTPError(f"{response.status} {response.reason} from {endpoint_uri}: {body[:200]!r}")
            return body
        raise AssertionError("unreachable")


@contextlib.contextmanager
def batch_mining(w3: Any) -> Iterator[None]:
    """On an anvil devnet: transactions sent inside the block wait in the pool, and leaving
    it mines them all, in arrival order (anvil ``--order fifo``), into as few blocks as the
    gas limit allows -- then automine is back on.

    Why: anvil 1.7 recomputes the whole state trie for every block (fixed upstream in
    foundry-rs/foundry#15715, not in any npm release here), so one block per transaction
    cost ~30 ms per transaction at 1,000 peers and grew with every round. Blocks do not
    change what a transaction does (deadlines are timestamps, the clock is frozen).

    One sender's transactions inside must not have decreasing gas limits: when one does not
    fit in the gas left in a block, anvil 1.7 skips it but still tries the sender's next one,
    and a smaller next one fits, fails the nonce check and is evicted from the pool silently
    (accepted, never mined; it no longer counts as pending, so the loop below ends without it).
    The relayer gives its batches equal limits (:meth:`bdfl.chain.relay.Relayer.send`); a
    joining peer's approve (80k) comes before its join (400k); one transfer gas serves all
    funding transfers (tests/chain/test_relay_mining.py shows the eviction)."""
    w3.provider.make_request("evm_setAutomine", [False])
    try:
        yield
        for _ in range(100_000):
            if _pending_count(w3) == 0:
                break  # "queued" (nonce gaps) can never be mined: their senders report them
            w3.provider.make_request("evm_mine", [])
    finally:
        w3.provider.make_request("evm_setAutomine", [True])


def _pending_count(w3: Any) -> int:
    """Transactions waiting to be mined: anvil's ``txpool_status``; Hardhat 2 has no txpool
    namespace, so there the transactions of the ``pending`` block."""
    status = w3.provider.make_request("txpool_status", []).get("result")
    if status is not None:
        return int(status["pending"], 16)
    block = w3.provider.make_request("eth_getBlockByNumber", ["pending", False]).get("result") or {}
    return len(block.get("transactions") or [])


def make_web3(rpc_url: str, request_timeout: float = 30.0) -> Any:
    """A web3 client over persistent connections (:class:`KeepAliveSessions`) that caches
    the chain id (otherwise web3 asks for it on every call)."""
    import requests
    from web3 import Web3
    from web3.providers.rpc.utils import ExceptionRetryConfiguration

    # web3 retries a request 5 times by default, timeouts too: against a node that takes
    # connections and never answers, each retry waited out the timeout, and a peer whose own
    # retries stop after 120 s gave up after 281 s, silent for the first 152 (an outside probe).
    # A refused or reset connection is still retried here (quick); a timeout goes to the caller.
    retry = ExceptionRetryConfiguration(errors=(requests.ConnectionError,))
    provider = Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": request_timeout}, exception_retry_configuration=retry)
    provider._request_session_manager = KeepAliveSessions(request_timeout)
    w3 = Web3(provider)
    w3.provider.cache_allowed_requests = True
    return w3


def set_pdeathsig() -> None:
    """Ask the kernel to SIGKILL the calling process when its parent dies (Linux);
    run in a devnet child before exec, and at the start of worker processes."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
    except OSError:
        pass


@dataclass
class Devnet:
    """A reachable JSON-RPC endpoint; owns its process when we started it."""

    backend: str
    rpc_url: str
    chain_id: int
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    _finalizer: Any = field(default=None, repr=False)

    @property
    def is_local(self) -> bool:
        return self.process is not None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def alive(self) -> bool:
        """True while the endpoint (our child, or the external node) answers."""
        if self.process is not None and self.process.poll() is not None:
            return False
        try:
            rpc_call(self.rpc_url, "eth_chainId", timeout=2.0)
            return True
        except BDFLError:
            return False

    def w3(self, request_timeout: float = 30.0) -> Any:
        """A web3 client for this endpoint."""
        return make_web3(self.rpc_url, request_timeout)

    def set_balance(self, address: str, wei: int) -> None:
        """Fund an account on a local devnet (anvil and Hardhat both answer this)."""
        method = "anvil_setBalance" if self.backend == "anvil" else "hardhat_setBalance"
        rpc_call(self.rpc_url, method, [address, hex(wei)])

    def stop(self, timeout: float = 5.0) -> None:
        """End the devnet's whole process group. Safe to call twice; a no-op for external chains."""
        if self._finalizer is not None:
            self._finalizer()

    def __enter__(self) -> "Devnet":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _kill_group(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    # The group may hold grandchildren even after the leader exited.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass


#: Block gas limit of a simulation devnet (frozen-clock anvil): a phase's transactions of
#: 1,000 peers fit in a few blocks (batch_mining); any transaction under the 2^24 cap fits.
#: Not larger: anvil builds a receipt in time proportional to its block's size (measured at
#: N = 10,000: 55 ms per receipt in a block of 10,000 transfers, 17 ms in a small block on
#: the same loaded node), so a phase mined as one block of N transactions made reading
#: its N receipts quadratic (28 receipts/s). Transaction gas is unaffected.
SIMULATION_GAS_LIMIT = 50_000_000

#: Block states anvil keeps (``--prune-history``): enough to replay a failed transaction at
#: its parent block (TxSender) and for any view call of the current round.
ANVIL_STATES_KEPT = 256


def _command(backend: str, host: str, port: int, accounts: int, block_time: float | None, root: Path, frozen_time: bool = False) -> list[str]:
    if backend == "anvil":
        cmd = [
            toolchain.anvil_binary(root),
            "--host", host,
            "--port", str(port),
            "--accounts", str(accounts),
            "--chain-id", "31337",
            "--gas-limit", str(SIMULATION_GAS_LIMIT if frozen_time else BLOCK_GAS_LIMIT),
            # keep the last 256 block states in memory only: by default anvil also writes
            # states to disk past a few hundred blocks, and every later transaction slowed
            # down as the chain grew (5.5 -> 14 ms per transfer over 3,000 blocks)
            "--prune-history", str(ANVIL_STATES_KEPT),
        ]
        if block_time:
            cmd += ["--block-time", str(block_time)]
        if frozen_time:
            # base fee 0: the fee a sender signs with is then the same constant whenever it
            # reads it (TxSender's fee floor), so transaction bytes, block hashes and gas do
            # not depend on wall-clock time (reproducible runs; the committee seed has no block data)
            cmd += ["--timestamp", str(FROZEN_GENESIS), "--base-fee", "0", "--order", "fifo"]
        return cmd
    if backend == "hardhat":
        # Hardhat reads hardhat.config.js in the project root; interval mining is set there via env.
        return [toolchain.node_binary(), str(toolchain.hardhat_cli(root)), "node", "--hostname", host, "--port", str(port)]
    raise BDFLError(f"unknown devnet backend {backend!r}", fix=f"use one of: {', '.join(BACKENDS)}")


def start_devnet(
    backend: str = "anvil",
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    accounts: int = 10,
    block_time: float | None = None,
    log_path: str | os.PathLike[str] | None = None,
    root: str | os.PathLike[str] | None = None,
    timeout: float = 60.0,
    frozen_time: bool = False,
) -> Devnet:
    """Start a local devnet and return once its JSON-RPC answers ``eth_chainId``.

    ``frozen_time`` (anvil only): block time starts at a fixed genesis and stands still
    unless moved with ``evm_increaseTime``. Simulations use it so that runs are
    reproducible (block randomness then depends only on block contents) and so that
    phase deadlines pass only when the orchestrator decides, however long a round takes.
    """
    if frozen_time and backend != "anvil":
        raise BDFLError(f"frozen block time is only supported on anvil, not {backend}")
    if backend not in BACKENDS:
        raise BDFLError(f"unknown devnet backend {backend!r}", fix=f"use one of: {', '.join(BACKENDS)}, or --rpc-url for an existing node")
    root = Path(root) if root else toolchain.project_root()
    last_error = ""
    for _attempt in range(3):  # a free port can be taken between our probe and the child's bind
        chosen = port or free_port(host)
        cmd = _command(backend, host, chosen, accounts, block_time, root, frozen_time)
        log = Path(log_path) if log_path else Path(os.devnull)
        if log_path:
            log.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        if backend == "hardhat":
            env["BDFL_HARDHAT_ACCOUNTS"] = str(accounts)
            if block_time:
                env["BDFL_HARDHAT_BLOCK_TIME_MS"] = str(int(block_time * 1000))
        with open(log, "ab") as out:
            proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                cmd,
                cwd=root,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=set_pdeathsig if threading.current_thread() is threading.main_thread() else None,
                env=env,
            )
        url = f"http://{host}:{chosen}"
        devnet = Devnet(backend=backend, rpc_url=url, chain_id=0, process=proc, log_path=Path(log_path) if log_path else None)
        devnet._finalizer = weakref.finalize(devnet, _kill_group, proc)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                last_error = _tail(devnet.log_path)
                devnet.stop()
                if "in use" not in last_error.lower():
                    raise BDFLError(f"{backend} exited during start-up: {last_error or 'no output (pass log_path to keep it)'}")
                break
            try:
                devnet.chain_id = int(rpc_call(url, "eth_chainId", timeout=1.0), 16)
                if frozen_time:
                    rpc_call(url, "anvil_setBlockTimestampInterval", [0])
                return devnet
            except BDFLError:
                time.sleep(0.02)
        else:
            devnet.stop()
            raise BDFLError(f"{backend} did not answer JSON-RPC on {url} within {timeout:.0f} s", fix=f"see its log at {log_path}" if log_path else None)
        if port is not None:
            break
    raise BDFLError(f"{backend} exited during start-up: {last_error or 'no output (pass log_path to keep it)'}")


def _tail(path: Path | None, lines: int = 6) -> str:
    """The informative part of a failed child's log: error lines first, stack frames dropped."""
    if path is None or not path.is_file():
        return ""
    text = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    useful = [ln for ln in text if not ln.startswith("at ")]
    errors = [ln for ln in useful if "error" in ln.lower()]
    return " | ".join((errors or useful)[-lines:])


def connect(rpc_url: str) -> Devnet:
    """Wrap an existing JSON-RPC endpoint; fails with a clear message if it is not a chain."""
    if not rpc_url.startswith(("http://", "https://")):
        raise BDFLError(f"--rpc-url must be an http(s) URL, got {rpc_url!r}", fix="e.g. --rpc-url http://127.0.0.1:8545")
    result = rpc_call(rpc_url, "eth_chainId")
    try:
        chain_id = int(result, 16)
    except (TypeError, ValueError):
        raise BDFLError(f"{rpc_url} answered eth_chainId with {result!r}, not a chain id", fix="give the URL of an Ethereum JSON-RPC endpoint") from None
    return Devnet(backend="external", rpc_url=rpc_url, chain_id=chain_id)


# Devnets still running at interpreter exit are stopped by their weakref finalizers
# (weakref.finalize registers itself with atexit); keep a reference to make that explicit.
atexit.register(lambda: None)
