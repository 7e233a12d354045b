"""SIGTERM handled as Ctrl-C: ``kill``, ``timeout`` and job schedulers send SIGTERM, whose
default action ends the process at once, before any ``finally`` runs (a run's devnet and
workers, a sweep's running points, would be left behind)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["sigterm_as_interrupt"]


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Inside the block SIGTERM raises KeyboardInterrupt, so it gets the same clean shutdown
    as Ctrl-C; the previous handler is restored after it. Main thread only (as any handler)."""
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
