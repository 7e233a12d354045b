"""The Submit-phase seal in a real run (anvil, two worker processes): honest peers never meet
it, the worst-case attackers read through the simulator's side channel only when the run says
so, and a copier that knows only what the protocol serves is left with last round's models,
which the audit's replay check rejects (bdfl.net.blobserver.SubmitSeal, attack.knowledge)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from bdfl.config import load_config
from bdfl.experiment.runner import run_experiment

ROOT = Path(__file__).resolve().parents[2]
# Mimic with exact copies, 2 of 8 peers, 3 rounds; the committee scaled to 8 peers as tests/e2e/test_run.py's
MIMIC = {
    "name": "seal", "peers": 8, "rounds": 3, "workers": 2, "attack.name": "mimic", "attack.fraction": 0.25,
    "protocol.committee_size": 5, "protocol.auditors_per_update": 3, "protocol.quorum": 2, "overlay.degree": 3,
    "task.local_epochs": 2,
}


def _run(tmp_path_factory: pytest.TempPathFactory, knowledge: str) -> Path:
    out = tmp_path_factory.mktemp(f"seal-{knowledge}") / "run"
    cfg = load_config(ROOT / "experiments" / "configs" / "default.toml", {**MIMIC, "attack.knowledge": knowledge})
    return run_experiment(cfg, quiet=True, out=out)


def _events(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]


def _attackers(out: Path, column: str = "address") -> set[str]:
    with open(out / "metrics.csv", newline="") as fh:
        return {r[column] for r in csv.DictReader(fh) if r["attacker"] == "1"}


@pytest.fixture(scope="module")
def protocol_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run(tmp_path_factory, "protocol")


@pytest.fixture(scope="module")
def omniscient_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run(tmp_path_factory, "omniscient")


def test_honest_fetches_never_meet_the_seal(protocol_run: Path, omniscient_run: Path) -> None:
    for out in (protocol_run, omniscient_run):
        summary = json.loads((out / "summary.json").read_text())
        assert summary["status"] == "completed" and summary["honest_rejected_total"] == 0
        assert not [e for e in _events(out) if e["event"] == "AuditAbstained"]  # every assigned update fetched


def test_a_copier_with_the_protocols_knowledge_reads_nothing_this_round_and_its_copies_are_rejected(protocol_run: Path) -> None:
    events = _events(protocol_run)
    traffic = [e["args"] for e in events if e["event"] == "RoundTraffic"]
    assert len(traffic) == 3 and all(t["submit_bodies"] == 0 and t["submit_local_bodies"] == 0 for t in traffic)
    attackers = _attackers(protocol_run)
    republished = {(e["round"], e["args"]["from"]) for e in events
                   if e["event"] == "InputRejected" and e["args"]["reason"] == "republished"}
    # round 1: nothing received yet, Mimic sends its own trained model; from round 2 its copies
    # are last round's models, which the replay check finds (and only those)
    assert {a for _r, a in republished} == attackers
    assert {r for r, _a in republished} == {2, 3}


def test_the_worst_case_attackers_read_the_rounds_honest_updates_through_the_side_channel(omniscient_run: Path) -> None:
    traffic = [e["args"] for e in _events(omniscient_run) if e["event"] == "RoundTraffic"]
    # each round every worker hosting an attacker (peers go to workers round-robin) read the 6
    # honest updates before the Submit phase ended: over HTTP from the other worker's sealed
    # endpoints, in process from its own
    workers = {int(i) % 2 for i in _attackers(omniscient_run, "peer")}
    assert len(traffic) == 3 and all(t["submit_bodies"] + t["submit_local_bodies"] == 6 * len(workers) for t in traffic)
    assert all(t["submit_bodies"] > 0 for t in traffic)
