"""The simulation's workers as Ray actors on the nodes of a Ray cluster (config ``cluster``,
``bdfl run --cluster``; docs/cluster.md).

Each actor hosts one :class:`bdfl.experiment.worker.Worker` and runs the same commands as a
local worker process (:func:`bdfl.experiment.worker.handle`), so a run's results do not depend
on where its workers sit. What changes on a cluster:

* the workers are spread round-robin over the cluster's nodes (one CPU each);
* each worker's peers listen on, and advertise, their node's address instead of loopback;
* the devnet started by the run listens on the driver node's address (the orchestrator asks
  :func:`join_cluster`), so every node reaches the chain;
* the deployment file travels with the start command (other hosts do not share its disk).

The typed messages (:mod:`bdfl.experiment.messages`: ints, strings, bytes, no arrays, so
Ray's read-only zero-copy numpy views never reach the orchestrator) are handed to Ray as they
are, between the orchestrator and its own actors. Ray is an optional extra (``pip install 'bdfl[ray]'``); nothing
imports this module on the default (local processes) path.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import tempfile
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

from bdfl.errors import BDFLError
from bdfl.experiment.messages import gather_replies
from bdfl.experiment.worker import WorkerSpec, handle, start_worker

try:
    import ray
    from ray.exceptions import GetTimeoutError, RayActorError
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
except ImportError:  # the optional extra is not installed: join_cluster says how to get it
    ray = None

#: Seconds a worker may take to be placed and to build its peers.
START_TIMEOUT = 600.0
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_connected_here = {"yes": False}  # whether this process called ray.init (then stop() shuts it down)


def join_cluster(address: str) -> str:
    """Connect this process to the Ray cluster at ``address`` (once) and return the address
    other nodes reach this host at: where the run's devnet must listen."""
    if ray is None:
        raise BDFLError(f"cluster = {address!r} needs Ray, which is not installed", fix="pip install 'bdfl[ray]'")
    if not ray.is_initialized():
        _probe(address)
        os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")  # no GPUs asked for: silence Ray's FutureWarning
        main = threading.current_thread() is threading.main_thread()
        on_term = signal.getsignal(signal.SIGTERM) if main else None
        try:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=True)
        except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
            raise BDFLError(f"cannot connect to the Ray cluster at {address!r}: {_in_our_words(str(exc), address)}",
                            fix="start one with `ray start --head` (docs/cluster.md), or give its address: "
                                "--cluster HOST:PORT") from None
        finally:
            if on_term is not None:  # ray.init makes SIGTERM exit at once; `bdfl run` stops cleanly on it (runner.run_experiment)
                signal.signal(signal.SIGTERM, on_term)
        _connected_here["yes"] = True
    if address.startswith("ray://"):  # a Ray Client: this host is not a node; the route to the head says its address
        parts = urlsplit(address)
        return _route_ip(parts.hostname or "127.0.0.1", parts.port or 10001)
    return str(ray.util.get_node_ip_address())


def _in_our_words(text: str, address: str) -> str:
    """Ray's connection error, without its hint to set ``--address`` or ``RAY_ADDRESS``: Ray's
    own CLI flag and variable, which `bdfl run` does not read (its flag is ``--cluster``; an
    outside probe followed the hint)."""
    if "--address" not in text and "RAY_ADDRESS" not in text:
        return text
    return "no running Ray instance was found" + (" on this host" if address == "auto" else "")


def _probe(address: str, timeout: float = 5.0) -> None:
    """Fail at once when nothing listens at a ``HOST:PORT`` or ``ray://HOST:PORT`` address
    (Ray itself retries a dead address for minutes)."""
    if address == "auto":
        return
    parts = urlsplit(address if address.startswith("ray://") else f"ray://{address}")
    try:
        with socket.create_connection((parts.hostname or "", parts.port or 10001), timeout=timeout):
            pass
    except OSError as exc:
        raise BDFLError(f"no Ray cluster answers at {address!r}: {exc.strerror or exc}",
                        fix="check the address (the head's `ray start --head --port`, 6379 by default; Ray Client: 10001) "
                            "and that this host reaches it") from None


def _route_ip(host: str, port: int) -> str:
    """This host's address on the route to ``host`` (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((host, port))
        return str(s.getsockname()[0])


class PeerHost:
    """A Ray actor hosting one worker and its peers on its node."""

    def __init__(self) -> None:
        self.worker: Any = None
        self.dir: str | None = None

    def where(self) -> tuple[str, str]:
        """(node id, node address) of the node this actor sits on."""
        return ray.get_runtime_context().get_node_id(), str(ray.util.get_node_ip_address())

    def start(self, spec: WorkerSpec, deployment: str) -> tuple[str, Any]:
        self.dir = tempfile.mkdtemp(prefix=f"bdfl-ray-worker{spec.worker_id}-")
        path = Path(self.dir) / "deployment.json"
        path.write_text(deployment)
        spec = replace(spec, deployment_path=str(path), endpoint_host=str(ray.util.get_node_ip_address()))
        self.worker, reply = start_worker(spec)
        if self.worker is not None:  # where its peers' endpoints listen, as published on chain
            hosts = sorted({str(urlsplit(h.peer.endpoint.url).hostname) for h in self.worker.hosted.values()})
            reply = (reply[0], replace(reply[1], endpoint_hosts=hosts))
        return reply

    def call(self, cmd: Any) -> tuple[str, Any]:
        return handle(self.worker, cmd) if self.worker is not None else ("error", "not started")

    def close(self) -> None:
        if self.worker is not None:
            self.worker.close()
            self.worker = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


class RayPool:
    """:class:`bdfl.experiment.pool.WorkerPool`'s interface over Ray actors, one per worker,
    spread over the cluster's nodes; ``placement`` is each worker's (node id, node address)."""

    def __init__(self, specs: list[WorkerSpec], cluster: str, note: Callable[[str], None] | None = None) -> None:
        self.actors: list[Any] = []
        self.placement: list[tuple[str, str]] = []
        join_cluster(cluster)
        try:
            self._start(specs, cluster, note)
        except BaseException:
            self.stop()  # no actor left behind, and this process leaves the cluster it joined
            raise

    def _start(self, specs: list[WorkerSpec], cluster: str, note: Callable[[str], None] | None) -> None:
        nodes = sorted((n for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) >= 1),
                       key=lambda n: (n["NodeManagerAddress"], n["NodeID"]))
        cpus = int(sum(n["Resources"]["CPU"] for n in nodes))
        if cpus < len(specs):
            raise BDFLError(f"the Ray cluster at {cluster!r} has {cpus} CPUs for {len(specs)} workers (one CPU each)",
                            fix=f"set workers to at most {cpus}, or add nodes (ray start --address=<the head's address:port>)")
        _check_chain_reachable(specs[0].rpc_url, nodes)
        deployment = Path(specs[0].deployment_path).read_text()
        host = ray.remote(PeerHost)
        self.actors = [
            host.options(num_cpus=1, scheduling_strategy=NodeAffinitySchedulingStrategy(nodes[i % len(nodes)]["NodeID"], soft=True)).remote()
            for i in range(len(specs))
        ]
        self.placement = [tuple(p) for p in self._get_all([a.where.remote() for a in self.actors], "placement", START_TIMEOUT)]
        started = self._collect([a.start.remote(s, deployment) for a, s in zip(self.actors, specs)], "start", START_TIMEOUT)
        if note is not None:
            note("Ray workers: " + ", ".join(f"worker {i} on node {nid[:12]} ({ip}; endpoints on {', '.join(r.endpoint_hosts) or '-'})"
                                             for i, ((nid, ip), r) in enumerate(zip(self.placement, started))))

    def _get(self, i: int, ref: Any, timeout: float | None = None) -> Any:
        try:
            return ray.get(ref, timeout=timeout)
        except RayActorError as exc:
            raise _Died(f"worker {i} died ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
        except GetTimeoutError:
            raise _Died(f"worker {i} did not answer within {timeout:.0f} s (not placed? see `ray status`)") from None

    def _get_all(self, refs: list[Any], what: str, timeout: float | None = None) -> list[Any]:
        out = []
        for i, ref in enumerate(refs):
            try:
                out.append(self._get(i, ref, timeout))
            except _Died as exc:
                raise BDFLError(f"{what} failed on the Ray cluster: {exc}", fix=CLUSTER_LOST_FIX) from None
        return out

    def _reply(self, i: int, ref: Any, timeout: float | None = None) -> tuple[str, Any]:
        try:
            return tuple(self._get(i, ref, timeout))
        except _Died as exc:
            return "error", str(exc)

    def _collect(self, refs: list[Any], what: str, timeout: float | None = None) -> list[Any]:
        return gather_replies((self._reply(i, ref, timeout) for i, ref in enumerate(refs)), what, fix=CLUSTER_LOST_FIX)

    def call(self, cmd: Any) -> list[Any]:
        """``cmd`` (a command of bdfl.experiment.messages) on every worker at once; their replies."""
        ref = ray.put(cmd)  # stored once, read by every actor
        refs = [a.call.remote(ref) for a in self.actors]
        return self._collect(refs, type(cmd).__name__)

    def call_in_turn(self, cmd: Any) -> list[Any]:
        """The command on one worker after another (for a deterministic order of effects)."""
        ref = ray.put(cmd)
        out = []
        for i, actor in enumerate(self.actors):
            status, payload = self._reply(i, actor.call.remote(ref))
            if status != "ok":
                raise BDFLError(f"{type(cmd).__name__} failed in worker {i}:\n{payload}")
            out.append(payload)
        return out

    def stop(self) -> None:
        """Close every worker (its endpoints, its temporary files), end the actors, and leave
        the cluster if this process joined it."""
        closing = []
        for actor in self.actors:
            try:
                closing.append(actor.close.remote())
            except Exception:  # noqa: BLE001 - the actor is gone already
                pass
        if closing:
            try:
                ray.wait(closing, num_returns=len(closing), timeout=30)
            except Exception:  # noqa: BLE001
                pass
        for actor in self.actors:
            try:
                ray.kill(actor)
            except Exception:  # noqa: BLE001
                pass
        self.actors = []
        if _connected_here["yes"]:
            ray.shutdown()
            _connected_here["yes"] = False


#: What to do when a worker on the cluster is gone (its node, or the head, went away): the run's
#: peers live in the workers, so it cannot go on without them.
CLUSTER_LOST_FIX = ("a worker died or the Ray cluster went away (`ray status` says which); "
                    "the results so far are kept: start the run again once the cluster is back")


class _Died(Exception):
    """A worker's actor is gone or did not answer in time."""


def _check_chain_reachable(rpc_url: str, nodes: list[dict[str, Any]]) -> None:
    """A chain on loopback is reachable from this host's node only."""
    host = urlsplit(rpc_url).hostname or ""
    addresses = {n["NodeManagerAddress"] for n in nodes}
    if host in _LOOPBACK and len(addresses) > 1:
        raise BDFLError(f"the chain {rpc_url} is on loopback, which the Ray cluster's other hosts ({', '.join(sorted(addresses))}) cannot reach",
                        fix="give a chain URL every node reaches (chain.rpc_url), or let the run start its devnet (chain.backend = anvil)")
