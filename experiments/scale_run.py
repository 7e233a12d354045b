"""One ``bdfl run`` at a given N, measured for issue 23's 10,000-peer item.

    nice -n 10 .venv/bin/python experiments/scale_run.py --peers 1000 --rounds 2 \\
        --config experiments/configs/scale_10k.toml --out /tmp/s-1000

Runs ``bdfl run`` in a subprocess and samples the whole process tree (orchestrator,
workers, anvil) once a second: peak RSS of the tree and of each kind of process at that
peak, open file descriptors and TCP connections at their peaks. Afterwards it reads the
results folder: set-up steps from run.log (funding, workers started, joins), per-round
phase seconds, tx count and gas from rounds.csv, and the gas of every transaction from
anvil's log (devnet.log, "Gas used:" lines) for the largest one, and that gas split by
transaction kind (submitBatch, commitVotes, revealVotes, finalize, ...: the events each
transaction emitted, events.jsonl; ``--gas-by-kind`` does only this for a finished run). Writes ``scale.json``
next to the results folder (``<out>.scale.json``) and prints a summary.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from bdfl.experiment.results import source_commit

ROOT = Path(__file__).resolve().parent.parent
GiB = 1024**3
GAS_CAP = 2**24
SETUP_LINE = re.compile(r"^\[\s*([\d.]+)s\] (.*)$")


class TreeSampler(threading.Thread):
    """Samples RSS and fds of a process and its descendants every ``period`` s (TCP
    connections every tenth sample)."""

    def __init__(self, pid: int, period: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.period = period
        self.stop = threading.Event()
        self.peak_rss = 0
        self.peak_breakdown: dict[str, int] = {}
        self.peak_procs = 0
        self.peak_fds = 0
        self.peak_conns = 0
        self.samples: list[tuple[float, int]] = []
        self.t0 = time.monotonic()

    def _kind(self, p: psutil.Process) -> str:
        try:
            name = p.name()
            cmd = " ".join(p.cmdline()[:4])
        except psutil.Error:
            return "?"
        if "anvil" in name:
            return "anvil"
        if p.pid == self.root.pid:
            return "orchestrator"
        if "multiprocessing" in cmd or "python" in name:
            return "worker"
        return name

    def sample(self) -> None:
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return
        rss = fds = conns = 0
        kinds: dict[str, int] = {}
        for p in procs:
            try:
                r = p.memory_info().rss
                rss += r
                k = self._kind(p)
                kinds[k] = kinds.get(k, 0) + r
                fds += p.num_fds()
                if len(self.samples) % 10 == 0:  # parsing /proc/net/tcp of 10,000+ sockets costs CPU
                    conns += len(p.net_connections(kind="tcp"))
            except psutil.Error:
                continue
        self.samples.append((time.monotonic() - self.t0, rss))
        if rss > self.peak_rss:
            self.peak_rss, self.peak_breakdown = rss, kinds
        self.peak_procs = max(self.peak_procs, len(procs))
        self.peak_fds = max(self.peak_fds, fds)
        self.peak_conns = max(self.peak_conns, conns)

    def run(self) -> None:
        while not self.stop.is_set():
            self.sample()
            self.stop.wait(self.period)


def setup_steps(run_log: Path) -> list[tuple[float, str]]:
    """(seconds since start, message) of run.log's lines up to the first round."""
    steps: list[tuple[float, str]] = []
    if not run_log.exists():
        return steps
    for line in run_log.read_text(errors="replace").splitlines():
        m = SETUP_LINE.match(line)
        if m:
            steps.append((float(m.group(1)), m.group(2)))
    return steps


def logged_txs(devnet_log: Path) -> list[tuple[str, int | None, int, bool]]:
    """(hash, block, gas, contract creation) of every transaction anvil logged, in order.

    anvil logs a block's transactions before its "Block Number:" line, each with the
    block's *cumulative* gas so far: a transaction's gas is the difference to the one before.
    The block is None for the transactions of a last block whose number the log does not reach."""
    txs: list[tuple[str, int | None, int, bool]] = []
    if not devnet_log.exists():
        return txs
    block: list[list[Any]] = []
    cumulative = 0
    with open(devnet_log, errors="replace") as fh:
        for line in fh:
            s = line.strip()
            if s.startswith("Transaction:"):
                block.append([s.split(":", 1)[1].strip().lower(), 0, False])
            elif s.startswith("Contract created:") and block:
                block[-1][2] = True
            elif s.startswith("Gas used:") and block:
                total = int(s.split(":", 1)[1].strip().replace(",", ""))
                block[-1][1] = total - cumulative
                cumulative = total
            elif s.startswith("Block Number:"):
                number = int(s.split(":", 1)[1].strip())
                txs += [(h, number, g, c) for h, g, c in block]
                block, cumulative = [], 0
    return txs + [(h, None, g, c) for h, g, c in block]


def tx_gases(txs: list[tuple[str, int | None, int, bool]]) -> tuple[list[int], list[int]]:
    """Gas of every contract call of :func:`logged_txs`, and of every contract creation (deployment)."""
    return [g for _h, _b, g, c in txs if not c], [g for _h, _b, g, c in txs if c]


#: A transaction's kind from the events it emitted (first match wins, in this order).
TX_KINDS = (("submitBatch", "UpdateSubmitted", 2), ("submitUpdate", "UpdateSubmitted", 1),
            ("revealVotes", "VotesRevealed", 1), ("commitVotes", "VotesCommitted", 1),
            ("finalize", "FinalizeProgress", 1), ("finalize", "UpdateFinalized", 1), ("finalize", "RoundFinalized", 1),
            ("advance", "PhaseAdvanced", 1), ("advance", "RoundOpened", 1), ("join", "PeerJoined", 1))


def gas_by_kind(out: Path, txs: list[tuple[str, int | None, int, bool]] | None = None) -> dict[str, Any]:
    """Gas of the rounds' transactions split by kind, from anvil's log (hash, block, gas) and
    events.jsonl (the events each transaction emitted). A transaction's round is the ``round``
    argument of its first event that has one, else that of the last such event at or before its
    block (none: a set-up transaction, left out); chain round r is rounds.csv's round r + 1. The kind comes from its events (:data:`TX_KINDS`:
    ``submitBatch`` is a transaction with two or more ``UpdateSubmitted``); a transaction that
    emitted none of them counts as ``other``. ``txs``: :func:`logged_txs` of the run's devnet.log
    when the caller has read it already. Per kind: transactions, gas, and gas per peer per
    round (the kind's gas over the rounds divided by peers x rounds, peers = the submissions of
    the round)."""
    events: dict[str, dict[str, int]] = {}
    seen: list[tuple[int, int]] = []  # (block, round argument) of every event that has one
    tx_round: dict[str, int] = {}  # the round argument of a transaction's first event that has one
    path = out / "events.jsonl"
    if path.exists():
        with open(path, errors="replace") as fh:
            for line in fh:
                e = json.loads(line)
                tx = str(e.get("tx", "")).lower()
                if not tx:
                    continue
                name = str(e.get("event", ""))
                by = events.setdefault(tx, {})
                by[name] = by.get(name, 0) + 1
                if "round" in e.get("args", {}):
                    tx_round.setdefault(tx, int(e["args"]["round"]))
                    seen.append((int(e["block"]), int(e["args"]["round"])))
    seen.sort()
    per_round: dict[int, dict[str, list[int]]] = {}
    submissions: dict[int, int] = {}
    for h, block, gas, created in logged_txs(out / "devnet.log") if txs is None else txs:
        if block is None:  # a block the log does not finish
            continue
        rnd = tx_round.get(h)
        if rnd is None:
            rnd = next((r for b, r in reversed(seen) if b <= block), None)
        if rnd is None or created:  # set-up: before the first round's first event
            continue
        rnd += 1  # chain round 0 is the run's round 1 (rounds.csv)
        emitted = events.get(h, {})
        kind = next((k for k, ev, least in TX_KINDS if emitted.get(ev, 0) >= least), "other")
        submissions[rnd] = submissions.get(rnd, 0) + emitted.get("UpdateSubmitted", 0)
        cell = per_round.setdefault(rnd, {}).setdefault(kind, [0, 0])
        cell[0] += 1
        cell[1] += gas
    rounds_ = sorted(per_round)
    kinds = sorted({k for r in per_round.values() for k in r})
    peer_rounds = sum(submissions.get(r, 0) for r in rounds_)
    total = {k: [sum(per_round[r].get(k, [0, 0])[i] for r in rounds_) for i in (0, 1)] for k in kinds}
    return {"rounds": {r: {k: {"tx": c[0], "gas": c[1], "gas_per_peer": c[1] / max(1, submissions.get(r, 0))}
                           for k, c in per_round[r].items()} for r in rounds_},
            "submissions": submissions,
            "total": {k: {"tx": c[0], "gas": c[1], "gas_per_peer_round": c[1] / max(1, peer_rounds)} for k, c in total.items()}}


def print_gas_by_kind(split: dict[str, Any]) -> None:
    total = split["total"]
    kinds = sorted(total, key=lambda k: -total[k]["gas"])
    print("  gas per peer per round by kind (rounds' transactions; peers = submissions of the round):")
    print("    round " + " ".join(f"{k:>13}" for k in kinds) + "         all")
    for r, row in split["rounds"].items():
        print(f"    {r:>5} " + " ".join(f"{row.get(k, {}).get('gas_per_peer', 0):>13,.0f}" for k in kinds)
              + f" {sum(c['gas_per_peer'] for c in row.values()):>11,.0f}")
    print("      all " + " ".join(f"{total[k]['gas_per_peer_round']:>13,.0f}" for k in kinds)
          + f" {sum(c['gas_per_peer_round'] for c in total.values()):>11,.0f}")
    print("      tx  " + " ".join(f"{total[k]['tx']:>13,}" for k in kinds))


def abstentions(out: Path) -> dict[int, dict[str, int]]:
    """Per round: the assigned audits that got no vote (``AuditAbstained`` events of
    events.jsonl), counted by reason."""
    per: dict[int, dict[str, int]] = {}
    path = out / "events.jsonl"
    if not path.exists():
        return per
    with open(path, errors="replace") as fh:
        for line in fh:
            if '"AuditAbstained"' not in line:
                continue
            e = json.loads(line)
            reason = str(e.get("args", {}).get("reason", "?"))
            by = per.setdefault(int(e.get("round", 0)), {})
            by[reason] = by.get(reason, 0) + 1
    return per


def rounds(out: Path) -> list[dict[str, str]]:
    path = out / "rounds.csv"
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peers", type=int, required=True)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--config", default=str(ROOT / "experiments" / "configs" / "scale_10k.toml"))
    ap.add_argument("--out", required=True, help="results folder of the run (outside the repository)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--timeout", type=float, help="seconds before the run is stopped (SIGTERM)")
    ap.add_argument("--gas-by-kind", action="store_true",
                    help="only split the gas of the finished run in --out by transaction kind (writes <out>.gas_kinds.json)")
    args = ap.parse_args()

    out = Path(args.out)
    if args.gas_by_kind:  # post-processing of an existing results folder only
        split = gas_by_kind(out)
        Path(str(out) + ".gas_kinds.json").write_text(json.dumps(split, indent=1))
        print_gas_by_kind(split)
        return 0
    cmd = [sys.executable, "-m", "bdfl", "run", "--config", args.config, "--out", str(out),
           "--set", f"peers={args.peers}", "--set", f"rounds={args.rounds}"]
    for s in args.set:
        cmd += ["--set", s]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    log = Path(str(out) + ".log")
    t0 = time.monotonic()
    with open(log, "w") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, env=env)
        sampler = TreeSampler(proc.pid)
        sampler.start()
        try:
            rc = proc.wait(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            proc.terminate()  # bdfl run ends its workers and anvil on SIGTERM
            try:
                rc = proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = proc.wait()
        except KeyboardInterrupt:
            proc.terminate()
            rc = proc.wait()
        sampler.stop.set()
        sampler.join()
    wall = time.monotonic() - t0

    rows = rounds(out)
    abstained = abstentions(out)
    txs = logged_txs(out / "devnet.log")  # anvil's log read once, for both the gas list and the split by kind
    gases, creations = tx_gases(txs)
    steps = setup_steps(out / "run.log")
    first_round_at = next((t for t, m in steps if m.startswith("all peers joined")), None)
    phases = ("train", "exchange", "audit", "chain", "eval")
    result: dict[str, Any] = {
        "peers": args.peers, "rounds_asked": args.rounds, "rc": rc, "wall_s": wall,
        "cmd": cmd, "config": args.config, "sets": args.set,
        "commit": source_commit(),  # an export's stamped commit, else the checkout's HEAD
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "peak_tree_rss_gib": sampler.peak_rss / GiB,
        "peak_breakdown_gib": {k: v / GiB for k, v in sampler.peak_breakdown.items()},
        "peak_processes": sampler.peak_procs, "peak_fds": sampler.peak_fds, "peak_tcp_connections": sampler.peak_conns,
        "setup_steps": steps, "setup_s": first_round_at,
        "rounds_done": len(rows),
        "rounds": [{"round": int(r["round"]), "seconds_total": float(r["seconds_total"]), "tx_count": int(r["tx_count"]),
                    "gas_used": int(r["gas_used"]), "gas_per_peer": int(r["gas_used"]) / args.peers,
                    "approved": int(r["approved"] or 0), "rejected": int(r["rejected"] or 0),
                    "honest_rejected": int(r["honest_rejected"] or 0),
                    "abstained": sum(abstained.get(int(r["round"]), {}).values()), "abstained_by_reason": abstained.get(int(r["round"]), {}),
                    **{k: float(r[f"seconds_{k}"]) for k in phases}} for r in rows],
        "transactions_logged": len(gases), "max_tx_gas": max(gases, default=0),
        "txs_over_cap": sum(g >= GAS_CAP for g in gases), "max_deploy_gas": max(creations, default=0),
        "gas_top10": sorted(gases)[-10:],
        "gas_by_kind": gas_by_kind(out, txs),
        "rss_timeline": sampler.samples[:: max(1, len(sampler.samples) // 400)],
    }
    Path(str(out) + ".scale.json").write_text(json.dumps(result, indent=1))
    print(f"N={args.peers} rc={rc} wall {wall:.0f}s set-up (until all joined) {first_round_at}s rounds {len(rows)}/{args.rounds}")
    for t, m in steps:
        if not m.startswith("round "):
            print(f"  [{t:8.1f}s] {m}")
    for r in result["rounds"]:
        print(f"  round {r['round']}: {r['seconds_total']:.1f}s " + " ".join(f"{k} {r[k]:.1f}" for k in phases)
              + f" tx {r['tx_count']} gas {r['gas_used']:,} ({r['gas_per_peer']:,.0f}/peer) approved {r['approved']}"
              f" rejected {r['rejected']} (honest {r['honest_rejected']}) abstained {r['abstained']} {r['abstained_by_reason'] or ''}")
    print(f"  peak tree RSS {result['peak_tree_rss_gib']:.2f} GiB " + str({k: round(v, 2) for k, v in result['peak_breakdown_gib'].items()}))
    print(f"  peak processes {sampler.peak_procs} fds {sampler.peak_fds} tcp {sampler.peak_conns}")
    print(f"  max tx gas (calls) {result['max_tx_gas']:,} ({result['max_tx_gas'] / GAS_CAP:.2f} of 2^24), over cap {result['txs_over_cap']},"
          f" {len(gases)} calls; largest deployment {result['max_deploy_gas']:,}")
    print_gas_by_kind(result["gas_by_kind"])
    return 0 if rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
