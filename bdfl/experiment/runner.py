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
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Sequence

from bdfl.config import ExperimentConfig, TaskConfig, load_config
from bdfl.experiment.orchestrator import Orchestrator
from bdfl.experiment.setup import preflight
from bdfl.experiment.signals import held_interrupts, sigterm_as_interrupt
from bdfl.learning.task import task_defaults

log = logging.getLogger("bdfl.run")


def default_out_dir(cfg: ExperimentConfig) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("results") / f"{stamp}-{cfg.name}"


def experiment_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None,
                      notes: list[str] | None = None) -> ExperimentConfig:
    """The config ``bdfl run`` would run: the TOML file ``path`` (optional) with dotted-key
    ``overrides``, the task module's ``TASK_DEFAULTS`` for what neither sets, derived settings
    scaled to the peer count, validated (:func:`bdfl.config.load_config`, which alone leaves
    ``TASK_DEFAULTS`` out). The Python API's entry: ``run_experiment(experiment_config(...))``."""
    return load_config(path, dict(overrides or {}), notes, task_defaults=task_defaults)


def _ignored_task_defaults(cfg: ExperimentConfig) -> str:
    """A note when the config holds the library's training default where its task module declares
    another (``TASK_DEFAULTS``): a config loaded without them (:func:`experiment_config` applies them)."""
    declared = task_defaults(cfg.task.client)
    library = TaskConfig()
    ignored = {k: v for k, v in declared.items()
               if getattr(cfg.task, k, None) == getattr(library, k, None) and getattr(library, k, None) != v}
    if not ignored:
        return ""
    return (f"task {cfg.task.client} declares " + ", ".join(f"task.{k} {v!r}" for k, v in ignored.items())
            + " (its TASK_DEFAULTS) but the config holds the library's "
            + ", ".join(f"{getattr(library, k)!r}" for k in ignored)
            + " (set so, or loaded without them: bdfl.experiment.runner.experiment_config applies them); running as configured")


def run_experiment(cfg: ExperimentConfig, *, quiet: bool = False, out: Path | None = None, notes: Sequence[str] = ()) -> Path:
    """Run one experiment end to end and return its results folder (``notes``: lines for the
    run's log before it starts, e.g. which derived settings were scaled to the peer count)."""
    cfg = preflight(cfg)  # every name and range checked before any process starts (plugins completed)
    ignored = _ignored_task_defaults(cfg)
    if ignored:
        notes = [*notes, ignored]
    out_dir = Path(out or cfg.out or default_out_dir(cfg))
    orch = Orchestrator(cfg, out_dir, quiet=quiet)
    for line in notes:
        orch.note(line)
    with sigterm_as_interrupt():  # `kill` gets the same clean shutdown as Ctrl-C
        try:
            orch.run()
        except KeyboardInterrupt:
            orch.note("interrupted: stopping workers and devnet; results so far are kept")
            with held_interrupts("stopping: writing the summary and report"):
                orch.shutdown(status="interrupted")
            orch.note(f"results: {out_dir}")  # where they are kept (a default folder name has a time stamp)
            # a run cannot be continued; its config.toml reruns it, the same rounds first
            orch.note(f"to run it again: bdfl run --config {out_dir / 'config.toml'} --out <new folder>")
            raise
        except BaseException as exc:
            with held_interrupts("stopping: writing the summary and report"):
                orch.shutdown(status="failed", error=exc)
            raise
        else:
            with held_interrupts("the run is complete: writing its summary and report") as held:
                orch.shutdown(status="completed")
            if held:  # the run had completed: its results are whole, and there is nothing left to stop
                orch.note("interrupt received while the results were written: the run had completed, nothing is lost")
    return out_dir
