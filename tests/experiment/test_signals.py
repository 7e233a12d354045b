"""A run's shutdown (stopping processes, writing the summary and report) is not cut short by a
second Ctrl-C or SIGTERM: an outside probe lost summary.json and report.html that way."""

from __future__ import annotations

import json
import os
import signal
import types
from pathlib import Path
from typing import Any

import pytest

from bdfl.config import load_config
from bdfl.errors import BDFLError
from bdfl.experiment import runner
from bdfl.experiment.orchestrator import Orchestrator
from bdfl.experiment.progress import Progress
from bdfl.experiment.signals import held_interrupts, sigterm_as_interrupt


def test_interrupts_inside_the_block_are_held_and_said_once(capsys: pytest.CaptureFixture[str]) -> None:
    before = signal.getsignal(signal.SIGINT)
    with held_interrupts("writing") as held:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)
    assert held == [signal.SIGINT, signal.SIGTERM, signal.SIGINT]
    assert capsys.readouterr().err.count("writing; it finishes in a few seconds") == 1
    assert signal.getsignal(signal.SIGINT) is before  # restored
    with pytest.raises(KeyboardInterrupt):
        with sigterm_as_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)


class _Orchestrator:
    """run() is interrupted; shutdown() gets a second Ctrl-C half-way and must still finish."""

    finished: list[str] = []

    def __init__(self, cfg: Any, out_dir: Path, *, quiet: bool = False) -> None:
        self.out_dir = out_dir

    def note(self, text: str) -> None:
        pass

    def run(self) -> None:
        raise KeyboardInterrupt

    def shutdown(self, status: str, error: BaseException | None = None) -> None:
        os.kill(os.getpid(), signal.SIGINT)  # the user presses Ctrl-C again while the results are written
        _Orchestrator.finished.append(status)  # ... and the summary is still written


def test_a_second_ctrl_c_does_not_cut_the_shutdown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "Orchestrator", _Orchestrator)
    with pytest.raises(KeyboardInterrupt):
        runner.run_experiment(load_config(None, {"peers": 4, "rounds": 1}), quiet=True, out=tmp_path / "run")
    assert _Orchestrator.finished == ["interrupted"]


def test_sigterm_exits_143_and_ctrl_c_130(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Schedulers tell a SIGTERM from a Ctrl-C by the exit status (128 + the signal); both were 130."""
    from bdfl import cli

    def terminated(_args: object) -> int:
        with sigterm_as_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
        return 0

    monkeypatch.setattr(cli, "cmd_report", terminated)
    assert cli.main(["report", "x"]) == 143 and capsys.readouterr().err.strip() == "terminated"

    def interrupted(_args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_report", interrupted)
    assert cli.main(["report", "x"]) == 130 and capsys.readouterr().err.strip() == "interrupted"


def test_a_failed_round_without_a_fix_says_where_the_finished_rounds_are(tmp_path: Path) -> None:
    """A worker's death said nothing of the rounds kept; a devnet's death did (an outside probe)."""
    run = types.SimpleNamespace(devnet=None, rounds_done=2, out_dir=tmp_path)
    died = BDFLError("Aggregate failed in worker 0:\nworker 0 died (exit code -15)")
    Orchestrator._explain_failure(run, "round 3", died)  # type: ignore[arg-type]
    assert died.fix == f"rounds 1..2 are saved in {tmp_path} (run.log has the details)"
    own = BDFLError("bad", fix="its own fix")
    Orchestrator._explain_failure(run, "round 3", own)  # type: ignore[arg-type]
    assert own.fix == "its own fix"


def test_a_devnet_that_dies_during_the_set_up_is_named_and_the_summary_keeps_the_configured_counts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An outside probe: the devnet died while the workers joined; the run ended on a worker's
    ConnectionRefusedError traceback, and summary.json said 0 attackers (no round recorded)."""

    def dying(self: Orchestrator) -> None:  # the devnet dies as the workers join
        assert self.devnet is not None and self.devnet.process is not None
        self.devnet.process.kill()
        self.devnet.process.wait()
        raise BDFLError("Join failed in worker 0:\nrequests.exceptions.ConnectionError: Connection refused")

    monkeypatch.setattr(Orchestrator, "_start_peers", dying)
    cfg = load_config(None, {"peers": 5, "rounds": 1, "workers": 1, "attack.fraction": 0.4})
    with pytest.raises(BDFLError) as err:
        runner.run_experiment(cfg, quiet=True, out=tmp_path / "run")
    assert str(err.value.message).startswith("the anvil devnet exited (exit code -9) during the set-up"), err.value
    assert "devnet.log" in (err.value.fix or "") and str(tmp_path / "run") in (err.value.fix or "")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "failed" and (summary["peers"], summary["attackers"]) == (5, cfg.num_attackers) == (5, 2)


def test_an_interrupt_just_after_a_rounds_row_still_counts_the_round(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An outside probe's Ctrl-C landed after round 1's rows were written but before the round
    was counted: summary.json said rounds_completed 0 and last_round 1. The round counts once its
    rounds.csv row (written last) is on disk."""

    def interrupted(self: Progress, rnd: int, row: dict[str, Any], **_: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Progress, "round_done", interrupted)
    cfg = load_config(None, {"peers": 4, "rounds": 3, "workers": 1, "attack.name": "none", "attack.fraction": 0.0})
    with pytest.raises(KeyboardInterrupt):
        runner.run_experiment(cfg, quiet=True, out=tmp_path / "run")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    assert summary["rounds_completed"] == summary["rounds"] == 1
