"""`bdfl run` records an auditor's abstention (an assigned update it could not fetch) as an
``AuditAbstained`` line in events.jsonl (docs/results-format.md), matching the chain's
account of the vote: that auditor cast no vote on that update."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from bdfl.config import load_config
from bdfl.experiment.runner import run_experiment


def test_abstentions_are_recorded_as_events(tmp_path: Path) -> None:
    # peer 3's endpoint drops every connection from the aggregation of round 2 on
    # (docs/faults.md): its auditors in round 3 cannot fetch its update and abstain
    cfg = load_config(None, {
        "name": "abstained", "seed": 5, "peers": 8, "rounds": 3, "workers": 2,
        "attack.name": "none", "attack.fraction": 0.0,
        "net.fetch_timeout": 0.5, "net.fetch_retries": 0,
        "faults": [{"kind": "drop_endpoint", "round": 2, "peer": 3, "rounds": 1}],
    })
    out = tmp_path / "run"
    assert run_experiment(cfg, quiet=True, out=out) == out
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    abstained = [e for e in events if e["event"] == "AuditAbstained"]
    assert abstained, "no AuditAbstained line although peer 3's endpoint dropped every fetch"
    with open(out / "metrics.csv", newline="") as fh:
        address = {int(r["peer"]): r["address"] for r in csv.DictReader(fh)}
    finalized = {e["args"]["index"]: e["args"] for e in events
                 if e["event"] == "UpdateFinalized" and e["args"]["round"] == 2}
    auditors = set()
    for e in abstained:
        a = e["args"]
        assert e["round"] == 3 and e["chain_round"] == 2 and a["reason"] == "fetch failed: connection"
        assert a["submitter"] == address[3]
        # the update index is the chain's index of peer 3's submission, decided without votes
        assert finalized[a["update"]]["peer"] == address[3]
        assert finalized[a["update"]]["accepts"] + finalized[a["update"]]["rejects"] == 0
        auditors.add(a["auditor"])
    assert len(auditors) == len(abstained) and 3 not in auditors  # one line per auditor and update
