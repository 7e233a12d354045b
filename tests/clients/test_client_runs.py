"""Flower clients, unchanged, in tiny simulated runs on a real anvil devnet: scikit-learn's
logistic regression on Dirichlet shards, a Message API ClientApp, a fit with the wrong
dtype (refused before any stake), a client that raises on one peer (isolated) or on every
peer (one message), and a run that goes wrong ending "degraded"."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from bdfl.config import load_config
from bdfl.errors import BDFLError
from bdfl.experiment.runner import run_experiment

ROOT = Path(__file__).resolve().parents[2]
FLAKY = str(ROOT / "tests" / "clients" / "tasks" / "flaky_quickstart.py")
TINY = {
    "peers": 4, "rounds": 2, "workers": 1, "attack.fraction": 0.0,
    "protocol.committee_size": 4, "protocol.auditors_per_update": 3, "protocol.quorum": 2, "overlay.degree": 3,
    "task.local_epochs": 2,
}


def _run(tmp_path: Path, **overrides: object) -> Path:
    cfg = load_config(None, {**TINY, **overrides})
    out = tmp_path / "run"
    run_experiment(cfg, quiet=True, out=out)
    return out


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _events(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()] if (out / "events.jsonl").exists() else []


def test_sklearn_logreg_on_dirichlet_shards(tmp_path: Path) -> None:
    """Flower's sklearn-logreg NumPyClient, Dirichlet shards (alpha 0.3: shards lack classes),
    its float32 weights cast to the initial float64 (task.cast_dtypes = true)."""
    out = _run(tmp_path, **{"task.client": "clients.sklearn_logreg", "task.alpha": 0.3, "task.cast_dtypes": True,
                            "rounds": 3, "task.local_epochs": 5})
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["rounds_completed"] == 3
    last = [r for r in _rows(out / "metrics.csv") if r["round"] == "3"]
    assert len(last) == 4 and all(float(r["accuracy"]) > 0.6 for r in last), last
    assert all(r["submitted"] == "1" for r in _rows(out / "metrics.csv"))


def test_wrong_dtype_stops_before_any_stake(tmp_path: Path) -> None:
    """Without the cast the same client stops the run at start-up, with one error, before
    any peer joined (staked) or submitted."""
    with pytest.raises(BDFLError) as err:  # a ClientContractError in worker 0, reported by the orchestrator
        _run(tmp_path, **{"task.client": "clients.sklearn_logreg"})
    text = str(err.value)
    assert "task clients.sklearn_logreg: fit() returned array 0 with dtype float32, expected float64" in text
    assert "task.cast_dtypes = true" in text and text.count("dtype float32") == 1
    log = (tmp_path / "run" / "run.log").read_text()
    assert "joined" not in log and "round 1" not in log
    assert not any(e["event"] in ("PeerJoined", "UpdateSubmitted") for e in _events(tmp_path / "run"))


def test_clientapp_message_api_run(tmp_path: Path) -> None:
    """The quickstart-pytorch ClientApp (@app.train / @app.evaluate) as every peer."""
    out = _run(tmp_path, **{"task.client": "clients.torch_clientapp", "task.learning_rate": 0.01})
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["rounds_completed"] == 2
    rows = _rows(out / "metrics.csv")
    assert all(r["submitted"] == "1" for r in rows)
    assert min(float(r["accuracy"]) for r in rows if r["round"] == "2") > 0.3


def test_one_failing_peer_is_isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Peer 1's fit raises every round: the run completes, peer 1 submits nothing, and each
    failure is in run.log (peer, task, traceback) and events.jsonl (ClientFailed)."""
    monkeypatch.setenv("BDFL_TEST_RAISE", "fit:1")
    out = _run(tmp_path, **{"task.client": FLAKY})
    assert json.loads((out / "summary.json").read_text())["status"] == "completed"
    rows = _rows(out / "metrics.csv")
    assert {(r["round"], r["peer"]) for r in rows if r["submitted"] == "0"} == {("1", "1"), ("2", "1")}
    failed = [e for e in _events(out) if e["event"] == "ClientFailed"]
    assert [(e["round"], e["args"]["peer"], e["args"]["step"]) for e in failed] == [(1, 1, "fit"), (2, 1, "fit")]
    assert failed[0]["args"]["task"] == FLAKY and "SimulatedBug" in failed[0]["args"]["traceback"]
    log = (out / "run.log").read_text()
    assert f"round 1: peer 1 failed this round: task {FLAKY} fit raised SimulatedBug" in log
    assert log.count("Traceback (most recent call last)") == 2


def test_every_fit_and_evaluate_gets_server_round(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/tasks.md: every fit and evaluate call receives ``server_round``. The evaluation on the
    global test set (the accuracy curves) did not get it, so a client reading it stopped the run
    after round 1 (an outside probe of the docs, 2026-12-07)."""
    monkeypatch.setenv("BDFL_TEST_RAISE", "round:all")
    out = _run(tmp_path, **{"task.client": FLAKY})
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["rounds_completed"] == 2
    assert not [e for e in _events(out) if e["event"] == "ClientFailed"]


def test_failing_auditor_casts_no_vote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Peer 1's evaluate raises when it audits: it casts no vote, the run completes."""
    monkeypatch.setenv("BDFL_TEST_RAISE", "evaluate:1")
    out = _run(tmp_path, **{"task.client": FLAKY, "rounds": 1})
    assert json.loads((out / "summary.json").read_text())["status"] == "completed"
    failed = [e for e in _events(out) if e["event"] == "ClientFailed"]
    assert [(e["args"]["peer"], e["args"]["step"]) for e in failed] == [(1, "audit")]
    assert all(r["submitted"] == "1" for r in _rows(out / "metrics.csv"))


def test_auditor_without_a_finite_reference_sits_the_audit_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Peer 1's own model has a non-finite loss on its validation data (as when its training
    diverged): it cannot judge others, so it casts no vote that round (ClientFailed, step
    audit) and the run goes on. Before, the auditor's BDFLError stopped the whole run."""
    monkeypatch.setenv("BDFL_TEST_RAISE", "valnan:1")
    out = _run(tmp_path, **{"task.client": FLAKY, "rounds": 2})
    assert json.loads((out / "summary.json").read_text())["status"] in ("completed", "degraded")
    failed = [e for e in _events(out) if e["event"] == "ClientFailed"]
    assert failed and {(e["args"]["peer"], e["args"]["step"]) for e in failed} == {(1, "audit")}
    assert all("ReferenceNotFinite" in e["args"]["error"] for e in failed)
    # both causes named: here the model is finite and the validation data holds NaN (the evaluate returns NaN)
    assert all("or its client's evaluate returns a non-finite loss" in e["args"]["error"] for e in failed)
    assert {r["round"] for r in _rows(out / "metrics.csv")} == {"1", "2"}  # both rounds ran


def test_failure_on_every_peer_stops_with_one_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BDFL_TEST_RAISE", "fit:all")
    with pytest.raises(BDFLError) as err:
        _run(tmp_path, **{"task.client": FLAKY})
    assert str(err.value).startswith(f"round 1: task {FLAKY} fit raised on every peer (4 of 4): SimulatedBug")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["rounds_completed"] == 0
    # why it failed is kept with the results, not only on the terminal
    assert summary["error"].startswith(f"round 1: task {FLAKY} fit raised on every peer") and summary["peers"] == 4
    log = (tmp_path / "run" / "run.log").read_text()
    assert f"error: round 1: task {FLAKY} fit raised on every peer" in log


def test_a_run_whose_accuracy_is_never_finite_ends_degraded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A task whose evaluate reports NaN accuracy leaves a run with no accuracy at all: it must
    not end "completed" as if it had measured something."""
    monkeypatch.setenv("BDFL_TEST_RAISE", "accnan:all")
    out = _run(tmp_path, **{"task.client": FLAKY})
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "degraded"
    assert "round 1: no honest peer's test accuracy is a finite number (the task's evaluate)" in summary["degraded_reasons"]


def test_diverging_run_ends_degraded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Every peer's training diverges to NaN: nothing raises, every honest update is rejected
    and nothing is aggregated; `bdfl run` ends "degraded" (summary, log line, exit 3)."""
    from bdfl.cli import DEGRADED_EXIT, main

    monkeypatch.setenv("BDFL_TEST_RAISE", "nan:all")
    out = tmp_path / "run"
    code = main(["run", "--peers", "4", "--rounds", "2", "--workers", "1", "--attack", "none", "--quiet", "--out", str(out),
                 "--set", f"task.client={FLAKY}", "--set", "task.local_epochs=1"])
    assert code == DEGRADED_EXIT == 3
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "degraded" and summary["rounds_completed"] == 2
    assert summary["degraded_reasons"][:2] == ["round 1: 4 of 4 honest updates were rejected", "round 2: 4 of 4 honest updates were rejected"]
    assert "rounds 1-2: no peer aggregated any update" in summary["degraded_reasons"]
    assert "RUN DEGRADED" in (out / "run.log").read_text() and "RUN DEGRADED" in capsys.readouterr().err


def test_one_diverged_fit_recovers_from_the_neighbours(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Peer 1's fit diverges to NaN in round 2 only: its update is refused (non_finite) and it
    aggregates without its own NaN model, so from round 3 on it learns again like the others.
    Before, it averaged its NaN model in and stayed at chance accuracy for the rest of the run."""
    monkeypatch.setenv("BDFL_TEST_RAISE", "nan2:1")
    out = _run(tmp_path, **{"task.client": FLAKY, "rounds": 4})
    assert json.loads((out / "summary.json").read_text())["status"] in ("completed", "degraded")
    rows = {(r["round"], r["peer"]): r for r in _rows(out / "metrics.csv")}
    assert rows[("2", "1")]["submitted"] == "1" and rows[("2", "1")]["approved"] == "0"  # its NaN update, refused
    assert all(rows[(str(t), "1")]["approved"] == "1" for t in (1, 3, 4))
    losses = {(r["round"], r["peer"]): float(r["value"]) for r in _rows(out / "fit_metrics.csv") if r["metric"] == "train_loss"}
    assert set(losses) == {(str(t), str(p)) for t in range(1, 5) for p in range(4)}  # what every fit returned, kept
    for t in ("2", "3", "4"):  # accuracy after each round's aggregation: with the others, not at chance
        others = [float(rows[(t, p)]["accuracy"]) for p in ("0", "2", "3")]
        assert float(rows[(t, "1")]["accuracy"]) > min(others) - 0.15, (t, rows[(t, "1")]["accuracy"], others)
