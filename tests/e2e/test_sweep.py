"""`bdfl sweep`: a tiny grid end to end, then resumed without re-running anything."""

from __future__ import annotations

import csv
import json
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
    assert "done earlier, kept" in capsys.readouterr().out
    assert mtimes == {r: (out / "runs" / r / "metrics.csv").stat().st_mtime_ns for r in runs}


def test_bad_grid_point_is_refused_before_any_run(tmp_path: Path) -> None:
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID.replace('["bdfl", "median"]', '["bdfl", "magic"]'))
    with pytest.raises(ConfigError) as info:
        expand(grid)
    assert info.value.field == "defense.name" and "magic" in str(info.value)
    assert not (tmp_path / "sweep").exists()
