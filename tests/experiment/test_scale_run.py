"""experiments/scale_run.py: reading a run's folder (pure, no runs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.experiment.scripts import experiment_script

# anvil's log of one block with a deployment and of one block with two calls: each
# "Gas used" is the block's cumulative gas so far, not the transaction's own
ANVIL_LOG = """
eth_sendRawTransaction

    Transaction: 0xaa
    Contract created: 0x5FbDB2315678afecb367f032d93F642f64180aa3
    Gas used: 871552

    Block Number: 1
    Block Hash: 0x94

eth_sendRawTransaction
eth_sendRawTransaction

    Transaction: 0xbb
    Gas used: 100000

    Transaction: 0xcc
    Gas used: 6100000

    Block Number: 2
    Block Hash: 0xcf

    Transaction: 0xdd
    Gas used: 51573

    Block Number: 3
"""


@pytest.fixture(scope="module")
def scale():  # noqa: ANN201
    with experiment_script("scale_run") as mod:
        yield mod


def test_transaction_gas_is_the_difference_of_the_blocks_cumulative_gas(scale, tmp_path: Path) -> None:  # noqa: ANN001
    log = tmp_path / "devnet.log"
    log.write_text(ANVIL_LOG)
    calls, creations = scale.tx_gases(scale.logged_txs(log))
    assert calls == [100000, 6000000, 51573]
    assert creations == [871552]


def test_setup_steps_read_run_log_lines(scale, tmp_path: Path) -> None:  # noqa: ANN001
    log = tmp_path / "run.log"
    log.write_text("[    3.9s] funding 10 peer accounts\nnot a step\n[  108.2s] all peers joined (set-up: 7 transactions)\n")
    assert scale.setup_steps(log) == [(3.9, "funding 10 peer accounts"), (108.2, "all peers joined (set-up: 7 transactions)")]


def test_sampler_sees_the_children_of_the_process(scale) -> None:  # noqa: ANN001
    child = subprocess.Popen([sys.executable, "-c", "import time; b = bytearray(64 << 20); time.sleep(5)"])
    try:
        time.sleep(1.0)
        sampler = scale.TreeSampler(os.getpid())
        sampler.sample()
        assert sampler.peak_procs >= 2
        assert sampler.peak_rss >= 64 << 20  # the child's 64 MiB buffer is counted
    finally:
        child.kill()
        child.wait()


def test_abstentions_are_counted_per_round_and_reason(scale, tmp_path: Path) -> None:  # noqa: ANN001
    lines = [
        '{"event": "AuditAbstained", "round": 1, "args": {"reason": "fetch failed: timeout"}}',
        '{"event": "UpdateSubmitted", "round": 1, "args": {"reason": "not an abstention"}}',
        '{"event": "AuditAbstained", "round": 1, "args": {"reason": "fetch failed: timeout"}}',
        '{"event": "AuditAbstained", "round": 2, "args": {"reason": "fetch failed: connection"}}',
    ]
    (tmp_path / "events.jsonl").write_text("\n".join(lines) + "\n")
    assert scale.abstentions(tmp_path) == {1: {"fetch failed: timeout": 2}, 2: {"fetch failed: connection": 1}}
    assert scale.abstentions(tmp_path / "missing") == {}


def test_gas_is_split_by_the_kind_and_round_of_each_transactions_events(scale, tmp_path: Path) -> None:  # noqa: ANN001
    (tmp_path / "devnet.log").write_text("""
    Transaction: 0x01
    Contract created: 0x5FbDB2315678afecb367f032d93F642f64180aa3
    Gas used: 900000

    Block Number: 1

    Transaction: 0x02
    Gas used: 150000

    Block Number: 2

    Transaction: 0x03
    Gas used: 300000

    Transaction: 0x04
    Gas used: 330000

    Block Number: 3

    Transaction: 0x05
    Gas used: 400000

    Transaction: 0x06
    Gas used: 470000

    Block Number: 4

    Transaction: 0x07
    Gas used: 90000

    Block Number: 5
""")
    ev = [  # a join (set-up), round 0's batch of two, its commit and finalize, an event-less call, round 1's direct submit
        ("0x02", 2, "PeerJoined", {}),
        ("0x03", 3, "UpdateSubmitted", {"round": 0}), ("0x03", 3, "UpdateSubmitted", {"round": 0}),
        ("0x04", 3, "VotesCommitted", {"round": 0}),
        ("0x05", 4, "UpdateFinalized", {"round": 0}), ("0x05", 4, "RoundFinalized", {"round": 0}),
        ("0x07", 5, "UpdateSubmitted", {"round": 1}),
    ]
    (tmp_path / "events.jsonl").write_text("".join(
        json.dumps({"block": b, "tx": tx, "event": name, "args": args}) + "\n" for tx, b, name, args in ev)
        + json.dumps({"source": "run", "event": "StartsRebuilt", "args": {}}) + "\n")
    split = scale.gas_by_kind(tmp_path)
    assert split["submissions"] == {1: 2, 2: 1}
    r1, r2 = split["rounds"][1], split["rounds"][2]
    assert r1["submitBatch"] == {"tx": 1, "gas": 300000, "gas_per_peer": 150000.0}
    assert r1["commitVotes"]["gas"] == 30000 and r1["finalize"]["gas"] == 400000
    assert r1["other"] == {"tx": 1, "gas": 70000, "gas_per_peer": 35000.0}  # no events: the round of the block's last event
    assert r2 == {"submitUpdate": {"tx": 1, "gas": 90000, "gas_per_peer": 90000.0}}
    assert split["total"]["finalize"]["gas_per_peer_round"] == 400000 / 3
