"""Rounds to a target accuracy for each overlay topology (issue 4's experiment).

    .venv/bin/python experiments/topology_experiment.py [--peers 50] [--rounds 25] [--target 0.85] [--seeds 0]

Runs `bdfl run` (digits, non-IID Dirichlet 0.5, no attackers, BDFL defense) once per
topology and seed, then writes experiments/results/topology.{csv,md}: for each
topology the first round at which the honest peers' mean test accuracy reaches the
target, the final accuracy, its spread across peers (the consensus gap a sparse
overlay leaves) and the expander's spectral gap.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import statistics
from pathlib import Path

from bdfl.config import load_config
from bdfl.experiment.runner import run_experiment

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "experiments" / "results"
TOPOLOGIES = ("expander", "ring", "full")


def rounds_to(rows: list[dict[str, str]], target: float) -> int | None:
    for row in rows:
        if float(row["honest_accuracy"]) >= target:
            return int(row["round"])
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peers", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=25)
    ap.add_argument("--degree", type=int, default=4)
    ap.add_argument("--target", type=float, default=0.85)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--work", default="results/topology", help="where the individual runs go")
    args = ap.parse_args()

    from bdfl.net.overlay import build_overlay, spectral_gap

    records = []
    for topology in TOPOLOGIES:
        for seed in args.seeds:
            out = Path(args.work) / f"{topology}-seed{seed}"
            if out.exists():
                shutil.rmtree(out)
            cfg = load_config(ROOT / "experiments" / "configs" / "default.toml", {
                "name": f"topology-{topology}", "peers": args.peers, "rounds": args.rounds, "seed": seed,
                "attack.name": "none", "attack.fraction": 0.0, "overlay.topology": topology,
                "overlay.degree": args.degree, "protocol.committee_size": 16,
            })
            run_experiment(cfg, quiet=True, out=out)
            with open(out / "rounds.csv", newline="") as fh:
                rows = list(csv.DictReader(fh))
            summary = json.loads((out / "summary.json").read_text())
            records.append({
                "topology": topology, "seed": seed,
                "rounds_to_target": rounds_to(rows, args.target),
                "final_accuracy": float(rows[-1]["honest_accuracy"]),
                "final_accuracy_std": float(rows[-1]["honest_accuracy_std"]),
                "seconds_per_round": summary.get("seconds_per_round_mean"),
            })
            print(records[-1], flush=True)

    members = [f"0x{i:040x}" for i in range(args.peers)]
    gap = spectral_gap(build_overlay("expander", members, bytes(32), degree=args.degree))
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / "topology.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(records[0]))
        w.writeheader()
        w.writerows(records)
    lines = [
        f"Digits, {args.peers} peers, Dirichlet(0.5), no attackers, BDFL defense, degree {args.degree} "
        f"(expander, ring: 2), seeds {args.seeds}; target honest mean accuracy {args.target}.",
        f"Expander spectral gap: lambda2 = {gap['lambda2']:.3f} vs Ramanujan bound 2*sqrt(d-1) = {gap['ramanujan_bound']:.3f}.",
        "",
        "| topology | rounds to target | final honest accuracy | spread across peers (std) | s per round |",
        "|---|---|---|---|---|",
    ]
    for topology in TOPOLOGIES:
        rs = [r for r in records if r["topology"] == topology]
        hit = [r["rounds_to_target"] for r in rs if r["rounds_to_target"] is not None]
        rtt = f"{statistics.mean(hit):.1f}" if len(hit) == len(rs) else f"not reached in {args.rounds} ({len(hit)}/{len(rs)} seeds)"
        lines.append(
            f"| {topology} | {rtt} | {statistics.mean(r['final_accuracy'] for r in rs):.3f} | "
            f"{statistics.mean(r['final_accuracy_std'] for r in rs):.3f} | {statistics.mean(r['seconds_per_round'] or 0 for r in rs):.2f} |"
        )
    (OUT / "topology.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
