"""Progress display: a live line on a terminal, plain lines otherwise, always a run.log."""

from __future__ import annotations

import io
from pathlib import Path

from bdfl.experiment.progress import Progress

ROW = {"honest_accuracy": 0.8123, "approved": 5, "rejected": 2, "honest_rejected": 0, "tx_count": 30, "gas_used": 123456, "seconds_total": 1.5}


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_gets_a_live_status_line_with_eta(tmp_path: Path) -> None:
    out = Tty()
    p = Progress(total_rounds=4, stream=out, log_path=tmp_path / "run.log")
    p.phase(1, "audit+commit")
    assert "\r" in out.getvalue() and "round 1/4 audit+commit" in out.getvalue()
    p.round_done(1, ROW)
    p.phase(2, "train+submit")
    text = out.getvalue()
    assert "honest acc 0.812" in text and "ETA" in text
    p.close("completed")
    log = (tmp_path / "run.log").read_text()
    assert "round 1/4: honest acc 0.812" in log and "run completed" in log
    assert "\r" not in log


def test_quiet_or_pipe_gets_plain_lines(tmp_path: Path) -> None:
    for stream, quiet in ((io.StringIO(), False), (Tty(), True)):
        p = Progress(total_rounds=2, stream=stream, quiet=quiet, log_path=tmp_path / "run.log")
        p.phase(1, "reveal")
        p.round_done(1, ROW)
        text = stream.getvalue()
        assert "\r" not in text and "\033[K" not in text
        assert text.count("\n") == 1 and "round 1/2: honest acc 0.812" in text
