"""Progress display: one live status line on a terminal, plain log lines otherwise.

Every message also goes to ``run.log`` in the results folder, so a run that was
watched on a terminal leaves the same record as one that was not. The ETA leaves out
round 1 (it carries the warm-up: imports, first model build, first JIT-ish costs), so it
appears from round 2 on. :func:`summary_lines` is the end-of-run summary ``bdfl run``
prints, read from the results folder's ``summary.json`` (docs/results-format.md).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Mapping, TextIO


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
        self._closed = False

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
        """Seconds left: the rounds to go times the mean of rounds 2.. (round 1 carries the
        warm-up and would inflate it several-fold); None until round 2 is done."""
        steady = self._round_times[1:]
        if not steady:
            return None
        return (self.total - len(self._round_times)) * (sum(steady) / len(steady))

    def phase(self, rnd: int, name: str) -> None:
        self._status = f"round {rnd}/{self.total} {name}"
        if self.live:
            self._redraw()

    def _redraw(self) -> None:
        if self._closed:
            return
        eta = self.eta()
        acc = self._last.get("honest_accuracy")
        parts = [self._status]
        if acc is not None:
            parts.append(f"honest acc {acc:.3f}")
            parts.append(_verdicts(self._last))
        if eta is not None:
            parts.append(f"ETA {eta:5.0f}s")
        self.stream.write("\r\033[K" + " | ".join(parts))
        self.stream.flush()

    def round_done(self, rnd: int, row: dict[str, Any], undecided: int = 0) -> None:
        """Log round ``rnd``'s line from its rounds.csv ``row``; ``undecided``: its audited
        updates without a verdict (not in the row), shown when there are any."""
        now = time.monotonic()
        self._round_times.append(now - self._last_round_end)
        self._last_round_end = now
        self._last = row
        eta = self.eta()
        acc = row.get("honest_accuracy")  # None when no honest peer could be evaluated
        text = (
            f"round {rnd}/{self.total}: honest acc {'n/a' if acc is None else format(acc, '.3f')}"
            f" {_verdicts(row, honest=True)}" + (f" undecided {undecided}" if undecided else "") +
            f" txs {row['tx_count']} gas {row['gas_used']:,} time {row['seconds_total']:.2f}s"
            + (f" ETA {eta:.0f}s" if eta is not None and rnd < self.total else "")
        )
        self.log(text)

    def close(self, status: str) -> None:
        """The last line: the status line is cleared and not drawn again, so whatever is
        printed next starts on a clean line."""
        self._closed = True
        self._status = ""
        self.log(f"run {status} after {time.monotonic() - self.start:.1f}s")


def _verdicts(row: Mapping[str, Any], honest: bool = False) -> str:
    """A round's committee verdicts for the progress line; "no audit" under a baseline (its counts are None)."""
    if row.get("approved") is None:
        return "no audit"
    return f"approved {row['approved']} rejected {row['rejected']}" + (f" (honest rejected {row['honest_rejected']})" if honest else "")


def _first(summary: Mapping[str, Any], *keys: str) -> Any:
    """The first of ``keys`` present with a value (summary keys renamed over time)."""
    for key in keys:
        if summary.get(key) is not None:
            return summary[key]
    return None


def counted(n: Any, noun: str) -> str:
    """``n`` and ``noun``, plural unless ``n`` is 1 ("1 attacker", "6 attackers"); a count that is
    not a number (``"-"``) keeps the plural."""
    return f"{n} {noun}" if n == 1 and not isinstance(n, bool) else f"{n} {noun}s"


def _count(part: Any, whole: Any) -> str:
    if isinstance(part, (int, float)) and isinstance(whole, (int, float)) and whole:
        return f"{int(part)} of {int(whole)} ({100 * part / whole:.1f} %)"
    return "-"


def _neither(count: Any) -> str:
    """The updates a rate leaves out: neither approved nor rejected (undecided, or on probation)."""
    if isinstance(count, int) and count > 0:
        return f"; {count} without a verdict"  # undecided or on probation: not aggregated (docs/results-format.md)
    return ""


def _success_text(summary: Mapping[str, Any]) -> str:
    """The attack success rate of the last round, and its peak when an earlier round's was higher."""
    final, peak, at = summary.get("attack_success_rate_final"), summary.get("attack_success_rate_peak"), summary.get("attack_success_peak_round")
    if not isinstance(final, (int, float)):
        return ""
    text = f"{100 * final:.1f} % in the last round"
    if isinstance(peak, (int, float)) and peak > final and at is not None:
        text += f" (peak {100 * peak:.1f} % in round {at})"
    return text


def baseline_of(summary: Mapping[str, Any]) -> str | None:
    """The run's defense when it is a baseline, which aggregates without audit (nobody votes:
    separation, approvals and rejections mean nothing, reputations fall only for missed reveals);
    None for an audited strategy (``bdfl``, or a plugin's with ``audited``: summary key ``audited``;
    a summary without that key: ``bdfl`` alone) or a summary that does not say."""
    defense = summary.get("defense")
    audited = summary.get("audited")
    if not isinstance(defense, str) or (audited if isinstance(audited, bool) else defense == "bdfl"):
        return None
    return defense


def summary_lines(summary: Mapping[str, Any], *, wall_seconds: float | None = None) -> list[str]:
    """The end-of-run summary: final honest accuracy, separation round, honest updates
    falsely rejected, attackers approved (each with the updates neither approved nor rejected,
    which the rates leave out), backdoor success (last round and peak), transactions and gas
    per round, time.

    Read defensively (a missing key prints "-"; older key names are understood)."""
    acc, std = summary.get("final_honest_accuracy"), summary.get("final_honest_accuracy_std")
    acc_text = "-" if acc is None else f"{acc:.3f}" + (f" ± {std:.3f}" if std is not None else "")
    last3 = summary.get("honest_accuracy_last3")
    done = summary.get("rounds_completed")
    window = min(3, done) if isinstance(done, int) and done > 0 else 3  # a shorter run averages fewer
    if last3 is not None and window > 1:
        acc_text += f" (mean of the last {window} rounds {last3:.3f})"
    attackers = summary.get("attackers") or 0
    # an outside probe read "not by the last round" under median as the median failing
    baseline = baseline_of(summary)
    no_audit = f"n/a: defense {baseline} audits nothing" if baseline else ""
    if attackers:
        sep = _first(summary, "separated_from_round", "detection_round")
        sep_text = no_audit or (f"from round {sep}" if sep is not None else "not by the last round")
    else:
        sep_text = "no attackers"
    h_audited = summary.get("honest_audited")
    h_rejected = summary.get("honest_rejected_total")
    if h_rejected is None and isinstance(summary.get("honest_false_rejection_rate"), (int, float)) and h_audited:
        h_rejected = round(summary["honest_false_rejection_rate"] * h_audited)
    a_audited = summary.get("attacker_audited")
    a_approved = summary.get("attackers_approved_total")
    if a_approved is None and isinstance(summary.get("attacker_approval_rate"), (int, float)) and a_audited:
        a_approved = round(summary["attacker_approval_rate"] * a_audited)
    rounds = summary.get("rounds") or 0
    txs = summary.get("tx_count_total")
    gas = _first(summary, "gas_per_round_mean")
    chain = "-"
    if rounds and txs is not None and gas is not None:
        chain = f"{txs / rounds:.0f} transactions, {gas / 1e6:.2f} M gas"
    per_round = summary.get("seconds_per_round_mean")
    wall = wall_seconds if wall_seconds is not None else summary.get("seconds_wall")
    time_text = f"{wall:.1f} s in all" if isinstance(wall, (int, float)) else ""
    if per_round is not None:
        time_text += (", " if time_text else "") + f"{per_round:.2f} s per round"
    width = 35
    rows = [
        ("status", f"{summary.get('status', '-')} ({counted(rounds, 'round')}, {counted(summary.get('peers', '-'), 'peer')}, "
                   f"{counted(attackers, 'attacker')})"),
        ("final honest accuracy", acc_text),
        ("attackers below every honest peer", sep_text),
        ("honest updates falsely rejected", no_audit or _count(h_rejected, h_audited) + _neither(summary.get("honest_undecided_total"))),
        ("attackers' updates approved", "no attackers" if not attackers else no_audit
         or _count(a_approved, a_audited) + _neither(summary.get("attacker_undecided_total"))),
    ]
    success = _success_text(summary)
    if success:
        rows.append(("backdoor success", success))
    rows += [
        ("per round", chain),
        ("time", time_text or "-"),
    ]
    reasons = summary.get("degraded_reasons")
    if summary.get("status") == "degraded" and isinstance(reasons, list) and reasons:
        rows.append(("degraded because", "; ".join(str(r) for r in reasons)))
    return [f"{name + ':':{width}s} {value}" for name, value in rows]
