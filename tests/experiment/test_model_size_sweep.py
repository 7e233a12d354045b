"""experiments/model_size_sweep.py: the figures, growth check and results file (pure, no runs)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.experiment.scripts import experiment_script


@pytest.fixture(scope="module")
def sweep():  # noqa: ANN201
    with experiment_script("model_size_sweep") as mod:
        yield mod


def rounds_row(total: float, train: float, exchange: float, audit: float, chain: float, evaluate: float) -> dict[str, str]:
    return {"seconds_total": str(total), "seconds_train": str(train), "seconds_exchange": str(exchange),
            "seconds_audit": str(audit), "seconds_chain": str(chain), "seconds_eval": str(evaluate)}


def test_figures_take_the_last_round_and_the_bytes_between_the_last_two(sweep) -> None:  # noqa: ANN001
    costs = {"params": 1000.0, "update_bytes": 2 * 2**20, "encode_s": 0.1, "hash_s": 0.2, "decode_s": 0.3}
    run = {"peak_rss": 3 * 2**30, "bytes_at_round": [100, 1100, 5100]}
    rows = [rounds_row(50, 1, 1, 1, 1, 1), rounds_row(20, 4, 3, 6, 1, 2)]
    row = sweep.figures("1m", rows, costs, run)
    assert row["total_s"] == 20 and row["round1_total_s"] == 50 and row["rounds"] == 2
    assert row["other_s"] == pytest.approx(20 - (4 + 3 + 6 + 1 + 2))
    assert row["loopback_per_round"] == 4000  # round 3 minus round 2, not the set-up or round 1
    assert row["bytes_per_round"] is None and row["hash_round_s"] is None  # no RoundTraffic events
    assert row["overhead_s"] == pytest.approx(20 - 4 - 2)  # everything but training and the curves' eval
    assert row["overhead_s_per_mib"] == pytest.approx(14 / 2)
    assert sweep.figures("1m", rows, costs, {"peak_rss": 0, "bytes_at_round": [7]})["loopback_per_round"] is None
    with pytest.raises(ValueError):
        sweep.figures("1m", [], costs, run)


def test_growth_flags_a_superlinear_round_time(sweep) -> None:  # noqa: ANN001
    rows = [{"size": "a", "params": 10, "total_s": 1.0, "overhead_s": 0.5},
            {"size": "b", "params": 100, "total_s": 5.0, "overhead_s": 2.0},
            {"size": "c", "params": 200, "total_s": 11.0, "overhead_s": 3.0}]
    g = sweep.growth(rows)
    assert [x["at_most_linear"] for x in g] == [True, False]
    assert g[0]["params_ratio"] == 10 and g[0]["time_ratio"] == 5 and g[1]["overhead_ratio"] == 1.5


def test_results_file_keeps_the_hand_written_notes(sweep, tmp_path: Path) -> None:  # noqa: ANN001
    costs = {"params": 4810.0, "update_bytes": 19720.0, "encode_s": 0.0, "hash_s": 0.0, "decode_s": 0.0}
    row = sweep.figures("small", [rounds_row(1, 0.5, 0.1, 0.1, 0.1, 0.1)], costs,
                        {"peak_rss": 2**30, "bytes_at_round": [0]})
    meta = {"date": "2026-12-04", "commit": "abc1234", "machine": "2 cores", "load": "1.0", "command": "python x",
            "peers": "20", "rounds": "2"}
    out = tmp_path / "model-size.md"
    out.write_text("old table\n" + sweep.NOTES_MARK + "\n## Notes\nkept\n")
    out.write_text(sweep.markdown([row], meta=meta, notes=sweep.kept_notes(out)))
    text = out.read_text()
    assert "| small | 4,810 | 19,720 | - |" in text and "commit `abc1234`" in text and "python x" in text
    assert text.count(sweep.NOTES_MARK) == 1 and text.endswith("## Notes\nkept\n") and "old table" not in text
    assert sweep.kept_notes(tmp_path / "absent.md") == ""


def test_loopback_bytes_are_read_from_the_lo_line(sweep, tmp_path: Path) -> None:  # noqa: ANN001
    dev = tmp_path / "dev"
    dev.write_text("Inter-|   Receive\n face |bytes    packets\n  eth0: 999 1 0 0\n    lo: 123456 78 0 0 0\n")
    assert sweep.loopback_rx_bytes(dev) == 123456
    assert sweep.loopback_rx_bytes(tmp_path / "absent") == 0


def test_bytes_per_round_come_from_the_last_rounds_traffic_event(sweep, tmp_path: Path) -> None:  # noqa: ANN001
    events = tmp_path / "events.jsonl"
    lines = [{"event": "RoundFinalized", "round": 2, "args": {}},
             {"event": "RoundTraffic", "round": 1, "args": {"audit_fetched": 10, "audit_bodies": 1, "audit_served": 10,
                                                           "aggregate_fetched": 20, "aggregate_bodies": 2, "aggregate_served": 20}},
             {"event": "RoundTraffic", "round": 2, "args": {"audit_fetched": 300, "audit_bodies": 3, "audit_served": 290,
                                                           "aggregate_fetched": 40, "aggregate_bodies": 4, "aggregate_served": 50,
                                                           "submit_fetched": 0, "submit_bodies": 0, "submit_served": 0}}]
    events.write_text("".join(json.dumps(e) + "\n" for e in lines))
    traffic = sweep.read_traffic(events)
    assert sorted(traffic) == [1, 2] and sweep.read_traffic(tmp_path / "absent.jsonl") == {}
    costs = {"params": 1000.0, "update_bytes": 2 * 2**20, "encode_s": 0.1, "hash_s": 0.5, "decode_s": 0.3}
    rows = [rounds_row(50, 1, 1, 1, 1, 1) | {"round": "1"}, rounds_row(20, 4, 3, 6, 1, 2) | {"round": "2"}]
    row = sweep.figures("1m", rows, costs, {"peak_rss": 0, "peers": 20}, traffic)
    assert (row["bytes_per_round"], row["audit_bytes"], row["aggregate_bytes"], row["bodies"]) == (340, 300, 40, 7)
    assert row["hash_round_s"] == pytest.approx((7 + 20) * 0.5)  # each body hashed once on receipt, each publish once
    per = sweep.round_rows("1m", rows, traffic)
    assert [(x["round"], x["audit_bytes"], x["aggregate_bytes"], x["bodies"]) for x in per] == [(1, 10, 20, 3), (2, 300, 40, 7)]
    b = dict(row, size="11m", params=11000, total_s=200.0, overhead_s=140.0, bytes_per_round=3740)
    g = sweep.growth([row, b])[0]
    assert g["bytes_ratio"] == pytest.approx(11.0) and g["at_most_linear"] and g["round1_ratio"] == pytest.approx(1.0)
    text = sweep.markdown([dict(row, per_round=per)], meta={"date": "d", "commit": "c", "machine": "m", "load": "1",
                                                            "command": "x", "peers": "20", "rounds": "2"})
    assert "| 1m | 2 | 4.00 | 3.00 | 6.00 | 1.00 | 2.00 | 20.00 | 0.0 | 0.0 | 7 |" in text


def test_each_round_gets_its_share_of_the_trees_faults_and_cpu(sweep) -> None:  # noqa: ANN001
    import os
    import subprocess

    child = subprocess.Popen([sys.executable, "-c", "b = bytearray(64 << 20); import time; time.sleep(30)"])
    try:
        import time

        time.sleep(1.0)
        faults, user, kernel = sweep.tree_counters(os.getpid())
        assert faults >= (64 << 20) // (2 << 20) and user > 0 and kernel >= 0  # this process and the child
        alone, _, _ = sweep.tree_counters(child.pid)
        assert 0 < alone < faults
    finally:
        child.kill()
        child.wait()
    rows = [rounds_row(50, 1, 1, 1, 1, 1) | {"round": "1"}, rounds_row(20, 4, 3, 6, 1, 2) | {"round": "2"}]
    per = sweep.round_rows("1m", rows, {}, [(100, 1.0, 0.5), (1100, 5.0, 2.5), (1600, 7.5, 2.75)])
    assert [(x["faults"], x["user_cpu_s"], x["kernel_s"]) for x in per] == [(1000, 4.0, 2.0), (500, 2.5, 0.25)]
    assert "faults" not in sweep.round_rows("1m", rows, {})[0]  # runs saved before the counters: no column values
    text = sweep.markdown([{"size": "1m", "params": 1, "update_bytes": 1, "train_s": 1.0, "exchange_s": 1.0, "audit_s": 1.0,
                            "chain_s": 0.0, "eval_s": 0.0, "other_s": 0.0, "total_s": 3.0, "round1_total_s": 3.0,
                            "hash_s": 0.0, "decode_s": 0.0, "peak_rss": 0, "overhead_s": 2.0, "overhead_s_per_mib": 2.0,
                            "per_round": per}],
                          meta={"date": "d", "commit": "c", "machine": "m", "load": "1", "command": "x", "peers": "20", "rounds": "2"})
    assert "| 2.5 | 0.2 | 0 |" in text or "| 2.5 | 0.3 | 0 |" in text  # user s, kernel s, faults in thousands


def test_updates_read_add_the_in_process_reads_to_the_http_fetches(sweep, tmp_path: Path) -> None:  # noqa: ANN001
    """Since a worker reads its own peers' updates in process (Fetcher.local_bytes / local_bodies),
    the fetched figures count HTTP alone; "read" = HTTP + in process, shown beside them, and a run
    whose events predate the counter shows "-" in process (its read figure is the HTTP one)."""
    events = tmp_path / "events.jsonl"
    t2 = {"audit_fetched": 300, "audit_bodies": 3, "audit_served": 290, "audit_local_bytes": 200, "audit_local_bodies": 2,
          "aggregate_fetched": 40, "aggregate_bodies": 4, "aggregate_served": 50, "aggregate_local_bytes": 60,
          "aggregate_local_bodies": 5}
    events.write_text(json.dumps({"event": "RoundTraffic", "round": 2, "args": t2}) + "\n")
    traffic = sweep.read_traffic(events)
    costs = {"params": 1000.0, "update_bytes": 2 * 2**20, "encode_s": 0.1, "hash_s": 0.5, "decode_s": 0.3}
    rows = [rounds_row(50, 1, 1, 1, 1, 1) | {"round": "1"}, rounds_row(20, 4, 3, 6, 1, 2) | {"round": "2"}]
    row = sweep.figures("1m", rows, costs, {"peak_rss": 0, "peers": 20}, traffic)
    # the HTTP figures keep their meaning (a local_bodies key is not a bodies key)
    assert (row["bytes_per_round"], row["audit_bytes"], row["aggregate_bytes"], row["bodies"]) == (340, 300, 40, 7)
    assert (row["local_bytes"], row["local_bodies"], row["read_bytes"], row["updates_read"]) == (260, 7, 600, 14)
    assert row["hash_round_s"] == pytest.approx((7 + 20) * 0.5)  # an in-process read is not hashed again
    per = sweep.round_rows("1m", rows, traffic)
    assert [(x["round"], x["local_bytes"], x["read_bytes"], x["updates_read"]) for x in per] == \
        [(1, None, None, None), (2, 260, 600, 14)]
    big = dict(row, local_bytes=2_000_000, read_bytes=4_000_000, bytes_per_round=2_000_000, audit_bytes=1_500_000,
               aggregate_bytes=500_000)
    text = sweep.markdown([dict(big, per_round=per)], meta={"date": "d", "commit": "c", "machine": "m", "load": "1",
                                                            "command": "x", "peers": "20", "rounds": "2"})
    assert "| MB read/round (HTTP + in process) | updates read/round (HTTP + in process) |" in text
    assert "| 2.0 (1.5 + 0.5) | 7 | 2.0 | 7 | 4.0 | 14 |" in text
    assert "| 20.00 | 0.0 | 0.0 | 7 | 0.0 | 7 | 0.0 | 14 |" in text  # round 2's row: 600 bytes read
    old = {k: v for k, v in t2.items() if "local" not in k}  # a run before the counter
    r_old = sweep.figures("1m", rows, costs, {"peak_rss": 0, "peers": 20}, {2: old})
    assert (r_old["local_bytes"], r_old["read_bytes"], r_old["updates_read"]) == (None, 340, 7)
