"""Smoke test of experiments/audit_rule_eval.py (the measurement behind docs/learning.md)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_audit_rule_eval_runs(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    spec = importlib.util.spec_from_file_location("audit_rule_eval", ROOT / "experiments" / "audit_rule_eval.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "r.json"
    assert mod.main(["--attacks", "none", "gaussian_noise", "--seeds", "0", "--rounds", "3",
                     "--peers", "10", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "vote FRR" in text and "gaussian_noise" in text
    runs = json.loads(out.read_text())["runs"]
    assert {r["attack"] for r in runs} == {"none", "gaussian_noise"}
    noise = next(r for r in runs if r["attack"] == "gaussian_noise")
    assert noise["vote_dr"] > 0.5 and noise["vote_frr"] < 0.1
