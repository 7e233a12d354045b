"""WorkerPool: a worker that is gone is one BDFLError naming it, never a raw pipe error."""

from __future__ import annotations

import multiprocessing as mp
from multiprocessing.connection import Connection

import pytest

from bdfl.errors import BDFLError
from bdfl.experiment.pool import WorkerPool


def _exit_at_once(conn: Connection) -> None:
    conn.close()


def _pool_with_a_dead_worker() -> WorkerPool:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_exit_at_once, args=(child,), daemon=True)
    proc.start()
    child.close()
    proc.join(timeout=60)
    pool = WorkerPool.__new__(WorkerPool)  # the pool's state without spawning real workers
    pool.procs, pool.conns = [proc], [parent]
    return pool


@pytest.mark.parametrize("in_turn", [False, True])
def test_a_dead_worker_is_one_error_naming_it_and_its_exit_code(in_turn: bool) -> None:
    pool = _pool_with_a_dead_worker()
    with pytest.raises(BDFLError, match=r"worker 0 died \(exit code 0\)"):
        pool.call_in_turn("train") if in_turn else pool.call("train")
