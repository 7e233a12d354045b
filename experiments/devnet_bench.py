"""Measure the devnet backends: start-up, transaction throughput, memory.

    .venv/bin/python experiments/devnet_bench.py [--txs 300] [--repeats 3]

Writes experiments/results/devnet_bench.{csv,md}. Throughput uses BDFL's own
TxSender (local nonces, local signing, 5 ms receipt polling), i.e. what a run gets:
"sequential" waits for each receipt before the next send, "batched" sends all then
waits for all receipts.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
from pathlib import Path

import psutil

from bdfl.chain.accounts import devnet_account
from bdfl.chain.devnet import start_devnet
from bdfl.chain.txsender import TxSender

OUT = Path(__file__).resolve().parent / "results"


def measure(backend: str, txs: int) -> dict[str, float]:
    t0 = time.perf_counter()
    devnet = start_devnet(backend, accounts=2)
    ready = time.perf_counter() - t0
    try:
        time.sleep(1.0)
        rss = psutil.Process(devnet.pid).memory_info().rss / 2**20 if devnet.pid else float("nan")
        for child in psutil.Process(devnet.pid).children(recursive=True):
            rss += child.memory_info().rss / 2**20
        w3 = devnet.w3()
        sender = TxSender(w3, devnet_account(0))
        to = devnet_account(1).address
        t = time.perf_counter()
        for _ in range(txs):
            sender.wait(sender.send_transaction({"to": to, "value": 1}))
        seq = txs / (time.perf_counter() - t)
        t = time.perf_counter()
        hashes = [sender.send_transaction({"to": to, "value": 1}) for _ in range(txs)]
        sender.wait_all(hashes)
        batched = txs / (time.perf_counter() - t)
    finally:
        devnet.stop()
    return {"ready_s": ready, "tx_per_s_sequential": seq, "tx_per_s_batched": batched, "idle_rss_mib": rss}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--txs", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    rows = []
    for backend in ("anvil", "hardhat"):
        runs = [measure(backend, args.txs) for _ in range(args.repeats)]
        row = {"backend": backend, **{k: statistics.median(r[k] for r in runs) for k in runs[0]}}
        rows.append(row)
        print(row, flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / "devnet_bench.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    lines = [
        f"Devnet backends, median of {args.repeats} runs, {args.txs} transfers each (2 cores).",
        "",
        "| backend | RPC ready (s) | tx/s sequential | tx/s batched | idle RSS (MiB) |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['backend']} | {r['ready_s']:.2f} | {r['tx_per_s_sequential']:.0f} | {r['tx_per_s_batched']:.0f} | {r['idle_rss_mib']:.0f} |")
    (OUT / "devnet_bench.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
