"""experiments/audit_rule_eval.py (the measurement behind docs/learning.md): the chain-free
mirror drives the round engine's stages over an in-memory chain (bdfl.peer.memory_chain)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("audit_rule_eval", ROOT / "experiments" / "audit_rule_eval.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def test_audit_rule_eval_runs(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    """A tiny run at the library's defaults (committee 9/8/5): noisy attackers' updates are
    rejected by the committee on the memory chain, honest ones are not; every rule of the
    table is reported, and re-judging the audits offline under the voting rule gives exactly
    the votes the engine cast."""
    mod = _script()
    out = tmp_path / "r.json"
    assert mod.main(["--attacks", "none", "gaussian_noise", "--seeds", "0", "--rounds", "3", "--peers", "10",
                     "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "vote FRR" in text and "gaussian_noise" in text and "committee 9/8/5" in text
    assert all(f"\n{rule} " in text for rule in mod.RULES)
    runs = json.loads(out.read_text())["runs"]
    assert {r["attack"] for r in runs} == {"none", "gaussian_noise"}
    assert all(r["rejudge_mismatches"] == 0 for r in runs)
    noise = next(r for r in runs if r["attack"] == "gaussian_noise")
    assert noise["vote_dr"] > 0.5 and noise["vote_frr"] < 0.1
    # the chain's decisions: attackers' updates rejected far more often than honest ones
    assert noise["decision_dr"] > 0.5 > noise["decision_frr"]
    assert sum(row["attackers_rejected"] for row in noise["rounds"]) > sum(row["honest_rejected"] for row in noise["rounds"])
    assert all(row["committee"] == 9 for row in noise["rounds"])  # every member eligible and staked: a full committee
    # the rules differ on the same evidence: without the distance detector less noise is caught
    votes = noise["votes"]
    assert votes["without distance"]["attacker"][0] < votes["default"]["attacker"][0]


def test_the_mirror_rejects_replayed_updates_like_peer_audit(tmp_path: Path) -> None:
    """A free-rider re-publishes a received model bit for bit. With unbound update bytes, from
    round 2 on the engine's replay check (the round state's replay cache, ``Peer.audit``)
    rejects it unjudged; ``--replay-window 0`` turns it off. With bytes bound to their
    submission (as in `bdfl run`, the default) the copy is new bytes: no replay, and the
    free-riders' identical round-0 updates do not collide on chain either."""
    mod = _script()
    runs = {}
    for name, flags in (("window 3", ["--unbound-updates"]), ("window 0", ["--unbound-updates", "--replay-window", "0"]),
                        ("bound", [])):
        out = tmp_path / "r.json"
        assert mod.main(["--attacks", "free_rider", "--seeds", "0", "--rounds", "3", "--peers", "10", *flags,
                         "--json", str(out)]) == 0
        runs[name] = json.loads(out.read_text())["runs"][0]
    assert runs["window 3"]["failed_tests"]["attacker"].get("replayed", 0) > 0
    assert "replayed" not in runs["window 3"]["failed_tests"]["honest"]
    assert "replayed" not in runs["window 0"]["failed_tests"]["attacker"]
    assert runs["window 3"]["duplicates"] > 0  # three free-riders publish the same initial model in round 0
    assert "replayed" not in runs["bound"]["failed_tests"]["attacker"]
    assert runs["bound"]["rejudge_mismatches"] == 0 and runs["bound"]["duplicates"] == 0
