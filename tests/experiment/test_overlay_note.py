"""A run whose drawn overlay is not connected says so when the overlay is built (an outside
probe's Erdős–Rényi run at edge probability 0.01 ended "degraded: no peer aggregated any update"
with nothing pointing to the overlay)."""

from __future__ import annotations

from pathlib import Path

from bdfl.config import load_config
from bdfl.experiment import runner


def test_a_disconnected_overlay_is_named_when_it_is_built(tmp_path: Path) -> None:
    cfg = load_config(None, {"peers": 6, "rounds": 1, "workers": 1, "attack.name": "none", "attack.fraction": 0.0,
                             "overlay.topology": "erdos_renyi", "overlay.edge_probability": 0.01})
    out = runner.run_experiment(cfg, quiet=True, out=tmp_path / "run")
    log = (out / "run.log").read_text()
    assert "is not connected (topology erdos_renyi)" in log and "overlay.edge_probability" in log
    dense = load_config(None, {"peers": 6, "rounds": 1, "workers": 1, "attack.name": "none", "attack.fraction": 0.0})
    assert "is not connected" not in (runner.run_experiment(dense, quiet=True, out=tmp_path / "dense") / "run.log").read_text()
