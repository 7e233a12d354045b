"""WorkerPool: a worker that is gone is one BDFLError naming it, never a raw pipe error."""

from __future__ import annotations

import multiprocessing as mp
import time
from multiprocessing.connection import Connection

import pytest

from bdfl.errors import BDFLError
from bdfl.experiment.pool import STOP_GRACE_S, WorkerPool


def _exit_at_once(conn: Connection) -> None:
    conn.close()


def _busy(conn: Connection) -> None:
    conn.recv()
    time.sleep(120)  # a worker waiting on the dead one's peers (their fetches time out after ~30 s)


def _exit_on_command(conn: Connection) -> None:
    conn.recv()
    raise SystemExit(3)


def _pool(*targets) -> WorkerPool:  # type: ignore[no-untyped-def]
    ctx = mp.get_context("spawn")
    pool = WorkerPool.__new__(WorkerPool)  # the pool's state without spawning real workers
    pool.procs, pool.conns, pool.note = [], [], None
    for target in targets:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=target, args=(child,), daemon=True)
        proc.start()
        child.close()
        pool.procs.append(proc)
        pool.conns.append(parent)
    return pool


def _pool_with_a_dead_worker() -> WorkerPool:
    pool = _pool(_exit_at_once)
    pool.procs[0].join(timeout=60)
    return pool


@pytest.mark.parametrize("in_turn", [False, True])
def test_a_dead_worker_is_one_error_naming_it_and_its_exit_code(in_turn: bool) -> None:
    pool = _pool_with_a_dead_worker()
    with pytest.raises(BDFLError, match=r"worker 0 died \(exit code 0\)"):
        pool.call_in_turn("train") if in_turn else pool.call("train")


def test_a_worker_that_dies_mid_command_is_said_at_once_while_another_is_busy() -> None:
    """Replies were read in worker order, so a death behind a busy worker waited for it (~30 s of
    fetch timeouts in a run); now whichever ends first is read, and a death ends the wait."""
    pool = _pool(_busy, _exit_on_command)
    try:
        time.sleep(0.5)
        start = time.monotonic()
        with pytest.raises(BDFLError, match=r"train failed in a worker process:\nworker 1: worker 1 died \(exit code 3\)$"):
            pool.call("train")
        assert time.monotonic() - start < 30
    finally:
        for proc in pool.procs:
            proc.kill()


def test_stop_gives_busy_workers_one_deadline_together() -> None:
    """Three workers busy with a command (a run that failed elsewhere): stop() kills them after
    STOP_GRACE_S in all, not after 10 s for each in turn (a review of the death-at-once change)."""
    pool = _pool(_busy, _busy, _busy)
    try:
        for i in range(3):
            pool._send(i, "train")
        time.sleep(0.5)
        start = time.monotonic()
        pool.stop()
        assert time.monotonic() - start < 2 * STOP_GRACE_S
        assert not any(p.is_alive() for p in pool.procs)
    finally:
        for proc in pool.procs:
            proc.kill()
