"""``bdfl compare DIR...``: several runs (or sweep folders) in figures and tables.

Runs are told apart by what differs in their resolved configurations (``config.toml``):
:func:`config_diff` lists the dotted keys whose values are not the same in every run,
and labels use them (``defense.name=krum, seed=1``). Runs whose configurations differ
in ``seed`` only form one *group*: its figures show the mean over seeds with a ±std
band (sample std, ddof=1), and ``compare_groups.csv`` gives mean ± std over seeds of
every summary figure. A sweep folder (one with ``runs/``) stands for all its runs.
Outputs are described in docs/results-format.md ("Comparison folder").
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from matplotlib.lines import Line2D

from bdfl.errors import BDFLError
from bdfl.experiment.plots import LEGEND_OUTSIDE, band, integer_xaxis, mark_separation, new_figure, save_figure
from bdfl.experiment.progress import baseline_of
from bdfl.experiment.results import (
    METRICS_FILE,
    SUMMARY_FIELDS,
    Run,
    atomic_write_text,
    format_value,
    load_run,
    rebuild_summary,
)

log = logging.getLogger(__name__)

COMPARE_PNG = "compare_accuracy.png"
COMPARE_REPUTATION_PNG = "compare_reputation.png"
COMPARE_CSV = "compare.csv"
COMPARE_GROUPS_CSV = "compare_groups.csv"
COMPARE_MD = "compare.md"

#: Config keys that never tell runs apart (a run's name, folder, package versions, where its
#: clean reference lies).
IGNORED_KEYS: tuple[str, ...] = ("name", "out", "clean_reference")
IGNORED_PREFIXES: tuple[str, ...] = ("versions.",)

#: Summary figures shown side by side (in this order), when any run has them.
COMPARE_KEYS: tuple[str, ...] = (
    "rounds", "peers", "attackers",
    "final_honest_accuracy", "final_honest_accuracy_std", "honest_accuracy_last3", "final_attacker_accuracy", "accuracy_drop",
    "attack_success_rate_final",
    "attacker_mean_reputation_final", "honest_min_reputation_final", "separated_from_round", "mean_separated_from_round",
    "honest_false_rejection_rate", "attacker_approval_rate",
    "tx_count_total", "gas_used_total", "seconds_total",
)
ID_COLUMNS: tuple[str, ...] = ("run", "name", "attack", "fraction", "defense", "seed", "status", "dir")
#: Run statuses whose figures enter a seed group's mean and band: the run went through every round.
FINISHED = ("completed", "degraded")
#: Figures a baseline (no audit) has no meaning for (its summary and report say "n/a").
AUDIT_KEYS: tuple[str, ...] = ("attacker_mean_reputation_final", "honest_min_reputation_final", "separated_from_round",
                               "mean_separated_from_round", "honest_false_rejection_rate", "attacker_approval_rate")


def run_label(run: Run) -> str:
    """``name (attack[ fraction]/defense)`` from config.toml."""
    attack = run.attack
    if run.fraction:
        attack += f" {run.fraction:g}"
    return f"{run.name} ({attack}/{run.defense})"


def _summary(run: Run) -> dict[str, Any]:
    # summary.json as written, completed by what the CSVs give (a crashed run may lack it)
    return rebuild_summary(run)


def _md_cell(v: Any) -> str:
    return format_value(v).replace("|", "\\|").replace("\n", " ")


def markdown_table(columns: Sequence[str], rows: Sequence[dict[str, Any]], headers: Sequence[str] | None = None) -> str:
    """A GitHub-flavoured markdown table; strings left-aligned, numbers right-aligned."""
    headers = list(headers or columns)
    align = []
    for c in columns:
        numeric = any(isinstance(r.get(c), (int, float)) and not isinstance(r.get(c), bool) for r in rows)
        align.append("---:" if numeric else ":---")
    lines = ["| " + " | ".join(h.replace("|", "\\|") for h in headers) + " |", "| " + " | ".join(align) + " |"]
    for r in rows:
        lines.append("| " + " | ".join(_md_cell(r.get(c)) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def csv_text(columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> str:
    """CSV with full precision (None -> empty)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow(["" if r.get(c) is None else (repr(r[c]) if isinstance(r[c], float) else r[c]) for c in columns])
    return buf.getvalue()




class CompareOutputs(NamedTuple):
    accuracy_png: Path
    runs_csv: Path
    markdown: Path
    groups_csv: Path
    reputation_png: Path


#: What ``bdfl compare`` prints per run; compare.md and compare.csv hold every figure.
OVERVIEW_COLUMNS: tuple[tuple[str, str], ...] = (
    ("final_honest_accuracy", "honest accuracy"),
    ("separated_from_round", "separated from round"),
    ("honest_false_rejection_rate", "honest rejected"),
    ("attacker_approval_rate", "attackers approved"),
)


def _overview_cell(key: str, text: str | None) -> str:
    try:
        value = float(text) if text else None
    except ValueError:
        value = None
    if value is None:
        return "—"
    if key.endswith("_rate"):
        return f"{100 * value:.1f} %"
    return f"{value:.0f}" if key.endswith("_round") else f"{value:.3f}"


def overview(runs_csv: str | Path) -> str:
    """The terminal's view of a comparison (its ``compare.csv``): one aligned line per run with its
    label, status and the figures of :data:`OVERVIEW_COLUMNS` ("—": no value, e.g. a baseline's
    approvals or a run that never separated)."""
    with open(runs_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    header = ["run", "status"] + [title for _, title in OVERVIEW_COLUMNS]
    lines = [header] + [[r["run"], r.get("status") or "unknown"] + [_overview_cell(k, r.get(k)) for k, _ in OVERVIEW_COLUMNS]
                        for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))).rstrip()
                     for line in lines)


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as dotted keys (``defense.name``); lists become JSON text."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        elif isinstance(value, (list, tuple)):
            out[name] = json.dumps(value, sort_keys=True, default=str)
        else:
            out[name] = value
    return out


def _clean(flat: Mapping[str, Any]) -> bool:
    """Nobody attacks in a run of these settings: no fraction and no attacker groups (a run with
    ``[[attack.groups]]`` may name attack "none" and fraction 0, and is attacked)."""
    return not flat.get("attack.fraction") and flat.get("attack.groups") in (None, "[]")


def _settings(run: Run) -> dict[str, Any]:
    flat = {k: v for k, v in flatten(run.config).items() if k not in IGNORED_KEYS and not k.startswith(IGNORED_PREFIXES)}
    if _clean(flat):
        # nobody attacks: the attack's name and parameters are unused (a clean run was labelled
        # "attack.name=label_flip, attack.fraction=0" beside the attacked ones)
        flat = {k: v for k, v in flat.items() if not k.startswith("attack.") or k == "attack.fraction"}
        flat["attack.name"] = "none"
    return flat


#: How labels write the usual keys.
SHORT_KEYS = {"attack.name": "attack", "attack.fraction": "fraction", "defense.name": "defense", "task.client": "task"}


def _group_text(flat: Mapping[str, Any], group_keys: Sequence[str]) -> str:
    """``attack=none`` / ``attack=label_flip, fraction=0.3``: a group's differing settings, short."""
    parts = []
    for k in sorted(group_keys, key=lambda k: list(SHORT_KEYS).index(k) if k in SHORT_KEYS else len(SHORT_KEYS)):
        if k.startswith("attack.") and k != "attack.name" and flat.get("attack.name") == "none":
            continue  # a clean run has no attack parameters
        parts.append(f"{SHORT_KEYS.get(k, k)}={_value_text(flat.get(k))}")
    return ", ".join(parts)


def config_diff(runs: Sequence[Run]) -> list[str]:
    """Dotted config keys whose values differ between ``runs`` (a key one run lacks counts). A
    clean run's attack settings (other than ``attack.name`` and its fraction 0) are not compared:
    it uses none, and labels leave them out, so they would only label every attacked run with
    settings all of them share (``attack.knowledge=omniscient``)."""
    flat = [_settings(r) for r in runs]
    keys: list[str] = []
    for f in flat:
        keys += [k for k in f if k not in keys]

    def differs(k: str) -> bool:
        used = [f for f in flat if not (k.startswith("attack.") and k not in ("attack.name", "attack.fraction") and _clean(f))]
        return len({json.dumps(f.get(k), sort_keys=True, default=str) for f in used}) > 1

    return [k for k in keys if differs(k)]


def expand_dirs(dirs: Sequence[str | Path]) -> list[Path]:
    """Results folders, with a sweep or seed-group folder (one holding ``runs/``) replaced by its runs."""
    out: list[Path] = []
    for d in map(Path, dirs):
        if not d.is_dir():
            raise BDFLError(f"results folder {d} does not exist", fix="pass folders written by `bdfl run` or `bdfl sweep`")
        if (d / METRICS_FILE).is_file():
            found = [d]
        elif (d / "runs").is_dir():
            found = sorted(p for p in (d / "runs").iterdir() if (p / METRICS_FILE).is_file())
            if not found:
                raise BDFLError(f"sweep folder {d} holds no finished run in {d / 'runs'}", fix="run the sweep first")
        else:
            raise BDFLError(f"{d} is neither a results folder (no {METRICS_FILE}) nor a sweep folder (no runs/)",
                            fix="pass folders written by `bdfl run` or `bdfl sweep`")
        out += found
    seen: set[Path] = set()
    kept: list[Path] = []
    for p in out:  # a run named twice (the same folder, or a folder and its sweep) counts once
        if p.resolve() not in seen:
            seen.add(p.resolve())
            kept.append(p)
    if len(kept) < len(out):
        log.warning("compare: %d run folder(s) given more than once, each counted once", len(out) - len(kept))
    return kept


def _value_text(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _labels(runs: Sequence[Run], diff: Sequence[str]) -> tuple[list[str], list[tuple[Any, ...]], dict[tuple[Any, ...], str]]:
    """(run labels, group key of each run, group key -> group label)."""
    group_keys = [k for k in diff if k != "seed"]
    keys = [tuple(json.dumps(_settings(r).get(k), sort_keys=True, default=str) for k in group_keys) for r in runs]
    group_label: dict[tuple[Any, ...], str] = {}
    for run, key in zip(runs, keys):
        if key not in group_label:
            flat = _settings(run)
            names = {r.name for r, k in zip(runs, keys) if k == key}
            # no differing field: the run's name when the group shares one, else attack/defense
            plain = run_label(run) if len(names) == 1 else run_label(run).split(" (", 1)[-1].rstrip(")")
            group_label[key] = _group_text(flat, group_keys) or plain
    labels = [group_label[key] + (f" seed={run.seed}" if "seed" in diff else "") for run, key in zip(runs, keys)]
    seen: dict[str, int] = {}
    for lab in labels:
        seen[lab] = seen.get(lab, 0) + 1
    labels = [f"{lab} [{r.dir.name}]" if seen[lab] > 1 else lab for lab, r in zip(labels, runs)]
    return labels, keys, group_label


def _series(runs: Sequence[Run], x: np.ndarray, value: Any) -> list[np.ndarray]:
    """Per run, ``value(run) -> {round: number}`` aligned to ``x`` (NaN where absent)."""
    out = []
    for run in runs:
        by_round = value(run)
        out.append(np.array([by_round.get(int(r), np.nan) for r in x], dtype=float))
    return out


def _honest_accuracy(run: Run) -> dict[int, float]:
    return {r["round"]: r["honest_accuracy"] for r in run.rounds if r.get("honest_accuracy") is not None}


def _reputation(run: Run, attacker: bool, how: Any) -> dict[int, float]:
    by: dict[int, list[float]] = {}
    for m in run.metrics:
        if bool(m.get("attacker")) == attacker and m.get("reputation") is not None:
            by.setdefault(m["round"], []).append(float(m["reputation"]))
    return {r: float(how(v)) for r, v in by.items()}


def _worst_separation(summaries: Sequence[Mapping[str, Any]]) -> int | None:
    vals = [s.get("separated_from_round") for s in summaries]
    return max(vals) if vals and all(isinstance(v, int) for v in vals) else None


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and *sample* standard deviation (ddof=1; None for fewer than 2 values)."""
    if not values:
        return None, None
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), (float(arr.std(ddof=1)) if len(arr) > 1 else None)


def mean_std_text(mean: float | None, std: float | None, counts: bool = False) -> str:
    """``mean ± std``; for ``counts`` (every value an integer: rounds, a separation round) the
    mean and std to one decimal, and an exact integer as one ("2 ± 0", not "2.0000 ± 0.0000")."""
    if mean is None:
        return "—"
    if not counts:
        return format_value(mean) + ("" if std is None else f" ± {format_value(std)}")
    one = lambda v: f"{v:,.0f}" if float(v).is_integer() else f"{v:,.1f}"  # noqa: E731
    return one(mean) + ("" if std is None else f" ± {one(std)}")


def _mark_group(ax: Any, summaries: Sequence[Mapping[str, Any]], color: str) -> bool:
    """The group's separation round (worst seed) as a dotted line in its colour; whether one was drawn."""
    sep = _worst_separation(summaries)
    mark_separation(ax, sep, color=color, label="_nolegend_")
    return sep is not None


def _legend(ax: Any, marked: bool) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if marked:
        handles.append(Line2D([], [], color="0.3", ls=":", lw=1.5))
        labels.append("dotted: separated from this round on (worst seed)")
    ax.legend(handles, labels, **LEGEND_OUTSIDE)


def _finish(fig: Any, ax: Any, marked: bool, title: str, ylabel: str, ylim: tuple[float, float], path: Path) -> Path:
    """Title, axes, grid and legend of a per-round comparison plot; saves it to ``path``."""
    ax.set_title(title)
    ax.set_xlabel("round")
    ax.set_ylabel(ylabel)
    ax.set_ylim(*ylim)
    ax.grid(alpha=0.3)
    integer_xaxis(ax)
    _legend(ax, marked)
    return save_figure(fig, path)


def compare_runs(dirs: Sequence[str | Path], out_dir: str | Path) -> CompareOutputs:
    """Compare runs (results folders and/or sweep folders) into ``out_dir``.

    Writes ``compare_accuracy.png`` / ``compare_reputation.png`` (+ SVGs; one line per
    seed group, ±std band over seeds, dotted: the group's separation round, worst seed),
    ``compare.csv`` (one row per run: identity, the differing config keys, the summary),
    ``compare_groups.csv`` (one row per seed group: mean/std/n over seeds of each summary
    figure) and ``compare.md`` (the differing config keys, the runs, the groups).
    """
    if not dirs:
        raise BDFLError("nothing to compare", fix="pass one or more results folders: bdfl compare DIR [DIR ...]")
    runs = [load_run(d) for d in expand_dirs(dirs)]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    diff = config_diff(runs)
    labels, keys, group_label = _labels(runs, diff)
    summaries = [_summary(r) for r in runs]
    for s in summaries:
        if baseline_of(s):  # nobody audited: reputations fell only for missed reveals
            s.update({k: None for k in AUDIT_KEYS})
    # a seed group's mean and band are over the runs that went through every round: an interrupted
    # or failed run's few rounds were averaged in ("rounds completed 2.0 ± 1.73"; an outside probe)
    # (a group of unfinished runs only is shown as it is: there is nothing better to show)
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    unfinished: list[int] = []
    for key, members in groups.items():
        done = [i for i in members if summaries[i].get("status") in FINISHED]
        if done and len(done) < len(members):
            unfinished += [i for i in members if i not in done]
            groups[key] = done
    for i in unfinished:
        log.warning("%s: status %s after %s round(s): shown, left out of its seed group's figures", runs[i].dir,
                    summaries[i].get("status", "unknown"), summaries[i].get("rounds_completed", summaries[i].get("rounds", "?")))

    x = np.array(sorted({r["round"] for run in runs for r in run.rounds}), dtype=float)

    # accuracy: one line per group, band over seeds
    marked = False
    fig = new_figure(9.0, 5.0)
    ax = fig.add_subplot()
    for key, members in groups.items():
        n = len(members)
        ys = _series([runs[i] for i in members], x, _honest_accuracy)
        line = band(ax, x, ys, label=group_label[key] + (f" ({n} seeds, ±std)" if n > 1 else ""))
        marked |= _mark_group(ax, [summaries[i] for i in members], line.get_color())
    title = "Honest peers' mean test accuracy per round" + (" (mean over seeds)" if any(len(m) > 1 for m in groups.values()) else "")
    png = _finish(fig, ax, marked, title, "accuracy on the test set", (0, 1.02), out / COMPARE_PNG)

    # reputation: attackers' mean (solid) and honest minimum (dashed) per group
    marked = False
    fig = new_figure(9.0, 5.0)
    ax = fig.add_subplot()
    for key, members in groups.items():
        member_runs = [runs[i] for i in members]
        hon = _series(member_runs, x, lambda r: _reputation(r, False, min))
        line = band(ax, x, hon, label=f"{group_label[key]}: honest min", marker="")
        line.set_linestyle("--")
        att = _series(member_runs, x, lambda r: _reputation(r, True, np.mean))
        if any(np.isfinite(a).any() for a in att):
            band(ax, x, att, color=line.get_color(), label=f"{group_label[key]}: attackers' mean")
        marked |= _mark_group(ax, [summaries[i] for i in members], line.get_color())
    rep_png = _finish(fig, ax, marked, "On-chain reputation per round: attackers' mean (solid) vs the lowest honest peer (dashed)",
                      "reputation", (0.0, 1.0), out / COMPARE_REPUTATION_PNG)

    # per-run table
    keys_shown = [k for k in COMPARE_KEYS if any(s.get(k) is not None for s in summaries)]
    rows = []
    for run, label, s in zip(runs, labels, summaries):
        flat = _settings(run)
        row: dict[str, Any] = {
            "run": label, "name": run.name, "attack": run.attack, "fraction": run.fraction,
            "defense": run.defense, "seed": run.seed, "status": s.get("status", "unknown"), "dir": str(run.dir),
        }
        row.update({k: flat.get(k) for k in diff if k not in row})
        row.update({k: s.get(k) for k in keys_shown})
        rows.append(row)
    diff_cols = [k for k in diff if k not in ID_COLUMNS]
    csv_path = out / COMPARE_CSV
    atomic_write_text(csv_path, csv_text(list(ID_COLUMNS) + diff_cols + keys_shown, rows))

    # per-group table: mean / std / n over seeds
    group_rows, group_text = [], []
    partial = False  # some group's figure is over fewer runs than the group has
    for key, members in groups.items():
        flat = _settings(runs[members[0]])
        g: dict[str, Any] = {"group": group_label[key], **{k: flat.get(k) for k in diff if k != "seed"},
                             "n_runs": len(members), "seeds": " ".join(str(runs[i].seed) for i in members)}
        text: dict[str, Any] = {"group": g["group"], "n_runs": g["n_runs"], "seeds": g["seeds"]}
        for k in keys_shown:
            vals = [float(v) for v in (summaries[i].get(k) for i in members)
                    if isinstance(v, (int, float)) and not isinstance(v, bool)]
            mean, std = mean_std(vals)
            g[f"{k}_mean"], g[f"{k}_std"], g[f"{k}_n"] = mean, std, len(vals)
            raw = [summaries[i].get(k) for i in members]
            text[k] = mean_std_text(mean, std, counts=all(isinstance(v, int) for v in raw if v is not None))
            if 0 < len(vals) < len(members):  # a run without a value (a seed that never separated) must not vanish
                text[k] += f" ({len(vals)}/{len(members)})"
                partial = True
        group_rows.append(g)
        group_text.append(text)
    group_cols = ["group"] + [k for k in diff if k != "seed"] + ["n_runs", "seeds"] + \
        [f"{k}_{stat}" for k in keys_shown for stat in ("mean", "std", "n")]
    groups_csv = out / COMPARE_GROUPS_CSV
    atomic_write_text(groups_csv, csv_text(group_cols, group_rows))

    labels_of = dict(SUMMARY_FIELDS)
    md = ["# Run comparison", ""]
    if diff:
        md += ["## What differs between the runs (config.toml)", ""]
        md.append(markdown_table(["run"] + diff, [{"run": lab, **{k: _value_text(_settings(r).get(k)) for k in diff}}
                                                  for lab, r in zip(labels, runs)]))
    else:
        md += ["The runs' configurations are identical (name and folder aside).", ""]
    if any(len(m) > 1 for m in groups.values()):
        md += ["## Seed groups: mean ± std over seeds (sample std, ddof=1)", ""]
        md.append(markdown_table(["group", "n_runs", "seeds"] + keys_shown, group_text,
                                 ["group", "runs", "seeds"] + [labels_of.get(k, k) for k in keys_shown]))
        if partial:
            md += ["(k/n): only k of the group's n runs had a value (for the separation rounds: the others never separated).", ""]
    md += ["## Runs", ""]
    if unfinished:
        md += ["Not finished, so left out of their seed groups and the figures: "
               + "; ".join(f"{labels[i]} ({summaries[i].get('status', 'unknown')})" for i in unfinished) + ".", ""]
    md.append(markdown_table(["run", "status"] + keys_shown, rows, ["run", "status"] + [labels_of.get(k, k) for k in keys_shown]))
    md.append("\n".join(f"- {lab}: `{r.dir}`" for lab, r in zip(labels, runs)) + "\n")
    md_path = out / COMPARE_MD
    atomic_write_text(md_path, "\n".join(md))
    return CompareOutputs(png, csv_path, md_path, groups_csv, rep_png)
