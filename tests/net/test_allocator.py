"""bdfl.net.allocator.keep_freed_memory: freed memory stays in the process (glibc), and the
simulation's workers and the real peer apply it at start."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                                reason="glibc malloc only")

# Allocates a block, touches it, frees it, then allocates and touches one of the same size again
# (in the main thread and in a new thread): how much RSS the free gave back and how many page
# faults the second touch took. The measuring itself must not call malloc between the free and
# the second malloc: a request there that no small free chunk fits is cut from the freed block
# (glibc splits a free chunk for a smaller request), the rest no longer holds the second block,
# and it comes from fresh heap instead (12287 faults, nothing returned). Whether that happened
# depended on the heap's state after startup (which interpreter, which venv and .pth files), not
# on the tuning: open() and read() of /proc/self/statm allocate an 8 KiB buffer with malloc. So
# statm is read with pread on a descriptor opened beforehand into a small bytes object, and the
# counters are Python objects of a few hundred bytes at most (pymalloc's pools, not malloc).
PROBE = r"""
import ctypes, json, os, resource, sys, threading
from bdfl.net.allocator import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "1" else None
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
N = 48 << 20  # above glibc's largest mmap threshold (32 MiB)

STATM = os.open("/proc/self/statm", os.O_RDONLY)
PAGE = resource.getpagesize()

def rss():
    return int(os.pread(STATM, 128, 0).split()[1]) * PAGE

def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

def cycle(out):
    p = libc.malloc(N); ctypes.memset(p, 1, N)
    touched = rss()
    libc.free(p)
    returned = touched - rss()
    f0 = faults()
    q = libc.malloc(N); ctypes.memset(q, 2, N)
    out.append({"returned": returned, "faults": faults() - f0})
    libc.free(q)

main, other = [], []
cycle(main)
t = threading.Thread(target=cycle, args=(other,)); t.start(); t.join()
print(json.dumps({"applied": applied, "main": main[0], "thread": other[0]}))
"""


def probe(apply: bool) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, "1" if apply else "0"], cwd=ROOT, capture_output=True, text=True,
                         check=True, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    return json.loads(out.stdout)


def test_freed_blocks_stay_in_the_process_and_are_reused_without_faults():
    pages = (48 << 20) // 4096
    before = probe(apply=False)  # glibc's default: the block is unmapped on free, faulted in again
    assert before["main"]["returned"] > (40 << 20) and before["main"]["faults"] > pages // 2
    after = probe(apply=True)
    assert after["applied"] is True
    for where in ("main", "thread"):  # one arena: a thread's blocks too
        assert after[where]["returned"] < (4 << 20), after
        assert after[where]["faults"] < pages // 20, after


def test_workers_apply_it_before_anything_else(monkeypatch):
    import bdfl.experiment.worker as worker

    order: list[str] = []
    monkeypatch.setattr(worker, "keep_freed_memory", lambda: order.append("keep_freed_memory") or True)

    def fail(spec):
        order.append("Worker")
        raise RuntimeError("no worker in this test")

    monkeypatch.setattr(worker, "Worker", fail)
    w, reply = worker.start_worker(object())  # shared by the pipe workers and the Ray actors
    assert w is None and reply[0] == "error"
    assert order == ["keep_freed_memory", "Worker"]


def test_the_real_peer_applies_it_before_it_starts(monkeypatch):
    import argparse

    import bdfl.cli as cli
    import bdfl.peer.standalone as standalone

    order: list[str] = []
    monkeypatch.setattr(cli, "keep_freed_memory", lambda: order.append("keep_freed_memory") or True)
    monkeypatch.setattr(standalone, "run_standalone_peer", lambda args: order.append("peer") or 0)
    assert cli.cmd_peer(argparse.Namespace()) == 0
    assert order == ["keep_freed_memory", "peer"]
