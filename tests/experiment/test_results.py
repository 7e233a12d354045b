"""Results folder: crash-safe writers, tolerant readers, summary figures checked by hand.

``make_run`` (also used by the report / compare tests) writes a synthetic but
realistic run through :class:`ResultsWriter`: 5 rounds x 6 peers, peers 4 and 5
attack and their reputation falls; the numbers are chosen so every summary figure
can be worked out by hand (see ``test_compute_summary_by_hand``).
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bdfl.errors import BDFLError
from bdfl.experiment.results import (
    METRICS_COLUMNS,
    ROUNDS_COLUMNS,
    ResultsWriter,
    compute_summary,
    format_value,
    honest_attack_success,
    load_run,
    read_events,
    read_metrics,
    read_rounds,
    read_summary,
    round_aggregates,
    write_summary,
)

ROUNDS, PEERS, ATTACKERS = 5, 6, (4, 5)
ATTACKER_REP = {4: [1.0, 0.75, 0.5, 0.25, 0.0], 5: [1.0, 0.95, 0.92, 0.6, 0.1]}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def synthetic_rows(rnd: int, acc_shift: float = 0.0) -> list[dict[str, Any]]:
    rows = []
    for p in range(PEERS):
        att = p in ATTACKERS
        submitted = not (p == 2 and rnd == 0)  # peer 2 missed round 0
        if not submitted:
            approved: Any = ""
        elif att:
            approved = 1 if rnd < 2 else 0  # attackers slip through rounds 0-1
        else:
            approved = 0 if (p == 0 and rnd == 1) else 1  # one false rejection
        if att:
            rep = ATTACKER_REP[p][min(rnd, ROUNDS - 1)]
        else:
            rep = 0.9 if (p == 3 and rnd >= 1) else 1.0
        rows.append({
            "round": rnd, "peer": p, "address": f"0x{p:040x}", "attacker": int(att),
            "committee": int((p + rnd) % 3 == 0), "submitted": int(submitted), "approved": approved,
            "accuracy": 0.3 if att else 0.5 + 0.1 * rnd + 0.01 * p + acc_shift,
            "loss": 2.0 - 0.3 * rnd,
            "reputation": rep,
            "balance": 100.0,
            "stake": 100.0 if att else 100.0 + rnd,
            "unclaimed": 10.0 * min(rnd + 1, 2) if att else 10.0 * (rnd + 1),
        })
    return rows


def make_run(out: Path, *, name: str = "synthetic", attack: str = "label_flip", fraction: float = 0.34,
             defense: str = "bdfl", seed: int = 0, acc_shift: float = 0.0, clean_reference: str = "",
             summary: bool = True, events: bool = True) -> Path:
    w = ResultsWriter(out)
    w.write_config(textwrap.dedent(f"""\
        name = "{name}"
        seed = {seed}
        peers = {PEERS}
        rounds = {ROUNDS}
        clean_reference = "{clean_reference}"

        [attack]
        name = "{attack}"
        fraction = {fraction}

        [defense]
        name = "{defense}"
        """))
    for r in range(ROUNDS):
        rows = synthetic_rows(r, acc_shift)
        w.append_metrics(rows)
        w.append_round({
            "round": r, **round_aggregates(rows), "attack_success_rate": None,
            "tx_count": 10 + r, "gas_used": 100_000 * (r + 1),
            "seconds_train": 1.0, "seconds_exchange": 0.5, "seconds_audit": 0.25, "seconds_chain": 0.25,
            "seconds_total": 2.5,
        })
        if events:
            w.append_events([
                {"block": 10 * r + 1, "tx": f"0x{r:064x}", "event": "UpdateSubmitted", "args": {"round": r, "hash": b"\x01\x02"}},
                {"block": 10 * r + 2, "tx": f"0x{r + 100:064x}", "event": "RoundFinalized", "args": {"round": np.int64(r)}},
            ])
    if summary:
        w.write_summary(compute_summary(read_metrics(out), read_rounds(out), None))
    return out


# -- writer and readers -----------------------------------------------------------

def test_files_exist_and_parse(tmp_path: Path) -> None:
    d = make_run(tmp_path / "run")
    for f in ("config.toml", "metrics.csv", "rounds.csv", "events.jsonl", "summary.json"):
        assert (d / f).is_file() and (d / f).stat().st_size > 0, f
    assert (d / "metrics.csv").read_text().splitlines()[0] == ",".join(METRICS_COLUMNS)
    assert (d / "rounds.csv").read_text().splitlines()[0] == ",".join(ROUNDS_COLUMNS)

    m = read_metrics(d)
    assert len(m) == ROUNDS * PEERS
    assert [(r["round"], r["peer"]) for r in m[:3]] == [(0, 0), (0, 1), (0, 2)]
    first = m[0]
    assert isinstance(first["round"], int) and isinstance(first["accuracy"], float)
    assert first["address"] == "0x" + "0" * 40
    missed = next(r for r in m if r["round"] == 0 and r["peer"] == 2)
    assert missed["submitted"] == 0 and missed["approved"] is None
    assert m[-1]["reputation"] == pytest.approx(0.1) and m[-1]["attacker"] == 1

    rounds = read_rounds(d)
    assert [r["round"] for r in rounds] == list(range(ROUNDS))
    assert rounds[2]["gas_used"] == 300_000 and isinstance(rounds[2]["gas_used"], int)
    assert rounds[0]["attack_success_rate"] is None

    ev = read_events(d)
    assert len(ev) == 2 * ROUNDS
    assert ev[0]["args"]["hash"] == "0x0102"  # bytes -> 0x-hex
    assert ev[1]["args"]["round"] == 0  # NumPy scalar -> plain number

    run = load_run(d)
    assert run.name == "synthetic" and run.attack == "label_flip" and run.defense == "bdfl"
    assert run.fraction == pytest.approx(0.34) and run.seed == 0


def test_numbers_round_trip_exactly(tmp_path: Path) -> None:
    w = ResultsWriter(tmp_path / "r")
    x = 0.1 + 0.2
    w.append_metrics([{"round": np.int64(0), "peer": 1, "accuracy": np.float64(x), "loss": float("nan"),
                       "attacker": True, "approved": None, "unclaimed": np.float32(1.5)}])
    text = (tmp_path / "r" / "metrics.csv").read_text().splitlines()[1]
    assert "np." not in text and "True" not in text
    row = read_metrics(tmp_path / "r")[0]
    assert row["accuracy"] == x  # shortest round-trip repr, no precision lost
    assert row["loss"] is None and row["approved"] is None and row["address"] is None  # NaN / missing -> empty
    assert row["attacker"] == 1 and row["unclaimed"] == 1.5


def test_unknown_column_is_an_error_missing_is_empty(tmp_path: Path) -> None:
    w = ResultsWriter(tmp_path / "r")
    with pytest.raises(ValueError, match="unknown column.*bogus"):
        w.append_metrics([{"round": 0, "peer": 0, "bogus": 1}])
    with pytest.raises(ValueError, match="unknown column"):
        w.append_round({"round": 0, "accuracy": 0.5})  # a metrics column, not a rounds one
    w.append_round({"round": 3})
    assert read_rounds(tmp_path / "r") == [{**{c: None for c in ROUNDS_COLUMNS}, "round": 3}]
    assert read_metrics(tmp_path / "r") == []  # nothing half-written by the failed call


def test_truncated_last_line_is_tolerated(tmp_path: Path) -> None:
    d = make_run(tmp_path / "run")
    with open(d / "metrics.csv", "a") as f:
        f.write("5,0,0x00,0,1,1,1,0.9")  # crash mid-row: no newline
    with open(d / "rounds.csv", "a") as f:
        f.write("5,0.91")
    with open(d / "events.jsonl", "a") as f:
        f.write('{"block": 99, "ev')
    assert len(read_metrics(d)) == ROUNDS * PEERS
    assert len(read_rounds(d)) == ROUNDS
    assert len(read_events(d)) == 2 * ROUNDS
    # the summary ignores nothing it should not, and is unchanged by the torn rows
    assert compute_summary(read_metrics(d), read_rounds(d)) == read_summary(d)

    # resuming cuts the torn tails before appending, so new rows parse
    w = ResultsWriter(d, resume=True)
    assert w.completed_round == ROUNDS - 1
    w.append_metrics(synthetic_rows(5))
    w.append_round({"round": 5, "tx_count": 1})
    w.append_events([{"block": 100, "event": "X", "args": {}}])
    assert len(read_metrics(d)) == 6 * PEERS
    assert read_rounds(d)[-1] == {**{c: None for c in ROUNDS_COLUMNS}, "round": 5, "tx_count": 1}
    assert read_events(d)[-1]["block"] == 100


def test_corrupt_middle_line_names_file_and_line(tmp_path: Path) -> None:
    d = make_run(tmp_path / "run")
    lines = (d / "rounds.csv").read_text().splitlines(keepends=True)
    lines[2] = "1,2,3\n"
    (d / "rounds.csv").write_text("".join(lines))
    with pytest.raises(BDFLError, match=r"rounds\.csv:3"):
        read_rounds(d)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BDFLError, match="no metrics.csv") as exc:
        read_metrics(tmp_path)
    assert exc.value.fix


def test_refuses_to_overwrite_a_previous_run(tmp_path: Path) -> None:
    d = make_run(tmp_path / "run")
    before = (d / "metrics.csv").read_bytes()
    with pytest.raises(BDFLError) as exc:
        ResultsWriter(d)
    assert str(d) in exc.value.message and "already holds a run" in exc.value.message
    assert exc.value.fix and "--out" in exc.value.fix
    assert (d / "metrics.csv").read_bytes() == before  # untouched

    # a folder with only unrelated files is fine; a non-folder is not
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("hi")
    ResultsWriter(other)
    assert (other / "metrics.csv").is_file() and (other / "notes.txt").read_text() == "hi"
    (tmp_path / "file").write_text("x")
    with pytest.raises(BDFLError, match="not a folder"):
        ResultsWriter(tmp_path / "file")


def test_resume_rewrites_a_round_and_readers_keep_the_last(tmp_path: Path) -> None:
    d = make_run(tmp_path / "run")
    w = ResultsWriter(d, resume=True)
    rows = synthetic_rows(4, acc_shift=-0.1)  # round 4 re-run after a crash
    w.append_metrics(rows)
    w.append_round({"round": 4, **round_aggregates(rows)})
    m = read_metrics(d)
    assert len(m) == ROUNDS * PEERS
    assert next(r for r in m if (r["round"], r["peer"]) == (4, 0))["accuracy"] == pytest.approx(0.8)
    assert read_rounds(d)[-1]["honest_accuracy"] == pytest.approx(0.815)


def test_resume_refuses_foreign_columns(tmp_path: Path) -> None:
    d = tmp_path / "run"
    d.mkdir()
    (d / "metrics.csv").write_text("a,b\n1,2\n")
    with pytest.raises(BDFLError, match="columns"):
        ResultsWriter(d, resume=True)


def test_killed_writer_leaves_readable_files(tmp_path: Path) -> None:
    """SIGKILL a process appending rows as fast as it can: what is left always parses."""
    d = tmp_path / "run"
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from bdfl.experiment.results import ResultsWriter
        w = ResultsWriter({str(d)!r})
        print("ready", flush=True)
        r = 0
        while True:
            w.append_metrics([{{"round": r, "peer": p, "address": "0x" + "ab" * 20, "accuracy": 0.123456789 * p,
                               "reputation": 1.0 / (p + 1), "unclaimed": 1e6 + p}} for p in range(50)])
            w.append_round({{"round": r, "honest_accuracy": 0.5, "gas_used": 10 ** 9}})
            w.append_events([{{"block": r, "event": "E", "args": {{"x": "y" * 200}}}}])
            r += 1
        """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        time.sleep(0.4)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    m, rounds, ev = read_metrics(d), read_rounds(d), read_events(d)
    assert rounds and m and ev
    assert all(row["gas_used"] == 10**9 for row in rounds)
    assert all(row["unclaimed"] >= 1e6 for row in m)
    # every completed round has all its rows (a round's metrics are one write)
    done = {r["round"] for r in rounds}
    for r in done:
        assert sum(1 for row in m if row["round"] == r) == 50
    s = compute_summary(m, rounds)
    assert s["rounds"] == len(done)


def test_write_summary_is_atomic_strict_json(tmp_path: Path) -> None:
    p = write_summary(tmp_path, {"a": float("nan"), "b": np.float64(0.5), "c": [1, float("inf")], "d": None})
    assert json.loads(p.read_text()) == {"a": None, "b": 0.5, "c": [1, None], "d": None}
    assert "NaN" not in p.read_text() and "Infinity" not in p.read_text()
    write_summary(tmp_path, {"a": 1})
    assert read_summary(tmp_path) == {"a": 1}
    assert sorted(x.name for x in tmp_path.iterdir()) == ["summary.json"]  # no temporary files left


# -- derived figures -------------------------------------------------------------

def test_round_aggregates_by_hand() -> None:
    agg = round_aggregates(synthetic_rows(4))
    assert agg["honest_accuracy"] == pytest.approx((0.90 + 0.91 + 0.92 + 0.93) / 4)  # 0.915
    assert agg["honest_accuracy_std"] == pytest.approx(math.sqrt((0.015**2 * 2 + 0.005**2 * 2) / 4))
    assert agg["attacker_accuracy"] == pytest.approx(0.3)
    assert (agg["approved"], agg["rejected"], agg["honest_rejected"], agg["attackers_approved"]) == (4, 2, 0, 0)
    agg1 = round_aggregates(synthetic_rows(1))
    assert (agg1["approved"], agg1["rejected"], agg1["honest_rejected"], agg1["attackers_approved"]) == (5, 1, 1, 2)
    agg0 = round_aggregates(synthetic_rows(0))  # peer 2 did not submit
    assert agg0["approved"] + agg0["rejected"] == 5
    # a baseline audits nothing: its counts are empty, not 0 of them
    base = round_aggregates([{**row, "approved": None} for row in synthetic_rows(4)], audited=False)
    assert [base[k] for k in ("approved", "rejected", "honest_rejected", "attackers_approved")] == [None] * 4
    assert base["honest_accuracy"] == pytest.approx(agg["honest_accuracy"])


def test_compute_summary_by_hand(tmp_path: Path) -> None:
    d = make_run(tmp_path / "run", summary=False)
    s = compute_summary(read_metrics(d), read_rounds(d), {"final_honest_accuracy": 0.95})
    assert (s["rounds"], s["last_round"], s["peers"], s["attackers"]) == (5, 4, 6, 2)
    # accuracy in round 4: honest 0.90, 0.91, 0.92, 0.93; attackers 0.3
    assert s["final_honest_accuracy"] == pytest.approx(0.915)
    assert s["final_honest_accuracy_std"] == pytest.approx(0.0111803399)
    assert s["final_attacker_accuracy"] == pytest.approx(0.3)
    assert s["clean_reference_accuracy"] == 0.95
    assert s["accuracy_drop"] == pytest.approx(0.035)
    assert s["attack_success_rate_final"] is None
    # reputation in round 4: honest 1, 1, 1, 0.9; attackers 0.0, 0.1
    assert s["attacker_mean_reputation_final"] == pytest.approx(0.05)
    assert s["attacker_max_reputation_final"] == pytest.approx(0.1)
    assert s["honest_min_reputation_final"] == pytest.approx(0.9)
    assert s["honest_mean_reputation_final"] == pytest.approx(0.975)
    # round 1: max attacker 0.95 > 0.9; round 2: 0.92 > 0.9; round 3: 0.6 < 0.9
    assert s["separated_from_round"] == 3 and s["first_separated_round"] == 3 and s["separated_final"] is True
    # attackers' mean: round 1 (0.85 < 0.9), round 2 (0.71), ... -> from round 1
    assert s["mean_separated_from_round"] == 1
    # honest: 4 x 5 submissions - 1 missed = 19 audited, 1 rejected
    assert (s["honest_audited"], s["honest_rejected_total"]) == (19, 1)
    assert s["honest_false_rejection_rate"] == pytest.approx(1 / 19)
    # attackers: 2 x 5 = 10 audited, approved in rounds 0 and 1
    assert (s["attacker_audited"], s["attackers_approved_total"]) == (10, 4)
    assert s["attacker_approval_rate"] == pytest.approx(0.4)
    # accuracy of the last 3 rounds (2, 3, 4): honest means 0.715, 0.815, 0.915
    assert s["honest_accuracy_last3"] == pytest.approx(0.815)
    # tokens, split: wallet balance, stake, unclaimed rewards (round 4)
    assert s["honest_unclaimed_mean_final"] == pytest.approx(50.0)
    assert s["attacker_unclaimed_mean_final"] == pytest.approx(20.0)
    assert s["honest_stake_mean_final"] == pytest.approx(104.0) and s["attacker_stake_mean_final"] == pytest.approx(100.0)
    assert s["honest_balance_mean_final"] == pytest.approx(100.0) and s["attacker_balance_mean_final"] == pytest.approx(100.0)
    assert s["tx_count_total"] == 10 + 11 + 12 + 13 + 14
    assert s["gas_used_total"] == 1_500_000 and s["gas_per_round_mean"] == pytest.approx(300_000)
    assert s["seconds_train_total"] == pytest.approx(5.0)
    assert s["seconds_chain_total"] == pytest.approx(1.25)
    assert s["seconds_total"] == pytest.approx(12.5) and s["seconds_per_round_mean"] == pytest.approx(2.5)
    json.dumps(s, allow_nan=False)  # strict-JSON serialisable as is

    # without a reference there is no drop; a bad reference is a clear error
    s2 = compute_summary(read_metrics(d), read_rounds(d), None)
    assert s2["accuracy_drop"] is None and s2["clean_reference_accuracy"] is None
    with pytest.raises(BDFLError, match="final_honest_accuracy"):
        compute_summary(read_metrics(d), read_rounds(d), {"accuracy": 0.9})


def test_summary_ignores_metrics_of_an_uncommitted_round(tmp_path: Path) -> None:
    d = make_run(tmp_path / "run", summary=False)
    w = ResultsWriter(d, resume=True)
    partial = synthetic_rows(5)[:3]  # crash after part of round 5's metrics, before its rounds.csv row
    for r in partial:
        r["accuracy"] = 0.0
    w.append_metrics(partial)
    s = compute_summary(read_metrics(d), read_rounds(d))
    assert s["last_round"] == 4 and s["final_honest_accuracy"] == pytest.approx(0.915)


def test_summary_without_attackers_or_rounds() -> None:
    clean = [r for r in synthetic_rows(0) if not r["attacker"]]
    s = compute_summary(clean, [])
    assert s["attackers"] == 0 and s["separated_from_round"] is None and s["separated_final"] is None
    assert s["attacker_approval_rate"] is None and s["final_attacker_accuracy"] is None
    assert s["tx_count_total"] == 0 and s["seconds_per_round_mean"] is None
    empty = compute_summary([], [])
    assert empty["rounds"] == 0 and empty["final_honest_accuracy"] is None


def test_format_value() -> None:
    assert format_value(0.915) == "0.9150"
    assert format_value(1_500_000) == "1,500,000"
    assert format_value(None) == "—" and format_value(True) == "yes"
    assert format_value(12345.6) == "12,346"


def _rep_rows(reps: list[tuple[float, float]]) -> list[dict[str, Any]]:
    """Per round (attacker's reputation, honest peer's reputation): one attacker, one honest peer."""
    return [{"round": r, "peer": p, "attacker": int(p == 1), "reputation": (a if p == 1 else h), "accuracy": 0.5}
            for r, (a, h) in enumerate(reps, start=1) for p in (0, 1)]


def test_separated_from_round_means_stays_below() -> None:
    """Separated in round 2, not in rounds 3-4, again from round 5: the run is separated from 5, not 2."""
    reps = [(1.0, 1.0), (0.5, 0.9), (0.95, 0.9), (0.9, 0.9), (0.3, 0.9), (0.2, 0.9)]
    s = compute_summary(_rep_rows(reps), [])
    assert s["separated_from_round"] == 5
    assert s["first_separated_round"] == 2 and s["separated_final"] is True
    # separation lost in the last round: not separated "from" any round
    s = compute_summary(_rep_rows(reps + [(0.95, 0.9)]), [])
    assert s["separated_from_round"] is None and s["first_separated_round"] == 2 and s["separated_final"] is False
    # a tie is not separation (strictly below)
    assert compute_summary(_rep_rows([(0.9, 0.9)]), [])["separated_from_round"] is None


def test_old_tokens_column_reads_as_unclaimed(tmp_path: Path) -> None:
    d = tmp_path / "old"
    d.mkdir()
    (d / "metrics.csv").write_text("round,peer,address,attacker,committee,submitted,approved,accuracy,loss,reputation,tokens,stake\n"
                                   "1,0,0xab,0,0,1,1,0.9,0.1,1.0,7.5,100\n")
    row = read_metrics(d)[0]
    assert row["unclaimed"] == 7.5 and row["stake"] == 100.0 and row["balance"] is None and "tokens" not in row


def test_summary_counts_updates_with_neither_verdict_and_the_peak_backdoor() -> None:
    """honest_undecided_total / attacker_undecided_total: submitted, audited, approved empty;
    null under a baseline (nothing decided). attack_success_rate_peak and its round: the earliest
    round of the highest rate."""
    rows = []
    for r in (1, 2):
        rows += [{"round": r, "peer": 0, "attacker": 0, "submitted": 1, "approved": 1 if r == 1 else None, "accuracy": 0.9},
                 {"round": r, "peer": 1, "attacker": 1, "submitted": 1, "approved": None, "accuracy": 0.8},
                 {"round": r, "peer": 2, "attacker": 1, "submitted": 0, "approved": None, "accuracy": 0.8}]
    rounds = [{"round": 1, "attack_success_rate": 0.6}, {"round": 2, "attack_success_rate": 0.2}]
    s = compute_summary(rows, rounds)
    assert (s["honest_undecided_total"], s["attacker_undecided_total"]) == (1, 2)
    assert (s["attack_success_rate_peak"], s["attack_success_peak_round"], s["attack_success_rate_final"]) == (0.6, 1, 0.2)
    tied = compute_summary(rows, [{"round": 1, "attack_success_rate": 0.2}, {"round": 2, "attack_success_rate": 0.5},
                                  {"round": 3, "attack_success_rate": 0.5}])
    assert (tied["attack_success_rate_peak"], tied["attack_success_peak_round"]) == (0.5, 2)  # the earliest on a tie
    baseline = [{**m, "approved": None} for m in rows]
    s = compute_summary(baseline, [{"round": 1}, {"round": 2}])
    assert s["honest_undecided_total"] is None and s["attack_success_rate_peak"] is None


def test_a_rounds_backdoor_success_counts_the_honest_models_only() -> None:
    """rounds.csv attack_success_rate: the honest peers' models' mean; the backdoorers' own models
    (their trigger learned) and unmeasured ones are left out."""
    rates = {0: 0.1, 1: 0.1, 2: 0.9, 3: None, 4: 0.4}
    assert honest_attack_success(rates, [2]) == pytest.approx(0.2)
    assert honest_attack_success(rates, []) == pytest.approx(1.5 / 4)
    assert honest_attack_success({2: 0.9, 3: None}, [2]) is None


def test_the_approved_cell_is_the_chains_verdict_or_empty() -> None:
    """metrics.csv approved: 1 / 0 only for an approval / a rejection of an audited run; undecided,
    probation, pending, no update and any baseline give an empty cell (not a false rejection)."""
    from bdfl.chain.protocol import Outcome
    from bdfl.experiment.orchestrator import approved_cell

    assert approved_cell(Outcome.APPROVED, True) == 1 and approved_cell(Outcome.REJECTED, True) == 0
    for outcome in (Outcome.UNDECIDED, Outcome.PROBATION, Outcome.PENDING, None):
        assert approved_cell(outcome, True) == ""
    assert all(approved_cell(o, False) == "" for o in (*Outcome, None))


def test_equal_honest_accuracies_have_a_spread_of_exactly_zero() -> None:
    """Every honest peer holding the same model gave honest_accuracy_std 1.1e-16 (np.std's rounded
    mean; an outside probe). A peer without an accuracy (NaN) is left out, as before."""
    rows = [{"attacker": 0, "submitted": 1, "approved": 1, "accuracy": 0.9332220367278798} for _ in range(14)]
    assert round_aggregates(rows, True)["honest_accuracy_std"] == 0.0
    rows[3] = {**rows[3], "accuracy": 0.5}
    assert round_aggregates(rows, True)["honest_accuracy_std"] > 0
    rows[3] = {**rows[3], "accuracy": math.nan}
    assert round_aggregates(rows, True)["honest_accuracy_std"] == 0.0
    # the last value counts too, and "equal" means equal (the mutation probe: a[:-1], isclose)
    rows[-1] = {**rows[-1], "accuracy": 0.5}
    assert round_aggregates(rows, True)["honest_accuracy_std"] > 0
    rows[-1] = {**rows[-1], "accuracy": 0.9332220367278798 + 1e-9}
    assert round_aggregates(rows, True)["honest_accuracy_std"] > 0
    # no honest accuracy at all: no spread (None), not 0
    assert round_aggregates([{**r, "accuracy": math.nan} for r in rows], True)["honest_accuracy_std"] is None
