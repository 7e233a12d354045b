"""``bdfl compare``: one figure and one table for several runs."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from bdfl.errors import BDFLError
from bdfl.experiment.compare import compare_runs
from bdfl.experiment.results import read_summary
from tests.experiment.test_report import assert_png
from tests.experiment.test_results import make_run


def test_compare_three_runs(tmp_path: Path) -> None:
    runs = [
        make_run(tmp_path / "a", name="clean", attack="none", fraction=0.0, acc_shift=0.03),
        make_run(tmp_path / "b", name="flip", attack="label_flip", defense="bdfl"),
        make_run(tmp_path / "c", name="flip", attack="label_flip", defense="fedavg", acc_shift=-0.2,
                 summary=False),  # a run that crashed before its summary: rebuilt from the CSVs
    ]
    png, csv_path, md_path = compare_runs(runs, tmp_path / "cmp")
    assert png.parent == csv_path.parent == md_path.parent == tmp_path / "cmp"
    assert_png(png)

    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3
    assert [r["run"] for r in rows] == ["clean (none/bdfl)", "flip (label_flip 0.34/bdfl)", "flip (label_flip 0.34/fedavg)"]
    assert [r["dir"] for r in rows] == [str(p) for p in runs]
    assert float(rows[0]["final_honest_accuracy"]) == pytest.approx(0.945)
    assert float(rows[1]["final_honest_accuracy"]) == pytest.approx(read_summary(runs[1])["final_honest_accuracy"])
    assert float(rows[2]["final_honest_accuracy"]) == pytest.approx(0.715)
    assert rows[1]["separated_from_round"] == "3" and int(rows[1]["gas_used_total"]) == 1_500_000
    assert read_summary(runs[2]) is None  # compare never writes into the runs it reads

    md = md_path.read_text().splitlines()
    table = [line for line in md if line.startswith("|")]
    assert len(table) == 2 + 3  # header, alignment, one row per run
    assert "final honest accuracy" in table[0]
    assert "0.9450" in table[2] and "0.7150" in table[4]


def test_duplicate_labels_are_told_apart(tmp_path: Path) -> None:
    a = make_run(tmp_path / "seed0", seed=0)
    b = make_run(tmp_path / "seed1", seed=1)
    _, csv_path, _ = compare_runs([a, b], tmp_path / "cmp")
    with open(csv_path, newline="") as f:
        labels = [r["run"] for r in csv.DictReader(f)]
    assert len(set(labels)) == 2 and labels[0].endswith("[seed0]") and labels[1].endswith("[seed1]")


def test_compare_errors(tmp_path: Path) -> None:
    with pytest.raises(BDFLError, match="nothing to compare"):
        compare_runs([], tmp_path / "cmp")
    with pytest.raises(BDFLError, match="does not exist") as exc:
        compare_runs([tmp_path / "nope"], tmp_path / "cmp")
    assert exc.value.fix
