"""Gas per function and per round of the BDFL protocol for N = 10, 100, 1000 members.

For each N: a fresh anvil devnet, the contracts deployed with the default
``ProtocolParams`` (K = 32 committee seats, m = 3 auditors per update, quorum 2), N peer
accounts derived deterministically (funded with ``anvil_setBalance`` and token transfers),
every peer joins, then two full rounds run: every member submits, the committee commits
and reveals honest votes (every tenth peer submits a poisoned update that the auditors
reject, so the slash path is measured too), and ``finalize`` runs in batches of
``--batch`` items that never straddle a finalize stage. ``--rounds`` rounds run (default
ROUNDS_KEPT + 1 = 5: the RoundManager reuses the per-index slots of round r - ROUNDS_KEPT;
since issue 23 a join makes those slots non-zero, so no round writes them for the first
time); the per-function tables report the last round, and one table gives every round's gas
per peer.

Transactions of one phase are sent without waiting and collected afterwards.

Writes ``experiments/results/gas_table.md`` and ``gas_table.csv`` and prints the table.

    python experiments/gas_table.py                  # N = 10, 100, 1000
    python experiments/gas_table.py --sizes 10,100   # quicker
    python experiments/gas_table.py --relay 80       # submissions signed by the members and
                                                     # relayed 80 per submitBatch transaction
                                                     # (writes gas_table_relay.md / .csv)
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bdfl.chain.accounts import derive_keys, devnet_account  # noqa: E402
from bdfl.chain.compiler import build, load_settings  # noqa: E402
from bdfl.chain.deploy import TOKEN, ProtocolParams, deploy, fund_peers  # noqa: E402
from bdfl.chain.devnet import BLOCK_GAS_LIMIT, batch_mining, start_devnet  # noqa: E402
from bdfl.chain.protocol import (  # noqa: E402
    FINALIZE_BATCH,
    JOIN_GAS,
    ROUNDS_KEPT,
    TX_GAS_CAP,
    Phase,
    ProtocolClient,
    draw_gas_bound,
)
from bdfl.chain.txsender import TxSender, wait_many  # noqa: E402

ROUND_FUNCTIONS = (
    "submitUpdate", "submitBatch (relayed)", "commitVotes", "revealVotes", "advance",
    "finalize (updates)", "finalize (seats)", "finalize (members)",
)


class Recorder:
    """Gas of every receipt, by function, and by round."""

    def __init__(self) -> None:
        self.by_fn: dict[tuple[str, str], list[int]] = defaultdict(list)

    def add(self, scope: str, fn: str, receipts: list[Any]) -> None:
        for rc in receipts:
            self.by_fn[(scope, fn)].append(int(rc["gasUsed"]))


def fixed_bytes32(*parts: Any) -> bytes:
    """32 bytes that depend only on ``parts``: the table's hashes and salts, so that gas repeats run to run."""
    return hashlib.sha256(" ".join(map(str, parts)).encode()).digest()


def collect(pairs: list[tuple[TxSender, bytes]]) -> list[Any]:
    return [s.wait(h) for s, h in pairs]


#: Transactions sent and mined together by :func:`send_batched`. 500, not 2,000: at
#: N = 10,000 a chunk of 2,000 joins (from 2,000 senders) lost transactions in anvil's pool
#: twice (no receipt, nothing pending or queued afterwards); setup gas is per transaction,
#: so the chunk size changes only the seconds.
SEND_CHUNK = 500


def send_batched(w3: Any, sends: list[Callable[[], tuple[TxSender, bytes]]]) -> list[Any]:
    """Call each ``send`` (one transaction with an explicit gas limit, not awaited) in chunks
    of SEND_CHUNK that anvil mines together in send order (``batch_mining``), and return the
    receipts; raises the first failure. A transaction's gas does not depend on the block it
    lands in (the contracts read no block data; deadlines are timestamps), so this changes
    only the seconds: one block per transaction cost anvil a state rehash each, which made
    N = 10,000 take hours."""
    out: list[Any] = []
    for start in range(0, len(sends), SEND_CHUNK):
        with batch_mining(w3):
            pairs = [send() for send in sends[start : start + SEND_CHUNK]]
        out += wait_many(pairs, timeout=max(120.0, 0.05 * len(pairs)))
    failed = next((r for r in out if isinstance(r, Exception)), None)
    if failed is not None:
        raise failed
    return out


def _view_gas(call: Any) -> int:
    """Gas of a view as an ``eth_call`` would use it; -1 when it does not fit the node's call
    gas (30M on anvil: ``approvedUpdates`` at N = 10,000; clients page it then)."""
    try:
        return int(call.estimate_gas())
    except Exception:  # noqa: BLE001 - the node's out-of-gas error, whatever its type
        return -1


def run_round(
    clients: list[ProtocolClient], by_addr: dict[str, ProtocolClient], runner: ProtocolClient, rec: Recorder, scope: str, batch: int,
    relay: int = 0,
) -> dict[str, Any]:
    r = runner.current_round()
    k = runner.deployment.params.committee_size
    n = len(clients)
    probe = clients[0]
    submit_gas = int(probe.sender.estimate(probe.rounds.functions.submitUpdate(r, b"\x01" * 32, 10, *probe.beacon_args(r))) * 1.3)
    sends = []
    signed = []
    bad = set()
    t0 = time.perf_counter()
    for i, c in enumerate(clients):
        poisoned = i % 10 == 9
        if poisoned:
            bad.add(c.address)
        # poisoned hashes: the N <= 1000 tables were measured with the first form; it repeats
        # for poisoned peers 1,280 apart (i = 9 and 1,289: a DuplicateHash), hence the second
        # form from i = 1,280 on
        bad_hash = b"\xba" * 31 + bytes([i % 256]) if i < 1280 else b"\xba" * 28 + i.to_bytes(4, "big")
        # a fixed honest hash per (N, round, peer): random ones moved submitBatch's calldata gas by
        # up to 400 per peer between runs (their zero bytes and table slots differ)
        h = fixed_bytes32("update", n, r, i) if not poisoned else bad_hash
        last = i == n - 1
        gas = submit_gas + (draw_gas_bound(k) if last else 0)
        if relay:
            signed.append(c.sign_submission(r, h, 600))
        else:
            sends.append(lambda c=c, h=h, gas=gas: (c.sender, c.submit_update(r, h, 600, wait=False, gas=gas)))
    if relay:
        # the runner relays the members' signed submissions, `relay` per transaction, in order
        receipts = [runner.submit_batch(r, signed[i : i + relay]) for i in range(0, n, relay)]
        skipped = sum(len(runner.skipped_entries(rc)) for rc in receipts)
        if skipped:
            raise RuntimeError(f"{skipped} relayed submissions were skipped")
        rec.add(scope, "submitBatch (relayed)", receipts)
    else:
        # one block per transaction: chunks mined together (send_batched) made a submission of
        # N = 1000 revert without a reason once (not understood yet, issue 23), so rounds keep it
        rec.add(scope, "submitUpdate", collect([send() for send in sends]))
    if runner.round_info(r).phase == Phase.SUBMIT:
        raise RuntimeError("the Submit phase did not end after every member submitted")
    committee = runner.committee(r)
    # transactions of one sender batch are mined in send order: update u is clients[u]'s
    subs_peer = {u: c.address for u, c in enumerate(clients)}
    assert runner.submission(r, n - 1).peer == clients[-1].address
    plans = {}
    pairs = []
    for a in committee:
        idx = runner.assignments_of(r, a)
        acc = [subs_peer[u] not in bad for u in idx]
        plans[a] = (idx, acc, fixed_bytes32("salt", n, r, a))
        c = by_addr[a]
        pairs.append((c.sender, c.commit_votes(r, *plans[a], wait=False)))
    rec.add(scope, "commitVotes", collect(pairs))
    pairs = []
    for a in committee:
        c = by_addr[a]
        pairs.append((c.sender, c.reveal_votes(r, *plans[a], wait=False)))
    rec.add(scope, "revealVotes", collect(pairs))
    if runner.round_info(r).phase != Phase.FINALIZE:
        raise RuntimeError("the Reveal phase did not end after every auditor revealed")
    # finalize in batches that never straddle a stage, so each transaction's gas belongs to
    # one stage: updates (outcomes, grants, agreement), seats (auditors), members (sweep:
    # trainers booked, absences, exits)
    members = runner.member_count()
    receipts, full = [], []
    for stage, items in (("updates", n), ("seats", len(committee)), ("members", members)):
        left = items
        while left > 0:
            size = min(batch, left)
            rc = runner.finalize_batch(r, size)
            receipts.append(rc)
            rec.add(scope, f"finalize ({stage})", [rc])
            if size == batch:
                full.append(int(rc["gasUsed"]))
            left -= size
    if runner.round_info(r).phase != Phase.CLOSED:
        receipts.append(runner.finalize_batch(r, batch))  # a sweep that removed members ends early
        rec.add(scope, "finalize (members)", receipts[-1:])
        if runner.round_info(r).phase != Phase.CLOSED:
            raise RuntimeError("the round did not close")
    elapsed = time.perf_counter() - t0
    approved = runner.approved_updates(r)
    views = {
        "assignmentsOf (eth_call)": _view_gas(runner.rounds.functions.assignmentsOf(r, committee[0])),
        "approvedUpdates (eth_call)": _view_gas(runner.rounds.functions.approvedUpdates(r)),
    }
    return {
        "round": r,
        "committee": len(committee),
        "approved": len(approved),
        "rejected_expected": len(bad),
        "finalize_txs": len(receipts),
        "seconds": elapsed,
        "views": views,
        "votes_per_auditor": statistics.mean(len(p[0]) for p in plans.values()) if plans else 0,
        "finalize_item_gas_max": round(max(full) / batch) if full else 0,
    }


def measure(n: int, batch: int, arts: Any, n_rounds: int = ROUNDS_KEPT + 1, relay: int = 0) -> dict[str, Any]:
    params = ProtocolParams()
    # frozen clock, as a simulation devnet: anvil then runs with base fee 0, which stays 0.
    # With a moving base fee, 500 joins of ~0.5M gas each (a join warms the member's round
    # slots since issue 23) fill a dozen blocks in a row, the base fee climbs past the joins'
    # fee cap and anvil silently evicts the rest of the chunk. Gas used does not depend on
    # the clock (deadlines are never reached here: every phase ends when everyone acted).
    with start_devnet("anvil", frozen_time=True) as dev:
        w3 = dev.w3(request_timeout=120)
        w3.provider.cache_allowed_requests = True
        deployer = devnet_account(0)
        dsend = TxSender(w3, deployer)
        dep = deploy(w3, deployer, arts, params, sender=dsend)
        keys = derive_keys(42, n, namespace="bdfl-gas-table")
        t0 = time.perf_counter()
        fund_peers(w3, dep, dsend, [k.address for k in keys], 2 * params.min_stake, eth_wei=10**21)
        clients = [ProtocolClient(w3, dep, k, TxSender(w3, k, chain_id=dep.chain_id)) for k in keys]
        by_addr = {c.address: c for c in clients}
        rec = Recorder()
        approve_gas = int(clients[0].sender.estimate(clients[0].token.functions.approve(dep.registry, params.min_stake)) * 1.2)
        sends = [lambda c=c: (c.sender, c.approve(params.min_stake, wait=False, gas=approve_gas)) for c in clients]
        rec.add("setup", "approve", send_batched(w3, sends))
        # a join warms the member's round slots (issue 23): ~0.5M; the workers' limit too
        sends = [
            lambda i=i, c=c: (c.sender, c.join(f"http://10.{i // 62500}.{i // 250 % 250}.{i % 250}:8000/", wait=False, gas=JOIN_GAS))
            for i, c in enumerate(clients)
        ]
        rec.add("setup", "join", send_batched(w3, sends))
        setup_s = time.perf_counter() - t0
        runner = ProtocolClient(w3, dep, deployer, dsend)
        rounds = [run_round(clients, by_addr, runner, rec, f"round{j}", batch, relay) for j in range(n_rounds)]
        sol = runner.solvency()
        assert sol.margin >= 0
    return {"n": n, "rec": rec, "rounds": rounds, "setup_s": setup_s, "params": params, "batch": batch, "relay": relay}


def every_round(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Gas per peer of every round of each result (rounds numbered from 1 as in rounds.csv:
    round j is chain round j - 1), total and split by function (issue 23: every round, not
    only the steady one, must stay under the target)."""
    rows = []
    for res in results:
        n, rec = res["n"], res["rec"]
        for j in range(len(res["rounds"])):
            scope = f"round{j}"
            split = {fn: sum(rec.by_fn.get((scope, fn), [])) / n for fn in ROUND_FUNCTIONS}
            rows.append({"n": n, "round": j + 1, "gas_per_peer": round(sum(split.values())), "split": split})
    return rows


def summarize(results: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per-function and per-round rows of each result's last (steady-state) round."""
    fn_rows, round_rows = [], []
    for res in results:
        n, rec = res["n"], res["rec"]
        last = len(res["rounds"]) - 1
        scope = f"round{last}"
        total, txs, max_tx = 0, 0, 0
        for fn in ("approve", "join"):
            g = rec.by_fn.get(("setup", fn), [])
            if g:
                fn_rows.append({"n": n, "function": fn + " (setup)", "calls": len(g), "min": min(g), "mean": round(statistics.mean(g)), "max": max(g)})
        for fn in ROUND_FUNCTIONS:
            g = rec.by_fn.get((scope, fn), [])
            if not g:
                continue
            fn_rows.append({"n": n, "function": fn, "calls": len(g), "min": min(g), "mean": round(statistics.mean(g)), "max": max(g)})
            total += sum(g)
            txs += len(g)
            max_tx = max(max_tx, max(g))
        info = res["rounds"][last]
        round_rows.append(
            {
                "n": n,
                "committee": info["committee"],
                "votes_per_auditor": round(info["votes_per_auditor"], 1),
                "round_gas": total,
                "round_txs": txs,
                "finalize_txs": info["finalize_txs"],
                "max_tx_gas": max_tx,
                "max_tx_share_of_30M": f"{100 * max_tx / BLOCK_GAS_LIMIT:.1f}%",
                "max_tx_share_of_cap": f"{100 * max_tx / TX_GAS_CAP:.1f}%",
                "finalize_item_gas_max": info["finalize_item_gas_max"],
                "gas_per_peer": round(total / n),
                "approved": info["approved"],
                "assignmentsOf_call_gas": info["views"]["assignmentsOf (eth_call)"],
                "approvedUpdates_call_gas": info["views"]["approvedUpdates (eth_call)"],
            }
        )
    return fn_rows, round_rows


def _compiler_text() -> str:
    """The compiler settings the contracts were built with (contracts/solc-settings.json)."""
    cs = load_settings(ROOT)
    opt = cs.get("optimizer", {})
    return (f"Solidity {cs.get('version')} (optimizer {opt.get('runs')} runs"
            f"{', viaIR' if cs.get('viaIR') else ''}, {cs.get('evmVersion')})")


def markdown(fn_rows: list[dict[str, Any]], round_rows: list[dict[str, Any]], results: list[dict[str, Any]]) -> str:
    p = results[0]["params"]
    lines = [
        "# BDFL protocol gas",
        "",
        f"Default parameters: committee K = {p.committee_size}, auditors per update m = {p.auditors_per_update}, "
        f"quorum {p.quorum}; finalize batch = {results[0]['batch']} items; anvil, {_compiler_text()}. "
        "Every tenth peer submits a poisoned update that the auditors reject (slash path). "
        f"Numbers are for the last of {len(results[0]['rounds'])} rounds, the steady state (every member was already a member when it opened, "
        "and the per-index slots of the round ROUNDS_KEPT before it are rewritten). "
        "`experiments/gas_table.py` produced this file.",
        "",
        (f"Submissions: signed by each member and relayed {results[0]['relay']} per `submitBatch` transaction "
         "(`--relay`); every other transaction is sent by the member (or the runner for finalize)."
         if results[0].get("relay") else "Submissions: one `submitUpdate` transaction per member."),
        "",
        "## Per round",
        "",
        "| N | committee | votes/auditor | gas per round | txs per round | finalize txs | max gas of one tx | of the 2^24 tx cap | of 30M block | finalize gas per item (max batch) | gas per peer | approved | assignmentsOf eth_call | approvedUpdates eth_call |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in round_rows:
        lines.append(
            f"| {r['n']} | {r['committee']} | {r['votes_per_auditor']} | {r['round_gas']:,} | {r['round_txs']} | {r['finalize_txs']} | "
            f"{r['max_tx_gas']:,} | {r['max_tx_share_of_cap']} | {r['max_tx_share_of_30M']} | {r['finalize_item_gas_max']:,} | {r['gas_per_peer']:,} | {r['approved']} | "
            f"{r['assignmentsOf_call_gas']:,} | {r['approvedUpdates_call_gas']:,} |"
        )
    lines += [
        "",
        "## Gas per peer in every round",
        "",
        "Round j = chain round j - 1 (rounds.csv numbering). Every transaction of the round, divided by N; "
        "the join (setup, below) is paid once per membership and not in any round.",
        "",
    ]
    per_round = every_round(results)
    fns = [fn for fn in ROUND_FUNCTIONS if any(r["split"][fn] for r in per_round)]
    lines += [
        "| N | round | gas per peer | " + " | ".join(fns) + " |",
        "|---:|---:|---:|" + "---:|" * len(fns),
    ]
    for r in per_round:
        lines.append(f"| {r['n']} | {r['round']} | **{r['gas_per_peer']:,}** | " + " | ".join(f"{r['split'][fn]:,.0f}" for fn in fns) + " |")
    lines += ["", "## Per function", "", "| N | function | calls | min | mean | max |", "|---:|---|---:|---:|---:|---:|"]
    for r in fn_rows:
        lines.append(f"| {r['n']} | {r['function']} | {r['calls']} | {r['min']:,} | {r['mean']:,} | {r['max']:,} |")
    lines += [
        "",
        "Notes: the last `submitUpdate` of a round also draws the committee (hence its max); "
        "`finalize` gas is bounded by the batch size, not by N; `revealVotes` grows with the "
        "auditor's N·m/K assigned votes. Setup (approve + join) is paid once per membership. "
        "Every transaction must stay under the EIP-7825 per-transaction cap of 2^24 = 16,777,216 gas "
        "(post-Fusaka Ethereum, Hardhat): the client's finalize batches are sized by worst-case gas per item "
        "(`bdfl.chain.protocol.finalize_batch_size`) and sent with a 14M gas limit.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10,100,1000", help="comma-separated member counts")
    ap.add_argument("--batch", type=int, default=FINALIZE_BATCH, help="finalize items per transaction")
    ap.add_argument("--rounds", type=int, default=ROUNDS_KEPT + 1, help="rounds per N (the last one is reported)")
    ap.add_argument("--out", default=str(ROOT / "experiments" / "results"), help="output folder")
    ap.add_argument("--relay", type=int, default=0,
                    help="relay the members' signed submissions this many per submitBatch (0: each member submits itself)")
    args = ap.parse_args(argv)
    arts = build(ROOT)
    results = []
    for n in (int(x) for x in args.sizes.split(",")):
        t = time.perf_counter()
        res = measure(n, args.batch, arts, args.rounds, args.relay)
        print(f"N={n}: setup {res['setup_s']:.1f} s, rounds {[round(r['seconds'], 1) for r in res['rounds']]} s, total {time.perf_counter() - t:.1f} s", flush=True)
        results.append(res)
    fn_rows, round_rows = summarize(results)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    md = markdown(fn_rows, round_rows, results)
    stem = "gas_table_relay" if args.relay else "gas_table"
    (out / f"{stem}.md").write_text(md)
    with open(out / f"{stem}.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["n", "kind", "function", "calls", "min", "mean", "max", "round_gas", "round_txs", "max_tx_gas", "gas_per_peer", "committee"])
        for r in fn_rows:
            w.writerow([r["n"], "function", r["function"], r["calls"], r["min"], r["mean"], r["max"], "", "", "", "", ""])
        for r in round_rows:
            w.writerow([r["n"], "round", "", r["round_txs"], "", "", "", r["round_gas"], r["round_txs"], r["max_tx_gas"], r["gas_per_peer"], r["committee"]])
        for r in every_round(results):  # kind round<j>: every round's gas per peer (function column empty)
            w.writerow([r["n"], f"round{r['round']}", "", "", "", "", "", "", "", "", r["gas_per_peer"], ""])
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
