"""Worker processes start with WORKER_ENV (bdfl/experiment/pool.py): PyTorch's huge-page CPU
allocation, read once at a process's first allocation, so it must be in the spawned workers'
environment; a value the user set is kept."""

from __future__ import annotations

import multiprocessing as mp
import os

import pytest

from bdfl.experiment.pool import WORKER_ENV, WorkerPool


def _child_env(q: "mp.Queue[str | None]") -> None:
    q.put(os.environ.get("THP_MEM_ALLOC_ENABLE"))


def _answer_later(conn) -> None:  # noqa: ANN001
    import time

    time.sleep(1.5)
    conn.send(("ok", "done"))


def _spawned_value() -> str | None:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_child_env, args=(q,))
    p.start()
    value = q.get(timeout=60)
    p.join(timeout=60)
    return value


def test_workers_start_with_huge_page_allocation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("THP_MEM_ALLOC_ENABLE", raising=False)
    WorkerPool([])
    assert WORKER_ENV["THP_MEM_ALLOC_ENABLE"] == "1"
    assert _spawned_value() == "1"


def test_a_value_the_user_set_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THP_MEM_ALLOC_ENABLE", "0")
    WorkerPool([])
    assert _spawned_value() == "0"


def test_a_command_that_takes_long_is_reported_while_the_run_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker stuck in a task's fit (here: one that answers after a while) makes the run say
    which worker and which command it is waiting for, each time the interval passes, and the
    reply still arrives; the run is not stopped."""
    import bdfl.experiment.pool as pool

    monkeypatch.setattr(pool, "SLOW_COMMAND_S", 0.2)
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    worker = ctx.Process(target=_answer_later, args=(child,), daemon=True)
    worker.start()
    child.close()
    notes: list[str] = []
    wp = WorkerPool([], note=notes.append)
    wp.conns, wp.procs = [parent], [worker]  # one worker, watched by its pipe and its process sentinel
    assert wp._recv(0, "TrainSubmit") == ("ok", "done")
    worker.join(timeout=10)
    assert len(notes) >= 2, notes
    assert all(n.startswith("worker 0 has been running TrainSubmit for ") and "never returns" in n for n in notes)
    waited = [float(n.split(" for ")[1].split(" s ")[0]) for n in notes]
    assert waited == sorted(waited) and waited[-1] > waited[0]
