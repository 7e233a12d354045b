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
    # the default experiment's committee (9 seats, 8 auditors per update): each auditor judges
    # most updates, enough candidates for the calibrated bars (with 3-4 the bars widen 2-3.5x)
    assert mod.main(["--attacks", "none", "gaussian_noise", "--seeds", "0", "--rounds", "3",
                     "--peers", "10", "--max-reject-share", "0", "--dissent-limit", "0.5", "--committee", "9",
                     "--auditors-per-update", "8", "--quorum", "5", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "vote FRR" in text and "gaussian_noise" in text
    runs = json.loads(out.read_text())["runs"]
    assert {r["attack"] for r in runs} == {"none", "gaussian_noise"}
    noise = next(r for r in runs if r["attack"] == "gaussian_noise")
    assert noise["vote_dr"] > 0.5 and noise["vote_frr"] < 0.1


def test_the_mirror_rejects_replayed_updates_like_peer_audit(tmp_path: Path) -> None:
    """A free-rider re-publishes a received model bit for bit: from round 2 on, the mirror's
    replay check (as ``Peer.audit``'s) rejects it unjudged; ``--replay-window 0`` turns it off."""
    spec = importlib.util.spec_from_file_location("audit_rule_eval", ROOT / "experiments" / "audit_rule_eval.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    failed = {}
    for window in (3, 0):
        out = tmp_path / f"w{window}.json"
        assert mod.main(["--attacks", "free_rider", "--seeds", "0", "--rounds", "3", "--peers", "10",
                         "--replay-window", str(window), "--json", str(out)]) == 0
        failed[window] = json.loads(out.read_text())["runs"][0]["failed_tests"]["attacker"]
    assert failed[3].get("replayed", 0) > 0
    assert "replayed" not in failed[0]
