"""Time to accuracy (issue 23): BDFL against Flower's simulation engine, side by side in one run.

    .venv/bin/python experiments/time_to_accuracy.py                          # N = 100, 20 Flower rounds
    .venv/bin/python experiments/time_to_accuracy.py --peers 10 --rounds 3 --bdfl-rounds 3  # a quick check

Needs the ``bench`` extra (``pip install -e '.[bench]'``: ``flwr[simulation]``, i.e. Ray).

Both systems run the same experiment, one after the other (never two at a time), from
``experiments/configs/default.toml`` (the library's defaults: BDFL's default policy, i.e. its
committee, audit rule, trigger scan, reputation weighting and degree-24 expander overlay) with
the overrides ``SETS`` below: digits MLP, N peers/clients, IID partition of the training set,
5 local epochs, batch 16, SGD learning rate 0.05, no attackers, seed 0, 2 worker processes /
2 Ray CPUs.

1. ``bdfl run`` (anvil, the full on-chain protocol) for ``--bdfl-rounds`` rounds (default 40:
   decentralised averaging needs more rounds than FedAvg: 27 at degree 4, 21-22 at degree 8,
   19 at degree 19, 17 at degree 24, so 20 rounds would not show where it crosses);
2. ``experiments/flower_sim.py`` for ``--rounds`` rounds (default 20): plain FedAvg, the same
   client code, data split, initial model, hyper-parameters, and every client evaluating the
   global model on the test set each round (so its accuracy is the global model's test accuracy).

Accuracy per round: BDFL's ``honest_accuracy`` (mean over peers of each peer's model on the
test set, ``rounds.csv``); Flower's global model on the same test set. Target = ``--fraction``
(0.95) x Flower's accuracy in its last round (round 20). For each system: the first round whose
accuracy is >= the target, and the wall time to it = the sum of that system's round times up to
and including that round (round 1 included on both sides: BDFL's first fits, Flower's actor
start-up and imports). Set-up (BDFL: devnet, deployment, workers, data; Flower: ray.init and
everything before round 1) is reported apart, as is each run's whole process wall time.

``--set KEY=VALUE`` adds config overrides to both runs (e.g. ``overlay.degree=16``; Flower
ignores BDFL's tables). N = 1000 (digits has 1,438 training samples, so an IID partition
would give a peer one or two): ``--peers 1000 --set task.partition=iid_sample --set
task.samples_per_peer=14`` (each peer draws 14 samples, as a peer holds at N = 100), with
``--target`` when the runs are too short to give Flower's round-20 accuracy (its value, and
the rounds each system needs, from ``experiments/mixing_levers.py --peers 1000``).

Writes ``experiments/results/<--stem>.{md,json}``; the runs go under ``--work``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from perf_benchmark import environment, run_measured  # noqa: E402  (stdlib only at import time)

CONFIG = HERE / "configs" / "default.toml"
SETS = (
    "task.client=clients.digits",
    "task.partition=iid",
    "task.local_epochs=5",
    "task.batch_size=16",
    "task.learning_rate=0.05",
    "attack.name=none",
    "attack.fraction=0.0",
    "seed=0",
    "workers=2",
)
TARGET_TIME_RATIO = 0.25  # issue 23: BDFL time to target <= 0.25 x Flower's
TARGET_ROUNDS_RATIO = 1.3  # rounds to target <= 1.3 x Flower's
TARGET_PER_ROUND_RATIO = 0.2  # BDFL s/round <= 0.2 x Flower's


# --------------------------------------------------------------------------- pure figures


def target_accuracy(reference_curve: list[float | None], fraction: float = 0.95) -> float:
    """``fraction`` x the reference's accuracy in its last round."""
    if not reference_curve or reference_curve[-1] is None or math.isnan(reference_curve[-1]):
        raise ValueError("the reference curve has no final accuracy")
    return fraction * float(reference_curve[-1])


def first_crossing(curve: list[float | None], target: float) -> int | None:
    """1-based index of the first round whose accuracy is >= ``target``; None if none is."""
    for i, acc in enumerate(curve, start=1):
        if acc is not None and not math.isnan(acc) and acc >= target:
            return i
    return None


def seconds_to_round(round_seconds: list[float], rnd: int | None) -> float | None:
    """Wall time of rounds 1..``rnd`` (None when the round was not reached)."""
    if rnd is None:
        return None
    if rnd < 1 or rnd > len(round_seconds):
        raise ValueError(f"round {rnd} outside 1..{len(round_seconds)}")
    return float(sum(round_seconds[:rnd]))


def steady_seconds_to_round(round_seconds: list[float], rnd: int | None) -> float | None:
    """Like ``seconds_to_round`` but round 1 counted at the mean pace of rounds 2.. (its one-off
    costs removed: BDFL's first fits, Flower's actor start-up and imports)."""
    if rnd is None:
        return None
    later = round_seconds[1:] or round_seconds
    return float(seconds_to_round(round_seconds, rnd) - round_seconds[0] + sum(later) / len(later))


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


# --------------------------------------------------------------------------- runs


def run_bdfl(n: int, rounds: int, work: Path, timeout: float | None, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    out = work / "bdfl"
    cmd = [sys.executable, "-m", "bdfl", "run", "--config", str(CONFIG), "--out", str(out), "--quiet"]
    for s in (*SETS, *extra, f"peers={n}", f"rounds={rounds}"):
        cmd += ["--set", s]
    meta = run_measured(cmd, work / "bdfl.log", timeout)
    rows_path = out / "rounds.csv"
    if meta["rc"] != 0 or not rows_path.exists():
        raise SystemExit(f"bdfl run failed (rc {meta['rc']}): see {work / 'bdfl.log'}")
    with open(rows_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    phases = ("train", "exchange", "audit", "chain", "eval")
    round_s = [float(r["seconds_total"]) for r in rows]
    return {
        "cmd": meta["cmd"],
        "wall_s": meta["wall_s"],
        "peak_rss_bytes": meta["peak_rss_bytes"],
        "load_average": meta["load_average"],
        "accuracy": [float(r["honest_accuracy"]) if r["honest_accuracy"] else None for r in rows],
        "round_seconds": round_s,
        "split": {p: [float(r[f"seconds_{p}"]) for r in rows] for p in phases},
        "setup_s": meta["wall_s"] - sum(round_s),  # set-up and tear-down: everything but the rounds
    }


def run_flower(n: int, rounds: int, work: Path, timeout: float | None, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    result_path = work / "flower.json"
    result_path.unlink(missing_ok=True)
    cmd = [sys.executable, str(HERE / "flower_sim.py"), "--config", str(CONFIG), "--eval", "test", "--cpus", "2", "--json", str(result_path)]
    for s in (*SETS, *extra, f"peers={n}", f"rounds={rounds}"):
        cmd += ["--set", s]
    meta = run_measured(cmd, work / "flower.log", timeout)
    if meta["rc"] != 0 or not result_path.exists():
        raise SystemExit(f"flower_sim failed (rc {meta['rc']}): see {work / 'flower.log'}")
    res = json.loads(result_path.read_text())
    return {
        "cmd": meta["cmd"],
        "wall_s": meta["wall_s"],
        "peak_rss_bytes": meta["peak_rss_bytes"],
        "load_average": meta["load_average"],
        "accuracy": res["accuracy"],
        "round_seconds": res["round_seconds"],
        "split": {"fit": res["fit_seconds"], "eval": res["eval_seconds"]},
        "setup_s": res["startup_s"],  # from before ray.init to round 1's configure_fit (ray.init included)
        "ray_init_s": res["ray_init_s"],
        "teardown_s": res["teardown_s"],
        "framework": res["framework"],
    }


def reused_flower(path: Path, peers: int, sets: tuple[str, ...]) -> dict[str, Any]:
    """The Flower side of an earlier report's JSON (``--flower-from``), refused unless that run had
    the same peer count and ``--set`` overrides; ``measured`` says when, at which commit, under which load."""
    earlier = json.loads(path.read_text())
    argv = earlier.get("argv") or []
    peers_then = int(argv[argv.index("--peers") + 1]) if "--peers" in argv else 100
    sets_then = tuple(argv[i + 1] for i, a in enumerate(argv) if a == "--set")
    if peers_then != peers or sets_then != sets:
        raise SystemExit(f"--flower-from {path}: that run had --peers {peers_then} and --set {list(sets_then)}, "
                         f"this one --peers {peers} and --set {list(sets)}")
    env = earlier.get("env", {})
    flower = dict(earlier["flower"])
    flower["measured"] = (f"measured {env.get('date', '?')} at commit {env.get('commit', '?')}, "
                          f"load {flower.get('load_average', float('nan')):.2f}; not run again")
    return flower


# --------------------------------------------------------------------------- report


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def _s(v: float | None, d: int = 2) -> str:
    return "not reached" if v is None else f"{v:.{d}f}"


def _r(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def verdict(value: float | None, limit: float) -> str:
    if value is None:
        return "**not measurable** (a system did not reach the target)"
    return "**met**" if value <= limit else "**not met**"


def summarise(bdfl: dict[str, Any], flower: dict[str, Any], fraction: float, target: float | None = None) -> dict[str, Any]:
    """Rounds and seconds to the target (``fraction`` x Flower's last accuracy, or ``target``
    when given) for both systems, and issue 23's three ratios."""
    given = target is not None
    target = float(target) if given else target_accuracy(flower["accuracy"], fraction)
    out: dict[str, Any] = {"target": target, "fraction": fraction, "flower_final": flower["accuracy"][-1], "target_given": given}
    for name, res in (("bdfl", bdfl), ("flower", flower)):
        rnd = first_crossing(res["accuracy"], target)
        rs = res["round_seconds"]
        out[name] = {
            "round": rnd,
            "seconds": seconds_to_round(rs, rnd),
            "steady_seconds": steady_seconds_to_round(rs, rnd),
            "s_per_round_2on": _mean(rs[1:] or rs),
            "round1_s": rs[0],
        }
    b, f = out["bdfl"], out["flower"]
    out["time_ratio"] = ratio(b["seconds"], f["seconds"])
    out["steady_time_ratio"] = ratio(b["steady_seconds"], f["steady_seconds"])
    out["rounds_ratio"] = ratio(b["round"], f["round"])
    out["per_round_ratio"] = ratio(b["s_per_round_2on"], f["s_per_round_2on"])
    return out


def write_report(args: argparse.Namespace, bdfl: dict[str, Any], flower: dict[str, Any], s: dict[str, Any], env: dict[str, str], elapsed: float) -> Path:
    results = Path(args.results_dir)
    results.mkdir(parents=True, exist_ok=True)
    md = results / f"{args.stem}.md"
    (results / f"{args.stem}.json").write_text(json.dumps({"env": env, "argv": args.argv, "summary": s, "bdfl": bdfl, "flower": flower}, indent=2))
    b, f = s["bdfl"], s["flower"]
    cmd = " ".join(["experiments/time_to_accuracy.py", *args.argv]).strip()
    lines = [
        f"# Time to accuracy: BDFL vs Flower simulation (digits MLP, N = {args.peers})",
        "",
        f"Measured {env['date']} at commit `{env['commit']}` on {env['cpu']}, {env['memory']}; Python {env['python']}, {env['versions']}.",
        f"Command: `.venv/bin/python {cmd}` ({elapsed / 60:.1f} min in all; runs under `{args.work}`).",
        "",
        f"Experiment (identical on both sides): `{CONFIG.relative_to(ROOT)}` (the library's defaults, BDFL's default policy) with "
        + ", ".join(f"`{x}`" for x in (*SETS, *args.set))
        + f", `peers={args.peers}`. IID partition of digits' training set; every client trains every round. "
        f"BDFL: `bdfl run`, {len(bdfl['round_seconds'])} rounds, anvil, the full on-chain protocol, no attackers. "
        f"Flower: {flower['framework']}, {len(flower['round_seconds'])} rounds, fraction_fit = 1, 2 Ray CPUs (1 per client), "
        "every client evaluates the global model on the test set each round."
        + (f" **Flower side reused from `{args.flower_from}`** ({flower['measured']})." if flower.get("measured") else ""),
        "",
        (f"Target = **{s['target']:.4f}**, given with --target (Flower's round-{len(flower['accuracy'])} accuracy here: {s['flower_final']:.4f}). "
         if s.get("target_given") else
         f"Target = {s['fraction']:.2f} x Flower's round-{len(flower['accuracy'])} accuracy {s['flower_final']:.4f} = **{s['target']:.4f}**. ")
        + "Accuracy: BDFL = mean over peers of each peer's model on the test set; Flower = the global model on the test set. "
        "Seconds to target = sum of that system's round times up to and including the crossing round (round 1 included on both sides); "
        "set-up is not in it and is shown apart.",
        "",
        "| system | rounds to target | seconds to target (rounds only) | same, round 1 at the pace of rounds 2.. | s/round, rounds 2.. | round 1 (s) | set-up (s) | whole process wall (s) | final accuracy (round) | peak RSS (MiB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, res, x, setup_note in (
        ("BDFL", bdfl, b, "devnet, deploy, workers + tear-down"),
        ("Flower", flower, f, f"ray.init {flower['ray_init_s']:.1f} s + server start; actor start-up falls in round 1"),
    ):
        lines.append(
            f"| {name} | {x['round'] if x['round'] else 'not reached'} | {_s(x['seconds'], 1)} | {_s(x['steady_seconds'], 1)} | {x['s_per_round_2on']:.2f} | {x['round1_s']:.2f} | "
            f"{res['setup_s']:.1f} ({setup_note}) | {res['wall_s']:.1f} | {res['accuracy'][-1]:.4f} ({len(res['accuracy'])}) | {res['peak_rss_bytes'] / 2**20:,.0f} |"
        )
    lines += [
        "",
        "Issue 23's targets at this N (BDFL / Flower):",
        "",
        f"* time to target <= {TARGET_TIME_RATIO} x Flower: {_r(s['time_ratio'])} — {verdict(s['time_ratio'], TARGET_TIME_RATIO)}",
        f"  (with round 1's one-off costs removed on both sides: {_r(s['steady_time_ratio'])} — {verdict(s['steady_time_ratio'], TARGET_TIME_RATIO)})",
        f"* rounds to target <= {TARGET_ROUNDS_RATIO} x Flower's: {_r(s['rounds_ratio'])} — {verdict(s['rounds_ratio'], TARGET_ROUNDS_RATIO)}",
        f"* s/round (rounds 2..) <= {TARGET_PER_ROUND_RATIO} x Flower's: {_r(s['per_round_ratio'])} — {verdict(s['per_round_ratio'], TARGET_PER_ROUND_RATIO)}",
        "",
        "Per-round split, mean over rounds 2.. (BDFL's own accounting in `rounds.csv`: train = local fit + aggregation + "
        "each peer's test-set evaluation; exchange = publish, fetch, hash-check; audit = committee evaluation; chain = "
        "transactions, receipts, chain reads; other = the rest of the round. Flower: fit = configure_fit to aggregate_fit; "
        "eval = federated evaluation):",
        "",
        "| system | total | " + " | ".join(bdfl["split"]) + " | other |",
        "|---|---:|" + "---:|" * (len(bdfl["split"]) + 1),
    ]
    bsplit = {k: _mean(v[1:] or v) for k, v in bdfl["split"].items()}
    lines.append(f"| BDFL | {b['s_per_round_2on']:.2f} | " + " | ".join(f"{v:.2f}" for v in bsplit.values()) + f" | {b['s_per_round_2on'] - sum(bsplit.values()):.2f} |")
    lines += ["", "| system | total | fit | eval |", "|---|---:|---:|---:|"]
    fsplit = {k: _mean(v[1:] or v) for k, v in flower["split"].items()}
    lines.append(f"| Flower | {f['s_per_round_2on']:.2f} | {fsplit['fit']:.2f} | {fsplit['eval']:.2f} |")
    lines += ["", "Accuracy and cumulative round seconds per round:", "", "| round | BDFL accuracy | BDFL cum. s | Flower accuracy | Flower cum. s |", "|---:|---:|---:|---:|---:|"]
    n_rows = max(len(bdfl["accuracy"]), len(flower["accuracy"]))

    def cell(res: dict[str, Any], i: int) -> tuple[str, str]:
        if i >= len(res["accuracy"]):
            return "", ""
        acc = res["accuracy"][i]
        mark = " ←" if acc is not None and acc >= s["target"] and first_crossing(res["accuracy"], s["target"]) == i + 1 else ""
        return (f"{acc:.4f}{mark}" if acc is not None else "-"), f"{sum(res['round_seconds'][: i + 1]):.1f}"

    for i in range(n_rows):
        ba, bc = cell(bdfl, i)
        fa, fc = cell(flower, i)
        lines.append(f"| {i + 1} | {ba} | {bc} | {fa} | {fc} |")
    lines += [
        "",
        f"Load average (1 min) at the start of each run: BDFL {bdfl['load_average']:.2f}, Flower {flower['load_average']:.2f}. "
        "Peak RSS: summed RSS of each run's process tree, sampled every 0.2 s (an upper bound).",
    ]
    md.write_text("\n".join(lines) + "\n")
    return md


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peers", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=20, help="Flower rounds; the target is its last round's accuracy")
    ap.add_argument("--bdfl-rounds", type=int, default=40, help="BDFL rounds (it may need more than Flower to cross)")
    ap.add_argument("--fraction", type=float, default=0.95, help="target = this x Flower's final accuracy")
    ap.add_argument("--work", default=str(ROOT / "results" / "time_to_accuracy"), help="where the runs go")
    ap.add_argument("--results-dir", default=str(HERE / "results"))
    ap.add_argument("--stem", default="time_to_accuracy", help="output file name stem")
    ap.add_argument("--timeout", type=float, help="seconds per run before it is stopped")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a config override for both runs, after SETS (e.g. overlay.degree=16; Flower ignores BDFL-only tables)")
    ap.add_argument("--target", type=float, help="a fixed target accuracy instead of --fraction x Flower's last round "
                    "(for runs too short to give Flower's round-20 accuracy, e.g. N = 1000)")
    ap.add_argument("--flower-from", metavar="JSON",
                    help="reuse the Flower side of an earlier report's JSON (same --peers and --set) instead of running it: "
                    "the BDFL side alone (e.g. after a BDFL-only change); the report names where the Flower side came from")
    args = ap.parse_args(argv)
    args.argv = argv
    import importlib.util

    reused = None
    if args.flower_from:
        reused = reused_flower(Path(args.flower_from), args.peers, tuple(args.set))
    elif importlib.util.find_spec("ray") is None:
        ap.error("the Flower side needs Ray: .venv/bin/pip install -e '.[bench]'")
    env = environment()
    work = Path(args.work) / f"N{args.peers}"
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    extra = tuple(args.set)
    if reused is not None:
        flower = reused
        print(f"flower: reused from {args.flower_from} ({flower['measured']})", flush=True)
    else:
        print(f"flower: {args.peers} clients, {args.rounds} rounds", flush=True)
        flower = run_flower(args.peers, args.rounds, work, args.timeout, extra)
    print(f"  {flower['wall_s']:.1f} s wall, final accuracy {flower['accuracy'][-1]}", flush=True)
    print(f"bdfl: {args.peers} peers, {args.bdfl_rounds} rounds", flush=True)
    bdfl = run_bdfl(args.peers, args.bdfl_rounds, work, args.timeout, extra)
    print(f"  {bdfl['wall_s']:.1f} s wall, final accuracy {bdfl['accuracy'][-1]}", flush=True)
    s = summarise(bdfl, flower, args.fraction, args.target)
    md = write_report(args, bdfl, flower, s, env, time.perf_counter() - t0)
    print(md.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
