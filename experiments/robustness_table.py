"""The robustness tables: issue 22's (``--run`` / ``--targets``) and issue 5's (the default).

Issue 22, one command that runs (or resumes) the sweep and writes the table::

    .venv/bin/python experiments/robustness_table.py --run experiments/configs/sweep_robustness_22.toml \
        [--only KEY=V1,V2 ...] [--set KEY=VALUE ...] [--jobs N]

``--only`` narrows a grid key to some of its values (a labelled attack by its label),
``--set`` overrides a ``[set]`` key (e.g. ``rounds=8``); the narrowed grid is written next
to the runs (``grid.toml``) and run with ``bdfl sweep`` (runs are reused by config hash).
A subset file (``experiments/configs/sweep_22_subset_*.toml``: ``grid``, ``out``, ``[only]``,
``[set]``, optional ``outer``) stands for such a narrowing; ``--run`` takes several, runs them one
after another and tabulates them together (``--only``/``--set`` then narrow each further, e.g.
``--only defense.name=bdfl``). The doc's table, from every subset measured, without running::

    .venv/bin/python experiments/robustness_table.py --targets experiments/configs/sweep_22_subset_*.toml

``--targets`` takes sweep folders or subset files (their ``out``); where two folders hold the same
point, the newer run counts. Each ``--run`` appends to ``<out>/provenance.jsonl`` the commit and the
uncommitted files under bdfl/ and clients/ before and after it, and the table names the code each
BDFL run ran at. A run that stopped early with its model diverged (status "failed") is kept, marked †.
``--targets SWEEP_DIR`` tabulates a finished sweep folder without running anything. The table
(``<results-dir>/robustness_22.md``), per task, peer count and attacker share: each defense's
final honest accuracy, BDFL's drop against its clean run, honest updates falsely rejected,
the separation round, the backdoor success of every trigger, and the adaptive attacker on its
own (the damage its audit-passing update does under each defense); then issue 22's targets,
each named as met or missed, and the time per run measured, with the full grid's estimate.

Issue 5 (the default mode):

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
import datetime as _dt
import itertools
import json
import statistics
import subprocess
import sys
import time
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


# --------------------------------------------------------------------------- #
# Issue 22: three tasks, two peer counts, labelled attacks, eight defenses
# --------------------------------------------------------------------------- #

DEFENSES_22 = ("bdfl", "fedavg", "krum", "median", "trimmed_mean", "geometric_median", "centered_clipping", "nnm_trimmed_mean")
BACKDOOR_PREFIXES = ("backdoor", "dba", "edge_case", "adaptive_backdoor", "model_replacement")
ROBUST_BASELINES = ("krum", "median", "trimmed_mean")


def _toml_value(text: str) -> Any:
    """A command-line value as TOML reads it (``8`` -> 8, ``0.3`` -> 0.3), else the string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def narrowed_grid(grid_path: Path, only: list[str], sets: list[str], outer: str | None = None,
                  subset_only: dict[str, list[Any]] | None = None) -> dict[str, Any]:
    """The grid file with ``--only KEY=V1,V2`` (values of a grid key kept, in that order; a table
    value is matched by its label), ``--set KEY=VALUE`` (a ``[set]`` override) and ``--outer KEY``
    (that key the outermost loop) applied; ``base`` made absolute so the result can live anywhere.
    A subset file's ``seed`` may name seeds the grid does not list (a check at seeds no sweep used);
    the command line only narrows.
    ``subset_only`` (a subset file's ``[only]`` table) narrows first, ``only`` then narrows further."""
    data = tomllib.loads(grid_path.read_text())
    if data.get("base"):
        data["base"] = str((grid_path.parent / data["base"]).resolve())
    grid = data["grid"]
    # (key, values, how the user wrote it, whether a subset file asked)
    pairs = [(k, list(v) if isinstance(v, list) else [v], f"[only] {k}", True) for k, v in (subset_only or {}).items()]
    for item in only:
        key, _, values = item.partition("=")
        pairs.append((key, [_toml_value(v) for v in values.split(",")], f"--only {item}", False))
    for key, wanted, item, from_subset in pairs:
        if key not in grid:
            raise SystemExit(f"error: {item}: {key!r} is not a grid key ({', '.join(grid)})")
        by_name = {(v.get("label") if isinstance(v, dict) else v): v for v in grid[key]}
        if key == "seed" and from_subset:  # seeds repeat the design: a subset file may name new ones
            by_name.update({w: w for w in wanted if isinstance(w, int) and not isinstance(w, bool)})
        unknown = [w for w in wanted if w not in by_name]
        if unknown:
            raise SystemExit(f"error: {item}: {', '.join(map(str, unknown))} not among the grid's values of {key}")
        grid[key] = [by_name[w] for w in wanted]  # in the order given: the sweep runs them in that order
    for item in sets:
        key, _, value = item.partition("=")
        data.setdefault("set", {})[key] = _toml_value(value)
    if outer is not None:
        if outer not in grid:
            raise SystemExit(f"error: --outer {outer}: not a grid key ({', '.join(grid)})")
        data["grid"] = {outer: grid[outer], **{k: v for k, v in grid.items() if k != outer}}
    # table values with nested tables (params) become dotted keys: tomli_w then writes them inline,
    # in place, instead of as [[grid.attack]] after every other key (which lost --outer's order)
    data["grid"] = {k: [_dotted(v) if isinstance(v, dict) else v for v in vs] for k, vs in data["grid"].items()}
    return data


def dump_grid(data: dict[str, Any]) -> str:
    """A grid file as TOML with ``[grid]`` written by hand, every value inline, so its keys keep
    their order (tomli_w moves arrays of long tables after every other key)."""
    import tomli_w

    def value(v: Any) -> str:
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{json.dumps(k)} = {value(x)}" for k, x in v.items()) + " }"
        return tomli_w.dumps({"v": v}).split("=", 1)[1].strip()

    rest = tomli_w.dumps({k: v for k, v in data.items() if k != "grid"})
    grid = "\n".join(f"{json.dumps(k)} = [{', '.join(value(x) for x in vs)}]" for k, vs in data["grid"].items())
    return rest + "\n[grid]\n" + grid + "\n"


def _dotted(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested table as one level of dotted keys ({"params": {"scale": 4}} -> {"params.scale": 4})."""
    out: dict[str, Any] = {}
    for k, v in table.items():
        if isinstance(v, dict) and v:
            out.update(_dotted(v, f"{prefix}{k}."))
        elif not isinstance(v, dict):
            out[f"{prefix}{k}"] = v
    return out


SUBSET_KEYS = {"grid", "out", "outer", "only", "set"}


def load_subset(path: Path) -> dict[str, Any]:
    """A subset file (``experiments/configs/sweep_22_subset_*.toml``): ``grid`` (the full grid
    file it narrows, relative to this file), ``out`` (its sweep folder, relative to the working
    directory), optional ``outer`` (a grid key made the outermost loop), ``[only]`` (grid key ->
    the values kept, in order) and ``[set]`` (``[set]`` overrides, e.g. ``rounds = 6``)."""
    data = tomllib.loads(Path(path).read_text())
    unknown = sorted(set(data) - SUBSET_KEYS)
    if unknown:
        raise SystemExit(f"error: {path}: unknown key {unknown[0]!r} (a subset file has {', '.join(sorted(SUBSET_KEYS))})")
    if not isinstance(data.get("grid"), str) or not isinstance(data.get("out"), str):
        raise SystemExit(f"error: {path}: a subset file needs grid = \"<grid file>\" and out = \"<sweep folder>\"")
    for key in ("only", "set"):
        if not isinstance(data.get(key, {}), dict):
            raise SystemExit(f"error: {path}: [{key}] must be a table")
    return {"grid": (Path(path).parent / data["grid"]).resolve(), "out": Path(data["out"]), "outer": data.get("outer"),
            "only": dict(data.get("only", {})), "set": [f"{k}={json.dumps(v)}" for k, v in data.get("set", {}).items()]}


def is_subset(path: Path) -> bool:
    """Whether a TOML file is a subset file (``grid`` names a file) rather than a grid file."""
    return isinstance(tomllib.loads(Path(path).read_text()).get("grid"), str)


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=HERE.parent, capture_output=True, text=True, timeout=30).stdout.rstrip("\n")
    except (OSError, subprocess.SubprocessError):
        return ""


def code_state() -> dict[str, Any]:
    """The commit checked out and the files under bdfl/ that differ from it (other engineers'
    uncommitted work in a shared tree): what a run started now runs with."""
    dirty = [line[3:] for line in _git("status", "--porcelain", "--", "bdfl", "clients").splitlines() if line]
    return {"head": _git("rev-parse", "--short", "HEAD"), "defense": _git("log", "-1", "--format=%h", "--", "bdfl/defense"),
            "dirty": dirty, "utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")}


def run_grid(grid_path: Path, only: list[str], sets: list[str], out: Path | None, jobs: int, outer: str | None = None,
             subset: dict[str, Any] | None = None) -> Path:
    """Write the narrowed grid into the sweep folder and run it with ``bdfl sweep`` (resumable).
    With ``subset`` (:func:`load_subset`), its grid, ``[only]``, ``[set]``, ``outer`` and ``out``
    apply first and ``only``/``sets`` narrow further. Appends to ``<out>/provenance.jsonl`` the code
    state (:func:`code_state`) before and after, with the runs this invocation ran."""
    from bdfl.experiment.sweep import SWEEP_MANIFEST, run_sweep

    if subset is not None:
        grid_path, out = subset["grid"], out or subset["out"]
        outer = outer or subset["outer"]
        sets = subset["set"] + list(sets)
    data = narrowed_grid(grid_path, only, sets, outer, subset["only"] if subset else None)
    if out is None:
        out = Path("results") / (f"sweep-{data.get('name', grid_path.stem)}" + ("-subset" if only or sets else ""))
    out.mkdir(parents=True, exist_ok=True)
    (out / "grid.toml").write_text(dump_grid(data))
    before, t0 = code_state(), time.time()
    try:
        run_sweep(out / "grid.toml", out=out, jobs=jobs)
    except Exception as exc:  # noqa: BLE001 - failed runs are named; the table still has the others
        print(f"warning: {exc}", file=sys.stderr)
    manifest = out / SWEEP_MANIFEST
    points = json.loads(manifest.read_text()).get("points", []) if manifest.is_file() else []
    ran = [p["run"] for p in points if p.get("action") in ("run", "stale")
           and (out / p["run"] / "summary.json").is_file() and (out / p["run"] / "summary.json").stat().st_mtime >= t0]
    with open(out / "provenance.jsonl", "a") as fh:
        fh.write(json.dumps({"start": before, "end": code_state(), "runs": ran}) + "\n")
    return out


def provenance(sweep: Path) -> dict[str, str]:
    """Run folder name -> the code it ran at (``<commit>``, ``+ uncommitted bdfl/...`` when files
    under bdfl/ or clients/ differed from it, ``a -> b`` when the checkout moved during the
    invocation), from ``provenance.jsonl``; the latest record of a run wins."""
    path = sweep / "provenance.jsonl"
    out: dict[str, str] = {}
    if not path.is_file():
        return out
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        a, b = rec["start"], rec["end"]
        text = a["head"] if a["head"] == b["head"] else f"{a['head']} -> {b['head']}"
        dirty = sorted(set(a["dirty"]) | set(b["dirty"]))
        if dirty:
            text += " + uncommitted " + ", ".join(dirty)
        for run in rec["runs"]:
            out[Path(run).name] = text
    return out


def attack_labels(grid_path: Path | None) -> list[tuple[str, str, dict[str, Any]]]:
    """(label, attack name, params) of a grid file's labelled attacks."""
    if grid_path is None:
        return []
    values = tomllib.loads(Path(grid_path).read_text()).get("grid", {}).get("attack", [])
    return [(v["label"], v["name"], dict(v.get("params", {}))) for v in values if isinstance(v, dict)]


def load_runs_22(sweep: Path, grid_path: Path | None = None) -> list[dict[str, Any]]:
    """Completed runs of an issue-22 sweep folder, each with its attack's label: the grid file's
    label whose name and parameters the run's config has, else the label sweep.json gives its
    folder, else the attack's name."""
    by_config = attack_labels(grid_path)
    labels: dict[str, str] = {}
    manifest = sweep / "sweep.json"
    if manifest.is_file():
        for point in json.loads(manifest.read_text()).get("points", []):
            if isinstance(point.get("params", {}).get("attack"), str):
                labels.setdefault(point["run"], point["params"]["attack"])
    code = provenance(sweep)
    runs = []
    for d in sorted((sweep / "runs").iterdir()) if (sweep / "runs").is_dir() else []:
        paths = d / "summary.json", d / "config.toml", d / "metrics.csv"
        if not all(p.is_file() for p in paths):
            continue
        summary = json.loads(paths[0].read_text())
        failed = summary.get("status") == "failed"  # kept when it ran a round: a model that diverged is a result
        if not (summary.get("status") in ("completed", "degraded")
                or (failed and summary.get("final_honest_accuracy") is not None and summary.get("rounds_completed"))):
            continue
        cfg = tomllib.loads(paths[1].read_text())
        with open(paths[2], newline="") as fh:
            metrics = list(csv.DictReader(fh))
        attack = cfg["attack"]
        matches = [lb for lb, name, params in by_config if name == attack["name"] and params == attack.get("params", {})]
        label = (matches[0] if len(matches) == 1 else None) or labels.get(f"runs/{d.name}") or attack["name"]
        last = max((int(m["round"]) for m in metrics), default=0)
        first_honest = {m["peer"] for m in metrics if m.get("attacker") == "0" and int(m["round"]) == 1}
        last_honest = [m for m in metrics if m.get("attacker") == "0" and int(m["round"]) == last]
        stakes = [float(m["stake"]) for m in last_honest if m.get("stake") not in (None, "")]
        runs.append({
            "label": label, "attack": attack["name"], "params": attack.get("params", {}),
            "fraction": float(attack.get("fraction", 0.0)), "defense": cfg["defense"]["name"],
            "task": cfg.get("task", {}).get("client", "clients.digits").split(".")[-1],
            "peers": int(cfg["peers"]), "seed": int(cfg["seed"]), "rounds": int(cfg["rounds"]),
            "accuracy": float(summary["final_honest_accuracy"]),
            "asr": summary.get("attack_success_rate_final"),
            "separated": separation_round(metrics),
            "honest_left": len(first_honest - {m["peer"] for m in last_honest}),
            "min_honest_stake": min(stakes) if stakes else None,
            "seconds": float(summary.get("seconds_wall") or 0.0),
            "seconds_rounds": float(summary.get("seconds_total") or 0.0),
            "rounds_done": int(summary.get("rounds_completed") or last),
            "failed": failed, "run": d.name, "code": code.get(d.name, "unrecorded"),
            "mtime": paths[0].stat().st_mtime,
            **audit_counts(metrics),
        })
    return runs


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _pts(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:+.1f}"


def _is_backdoor(label: str) -> bool:
    return label.startswith(BACKDOOR_PREFIXES)


def _turn_round(run: dict[str, Any]) -> int | None:
    """The first round (1-based) of an attack that behaves honestly at first (on_off)."""
    return int(run["params"].get("on_after", 5)) + 1 if run["attack"] == "on_off" else None


class _CleanLookup:
    """A run's clean reference accuracy: the clean run of its own sweep folder, else the newest."""

    def __init__(self, newest: dict[tuple[Any, ...], float], own: dict[tuple[Any, ...], float], runs: list[dict[str, Any]]) -> None:
        self.newest, self.own = newest, own

    def of(self, r: dict[str, Any]) -> float | None:
        key = (r["task"], r["peers"], r["rounds"], r["defense"], r["seed"])
        return self.own.get((r.get("sweep"), *key), self.newest.get(key))


def build_22(runs: list[dict[str, Any]]) -> tuple[list[str], list[tuple[str, bool, str]]]:
    """Issue 22's tables and its targets (name, holds, detail), per task, peers and fraction."""
    defenses = [d for d in DEFENSES_22 if any(r["defense"] == d for r in runs)]
    # the clean run a drop compares with: same task, peers, rounds, defense and seed, from the
    # attacked run's own folder when it has one (measured at the same code), else the newest
    newest: dict[tuple[str, int, int, str, int], dict[str, Any]] = {}
    for r in sorted((r for r in runs if r["attack"] == "none"), key=lambda r: r.get("mtime", 0.0)):
        newest[(r["task"], r["peers"], r["rounds"], r["defense"], r["seed"])] = r
    own = {(r.get("sweep"), r["task"], r["peers"], r["rounds"], r["defense"], r["seed"]): r["accuracy"]
           for r in runs if r["attack"] == "none"}
    runs = [r for r in runs if r["attack"] != "none" or newest[(r["task"], r["peers"], r["rounds"], r["defense"], r["seed"])] is r]
    clean = _CleanLookup({k: r["accuracy"] for k, r in newest.items()}, own, runs)
    lines: list[str] = []
    targets: list[tuple[str, bool, str]] = []
    groups = sorted({(r["task"], r["peers"], r["rounds"]) for r in runs})
    for task, peers, rounds in groups:
        group = [r for r in runs if r["task"] == task and r["peers"] == peers and r["rounds"] == rounds]
        several = sum(1 for g in groups if g[:2] == (task, peers)) > 1  # name the rounds where they differ
        tp = f"{task}/{peers}" + (f"/{rounds}r" if several else "")
        head = f"{task}, {peers} peers, {rounds} rounds"
        cl = [r for r in group if r["attack"] == "none" and r["defense"] == "bdfl"]
        if cl:
            ha, hr = sum(r["honest_audited"] for r in cl), sum(r["honest_rejected"] for r in cl)
            frr = hr / ha if ha else None
            left = sum(r["honest_left"] for r in cl)
            broke = sum(1 for r in cl if r["min_honest_stake"] is not None and r["min_honest_stake"] <= 0)
            lines += [f"### {head}: clean runs", "",
                      f"BDFL, no attackers ({len(cl)} run(s)): final honest accuracy "
                      f"{statistics.fmean(r['accuracy'] for r in cl):.3f}; honest updates falsely rejected "
                      f"{'–' if frr is None else f'{frr:.1%} ({hr}/{ha})'}; honest peers that left {left}; "
                      f"runs with an honest peer at zero stake {broke}.", ""]
            if frr is not None:
                targets.append((f"{tp}: clean-run false rejection < 2 %", frr < 0.02, f"{frr:.1%}"))
            targets.append((f"{tp}: no honest peer leaves or reaches zero stake in a clean run",
                            left == 0 and broke == 0, f"{left} left, {broke} run(s) with zero stake"))
        for frac in sorted({r["fraction"] for r in group if r["attack"] != "none"}):
            rows = [r for r in group if r["fraction"] == frac and r["attack"] != "none"]
            labels = sorted({r["label"] for r in rows}, key=lambda a: (a.startswith("adaptive"), _is_backdoor(a), a))
            lines += [f"### {head}, {round(frac * 100)} % attackers", "",
                      "| attack | " + " | ".join(defenses) + " | BDFL drop (pts) | BDFL FRR | separated by | BDFL ASR |",
                      "|---|" + "---:|" * (len(defenses) + 4)]
            clean_cells = {d: [r["accuracy"] for r in group if r["attack"] == "none" and r["defense"] == d] for d in defenses}
            if any(clean_cells.values()):  # each defense's clean run: what the drops compare with
                lines.append("| none (clean) | " + " | ".join(_acc_cell(clean_cells[d]) for d in defenses) + " | – | – | – | – |")
            for label in labels:
                cell = {d: [r for r in rows if r["label"] == label and r["defense"] == d] for d in defenses}
                drops = {d: _mean([r["accuracy"] - clean.of(r) for r in cell[d] if clean.of(r) is not None]) for d in defenses}
                b = cell.get("bdfl", [])
                ha, hr = sum(r["honest_audited"] for r in b), sum(r["honest_rejected"] for r in b)
                frr = hr / ha if ha else None
                sep = [r["separated"] for r in b]
                turn = _turn_round(b[0]) if b else None
                sep_cell = "–" if not b else ("never" if any(s is None for s in sep) else str(max(sep)))
                asr = _mean([r["asr"] for r in b if r.get("asr") is not None])
                lines.append(f"| {label} | " + " | ".join(_acc_cell([r["accuracy"] for r in cell[d]])
                                                          + ("†" if any(r["failed"] for r in cell[d]) else "") for d in defenses)
                             + f" | {_pts(drops.get('bdfl'))} | {'–' if frr is None else f'{frr:.1%}'} | {sep_cell} | "
                             + ("–" if asr is None else f"{asr:.1%}") + " |")
                if not b:
                    continue
                where = f"{tp}/{round(frac * 100)}%/{label}"
                d_b = drops.get("bdfl")
                if frac <= 0.3:
                    if d_b is not None:
                        targets.append((f"{where}: within 2 points of clean", d_b >= -0.02, f"{_pts(d_b)} pts"))
                    if frr is not None:
                        targets.append((f"{where}: honest false rejection < 2 %", frr < 0.02, f"{frr:.1%}"))
                    bound = 5 if turn is None else turn + 2
                    ok = bool(sep) and all(s is not None and s <= bound for s in sep)
                    if label != "lazy_auditor":  # behaves honestly as a trainer: nothing to separate
                        targets.append((f"{where}: attackers below every honest peer from round {bound}", ok, sep_cell))
                    if _is_backdoor(label) and asr is not None:
                        targets.append((f"{where}: backdoor success < 5 %", asr < 0.05, f"{asr:.1%}"))
                else:
                    lost = [drops[d] for d in ROBUST_BASELINES if drops.get(d) is not None]
                    if d_b is not None and lost and min(lost) < -0.10:
                        targets.append((f"{where}: within 5 points of clean (Krum/median/trimmed mean lose > 10)",
                                        d_b >= -0.05, f"{_pts(d_b)} pts; baselines {', '.join(_pts(x) for x in lost)}"))
            lines.append("")
            lines += _drop_table(rows, defenses, clean, (task, peers, rounds), frac)
            lines += _asr_table(rows, defenses, task, peers, frac)
            lines += _adaptive_table(rows, defenses, clean, task, peers, frac, rounds)
    return lines, targets


def _drop_table(rows: list[dict[str, Any]], defenses: list[str], clean: _CleanLookup,
                where: tuple[str, int, int], frac: float) -> list[str]:
    """Each defense's final honest accuracy minus its own clean run (same seeds), points: what the
    45 % target's condition reads for Krum, median and trimmed mean."""
    labels = sorted({r["label"] for r in rows}, key=lambda a: (a.startswith("adaptive"), _is_backdoor(a), a))
    out = [f"Drop against each defense's own clean run ({where[0]}, {where[1]} peers, {round(frac * 100)} %), points:", "",
           "| attack | " + " | ".join(defenses) + " |", "|---|" + "---:|" * len(defenses)]
    for label in labels:
        vals = [_mean([r["accuracy"] - clean.of(r) for r in rows
                       if r["label"] == label and r["defense"] == d and clean.of(r) is not None]) for d in defenses]
        out.append(f"| {label} | " + " | ".join(_pts(v) for v in vals) + " |")
    return out + [""]


def _asr_table(rows: list[dict[str, Any]], defenses: list[str], task: str, peers: int, frac: float) -> list[str]:
    bd = sorted({r["label"] for r in rows if _is_backdoor(r["label"])})
    if not bd:
        return []
    out = [f"Backdoor success ({task}, {peers} peers, {round(frac * 100)} %): share of the honest models' predictions "
           "in the target class on triggered test inputs, each family member measured with its own trigger "
           "(DBA: the whole global trigger; edge-case: rotated test images of the source class).", "",
           "| trigger | " + " | ".join(defenses) + " |", "|---|" + "---:|" * len(defenses)]
    for label in bd:
        vals = [_mean([r["asr"] for r in rows if r["label"] == label and r["defense"] == d and r.get("asr") is not None])
                for d in defenses]
        out.append(f"| {label} | " + " | ".join("–" if v is None else f"{v:.1%}" for v in vals) + " |")
    return out + [""]


def _adaptive_table(rows: list[dict[str, Any]], defenses: list[str], clean: _CleanLookup,
                    task: str, peers: int, frac: float, rounds: int) -> list[str]:
    ad = sorted({r["label"] for r in rows if r["label"].startswith("adaptive")})
    if not ad:
        return []
    out = [f"Adaptive attacker ({task}, {peers} peers, {round(frac * 100)} %), on its own: the update its copy of "
           "BDFL's audit accepts, sent under every defense. Cells: final honest accuracy minus the same defense's "
           "clean run (points); BDFL also: attackers' updates approved.", "",
           "| attack | " + " | ".join(defenses) + " | BDFL approved |", "|---|" + "---:|" * (len(defenses) + 1)]
    for label in ad:
        cells = []
        for d in defenses:
            rs = [r for r in rows if r["label"] == label and r["defense"] == d]
            cells.append(_pts(_mean([r["accuracy"] - clean.of(r) for r in rs if clean.of(r) is not None])))
        b = [r for r in rows if r["label"] == label and r["defense"] == "bdfl"]
        aa, ap = sum(r["attacker_audited"] for r in b), sum(r["attacker_approved"] for r in b)
        out.append(f"| {label} | " + " | ".join(cells) + f" | {'–' if not aa else f'{ap / aa:.0%} ({ap}/{aa})'} |")
    return out + [""]


def grid_points(grid_path: Path) -> list[dict[str, Any]]:
    """Every distinct run a grid file asks for (label-valued points; clean runs counted once per
    fraction-free configuration), without validating them."""
    data = tomllib.loads(grid_path.read_text())
    grid = data["grid"]
    keys = list(grid)
    excludes = data.get("exclude", [])
    seen, points = set(), []
    for combo in itertools.product(*(grid[k] for k in keys)):
        point = {k: (v["label"] if isinstance(v, dict) else v) for k, v in zip(keys, combo)}
        if any(all(point[k] in (v if isinstance(v, list) else [v]) for k, v in ex.items()) for ex in excludes):
            continue
        if point.get("attack") == "none":
            point["attack.fraction"] = 0.0
        key = tuple(sorted((k, str(v)) for k, v in point.items()))
        if key not in seen:
            seen.add(key)
            points.append(point)
    return points


def estimate(runs: list[dict[str, Any]], grid_path: Path) -> list[str]:
    """The full grid's run time from the measured runs: seconds per round and setup seconds per
    (task, peers, BDFL or baseline), times the grid's rounds, summed over its points."""
    data = tomllib.loads(grid_path.read_text())
    rounds = int(data.get("set", {}).get("rounds", 15))
    measured: dict[tuple[str, int, bool], list[tuple[float, float]]] = defaultdict(list)
    for r in runs:
        if r["rounds_done"]:
            measured[(r["task"], r["peers"], r["defense"] == "bdfl")].append(
                (r["seconds_rounds"] / r["rounds_done"], max(r["seconds"] - r["seconds_rounds"], 0.0)))
    if not measured:
        return []
    per = {k: (statistics.median(x for x, _ in v), statistics.median(y for _, y in v), len(v)) for k, v in measured.items()}
    lines = ["## Time per run (measured) and the full grid's estimate", "",
             "| task | peers | defense | runs measured | seconds per round | setup seconds |", "|---|---:|---|---:|---:|---:|"]
    for (task, peers, audited), (sr, su, n) in sorted(per.items()):
        lines.append(f"| {task} | {peers} | {'bdfl' if audited else 'baselines'} | {n} | {sr:.2f} | {su:.1f} |")
    total, missing = 0.0, 0
    for p in grid_points(grid_path):
        key = (str(p["task.client"]).split(".")[-1], int(p["peers"]), p["defense.name"] == "bdfl")
        if key not in per:
            missing += 1
            continue
        sr, su, _n = per[key]
        total += su + rounds * sr
    n_points = len(grid_points(grid_path))
    lines += ["", f"Full grid ({grid_path.name}, {rounds} rounds): {n_points} runs; the {n_points - missing} with a "
              f"measured (task, peers, defense kind) take about {total / 3600:.1f} h one at a time"
              + (f"; {missing} runs have no measurement of their kind and are not in that sum" if missing else "") + ".", ""]
    return lines


def load_many(sweeps: list[Path], grid_path: Path | None) -> list[dict[str, Any]]:
    """The completed runs of several sweep folders as one set: where two folders hold the same
    point (task, peers, rounds, seed, defense, attack label and fraction), the newer run counts."""
    best: dict[tuple[Any, ...], dict[str, Any]] = {}
    for sweep in sweeps:
        for r in load_runs_22(sweep, grid_path):
            r["sweep"] = str(sweep)
            # a clean run is kept per folder: each folder's attacked runs compare with the clean run
            # measured beside them (same code); an attacked point measured twice counts once
            key = (r["task"], r["peers"], r["rounds"], r["seed"], r["defense"], r["label"],
                   str(sweep) if r["attack"] == "none" else r["fraction"])
            if key not in best or r["mtime"] > best[key]["mtime"]:
                best[key] = r
    return list(best.values())


def code_lines(runs: list[dict[str, Any]]) -> list[str]:
    """Which code each BDFL run ran at (its sweep folder's provenance.jsonl): BDFL's audit changes
    while a sweep is measured, the baselines' aggregation does not."""
    by_code: dict[str, list[str]] = defaultdict(list)
    for r in sorted((r for r in runs if r["defense"] == "bdfl"), key=lambda r: (r["task"], r["peers"], r["fraction"], r["label"], r["seed"])):
        frac = "clean" if r["attack"] == "none" else f"{round(r['fraction'] * 100)}%"
        by_code[r["code"]].append(f"{r['task']}/{r['peers']}/{frac}/{r['label']}/s{r['seed']}")
    if not by_code:
        return []
    out = ["## Code each BDFL run ran at", "",
           "From each sweep folder's `provenance.jsonl` (commit checked out before and after the invocation that ran it, "
           "and the files under bdfl/ or clients/ that differed from it); \"unrecorded\": run before the script kept it.", ""]
    for code, names in sorted(by_code.items()):
        out.append(f"* `{code}` ({len(names)} run(s)): " + ", ".join(names))
    failed = sorted(f"{r['task']}/{r['peers']}/{round(r['fraction'] * 100)}%/{r['label']}/{r['defense']}/s{r['seed']} "
                    f"(round {r['rounds_done']} of {r['rounds']})" for r in runs if r["failed"])
    if failed:
        out += ["", "† Runs that stopped early (status \"failed\": a peer's model update was not finite, i.e. the "
                "model diverged); their accuracy is the last round's: " + "; ".join(failed)]
    return out + [""]


def main_22(sweeps: list[Path], results_dir: Path, grid_path: Path | None, command: str, timing: list[Path] | None = None) -> int:
    runs = load_many(sweeps, grid_path)
    timed = runs + [r for t in timing or [] for r in load_runs_22(t, grid_path)]  # more measured runs for the estimate
    if not runs:
        print(f"error: {', '.join(map(str, sweeps))} hold(s) no completed run", file=sys.stderr)
        return 2
    lines, targets = build_22(runs)
    held = [t for t in targets if t[1]]
    missed = [t for t in targets if not t[1]]
    where = ", ".join(f"`{s}`" for s in sweeps)
    head = ["# Robustness: issue 22's targets", "",
            f"{len(runs)} runs in {where}: tasks {', '.join(sorted({r['task'] for r in runs}))}; "
            f"peers {', '.join(map(str, sorted({r['peers'] for r in runs})))}; rounds {', '.join(map(str, sorted({r['rounds'] for r in runs})))}; "
            f"seeds {', '.join(map(str, sorted({r['seed'] for r in runs})))}; Dirichlet(0.5). Command: `{command}`.",
            "Cells: final honest accuracy, mean ± std over seeds (a number in brackets: seeds, when not 3). BDFL drop: "
            "against BDFL's clean run, same seeds and rounds, from the attacked run's own sweep folder when it has one "
            "(same code; the \"none (clean)\" row shows the newest clean run). "
            "FRR: honest updates the committee rejected. Separated by: first round from which the attackers' mean "
            "reputation stays below every honest peer's (worst seed). ASR: attack success rate, final round. "
            "†: a run that stopped early (below).", ""]
    summary = ["## Targets", "", f"{len(held)} of {len(targets)} target checks hold.", "", "Missed:", ""]
    summary += [f"* {name}: {detail}" for name, _ok, detail in missed] or ["* none"]
    summary += ["", "Met:", ""] + [f"* {name}: {detail}" for name, _ok, detail in held] + [""]
    text = "\n".join(head + lines + summary + code_lines(runs) + (estimate(timed, grid_path) if grid_path else []))
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "robustness_22.md").write_text(text)
    print(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sweep", type=Path, nargs="?", help="the sweep's results folder (results/sweep-robustness)")
    ap.add_argument("--run", type=Path, nargs="+", action="extend", default=[], metavar="GRID",
                    help="issue 22: run (or resume) these grid or subset files one after another, then one table of them all")
    ap.add_argument("--targets", type=Path, nargs="+", action="extend", default=[], metavar="SWEEP_DIR",
                    help="issue 22: one table of these finished sweep folders (a subset file stands for its out folder)")
    ap.add_argument("--grid", type=Path, help="with --targets: the grid file, for labels and the full grid's time estimate")
    ap.add_argument("--only", action="append", default=[], metavar="KEY=V1,V2", help="with --run: keep these values of a grid key")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="with --run: override a [set] key")
    ap.add_argument("--outer", metavar="KEY", help="with --run: make this grid key the outermost loop")
    ap.add_argument("--jobs", type=int, default=1, help="with --run: runs at once")
    ap.add_argument("--out", type=Path, help="with --run of one grid file: the sweep folder")
    ap.add_argument("--timing", type=Path, action="append", default=[], metavar="SWEEP_DIR",
                    help="issue 22: more sweep folders whose runs' times feed the full grid's estimate")
    ap.add_argument("--results-dir", type=Path, default=HERE / "results")
    ap.add_argument("--per-seed", metavar="NAME",
                    help="instead of the table: BDFL's runs one row per seed, written to <results-dir>/NAME.md")
    ap.add_argument("--source", default="experiments/configs/sweep_robustness.toml",
                    help="the sweep file the runs came from, as the table's text names it")
    args = ap.parse_args(argv)
    if args.run or args.targets:
        argv_text = " ".join(sys.argv[1:]) if argv is None else " ".join(map(str, argv))
        command = f".venv/bin/python experiments/robustness_table.py {argv_text}"
        if args.out and len(args.run) > 1:
            ap.error("--out goes with one --run file (a subset file names its own out folder)")
        sweeps: list[Path] = []
        grid = args.grid
        for path in args.run:
            subset = load_subset(path) if is_subset(path) else None
            sweeps.append(run_grid(path, args.only, args.set, args.out, args.jobs, args.outer, subset))
            grid = grid or (subset["grid"] if subset else path)
        for path in args.targets:
            if path.is_file() and path.suffix == ".toml":
                subset = load_subset(path)
                sweeps.append(subset["out"])
                grid = grid or subset["grid"]
            else:
                sweeps.append(path)
        return main_22(sweeps, args.results_dir, grid, command, args.timing)
    if args.sweep is None:
        ap.error("give a sweep folder, --run GRID or --targets SWEEP_DIR")
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
