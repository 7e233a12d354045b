"""Live tracking: a run's per-round figures as TensorBoard event files, written as it runs.

TensorBoard (not MLflow): its event files are plain append-only files in the results
folder, written with no server, store or account, read by the tool most ML researchers
already run (``tensorboard --logdir results/``), and several runs side by side show as
one chart per figure. MLflow would add a tracking store and ~40 packages for the same
curves.

:class:`LiveTracker` writes under ``<results folder>/tensorboard/`` one scalar per
figure and round (step = the round number), flushed after every round so the curves
move while the run runs:

- ``round/<column>``: every numeric column of that round's ``rounds.csv`` row;
- ``reputation/honest_min``, ``honest_mean``, ``attacker_max``, ``attacker_mean`` and
  ``reputation/separated`` (1 when every attacker is below every honest peer);
- ``tokens/{honest,attacker}_{balance,stake,unclaimed}_mean``.

The tag list is in docs/results-format.md. Without the ``tensorboard`` package the
tracker says so once and writes nothing (the CSVs are the record either way).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger("bdfl.run")

TRACKING_DIR = "tensorboard"


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def round_scalars(round_row: Mapping[str, Any], metrics: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """The tags and values :class:`LiveTracker` writes for one round."""
    out: dict[str, float] = {}
    for col, v in round_row.items():
        if col != "round" and (x := _num(v)) is not None:
            out[f"round/{col}"] = x
    rows = list(metrics)
    groups = {"honest": [m for m in rows if not m.get("attacker")], "attacker": [m for m in rows if m.get("attacker")]}
    rep = {g: [x for m in ms if (x := _num(m.get("reputation"))) is not None] for g, ms in groups.items()}
    if rep["honest"]:
        out["reputation/honest_min"] = min(rep["honest"])
        out["reputation/honest_mean"] = sum(rep["honest"]) / len(rep["honest"])
    if rep["attacker"]:
        out["reputation/attacker_max"] = max(rep["attacker"])
        out["reputation/attacker_mean"] = sum(rep["attacker"]) / len(rep["attacker"])
        if rep["honest"]:
            out["reputation/separated"] = float(max(rep["attacker"]) < min(rep["honest"]))
    for g, ms in groups.items():
        for col in ("balance", "stake", "unclaimed"):
            vals = [x for m in ms if (x := _num(m.get(col))) is not None]
            if vals:
                out[f"tokens/{g}_{col}_mean"] = sum(vals) / len(vals)
    return out


class LiveTracker:
    """Per-round scalars to TensorBoard event files in ``<out_dir>/tensorboard``."""

    def __init__(self, out_dir: str | Path) -> None:
        self.dir = Path(out_dir) / TRACKING_DIR
        self._writer: Any = None
        self._disabled = False

    def _open(self) -> Any:
        if self._writer is None and not self._disabled:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:  # the package is a dependency; a trimmed install may lack it
                self._disabled = True
                log.warning("live tracking off: %s (pip install tensorboard); the CSVs are written as always", exc)
                return None
            self._writer = SummaryWriter(log_dir=str(self.dir), flush_secs=5)
        return self._writer

    def log_round(self, round_row: Mapping[str, Any], metrics: Iterable[Mapping[str, Any]]) -> None:
        """Write one round's scalars (step = ``round_row["round"]``) and flush them to disk."""
        writer = self._open()
        if writer is None:
            return
        step = int(round_row["round"])
        for tag, value in round_scalars(round_row, metrics).items():
            writer.add_scalar(tag, value, global_step=step)
        writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
