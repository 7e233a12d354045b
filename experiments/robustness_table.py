"""Issue 5's robustness table from a finished (or partly finished) robustness sweep.

    .venv/bin/bdfl sweep experiments/configs/sweep_robustness.toml --jobs 2   # the runs
    .venv/bin/python experiments/robustness_table.py results/sweep-robustness  # this table

For each attacker fraction, one row per attack and one column per defense: the final
mean honest accuracy (mean ± std over the seeds that completed), and for BDFL:

* drop vs clean: BDFL's final honest accuracy minus BDFL's with no attackers, same seeds
  (issue 5's target: within 2 points);
* separated by: the first round from which the attackers' *mean* reputation stays below
  every honest peer's reputation (worst seed; target: round 5), "never" if it does not;
* FRR: honest updates the committee rejected / honest updates audited, all rounds and
  seeds (target < 5 %);
* attackers approved: attackers' audited updates approved / audited.

Writes ``experiments/results/robustness.md`` and ``robustness.csv``. Runs that have not
finished are left out, and the table says how many seeds each cell has.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import tomllib
from collections import defaultdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFENSES = ("bdfl", "fedavg", "krum", "median", "trimmed_mean")


def load_runs(sweep: Path) -> list[dict[str, Any]]:
    runs = []
    for d in sorted((sweep / "runs").iterdir()):
        summary_path, cfg_path, metrics_path = d / "summary.json", d / "config.toml", d / "metrics.csv"
        if not (summary_path.is_file() and cfg_path.is_file() and metrics_path.is_file()):
            continue
        summary = json.loads(summary_path.read_text())
        if summary.get("status") not in ("completed", "degraded"):  # degraded: ran every round
            continue
        cfg = tomllib.loads(cfg_path.read_text())
        with open(metrics_path, newline="") as fh:
            metrics = list(csv.DictReader(fh))
        runs.append({
            "attack": cfg["attack"]["name"],
            "fraction": float(cfg["attack"]["fraction"]),
            "defense": cfg["defense"]["name"],
            "seed": int(cfg["seed"]),
            "rounds": int(cfg["rounds"]),
            "peers": int(cfg["peers"]),
            "accuracy": float(summary["final_honest_accuracy"]),
            "asr": summary.get("attack_success_rate_final"),  # backdoor runs only
            "separated": separation_round(metrics),
            # on_off: the first round (1-based) in which the attack is on
            "on_round": int(cfg["attack"].get("params", {}).get("on_after", 5)) + 1 if cfg["attack"]["name"] == "on_off" else None,
            **audit_counts(metrics),
        })
    return runs


def separation_round(metrics: list[dict[str, str]]) -> int | None:
    """First round from which the attackers' mean reputation stays below every honest peer's."""
    by_round: dict[int, list[dict[str, str]]] = defaultdict(list)
    for row in metrics:
        by_round[int(row["round"])].append(row)
    holds = {}
    for r, rows in by_round.items():
        att = [float(x["reputation"]) for x in rows if x["attacker"] == "1"]
        hon = [float(x["reputation"]) for x in rows if x["attacker"] == "0"]
        holds[r] = bool(att) and bool(hon) and statistics.fmean(att) < min(hon)
    first = None
    for r in sorted(holds):
        if holds[r] and first is None:
            first = r
        elif not holds[r]:
            first = None
    return first


def clean_accuracy(runs: list[dict[str, Any]]) -> dict[int, float]:
    """Seed -> BDFL's final honest accuracy with no attackers: what "drop vs clean" compares with."""
    return {r["seed"]: r["accuracy"] for r in runs if r["attack"] == "none" and r["defense"] == "bdfl"}


def audit_counts(metrics: list[dict[str, str]]) -> dict[str, int]:
    out = {"honest_audited": 0, "honest_rejected": 0, "attacker_audited": 0, "attacker_approved": 0}
    for row in metrics:
        if row["approved"] not in ("0", "1"):
            continue
        who = "attacker" if row["attacker"] == "1" else "honest"
        out[f"{who}_audited"] += 1
        if who == "honest" and row["approved"] == "0":
            out["honest_rejected"] += 1
        if who == "attacker" and row["approved"] == "1":
            out["attacker_approved"] += 1
    return out


def _acc_cell(values: list[float]) -> str:
    if not values:
        return "–"
    mean = statistics.fmean(values)
    sd = statistics.pstdev(values) if len(values) > 1 else 0.0
    return f"{mean:.3f} ± {sd:.3f}" + ("" if len(values) == 3 else f" ({len(values)})")


def build(runs: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    clean = clean_accuracy(runs)
    cells: dict[tuple[float, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in runs:
        fractions = (0.3, 0.5) if r["attack"] == "none" else (r["fraction"],)
        for f in fractions:  # "none" ignores the fraction: one run serves both tables
            cells[(f, r["attack"], r["defense"])].append(r)
    attacks = sorted({a for (_f, a, _d) in cells}, key=lambda a: (a != "none", a))
    lines: list[str] = []
    rows_csv: list[dict[str, Any]] = []
    for f in sorted({f for (f, _a, _d) in cells}):
        lines += [
            f"### {f:.0%} attackers",
            "",
            "| attack | " + " | ".join(DEFENSES) + " | BDFL drop vs clean | separated by (worst seed) | BDFL FRR | attackers approved |",
            "|---|" + "---:|" * (len(DEFENSES) + 4),
        ]
        for a in attacks:
            accs = {d: [r["accuracy"] for r in cells.get((f, a, d), [])] for d in DEFENSES}
            b = cells.get((f, a, "bdfl"), [])
            drops = [r["accuracy"] - clean[r["seed"]] for r in b if r["seed"] in clean]
            sep = [r["separated"] for r in b]
            sep_cell = "–" if not b or a == "none" else ("never" if any(s is None for s in sep) else str(max(sep)))
            ha = sum(r["honest_audited"] for r in b)
            hr = sum(r["honest_rejected"] for r in b)
            aa = sum(r["attacker_audited"] for r in b)
            ap = sum(r["attacker_approved"] for r in b)
            frr = hr / ha if ha else None
            apr = ap / aa if aa else None
            lines.append(
                f"| {a} | " + " | ".join(_acc_cell(accs[d]) for d in DEFENSES)
                + f" | {'–' if not drops else f'{statistics.fmean(drops) * 100:+.1f} pts'}"
                + f" | {sep_cell} | {'–' if frr is None else f'{frr:.1%} ({hr}/{ha})'}"
                + f" | {'–' if apr is None else f'{apr:.0%} ({ap}/{aa})'} |"
            )
            rows_csv.append({
                "fraction": f, "attack": a,
                **{f"{d}_accuracy_mean": (statistics.fmean(accs[d]) if accs[d] else "") for d in DEFENSES},
                **{f"{d}_seeds": len(accs[d]) for d in DEFENSES},
                "bdfl_drop_vs_clean": statistics.fmean(drops) if drops else "",
                "bdfl_separated_worst": "" if not b or a == "none" else ("never" if any(s is None for s in sep) else max(sep)),
                "bdfl_frr": "" if frr is None else frr, "bdfl_attackers_approved": "" if apr is None else apr,
            })
        lines.append("")
        lines += _backdoor_lines(f, cells)
        lines += _target_lines(f, attacks, cells, clean)
    return lines, rows_csv


def _backdoor_lines(f: float, cells: dict[tuple[float, str, str], list[dict[str, Any]]]) -> list[str]:
    """The backdoor's final attack success rate per defense (share of triggered test images of
    other classes that the honest peers' models put in the target class)."""
    asr = {d: [r["asr"] for r in cells.get((f, "backdoor", d), []) if r.get("asr") is not None] for d in DEFENSES}
    if not any(asr.values()):
        return []
    clean = {d: [r["asr"] for r in cells.get((f, "none", d), []) if r.get("asr") is not None] for d in DEFENSES}
    out = [f"Backdoor attack success rate at {f:.0%} attackers (final round, mean over seeds):", "",
           "| | " + " | ".join(DEFENSES) + " |", "|---|" + "---:|" * len(DEFENSES),
           "| backdoor | " + " | ".join(f"{statistics.fmean(v):.1%}" if v else "–" for v in asr.values()) + " |"]
    if any(clean.values()):
        out.append("| no attack (trigger alone) | " + " | ".join(f"{statistics.fmean(v):.1%}" if v else "–" for v in clean.values()) + " |")
    return out + [""]


def _target_lines(f: float, attacks: list[str], cells: dict[tuple[float, str, str], list[dict[str, Any]]],
                  clean: dict[int, float]) -> list[str]:
    """Issue 5's three BDFL targets, attack by attack: which hold and which do not."""
    acc_ok, sep_ok, frr_ok = [], [], []
    for a in attacks:
        b = cells.get((f, a, "bdfl"), [])
        if a == "none" or not b:
            continue
        drops = [r["accuracy"] - clean[r["seed"]] for r in b if r["seed"] in clean]
        acc_ok.append((a, bool(drops) and statistics.fmean(drops) >= -0.02))
        sep = [r["separated"] for r in b]
        sep_ok.append((a, all(s is not None and s <= 5 for s in sep)))
        ha = sum(r["honest_audited"] for r in b)
        frr_ok.append((a, ha > 0 and sum(r["honest_rejected"] for r in b) / ha < 0.05))

    def say(name: str, res: list[tuple[str, bool]]) -> str:
        good = [a for a, ok in res if ok]
        bad = [a for a, ok in res if not ok]
        return f"* {name}: holds for {len(good)} of {len(res)}" + (f"; not for {', '.join(bad)}" if bad else "")

    if not acc_ok:
        return []
    out = [f"Targets at {f:.0%} attackers (BDFL):", "",
           say("final honest accuracy within 2 points of the clean run", acc_ok),
           say("attackers' mean reputation below every honest peer's from round 5 on (every seed)", sep_ok),
           say("honest updates falsely rejected < 5 %", frr_ok)]
    on_off = cells.get((f, "on_off", "bdfl"), [])
    if on_off and on_off[0]["on_round"]:
        on = on_off[0]["on_round"]
        sep = [r["separated"] for r in on_off]
        lag = max(sep) - on if all(s is not None for s in sep) else None
        after = "never" if lag is None else f"from round {max(sep)}, " + (
            "the round it turns" if lag == 0 else f"{lag} round(s) after it turns" if lag > 0 else "before it turns")
        out.append(f"* on_off behaves honestly in rounds 1-{on - 1} by design (`on_after`) and attacks from round {on}, "
                   f"so the round-5 target cannot hold for it; separated (worst seed): {after}")
    return out + [""]


def per_seed(runs: list[dict[str, Any]], source: str) -> list[str]:
    """One row per BDFL run with attackers: what the table above pools over seeds, per seed."""
    clean = clean_accuracy(runs)
    bdfl = sorted((r for r in runs if r["defense"] == "bdfl" and r["attack"] != "none"),
                  key=lambda r: (r["fraction"], r["attack"], r["seed"]))
    seeds = sorted({r["seed"] for r in bdfl})
    out = [
        "# Robustness per seed: BDFL (issue 5)",
        "",
        f"{len(bdfl)} completed BDFL runs with attackers, seeds {', '.join(map(str, seeds))}, of `bdfl sweep {source}`, "
        "tabulated by `experiments/robustness_table.py --per-seed`. Drop: against BDFL with no attackers, same seed. "
        "Separated by: first round from which the attackers' mean on-chain reputation stays below every honest peer's.",
        "",
    ]
    for frac in sorted({r["fraction"] for r in bdfl}):
        out += [f"### {round(frac * 100)}% attackers", "",
                "| attack | seed | accuracy | drop vs clean | separated by | honest FRR | attackers approved | attack success |",
                "|---|---:|---:|---:|---:|---:|---:|---:|"]
        rows = [r for r in bdfl if r["fraction"] == frac]
        for r in rows:
            drop = f"{100 * (r['accuracy'] - clean[r['seed']]):+.1f} pts" if r["seed"] in clean else "–"
            frr = f"{r['honest_rejected']}/{r['honest_audited']}"
            appr = f"{r['attacker_approved']}/{r['attacker_audited']}"
            asr = f"{100 * r['asr']:.0f}%" if r.get("asr") is not None else "–"
            out.append(f"| {r['attack']} | {r['seed']} | {r['accuracy']:.3f} | {drop} | {r['separated'] or 'never'} | {frr} | {appr} | {asr} |")
        out.append("")
        for attack in sorted({r["attack"] for r in rows}):
            sep = [r["separated"] for r in rows if r["attack"] == attack]
            out.append(f"* {attack}: separated by round 5 in {sum(s is not None and s <= 5 for s in sep)} of {len(sep)} seeds")
        out.append("")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sweep", type=Path, help="the sweep's results folder (results/sweep-robustness)")
    ap.add_argument("--results-dir", type=Path, default=HERE / "results")
    ap.add_argument("--per-seed", metavar="NAME",
                    help="instead of the table: BDFL's runs one row per seed, written to <results-dir>/NAME.md")
    ap.add_argument("--source", default="experiments/configs/sweep_robustness.toml",
                    help="the sweep file the runs came from, as the table's text names it")
    args = ap.parse_args(argv)
    if not (args.sweep / "runs").is_dir():
        print(f"error: {args.sweep} holds no runs/ folder\nfix: run the sweep first (see this script's docstring)", file=sys.stderr)
        return 2
    runs = load_runs(args.sweep)
    if args.per_seed:
        text = "\n".join(per_seed(runs, args.source))
        args.results_dir.mkdir(parents=True, exist_ok=True)
        (args.results_dir / f"{args.per_seed}.md").write_text(text)
        print(text)
        return 0
    lines, rows = build(runs)
    rounds = sorted({r["rounds"] for r in runs})
    peers = sorted({r["peers"] for r in runs})
    head = [
        "# Robustness: BDFL against the baselines (issue 5)",
        "",
        f"Digits, {', '.join(map(str, peers))} peers, {', '.join(map(str, rounds))} rounds, Dirichlet α = 0.5, seeds {', '.join(map(str, sorted({r['seed'] for r in runs})))}; {len(runs)} completed runs "
        f"of `bdfl sweep {args.source}`, tabulated by `experiments/robustness_table.py`. "
        "Cells: final mean honest accuracy, mean ± std over seeds (a number in brackets = seeds completed, when fewer than 3). "
        "BDFL drop vs clean: against BDFL with no attackers, same seeds. Separated by: first round from which the attackers' "
        "mean on-chain reputation stays below every honest peer's (worst seed). FRR: honest updates rejected by the committee.",
        "",
    ]
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / "robustness.md").write_text("\n".join(head + lines))
    with open(args.results_dir / "robustness.csv", "w", newline="") as fh:
        if rows:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    print("\n".join(head + lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
