"""`bdfl run`: devnet → contracts → N peers in worker processes → R rounds → results.

The orchestrator never decides anything the chain should decide: it reads the
committee, the assignments and the approved set from the contracts, and only
drives time (it tells workers which phase to act in, and calls the permissionless
``advance``/``finalize`` functions that any participant may call).

Shutdown is total on every path (normal end, error, Ctrl-C, a dead devnet):
workers are stopped and joined, the devnet's process group is killed, and the
rows written so far stay on disk (they are flushed as they are written).
"""

from __future__ import annotations

import datetime as _dt
import logging
import multiprocessing as mp
import signal
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Sequence

from bdfl.config import ExperimentConfig
from bdfl.errors import BDFLError

log = logging.getLogger("bdfl.run")


def default_out_dir(cfg: ExperimentConfig) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("results") / f"{stamp}-{cfg.name}"


def package_versions() -> dict[str, str]:
    out = {}
    for name in ("bdfl", "torch", "numpy", "web3", "flwr", "eth-account", "py-solc-x"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    out["python"] = sys.version.split()[0]
    return out


class WorkerPool:
    """Worker processes and their pipes; commands go to all workers at once (they run in parallel)."""

    def __init__(self, specs: list[Any]) -> None:
        from bdfl.experiment.worker import worker_main

        ctx = mp.get_context("spawn")  # no fork: the parent holds threads and sockets
        self.procs = []
        self.conns = []
        for spec in specs:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=worker_main, args=(spec, child), daemon=True, name=f"bdfl-worker-{spec.worker_id}")
            proc.start()
            child.close()
            self.procs.append(proc)
            self.conns.append(parent)
        self._collect("start")

    def _collect(self, what: str) -> list[Any]:
        results, errors = [], []
        for i, conn in enumerate(self.conns):
            try:
                status, payload = conn.recv()
            except (EOFError, OSError):
                status, payload = "error", f"worker {i} died (exit code {self.procs[i].exitcode})"
            if status == "ok":
                results.append(payload)
            else:
                errors.append(f"worker {i}: {payload}")
        if errors:
            raise BDFLError(f"{what} failed in a worker process:\n" + "\n".join(errors))
        return results

    def call(self, cmd: str, per_worker: list[dict[str, Any]] | None = None, **kwargs: Any) -> list[Any]:
        for i, conn in enumerate(self.conns):
            conn.send((cmd, per_worker[i] if per_worker is not None else kwargs))
        return self._collect(cmd)

    def call_in_turn(self, cmd: str, **kwargs: Any) -> list[Any]:
        """The command on one worker after another (for a deterministic order of effects)."""
        out = []
        for i, conn in enumerate(self.conns):
            conn.send((cmd, kwargs))
            try:
                status, payload = conn.recv()
            except (EOFError, OSError):
                status, payload = "error", f"worker {i} died (exit code {self.procs[i].exitcode})"
            if status != "ok":
                raise BDFLError(f"{cmd} failed in worker {i}:\n{payload}")
            out.append(payload)
        return out

    def stop(self) -> None:
        for conn in self.conns:
            try:
                conn.send(("stop", {}))
            except (OSError, BrokenPipeError):
                pass
        for proc in self.procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)


@dataclass
class RoundTimes:
    train: float = 0.0
    exchange: float = 0.0
    audit: float = 0.0
    chain: float = 0.0
    eval: float = 0.0

    def add(self, results: list[dict[str, Any]], *, in_turn: bool = False) -> None:
        # workers run in parallel: a phase takes as long as its slowest worker;
        # commands run in turn (one worker after another) take the sum
        for key in ("train", "exchange", "audit", "chain", "eval"):
            vals = [r.get(f"seconds_{key}", 0.0) for r in results]
            total = (sum(vals) if in_turn else max(vals)) if vals else 0.0
            setattr(self, key, getattr(self, key) + total)


def run_experiment(cfg: ExperimentConfig, *, quiet: bool = False, out: Path | None = None, notes: Sequence[str] = ()) -> Path:
    """Run one experiment end to end and return its results folder (``notes``: lines for the
    run's log before it starts, e.g. which derived settings were scaled to the peer count)."""
    from bdfl.experiment.orchestrator import Orchestrator
    from bdfl.experiment.setup import preflight

    preflight(cfg)  # every name and range checked before any process starts
    out_dir = Path(out or cfg.out or default_out_dir(cfg))
    orch = Orchestrator(cfg, out_dir, quiet=quiet)
    for line in notes:
        orch.note(line)
    previous = signal.getsignal(signal.SIGTERM)

    def _term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _term)  # `kill` gets the same clean shutdown as Ctrl-C
    try:
        orch.run()
    except KeyboardInterrupt:
        orch.note("interrupted: stopping workers and devnet; results so far are kept")
        orch.shutdown(status="interrupted")
        raise
    except BaseException:
        orch.shutdown(status="failed")
        raise
    else:
        orch.shutdown(status="completed")
    finally:
        signal.signal(signal.SIGTERM, previous)
    return out_dir
