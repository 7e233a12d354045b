"""`bdfl run --chain hardhat --rounds 3` end to end (issue 19, finding 7).

Hardhat 2 enforces the EIP-7825 per-transaction gas cap (2**24 = 16,777,216): a transaction
asking for more is refused at submission. Before issue 19 every finalize asked for 17,000,000
gas and the run failed in round 1; now every round completes on Hardhat, and no transaction
of the run asked for more than the cap.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.chain, pytest.mark.slow]


def test_hardhat_run_of_three_rounds_completes(tmp_path: Path) -> None:
    out = tmp_path / "hh"
    cmd = [sys.executable, "-m", "bdfl", "run", "--chain", "hardhat", "--rounds", "3", "--peers", "8", "--workers", "2",
           "--set", "protocol.committee_size=5", "--set", "overlay.degree=3", "--quiet", "--out", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "status:                             completed (3 rounds, 8 peers" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rounds"] == 3 and summary["last_round"] == 3
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    closed = [e for e in events if e["event"] == "RoundFinalized"]
    assert len(closed) >= 3
    assert int(json.loads((out / "deployment.json").read_text())["chainId"]) == 31337  # it ran on Hardhat
