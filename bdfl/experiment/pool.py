"""The simulation's worker processes: :class:`WorkerPool` (spawn, send a typed command of
:mod:`bdfl.experiment.messages` to all workers at once or in turn, stop) and
:class:`RoundTimes`, the phase times they report."""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from multiprocessing.connection import wait
from dataclasses import dataclass, field, fields, replace
from typing import Any, Callable, Protocol

from bdfl.errors import BDFLError
from bdfl.experiment.messages import Stop, Times, Traffic, gather_replies
from bdfl.experiment.signals import ctrl_c_ignored
from bdfl.experiment.worker import worker_main


class Pool(Protocol):
    """What the orchestrator uses of a pool: :class:`WorkerPool` (local processes, pipes) or
    :class:`bdfl.experiment.ray_pool.RayPool` (Ray actors on a cluster's nodes)."""

    def call(self, cmd: Any) -> list[Any]: ...

    def call_in_turn(self, cmd: Any) -> list[Any]: ...

    def stop(self) -> None: ...


def make_pool(specs: list[Any], cluster: str = "", note: Callable[[str], None] | None = None) -> Pool:
    """Local worker processes; with ``cluster`` (the config's ``cluster``), Ray actors spread
    over that Ray cluster's nodes (``note`` is told where each one sits). Ray is imported only
    then: it is an optional extra."""
    if not cluster:
        return WorkerPool(specs, note=note)
    from bdfl.experiment.ray_pool import RayPool  # lazy: no Ray import on the default path

    return RayPool(specs, cluster, note=note)


#: Environment the worker processes start with (unless already set): PyTorch's CPU allocator backs
#: tensors of 2 MB and more with transparent huge pages, so an 11M-parameter fit no longer spends a
#: quarter of its CPU time faulting in each step's fresh 44 MB gradient (the same values;
#: docs/results/model-size.md). PyTorch reads it once, at a process's first allocation.
WORKER_ENV = {"THP_MEM_ALLOC_ENABLE": "1"}

#: Seconds a worker may work on one command before the run says so, and again each time as long
#: (``note``). A task's fit or evaluate that never returns holds its worker, and the run waits for
#: every worker: without this the terminal would fall silent. Not a limit: long phases (10,000 peers
#: on two cores) are legitimate, and a thread running user code cannot be stopped safely.
SLOW_COMMAND_S = 300.0

#: Seconds the workers have, all together, to stop when asked (:meth:`WorkerPool.stop`) before
#: the ones still running are killed.
STOP_GRACE_S = 10.0


class WorkerPool:
    """Worker processes and their pipes; commands go to all workers at once (they run in parallel)."""

    def __init__(self, specs: list[Any], note: Callable[[str], None] | None = None) -> None:
        self.note = note
        ctx = mp.get_context("spawn")  # no fork: the parent holds threads and sockets
        for key, value in WORKER_ENV.items():  # inherited by the spawned workers
            os.environ.setdefault(key, value)
        self.procs = []
        self.conns = []
        for spec in specs:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=worker_main, args=(spec, child), daemon=True, name=f"bdfl-worker-{spec.worker_id}")
            with ctrl_c_ignored():  # a worker importing torch printed Ctrl-C tracebacks (signals.ctrl_c_ignored)
                proc.start()
            child.close()
            self.procs.append(proc)
            self.conns.append(parent)
        self._collect("start")

    def _died(self, i: int) -> str:
        """What to say of worker ``i`` once its pipe is gone (it may not have exited yet)."""
        self.procs[i].join(timeout=1.0)
        code = self.procs[i].exitcode
        return f"worker {i} died" + (f" (exit code {code})" if code is not None else "")

    def _send(self, i: int, command: Any) -> None:
        try:
            self.conns[i].send(command)
        except OSError as exc:  # BrokenPipeError / ConnectionResetError: the worker is gone
            raise BDFLError(f"{_name(command)} could not be sent: {self._died(i)}") from exc

    def _recv(self, i: int, what: str = "") -> tuple[str, Any]:
        return self._replies([i], what)[i]

    def _read(self, i: int) -> tuple[str, Any]:
        """Worker ``i``'s reply, or the error saying it died (its pipe closed, or its process
        ended with nothing sent)."""
        try:
            if self.conns[i].poll():
                return self.conns[i].recv()
        except (EOFError, OSError):
            pass
        return "error", self._died(i)

    def _replies(self, workers: list[int], what: str) -> dict[int, tuple[str, Any]]:
        """The replies of ``workers`` to the command they are running, as they come. A worker
        that dies ends the wait at once with its error: the others may be waiting for it (its
        peers serve their updates), which held the run for their fetches' timeouts (~30 s) before
        it said anything. A run with a dead worker stops, so the others' replies are not needed."""
        replies: dict[int, tuple[str, Any]] = {}
        start = time.monotonic()
        while len(replies) < len(workers):
            waiting = {}
            for i in workers:
                if i not in replies:
                    waiting[self.conns[i]] = waiting[self.procs[i].sentinel] = i
            ready = wait(list(waiting), timeout=SLOW_COMMAND_S)
            if not ready:
                waited = time.monotonic() - start
                if self.note is not None:
                    busy = [str(i) for i in workers if i not in replies]
                    self.note(f"worker{'s' * (len(busy) > 1)} {', '.join(busy)} {'have' if len(busy) > 1 else 'has'} been "
                              f"running {what or 'a command'} for {waited:.0f} s (a task's fit or evaluate that never returns, "
                              "or a chain node that takes requests and never answers, holds the run here; Ctrl-C stops it and "
                              "keeps the rounds so far)")
                continue
            for i in sorted({waiting[x] for x in ready}):
                replies[i] = self._read(i)
                if replies[i][0] == "error" and not self.procs[i].is_alive():
                    return replies
        return replies

    def _collect(self, what: str) -> list[Any]:
        n = len(self.conns)
        replies = self._replies(list(range(n)), what)
        # after a death the others' replies are missing; the dead one's error is raised all the same
        return gather_replies((replies.get(i, ("ok", None)) for i in range(n)), what)

    def call(self, cmd: Any) -> list[Any]:
        """``cmd`` (a command of bdfl.experiment.messages) on every worker at once; their replies."""
        for i in range(len(self.conns)):
            self._send(i, cmd)
        return self._collect(_name(cmd))

    def call_in_turn(self, cmd: Any) -> list[Any]:
        """The command on one worker after another (for a deterministic order of effects)."""
        out = []
        for i in range(len(self.conns)):
            self._send(i, cmd)
            status, payload = self._recv(i, _name(cmd))
            if status != "ok":
                raise BDFLError(f"{_name(cmd)} failed in worker {i}:\n{payload}")
            out.append(payload)
        return out

    def stop(self) -> None:
        """Each worker is asked to stop; those still running after 10 s in all (busy with a command
        of a run that failed elsewhere, or hung) are killed. One deadline for all of them: waiting
        10 s for each in turn held a 16-worker run's exit for minutes after a worker died."""
        for conn in self.conns:
            try:
                conn.send(Stop())
            except (OSError, BrokenPipeError):
                pass
        deadline = time.monotonic() + STOP_GRACE_S
        for proc in self.procs:
            proc.join(timeout=max(0.0, deadline - time.monotonic()))
        for proc in self.procs:
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)


@dataclass
class RoundTimes:
    """A round's phase seconds so far: a :class:`~bdfl.experiment.messages.Times` built up
    command by command; and the update bytes the workers moved, by phase (summed over workers)."""

    total: Times = field(default_factory=Times)
    traffic: dict[str, Traffic] = field(default_factory=dict)

    def add(self, results: list[Any], *, in_turn: bool = False) -> None:
        """Add the :class:`~bdfl.experiment.messages.Times` of the workers' replies. Workers run
        a command in parallel, so it takes as long as its slowest worker (the largest sum of
        phases), and the command's phases are **that worker's**: the critical path. (Each
        phase's maximum over the workers, taken apart, adds up to more than the command took
        when one worker trains longest and another fetches longest: the round's phases then
        exceeded its wall-clock time.) Commands run in turn (one worker after another) take the sum."""
        names = [f.name for f in fields(Times)]
        if in_turn:
            chosen = [r.times for r in results]
        else:
            chosen = [max((r.times for r in results), key=lambda t: sum(getattr(t, n) for n in names))] if results else []
        self.total = Times(**{n: getattr(self.total, n) + sum(getattr(t, n) for t in chosen) for n in names})
        for r in results:
            t = getattr(r, "traffic", None)
            if t is not None and t.phase:
                self.traffic[t.phase] = self.traffic.get(t.phase, Traffic(t.phase)).plus(t)

    def add_chain(self, seconds: float) -> None:
        """Seconds the orchestrator itself spent on the chain (advance, finalize, reads)."""
        self.total = replace(self.total, chain=self.total.chain + seconds)


def _name(cmd: Any) -> str:
    """A command's name for messages (its class name, e.g. ``TrainSubmit``)."""
    return cmd if isinstance(cmd, str) else type(cmd).__name__
