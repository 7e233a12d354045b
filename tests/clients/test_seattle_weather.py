"""clients.seattle_weather: the shipped table loads offline and deterministically, a client
learns it well above the majority class, and a tiny BDFL run on it learns."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from bdfl.config import load_config
from bdfl.errors import BDFLError
from bdfl.experiment.runner import run_experiment
from clients import seattle_weather


@pytest.fixture(scope="module")
def ds():
    return seattle_weather.load_dataset()


def _majority(y: np.ndarray) -> float:
    return float(np.bincount(y).max() / len(y))


def test_data_loads_offline_split_and_scaled(ds) -> None:
    assert ds.num_classes == 5 and ds.input_shape == (6,)
    assert len(ds.y_train) + len(ds.y_test) == 1461 and len(ds.y_test) == 293
    assert set(np.unique(ds.y_train)) == set(np.unique(ds.y_test)) == set(range(5))  # stratified
    assert np.isfinite(ds.X_train).all() and np.allclose(ds.X_train[:, :4].mean(0), 0, atol=1e-5)
    again = seattle_weather.load_dataset()
    assert np.array_equal(again.X_test, ds.X_test) and np.array_equal(again.y_test, ds.y_test)


def test_client_learns_well_above_the_majority_class(ds) -> None:
    client = seattle_weather.make_client(ds.train, ds.test, seed=0)
    p0 = client.get_parameters({})
    before = client.evaluate(p0, {})[2]["accuracy"]
    p, n, _ = client.fit(p0, {"local_epochs": 10})
    after = client.evaluate(p, {})[2]["accuracy"]
    assert n == len(ds.y_train) and before < 0.4
    assert after >= _majority(ds.y_test) + 0.12, (before, after, _majority(ds.y_test))


def test_bad_csv_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "seattle-weather.csv").write_text("date,precipitation\n2012/01/01,0.0\n")
    with pytest.raises(BDFLError, match="cannot read"):
        seattle_weather.load_dataset(str(tmp_path))


def test_a_short_bdfl_run_learns(tmp_path: Path, ds) -> None:
    cfg = load_config(None, {
        "peers": 4, "rounds": 2, "workers": 1, "attack.fraction": 0.0, "task.client": "clients.seattle_weather",
        "protocol.committee_size": 4, "protocol.auditors_per_update": 3, "protocol.quorum": 2, "overlay.degree": 3,
        "task.local_epochs": 5, "task.alpha": 5.0,
    })
    out = tmp_path / "run"
    run_experiment(cfg, quiet=True, out=out)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["rounds_completed"] == 2
    with open(out / "metrics.csv", newline="") as fh:
        last = [r for r in csv.DictReader(fh) if r["round"] == "2"]
    assert len(last) == 4
    assert all(float(r["accuracy"]) >= _majority(ds.y_test) + 0.08 for r in last), last
