"""`bdfl sweep`: a tiny grid end to end, then resumed without re-running anything."""

from __future__ import annotations

import csv
import dataclasses
import json
import time
from pathlib import Path

import pytest

from bdfl.errors import ConfigError
from bdfl.experiment.sweep import expand, run_sweep

ROOT = Path(__file__).resolve().parents[2]

GRID = f"""
name = "tiny"
base = "{ROOT / 'experiments' / 'configs' / 'default.toml'}"
[set]
peers = 5
rounds = 2
workers = 1
"protocol.committee_size" = 4
"protocol.auditors_per_update" = 3
"protocol.quorum" = 2
"overlay.degree" = 2
"attack.fraction" = 0.2
[grid]
"attack.name" = ["label_flip"]
"defense.name" = ["bdfl", "median"]
"""


def test_sweep_runs_grid_and_resumes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID)
    out = run_sweep(grid, out=tmp_path / "sweep")
    runs = sorted(p.name for p in (out / "runs").iterdir())
    assert runs == ["name=label_flip_name=bdfl", "name=label_flip_name=median"]
    for run in runs:
        summary = json.loads((out / "runs" / run / "summary.json").read_text())
        assert summary["status"] == "completed" and summary["rounds_completed"] == 2
    table = list(csv.DictReader(open(out / "sweep_table.csv")))
    assert len(table) == 2
    assert (out / "sweep_heatmap.png").stat().st_size > 0
    # resume: a completed sweep is not run again
    mtimes = {r: (out / "runs" / r / "metrics.csv").stat().st_mtime_ns for r in runs}
    capsys.readouterr()
    run_sweep(grid, out=out)
    assert "done earlier with this configuration, kept" in capsys.readouterr().out
    assert mtimes == {r: (out / "runs" / r / "metrics.csv").stat().st_mtime_ns for r in runs}


def test_parallel_sweep_dedupes_identical_points_and_never_runs_a_seed_twice_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--jobs 2: four grid points, but "none" ignores the fraction, so two runs (one per
    seed) -- run side by side -- and each serves two rows of the table."""
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID.replace('"attack.fraction" = 0.2\n', "").replace(
        '"attack.name" = ["label_flip"]\n"defense.name" = ["bdfl", "median"]',
        '"attack.name" = ["none"]\n"attack.fraction" = [0.2, 0.4]\n"defense.name" = ["median"]\nseed = [0, 1]'))
    assert len(expand(grid)[1]) == 4
    out = run_sweep(grid, out=tmp_path / "sweep", jobs=2)
    runs = sorted(p.name for p in (out / "runs").iterdir())
    assert runs == ["name=none_fraction=0.2_name=median_seed=0", "name=none_fraction=0.2_name=median_seed=1"]
    table = list(csv.DictReader(open(out / "sweep_table.csv")))  # one row per point, seeds averaged
    assert [(r["attack.fraction"], r["n_runs"]) for r in table] == [("0.2", "2"), ("0.4", "2")]
    started = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[sweep") and line.endswith(": running")]
    assert len(started) == 2
    for run in runs:
        summary = json.loads((out / "runs" / run / "summary.json").read_text())
        assert summary["status"] == "completed"


def test_a_failing_run_is_reported_and_the_others_still_run(tmp_path: Path) -> None:
    """Every run of this grid fails at start (nothing listens on the RPC port); the sweep
    goes through all of them, writes its (empty) table, then fails naming the runs."""
    from bdfl.errors import BDFLError

    grid = tmp_path / "grid.toml"
    grid.write_text(GRID.replace("[grid]", '"chain.backend" = "url"\n"chain.rpc_url" = "http://127.0.0.1:9"\n[grid]'))
    with pytest.raises(BDFLError) as info:
        run_sweep(grid, out=tmp_path / "sweep", quiet=True)
    assert "2 of 2 sweep run(s) failed" in str(info.value) and "127.0.0.1:9" in str(info.value)
    assert (tmp_path / "sweep" / "sweep_table.csv").exists()


def test_bad_grid_point_is_refused_before_any_run(tmp_path: Path) -> None:
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID.replace('["bdfl", "median"]', '["bdfl", "magic"]'))
    with pytest.raises(ConfigError) as info:
        expand(grid)
    assert info.value.field == "defense.name" and "magic" in str(info.value)
    assert not (tmp_path / "sweep").exists()


@pytest.mark.timeout(60)
def test_a_chatty_run_does_not_block_the_sweep(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run writing far more to stderr than a pipe holds (64 KiB) still finishes, and a
    failing run's last stderr lines reach the sweep's report (stderr goes to a file, not a
    pipe read only at the end, which blocked such a run forever)."""
    import sys

    from bdfl.experiment import sweep as sweep_mod

    fake = tmp_path / "fake-python"
    fake.write_text("#!/bin/sh\n"
                    "i=0; while [ $i -lt 4000 ]; do echo \"log line $i: $(printf '%0100d' 0)\" >&2; i=$((i+1)); done\n"
                    "case \"$*\" in *fail*) echo 'error: the last words' >&2; exit 1;; esac\n"
                    "exit 0\n")
    fake.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(fake))
    _name, runs = expand(_grid(tmp_path))
    todo = [(i, params, cfg, tmp_path / "runs" / f"r{i}{'-fail' if i == 2 else ''}")
            for i, (params, cfg) in enumerate(runs[:2], 1)]
    failures = sweep_mod._run_all(todo, len(todo), jobs=2, quiet=True)
    assert len(failures) == 1 and "error: the last words" in failures[0][0]
    assert failures[0][1] == tmp_path / "runs" / "r2-fail"
    assert not list((tmp_path / "runs").glob(".*.stderr"))  # cleaned up
    # the fake run wrote no folder: the fix says so instead of pointing at a run.log that is not there
    assert sweep_mod._where_failures_are(failures) == "1 run(s) stopped before starting, on the error above, and left no run folder"
    (tmp_path / "runs" / "r2-fail").mkdir(parents=True)
    (tmp_path / "runs" / "r2-fail" / "run.log").write_text("log")
    assert sweep_mod._where_failures_are(failures) == f"see run.log in {tmp_path / 'runs' / 'r2-fail'}"


@pytest.mark.timeout(60)
def test_an_interrupted_sweep_stops_its_runs_and_leaves_no_hidden_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C while points run: each run is stopped, and the point's launch files (its config and
    stderr, hidden beside the run folders) are gone, as after a point that finished."""
    import sys

    from bdfl.experiment import sweep as sweep_mod

    fake = tmp_path / "fake-python"
    fake.write_text("#!/bin/sh\nexec sleep 30\n")
    fake.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(fake))
    _name, runs = expand(_grid(tmp_path))
    # two seeds: the sweep runs one point per seed at a time
    todo = [(i, params, dataclasses.replace(cfg, seed=i), tmp_path / "runs" / f"r{i}")
            for i, (params, cfg) in enumerate(runs[:2], 1)]
    started: list[int] = []
    sleep = time.sleep

    def ctrl_c(seconds: float) -> None:  # the sweep's first wait: both runs launched
        if started:  # later sleeps (subprocess's own waits) pass
            return sleep(seconds)
        started.append(len(list((tmp_path / "runs").glob(".*.toml"))))
        raise KeyboardInterrupt

    monkeypatch.setattr(sweep_mod.time, "sleep", ctrl_c)
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        sweep_mod._run_all(todo, len(todo), jobs=2, quiet=True)
    assert started == [2]  # the launch files existed while the runs ran
    assert time.monotonic() - t0 < 20  # stopped, not waited for
    assert not [p.name for p in (tmp_path / "runs").iterdir() if p.name.startswith(".")]


def _grid(tmp_path: Path) -> Path:
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID)
    return grid
