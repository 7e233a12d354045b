"""`bdfl run` with ``chain.submission = "relayed"`` against the same run with direct
submissions: the workers' relayers post every peer's signed submission, so the learning is
the same round for round (same submission order, same beacons, same committees) while the
chain sees fewer transactions and less gas; no entry needed a direct fallback."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from bdfl.config import from_dict
from bdfl.experiment.runner import run_experiment

SMALL = {
    "name": "relay",
    "peers": 6,
    "rounds": 2,
    "workers": 2,
    "attack": {"name": "sign_flip", "fraction": 0.2},
    "protocol": {"committee_size": 4, "auditors_per_update": 3, "quorum": 2},
    "overlay": {"degree": 3},
    "task": {"local_epochs": 1},
}


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _run(tmp_path: Path, mode: str) -> Path:
    cfg = from_dict({**SMALL, "chain": {"submission": mode}})
    return run_experiment(cfg, quiet=True, out=tmp_path / mode)


@pytest.mark.slow
def test_relayed_run_learns_the_same_with_fewer_transactions_and_less_gas(tmp_path: Path) -> None:
    direct, relayed = _run(tmp_path, "direct"), _run(tmp_path, "relayed")
    d_rows, r_rows = _rows(direct / "rounds.csv"), _rows(relayed / "rounds.csv")
    assert len(d_rows) == len(r_rows) == SMALL["rounds"]
    same = ("honest_accuracy", "attacker_accuracy", "approved", "rejected", "honest_rejected", "attackers_approved")
    for d, r in zip(d_rows, r_rows, strict=True):
        assert {k: d[k] for k in same} == {k: r[k] for k in same}
        assert int(r["approved"]) + int(r["rejected"]) == SMALL["peers"]  # every peer's update landed
        # 6 direct submitUpdate transactions become 2 workers x (honest, attackers) batches at most
        assert int(r["tx_count"]) < int(d["tx_count"])
        assert int(r["gas_used"]) < int(d["gas_used"])
    events = [json.loads(line) for line in (relayed / "events.jsonl").read_text().splitlines() if line.strip()]
    assert not [e for e in events if e.get("event") == "RelayFallback"]
    assert (relayed / "metrics.csv").read_text() == (direct / "metrics.csv").read_text()
