"""Progress display: one live status line on a terminal, plain log lines otherwise.

Every message also goes to ``run.log`` in the results folder, so a run that was
watched on a terminal leaves the same record as one that was not.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, TextIO


class Progress:
    def __init__(self, *, total_rounds: int, quiet: bool = False, log_path: Path | None = None, stream: TextIO | None = None) -> None:
        self.total = total_rounds
        self.stream = stream or sys.stderr
        self.live = not quiet and self.stream.isatty()
        self.start = time.monotonic()
        self.log_path = log_path
        self._round_times: list[float] = []
        self._last_round_end = self.start
        self._status = ""
        self._last: dict[str, Any] = {}

    def _write_log(self, line: str) -> None:
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log_path, "a") as fh:
                fh.write(line + "\n")

    def log(self, text: str) -> None:
        line = f"[{time.monotonic() - self.start:7.1f}s] {text}"
        self._write_log(line)
        if self.live:
            self.stream.write("\r\033[K" + line + "\n")
            self._redraw()
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def eta(self) -> float | None:
        if not self._round_times:
            return None
        done = len(self._round_times)
        return (self.total - done) * (sum(self._round_times) / done)

    def phase(self, rnd: int, name: str) -> None:
        self._status = f"round {rnd}/{self.total} {name}"
        if self.live:
            self._redraw()

    def _redraw(self) -> None:
        eta = self.eta()
        acc = self._last.get("honest_accuracy")
        parts = [self._status]
        if acc is not None:
            parts.append(f"honest acc {acc:.3f}")
            parts.append(f"approved {self._last.get('approved', 0)} rejected {self._last.get('rejected', 0)}")
        if eta is not None:
            parts.append(f"ETA {eta:5.0f}s")
        self.stream.write("\r\033[K" + " | ".join(parts))
        self.stream.flush()

    def round_done(self, rnd: int, row: dict[str, Any]) -> None:
        now = time.monotonic()
        self._round_times.append(now - self._last_round_end)
        self._last_round_end = now
        self._last = row
        eta = self.eta()
        text = (
            f"round {rnd}/{self.total}: honest acc {row['honest_accuracy']:.3f}"
            f" approved {row['approved']} rejected {row['rejected']} (honest rejected {row['honest_rejected']})"
            f" txs {row['tx_count']} gas {row['gas_used']:,} time {row['seconds_total']:.2f}s"
            + (f" ETA {eta:.0f}s" if eta is not None else "")
        )
        self.log(text)

    def close(self, status: str) -> None:
        if self.live:
            self.stream.write("\r\033[K")
        self.log(f"run {status} after {time.monotonic() - self.start:.1f}s")
