"""Progress display: a live line on a terminal, plain lines otherwise, always a run.log."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from bdfl.experiment import progress as progress_mod
from bdfl.experiment.progress import Progress, summary_lines

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
    assert "ETA" not in out.getvalue()  # round 1 (warm-up) alone gives no ETA
    p.round_done(2, ROW)
    p.phase(3, "train+submit")
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


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_eta_leaves_out_the_warm_up_round(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clock = Clock()
    monkeypatch.setattr(progress_mod.time, "monotonic", clock)
    p = Progress(total_rounds=10, stream=io.StringIO(), log_path=tmp_path / "run.log")
    clock.now += 9.0  # round 1: 9 s, mostly warm-up
    p.round_done(1, ROW)
    assert p.eta() is None
    for r in (2, 3):
        clock.now += 1.0
        p.round_done(r, ROW)
    assert p.eta() == pytest.approx(7 * 1.0)  # 7 rounds left at 1 s, not at (9+1+1)/3 s


def test_last_line_is_clean_after_close(tmp_path: Path) -> None:
    out = Tty()
    p = Progress(total_rounds=3, stream=out, log_path=tmp_path / "run.log")
    for r in (1, 2):
        p.phase(r, "reveal")
        p.round_done(r, ROW)
    p.phase(3, "reveal")
    p.close("completed")
    p.log("after close")  # e.g. a note from the shutdown
    text = out.getvalue()
    assert text.endswith("\n")  # nothing (no status line) waits on an unterminated line
    last = text.rstrip("\n").split("\n")[-1]
    assert last.endswith("after close") and "ETA" not in last


SUMMARY = {
    "status": "completed", "rounds": 15, "peers": 20, "attackers": 6,
    "final_honest_accuracy": 0.9271, "final_honest_accuracy_std": 0.0123, "honest_accuracy_last3": 0.925,
    "separated_from_round": 3, "honest_audited": 210, "honest_rejected_total": 1,
    "attacker_audited": 61, "attackers_approved_total": 1,
    "tx_count_total": 570, "gas_per_round_mean": 7_190_000.0, "seconds_per_round_mean": 0.84, "seconds_wall": 22.6,
}


def test_end_of_run_summary_names_every_figure() -> None:
    text = "\n".join(summary_lines(SUMMARY))
    assert "0.927 ± 0.012" in text and "last 3 rounds 0.925" in text
    assert "from round 3" in text
    assert "1 of 210 (0.5 %)" in text and "1 of 61 (1.6 %)" in text
    assert "38 transactions, 7.19 M gas" in text
    assert "22.6 s in all, 0.84 s per round" in text


def test_end_of_run_summary_reads_older_keys_and_missing_ones() -> None:
    old = {k: v for k, v in SUMMARY.items() if k not in ("separated_from_round", "honest_rejected_total", "attackers_approved_total")}
    old.update(detection_round=4, honest_false_rejection_rate=2 / 210, attacker_approval_rate=0.0)
    text = "\n".join(summary_lines(old, wall_seconds=30.0))
    assert "from round 4" in text and "2 of 210" in text and "0 of 61" in text and "30.0 s in all" in text
    lines = summary_lines({})
    assert len(lines) == 7 and any("-" in line for line in lines)
    never = "\n".join(summary_lines({**SUMMARY, "separated_from_round": None}))
    assert "not by the last round" in never


def test_end_of_run_summary_says_why_a_run_is_degraded() -> None:
    text = "\n".join(summary_lines({**SUMMARY, "status": "degraded", "degraded_reasons": ["round 4: no peer aggregated"]}))
    assert "degraded (15 rounds" in text and "degraded because:" in text and "round 4: no peer aggregated" in text
    assert "degraded because" not in "\n".join(summary_lines(SUMMARY))


def test_end_of_run_summary_names_how_many_rounds_the_mean_covers() -> None:
    """honest_accuracy_last3 averages fewer rounds in a shorter run; the line says how many."""
    line = lambda s: summary_lines(s)[1]  # noqa: E731
    assert "mean of the last 2 rounds" in line({**SUMMARY, "rounds_completed": 2, "honest_accuracy_last3": 0.7})
    assert "mean of the last 3 rounds" in line({**SUMMARY, "rounds_completed": 15, "honest_accuracy_last3": 0.7})
    assert "mean of the last" not in line({**SUMMARY, "rounds_completed": 1, "honest_accuracy_last3": 0.7})


def test_end_of_run_summary_counts_what_the_rates_leave_out_and_the_backdoor() -> None:
    """Updates with neither verdict (undecided, on probation) are named beside the rates; the
    backdoor's success is printed, with its peak when an earlier round's was higher (a probe read
    '21 of 21 (100 %)' with 51 attacker updates on probation, and missed a backdoor at 54 % in round 4)."""
    text = "\n".join(summary_lines({**SUMMARY, "honest_undecided_total": 9, "attacker_undecided_total": 51,
                                    "attack_success_rate_final": 0.07, "attack_success_rate_peak": 0.54,
                                    "attack_success_peak_round": 4}))
    assert "1 of 210 (0.5 %); 9 without a verdict" in text
    assert "1 of 61 (1.6 %); 51 without a verdict" in text
    assert "backdoor success:" in text and "7.0 % in the last round (peak 54.0 % in round 4)" in text
    plain = "\n".join(summary_lines({**SUMMARY, "honest_undecided_total": 0, "attack_success_rate_final": 0.9,
                                     "attack_success_rate_peak": 0.9, "attack_success_peak_round": 12}))
    assert "verdict" not in plain and "90.0 % in the last round" in plain and "peak" not in plain
    assert "backdoor success" not in "\n".join(summary_lines(SUMMARY))


def test_run_log_ends_with_the_summary_the_terminal_showed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """run.log is "what the terminal showed": it lacked the end-of-run summary."""
    from bdfl.cli import print_run_summary

    log = tmp_path / "run.log"
    log.write_text("round 15/15 done\n")
    print_run_summary(SUMMARY, wall_seconds=23.0, log=log)
    shown = capsys.readouterr().out
    assert "1 of 210 (0.5 %)" in shown and "23.0 s in all" in shown
    assert log.read_text() == "round 15/15 done\n" + shown
    print_run_summary(None, log=log)  # a run without a summary: nothing printed, the log untouched
    assert capsys.readouterr().out == "" and log.read_text().endswith(shown)


def test_a_baseline_round_says_no_audit(tmp_path: Path) -> None:
    """A baseline's round has no verdicts (its counts are None): the line says so instead of "approved None"."""
    out = Tty()
    p = Progress(total_rounds=2, stream=out, log_path=tmp_path / "run.log")
    p.round_done(1, {**ROW, **dict.fromkeys(("approved", "rejected", "honest_rejected", "attackers_approved"))})
    p.phase(2, "train+submit")
    text = out.getvalue()
    assert "round 1/2: honest acc 0.812 no audit txs 30" in text and "None" not in text
    p.round_done(2, ROW)
    assert "approved 5 rejected 2 (honest rejected 0)" in out.getvalue()


def test_a_rounds_line_counts_its_updates_without_a_verdict(tmp_path: Path) -> None:
    """An outside probe's round read "approved 0 rejected 0" with all 6 updates undecided."""
    p = Progress(total_rounds=2, stream=io.StringIO(), quiet=True, log_path=tmp_path / "run.log")
    p.round_done(1, {**ROW, "approved": 0, "rejected": 0}, undecided=6)
    p.round_done(2, ROW)
    lines = (tmp_path / "run.log").read_text().splitlines()
    assert "approved 0 rejected 0 (honest rejected 0) undecided 6 txs" in lines[0]
    assert "undecided" not in lines[1]


def test_counts_of_one_are_singular() -> None:
    """An outside probe read "(1 rounds, 4 peers, 1 attackers)"."""
    line = next(x for x in summary_lines({**SUMMARY, "rounds": 1, "peers": 4, "attackers": 1}) if x.startswith("status"))
    assert "(1 round, 4 peers, 1 attacker)" in line
    assert "(15 rounds, 20 peers, 6 attackers)" in "\n".join(summary_lines(SUMMARY))
    assert "(1 round, 1 peer, 0 attackers)" in "\n".join(summary_lines({**SUMMARY, "rounds": 1, "peers": 1, "attackers": 0}))
    assert progress_mod.counted("-", "peer") == "- peers" and progress_mod.counted(0, "attacker") == "0 attackers"
