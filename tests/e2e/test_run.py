"""`bdfl run` end to end on a real anvil devnet: every results file, real values,
clean shutdown (also on Ctrl-C), and validation before anything starts."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from bdfl.config import load_config
from bdfl.experiment.orchestrator import _rerunnable
from bdfl.experiment.runner import run_experiment

ROOT = Path(__file__).resolve().parents[2]
TINY = {
    "name": "tiny",
    "peers": 8,
    "rounds": 4,
    "workers": 2,
    # sign flipping, not label flipping: at this size (3 auditors per update, so 3-4
    # candidates per auditor and calibrated bars widened ~3.5x) the audit is not built to
    # catch label flippers within 4 rounds (docs/learning.md section 4: 6 % of decisions in
    # the mirror, separated from round 7 in the default experiment; measured here, seeds
    # 0-2: 1 of 8 label-flipped updates rejected per run, the other flipper never);
    # sign-flipped ones it does (seed 0: 3 of 8 rejected, both flippers in round 2)
    "attack.name": "sign_flip",
    "attack.fraction": 0.25,
    "protocol.committee_size": 5,
    "protocol.auditors_per_update": 3,
    "protocol.quorum": 2,
    "overlay.degree": 3,
    "task.local_epochs": 2,
}


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _descendants_alive(pid_root: int | None = None) -> list[psutil.Process]:
    """Live descendants, except multiprocessing's resource tracker: one per parent
    interpreter, started by the first spawn and ending with it (not an orphan)."""
    me = psutil.Process(pid_root or os.getpid())
    alive = []
    for p in me.children(recursive=True):
        try:
            if p.status() == psutil.STATUS_ZOMBIE or "resource_tracker" in " ".join(p.cmdline()):
                continue
        except psutil.NoSuchProcess:
            continue
        alive.append(p)
    return alive


PRE_EXISTING: set[int] = set()


def _run_until_first_round(out: Path) -> subprocess.Popen[str]:
    """`bdfl run` (6 peers, 50 rounds) in its own process group, returned once a round is on disk."""
    args = [sys.executable, "-m", "bdfl", "run", "--config", str(ROOT / "experiments/configs/default.toml"),
            "--peers", "6", "--rounds", "50", "--set", "protocol.committee_size=4",
            "--set", "protocol.auditors_per_update=3", "--set", "protocol.quorum=2", "--out", str(out), "--quiet"]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        rounds = out / "rounds.csv"
        if rounds.exists() and len(rounds.read_text().splitlines()) >= 2:  # header + one round
            return proc
        if proc.poll() is not None:
            pytest.fail(f"bdfl run ended early: {proc.stdout.read() if proc.stdout else ''}")
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail("no round completed within 180 s")


def _still_running(tree: dict[int, str], timeout: float = 10.0) -> dict[int, str]:
    """Those of ``tree``'s processes still alive (not zombies) after up to ``timeout`` s."""
    deadline = time.monotonic() + timeout
    alive = dict(tree)
    while alive and time.monotonic() < deadline:
        alive = {p: n for p, n in alive.items() if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE}
        time.sleep(0.1)
    return alive


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run") / "tiny"
    cfg = load_config(ROOT / "experiments" / "configs" / "default.toml", TINY)
    PRE_EXISTING.update(p.pid for p in _descendants_alive())  # e.g. the session's shared devnet
    assert run_experiment(cfg, quiet=True, out=out) == out
    return out


def test_results_folder_is_complete(tiny_run: Path) -> None:
    for name in ("config.toml", "metrics.csv", "rounds.csv", "events.jsonl", "summary.json", "report.html",
                 "accuracy.png", "reputation.png", "tokens.png", "gas.png", "time.png", "deployment.json"):
        assert (tiny_run / name).is_file(), name
        assert (tiny_run / name).stat().st_size > 0, name
    # the resolved config reproduces the run
    again = load_config(tiny_run / "config.toml")
    assert again.peers == 8 and again.seed == 0 and again.attack.name == "sign_flip"
    # ... into a new folder: an `out` naming this one made a repeat be refused (it already holds a run)
    assert again.out == "" and _rerunnable(replace(again, out=str(tiny_run))).out == ""


def test_metrics_have_real_values(tiny_run: Path) -> None:
    metrics = _rows(tiny_run / "metrics.csv")
    assert len(metrics) == 8 * 4
    for col in ("round", "peer", "address", "attacker", "committee", "submitted", "approved", "accuracy", "loss", "reputation", "balance", "stake", "unclaimed"):
        assert col in metrics[0]
    assert sum(int(r["attacker"]) for r in metrics if r["round"] == "1") == 2
    assert all(r["submitted"] == "1" for r in metrics)
    assert all(0.0 <= float(r["reputation"]) <= 1.0 for r in metrics)
    rounds = _rows(tiny_run / "rounds.csv")
    assert [int(r["round"]) for r in rounds] == [1, 2, 3, 4]
    acc = [float(r["honest_accuracy"]) for r in rounds]
    assert acc[-1] > acc[0] + 0.1, f"honest accuracy did not rise: {acc}"
    assert all(int(r["tx_count"]) > 0 and int(r["gas_used"]) > 0 for r in rounds)
    assert all(float(r["seconds_total"]) > 0 for r in rounds)
    last = [r for r in metrics if r["round"] == "4"]
    att = [float(r["reputation"]) for r in last if r["attacker"] == "1"]
    hon = [float(r["reputation"]) for r in last if r["attacker"] == "0"]
    # issue 5's criterion (the attackers' mean reputation below every honest peer's), met by
    # every sign flipper here: each lost reputation below every honest peer's in 4 rounds
    assert max(att) < min(hon), f"attackers' reputation {att} not below honest {hon}"
    # no honest peer was slashed, no attacker kept more stake than one; approved honest peers
    # earned tokens. (An attacker is slashed only from its 3rd rejection in a row, docs/protocol.md
    # "Rejection and slashing", which 4 rounds need not produce.)
    stakes = {r["attacker"]: [] for r in last}
    for r in last:
        stakes[r["attacker"]].append(float(r["stake"]))
    assert max(stakes["1"]) <= min(stakes["0"]) == max(stakes["0"])
    assert min(float(r["unclaimed"]) for r in last if r["attacker"] == "0") > 0


def test_events_and_summary(tiny_run: Path) -> None:
    events = [json.loads(line) for line in (tiny_run / "events.jsonl").read_text().splitlines()]
    names = {e["event"] for e in events}
    assert {"UpdateSubmitted", "CommitteeDrawn", "VotesCommitted", "VotesRevealed", "UpdateFinalized", "RoundFinalized"} <= names
    assert sum(1 for e in events if e["event"] == "RoundFinalized") == 4
    summary = json.loads((tiny_run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["rounds_completed"] == 4
    assert summary["final_honest_accuracy"] == pytest.approx(float(_rows(tiny_run / "rounds.csv")[-1]["honest_accuracy"]))
    html = (tiny_run / "report.html").read_text()
    assert "data:image/png;base64," in html and "tiny" in html


def test_metrics_approved_is_the_chains_outcome(tiny_run: Path) -> None:
    """metrics.csv ``approved`` is the chain's verdict on the peer's update of that round
    (``UpdateFinalized``): 1 approved, 0 rejected, empty for undecided, probation or no
    update; an undecided update counted as a rejection would be a false rejection."""
    events = [json.loads(line) for line in (tiny_run / "events.jsonl").read_text().splitlines()]
    outcome = {(e["args"]["round"] + 1, e["args"]["peer"].lower()): e["args"]["outcome"]
               for e in events if e["event"] == "UpdateFinalized"}  # metrics.csv counts rounds from 1
    rows = _rows(tiny_run / "metrics.csv")
    cells = [(outcome.get((int(r["round"]), r["address"].lower())), r["approved"]) for r in rows]
    assert all(cell == {1: "1", 2: "0"}.get(o, "") for o, cell in cells), cells
    assert {"1", "0"} <= {cell for _o, cell in cells}  # approvals and rejections both occur


def test_traffic_counts_the_updates_read_in_process_apart_from_http(tiny_run: Path) -> None:
    """A worker reads its own peers' updates in process (Fetcher.local_bytes / local_bodies, no
    HTTP): RoundTraffic counts them apart, so updates read = HTTP + in process; at 2 workers both
    are used every round, and an update read either way is the same number of bytes."""
    events = [json.loads(line) for line in (tiny_run / "events.jsonl").read_text().splitlines()]
    traffic = [e["args"] for e in events if e["event"] == "RoundTraffic"]
    assert len(traffic) == 4
    for t in traffic:
        assert t["audit_bodies"] > 0 and t["audit_local_bodies"] > 0
        assert t["audit_fetched"] == t["audit_served"]  # HTTP: what the endpoints sent, nothing in process
        assert t["audit_local_bytes"] * t["audit_bodies"] == t["audit_fetched"] * t["audit_local_bodies"]


def test_auditors_rebuild_each_trainers_start_exactly(tiny_run: Path) -> None:
    """From the second round on, auditors rebuild where each trainer started from the closed
    round's on-chain updates and weights; for an honest trainer that is exactly the model it
    trained from (bit for bit), so its move is judged, not its distance from the auditor."""
    events = [json.loads(line) for line in (tiny_run / "events.jsonl").read_text().splitlines()]
    starts = {e["round"]: e["args"] for e in events if e["event"] == "StartsRebuilt"}
    assert sorted(starts) == [1, 2, 3, 4]
    assert starts[1]["rebuilt"] == 0  # the first round has no closed round before it
    for r in (2, 3, 4):
        assert starts[r]["rebuilt"] >= 6, starts  # 8 peers, each audited by some auditor of each worker
        assert starts[r]["honest_checked"] >= 4 and starts[r]["honest_exact"] == starts[r]["honest_checked"], starts


def test_nothing_left_running(tiny_run: Path) -> None:
    def started_by_run() -> list[psutil.Process]:
        return [p for p in _descendants_alive() if p.pid not in PRE_EXISTING]

    deadline = time.monotonic() + 10
    while started_by_run() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert started_by_run() == []


def test_bad_config_stops_before_anything_starts(tmp_path: Path) -> None:
    """Nothing starts: the results folder, where the devnet's log is the first thing written, is never
    created. (Was also timed, < 45 s for the three commands: a full run under load took 67 s.)"""
    proc = subprocess.run(
        [sys.executable, "-m", "bdfl", "run", "--attackers", "1.5", "--attack", "label_flip", "--out", str(tmp_path / "x")],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )
    assert proc.returncode == 2
    assert "attack.fraction" in proc.stderr and "[0, 1)" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "x").exists()
    proc = subprocess.run([sys.executable, "-m", "bdfl", "run", "--attack", "nope", "--attackers", "0.2", "--out", str(tmp_path / "y")],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 2 and "attack.name" in proc.stderr and "label_flip" in proc.stderr
    assert not (tmp_path / "y").exists()
    # digits has 1,438 training images: 200 non-IID peers with >= 10 samples each cannot be had
    proc = subprocess.run([sys.executable, "-m", "bdfl", "run", "--config", str(ROOT / "experiments/configs/default.toml"),
                           "--peers", "200", "--out", str(tmp_path / "z")], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 2 and "task.alpha" in proc.stderr and "200 peers" in proc.stderr, proc.stderr
    assert not (tmp_path / "z").exists()


def test_ctrl_c_stops_everything_and_keeps_results(tmp_path: Path) -> None:
    out = tmp_path / "interrupted"
    proc = _run_until_first_round(out)
    try:
        tree = {c.pid: " ".join(c.cmdline())[:120] for c in psutil.Process(proc.pid).children(recursive=True)}
        tree[proc.pid] = "bdfl run"
        assert len(tree) >= 3  # runner, devnet, workers
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, output
    assert "interrupted" in output
    alive = _still_running(tree)
    assert alive == {}, f"survived Ctrl-C: {alive}"
    rounds = _rows(out / "rounds.csv")
    assert len(rounds) >= 1 and float(rounds[0]["honest_accuracy"]) > 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted"


def test_same_seed_reproduces_metrics(tiny_run: Path, tmp_path: Path) -> None:
    """A second run of the resolved config.toml gives the same metrics.csv (it has no
    timing columns) and the same rounds.csv apart from the seconds_* columns."""
    again = run_experiment(load_config(tiny_run / "config.toml"), quiet=True, out=tmp_path / "again")
    assert (again / "metrics.csv").read_text() == (tiny_run / "metrics.csv").read_text()

    def without_timings(path: Path) -> list[dict[str, str]]:
        return [{k: v for k, v in row.items() if not k.startswith("seconds_")} for row in _rows(path)]

    assert without_timings(again / "rounds.csv") == without_timings(tiny_run / "rounds.csv")
    committees = lambda d: [e["args"] for e in map(json.loads, (d / "events.jsonl").read_text().splitlines()) if e["event"] == "CommitteeDrawn"]  # noqa: E731
    assert committees(again) == committees(tiny_run)


def test_report_and_compare_commands(tiny_run: Path, tmp_path: Path) -> None:
    """`bdfl report DIR` rebuilds plots and report from the CSVs; `bdfl compare` overlays runs."""
    (tiny_run / "accuracy.png").unlink()
    proc = subprocess.run([sys.executable, "-m", "bdfl", "report", str(tiny_run)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (tiny_run / "accuracy.png").stat().st_size > 0
    out = tmp_path / "cmp"
    proc = subprocess.run([sys.executable, "-m", "bdfl", "compare", str(tiny_run), str(tiny_run), "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    table = _rows(out / "compare.csv")
    assert len(table) == 1  # the same run named twice counts once (it was a seed group of 2 copies)
    assert proc.stdout.splitlines()[0].startswith("run ") and "compare.md" in proc.stdout  # the overview, then the files
    assert (out / "compare_accuracy.png").stat().st_size > 0


def test_devnet_dying_mid_run_is_reported_and_results_kept(tmp_path: Path) -> None:
    out = tmp_path / "dead-chain"
    proc = _run_until_first_round(out)
    try:
        tree = {c.pid: c.name() for c in psutil.Process(proc.pid).children(recursive=True)}
        anvil = [pid for pid, name in tree.items() if name == "anvil"]
        assert len(anvil) == 1, tree
        os.kill(anvil[0], signal.SIGKILL)
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 1, output
    assert "error: the anvil devnet exited (exit code -9) during round" in output, output
    assert "Traceback" not in output
    alive = _still_running(tree)
    assert alive == {}, f"left running: {alive}"
    rounds = _rows(out / "rounds.csv")
    assert len(rounds) >= 1 and float(rounds[0]["honest_accuracy"]) > 0
    assert json.loads((out / "summary.json").read_text())["status"] == "failed"


def test_backdoor_run_reports_its_attack_success_rate(tmp_path: Path) -> None:
    """Under a backdoor the honest peers' models are tested on triggered images: rounds.csv
    and summary.json carry the share classified as the target (not under other attacks)."""
    cfg = load_config(ROOT / "experiments" / "configs" / "default.toml",
                      {**TINY, "seed": 5, "rounds": 3, "attack.name": "backdoor", "attack.fraction": 0.375})
    out = run_experiment(cfg, quiet=True, out=tmp_path / "bd")
    asr = [r["attack_success_rate"] for r in _rows(out / "rounds.csv")]
    assert len(asr) == 3 and all(0.0 <= float(x) <= 1.0 for x in asr)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["attack_success_rate_final"] == pytest.approx(float(asr[-1]))


def test_no_attack_success_rate_without_a_backdoor(tiny_run: Path) -> None:
    assert all(r["attack_success_rate"] == "" for r in _rows(tiny_run / "rounds.csv"))
    assert json.loads((tiny_run / "summary.json").read_text())["attack_success_rate_final"] is None
