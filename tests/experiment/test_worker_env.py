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
