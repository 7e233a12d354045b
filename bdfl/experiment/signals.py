"""SIGTERM handled as Ctrl-C: ``kill``, ``timeout`` and job schedulers send SIGTERM, whose
default action ends the process at once, before any ``finally`` runs (a run's devnet and
workers, a sweep's running points, would be left behind)."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

__all__ = ["Terminated", "ctrl_c_ignored", "held_interrupts", "sigterm_as_interrupt"]


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C (a KeyboardInterrupt) but told apart by the exit status:
    128 + 15 = 143, as schedulers expect, not Ctrl-C's 130."""

    signum = signal.SIGTERM


def _interrupt(signum: int, frame: Any) -> None:
    raise Terminated


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Inside the block SIGTERM raises KeyboardInterrupt, so it gets the same clean shutdown
    as Ctrl-C; the previous handler is restored after it. Main thread only (as any handler)."""
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _handled(handlers: dict[int, Any]) -> Iterator[None]:
    """Inside the block each signal of ``handlers`` has its handler, the previous ones restored
    after it. Outside the main thread (no handler can be set there) the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def held_interrupts(what: str = "writing the results") -> Iterator[list[int]]:
    """Inside the block Ctrl-C and SIGTERM do not interrupt: each is noted (the yielded list gets
    its number) and said once on stderr. For the few seconds a run takes to stop its processes and
    write its summary and report: a second Ctrl-C there lost both (an outside probe). Outside the
    main thread (no handler can be set there) the block runs unprotected."""
    held: list[int] = []

    def hold(signum: int, _frame: Any) -> None:
        if not held:
            print(f"\n{what}; it finishes in a few seconds and then stops", file=sys.stderr, flush=True)
        held.append(signum)

    with _handled({signal.SIGINT: hold, signal.SIGTERM: hold}):
        yield held


def ctrl_c_ignored() -> AbstractContextManager[None]:
    """Inside the block Ctrl-C is ignored, and so in any process started there (an ignored signal
    stays ignored across exec): the terminal sends it to the whole process group, and a worker
    still importing torch printed a KeyboardInterrupt traceback (80 lines for two workers; an
    outside probe). The orchestrator stops its workers itself; they die with it (PDEATHSIG)."""
    return _handled({signal.SIGINT: signal.SIG_IGN})
