"""Sweep outputs: mean ± std over seeds per grid point, CSV + markdown + heat map."""

from __future__ import annotations

import csv
import statistics
from pathlib import Path
from typing import Any

import pytest

from bdfl.experiment.sweep_table import aggregate, mean_std, write_sweep_outputs
from tests.experiment.test_report import assert_png

SEEDS = (0, 1, 2)
# final honest accuracy per (attack, fraction, defense): base + 0.02 * seed
GRID = {
    ("none", 0.0, "bdfl"): 0.90,
    ("none", 0.0, "fedavg"): 0.91,
    ("label_flip", 0.2, "bdfl"): 0.88,
    ("label_flip", 0.2, "fedavg"): 0.60,
    ("gaussian", 0.2, "bdfl"): 0.87,
    ("gaussian", 0.2, "fedavg"): 0.30,
    ("label_flip", 0.4, "bdfl"): 0.80,
    ("label_flip", 0.4, "fedavg"): 0.40,
}


def sweep_rows() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    rows = []
    for (attack, fraction, defense), base in GRID.items():
        for seed in SEEDS:
            params = {"attack": attack, "fraction": fraction, "defense": defense, "seed": seed,
                      "name": f"{attack}-{fraction}-{defense}-s{seed}"}
            summary = {
                "final_honest_accuracy": base + 0.02 * seed,
                "gas_used_total": 1_000_000 + seed,
                # attackers separated in seeds 0 and 1 only (never with fedavg)
                "separated_from_round": (3 + seed if seed < 2 else None) if defense == "bdfl" and attack != "none" else None,
                "status": "completed",
            }
            rows.append((params, summary))
    return rows


def test_mean_std() -> None:
    assert mean_std([0.8, 0.82, 0.84]) == (pytest.approx(0.82), pytest.approx(0.02))
    assert mean_std([0.5]) == (0.5, None)
    assert mean_std([]) == (None, None)


def test_aggregate_by_hand() -> None:
    params, metrics, agg = aggregate(sweep_rows())
    assert params == ["attack", "fraction", "defense"]  # seed and name are not grid axes
    assert metrics == ["final_honest_accuracy", "separated_from_round", "gas_used_total"]
    assert len(agg) == len(GRID)
    row = next(r for r in agg if (r["attack"], r["fraction"], r["defense"]) == ("label_flip", 0.2, "fedavg"))
    vals = [0.60, 0.62, 0.64]
    assert row["n_runs"] == 3 and row["seeds"] == "0 1 2"
    assert row["final_honest_accuracy_mean"] == pytest.approx(statistics.mean(vals))
    assert row["final_honest_accuracy_std"] == pytest.approx(statistics.stdev(vals))  # sample std = 0.02
    assert row["final_honest_accuracy_std"] == pytest.approx(0.02)
    assert row["gas_used_total_mean"] == pytest.approx(1_000_001)
    assert row["separated_from_round_n"] == 0 and row["separated_from_round_mean"] is None
    det = next(r for r in agg if (r["attack"], r["fraction"], r["defense"]) == ("gaussian", 0.2, "bdfl"))
    assert det["separated_from_round_n"] == 2 and det["separated_from_round_mean"] == pytest.approx(3.5)
    assert det["separated_from_round_std"] == pytest.approx(statistics.stdev([3, 4]))


def test_write_sweep_outputs(tmp_path: Path) -> None:
    out = write_sweep_outputs(sweep_rows(), tmp_path / "sweep")
    for p in out:
        assert p.is_file() and p.parent == tmp_path / "sweep"
    assert_png(out.heatmap_png)

    with open(out.runs_csv, newline="") as f:
        runs = list(csv.DictReader(f))
    assert len(runs) == len(GRID) * len(SEEDS)
    assert runs[0]["seed"] == "0" and float(runs[1]["final_honest_accuracy"]) == pytest.approx(0.92)

    with open(out.table_csv, newline="") as f:
        table = list(csv.DictReader(f))
    assert len(table) == len(GRID)
    first = table[0]
    assert (first["attack"], first["fraction"], first["defense"], first["n_runs"]) == ("none", "0.0", "bdfl", "3")
    assert float(first["final_honest_accuracy_mean"]) == pytest.approx(0.92)
    assert float(first["final_honest_accuracy_std"]) == pytest.approx(0.02)

    md = out.table_md.read_text()
    lines = [line for line in md.splitlines() if line.startswith("|")]
    assert len(lines) == 2 + len(GRID)
    assert "| none | 0 | bdfl | 3 | 0.9200 ± 0.0200 |" in md
    assert "3.5 ± 0.7 (2/3)" in md  # detection round seen in 2 of 3 seeds: a round, to one decimal
    assert "| label_flip | 0.4 | fedavg | 3 | 0.4200 ± 0.0200 | — |" in md


def test_single_seed_dotted_keys_and_dict_rows(tmp_path: Path) -> None:
    rows = [
        {"params": {"attack.name": "sign_flip", "attack.fraction": 0.3, "defense.name": d, "seed": 7},
         "summary": {"final_honest_accuracy": acc, "tx_count_total": 63}}
        for d, acc in (("bdfl", 0.85), ("krum", 0.7), ("median", 0.75))
    ]
    out = write_sweep_outputs(rows, tmp_path / "s")
    assert_png(out.heatmap_png)
    with open(out.table_csv, newline="") as f:
        table = list(csv.DictReader(f))
    assert [r["defense.name"] for r in table] == ["bdfl", "krum", "median"]
    assert table[1]["final_honest_accuracy_std"] == ""  # one seed: no std
    assert "| sign_flip | 0.3 | krum | 1 | 0.7000 |" in out.table_md.read_text()
    assert "| 63 |" in out.table_md.read_text() and "63.0000" not in out.table_md.read_text()  # a count stays a count


def test_empty_sweep(tmp_path: Path) -> None:
    out = write_sweep_outputs([], tmp_path / "s")
    assert out.heatmap_png.is_file() and out.table_csv.read_text().startswith("n_runs")
