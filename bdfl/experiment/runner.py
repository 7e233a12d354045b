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
from pathlib import Path
from typing import Sequence

from bdfl.config import ExperimentConfig
from bdfl.experiment.orchestrator import Orchestrator
from bdfl.experiment.setup import preflight
from bdfl.experiment.signals import sigterm_as_interrupt

log = logging.getLogger("bdfl.run")


def default_out_dir(cfg: ExperimentConfig) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("results") / f"{stamp}-{cfg.name}"


def run_experiment(cfg: ExperimentConfig, *, quiet: bool = False, out: Path | None = None, notes: Sequence[str] = ()) -> Path:
    """Run one experiment end to end and return its results folder (``notes``: lines for the
    run's log before it starts, e.g. which derived settings were scaled to the peer count)."""
    preflight(cfg)  # every name and range checked before any process starts
    out_dir = Path(out or cfg.out or default_out_dir(cfg))
    orch = Orchestrator(cfg, out_dir, quiet=quiet)
    for line in notes:
        orch.note(line)
    with sigterm_as_interrupt():  # `kill` gets the same clean shutdown as Ctrl-C
        try:
            orch.run()
        except KeyboardInterrupt:
            orch.note("interrupted: stopping workers and devnet; results so far are kept")
            orch.shutdown(status="interrupted")
            orch.note(f"results: {out_dir}")  # where they are kept (a default folder name has a time stamp)
            raise
        except BaseException as exc:
            orch.shutdown(status="failed", error=exc)
            raise
        else:
            orch.shutdown(status="completed")
    return out_dir
