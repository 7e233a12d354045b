"""``bdfl compare DIR...``: several runs in one accuracy figure and one summary table."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bdfl.errors import BDFLError
from bdfl.experiment.plots import integer_xaxis, new_figure, save_png
from bdfl.experiment.results import SUMMARY_FIELDS, Run, atomic_write_text, format_value, load_run, rebuild_summary

COMPARE_PNG = "compare_accuracy.png"
COMPARE_CSV = "compare.csv"
COMPARE_MD = "compare.md"

#: Summary figures shown side by side (in this order), when any run has them.
COMPARE_KEYS: tuple[str, ...] = (
    "rounds", "peers", "attackers",
    "final_honest_accuracy", "final_honest_accuracy_std", "honest_accuracy_last3", "final_attacker_accuracy", "accuracy_drop",
    "attack_success_rate_final",
    "attacker_mean_reputation_final", "honest_min_reputation_final", "separated_from_round", "mean_separated_from_round",
    "honest_false_rejection_rate", "attacker_approval_rate",
    "tx_count_total", "gas_used_total", "seconds_total",
)
ID_COLUMNS: tuple[str, ...] = ("run", "name", "attack", "fraction", "defense", "seed", "dir")


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


def compare_runs(dirs: Sequence[str | Path], out_dir: str | Path) -> tuple[Path, Path, Path]:
    """Overlay honest accuracy per round of ``dirs`` and tabulate their summaries.

    Writes ``compare_accuracy.png``, ``compare.csv`` (one row per run, full precision)
    and ``compare.md`` into ``out_dir`` (created; files there are replaced) and
    returns their paths in that order.
    """
    if not dirs:
        raise BDFLError("nothing to compare", fix="pass one or more results folders: bdfl compare DIR [DIR ...]")
    runs = [load_run(d) for d in dirs]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    labels = [run_label(r) for r in runs]
    seen: dict[str, int] = {}
    for lab in labels:
        seen[lab] = seen.get(lab, 0) + 1
    labels = [f"{lab} [{r.dir.name}]" if seen[lab] > 1 else lab for lab, r in zip(labels, runs)]

    # figure
    fig = new_figure(9.0, 5.0)
    ax = fig.add_subplot()
    for run, label in zip(runs, labels):
        x = np.array([r["round"] for r in run.rounds], dtype=float)
        y = np.array([np.nan if r.get("honest_accuracy") is None else r["honest_accuracy"] for r in run.rounds], dtype=float)
        (line,) = ax.plot(x, y, marker="o", ms=3, label=label)
        sd = np.array([0.0 if r.get("honest_accuracy_std") is None else r["honest_accuracy_std"] for r in run.rounds], dtype=float)
        if len(x) and np.isfinite(y).any():
            ax.fill_between(x, y - sd, y + sd, color=line.get_color(), alpha=0.12, linewidth=0)
    ax.set_title("Honest peers' mean test accuracy per round")
    ax.set_xlabel("round")
    ax.set_ylabel("accuracy on the test set")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    integer_xaxis(ax)
    ax.legend(loc="lower right", fontsize="small")
    png = save_png(fig, out / COMPARE_PNG)

    # table
    summaries = [_summary(r) for r in runs]
    keys = [k for k in COMPARE_KEYS if any(s.get(k) is not None for s in summaries)]
    rows = []
    for run, label, s in zip(runs, labels, summaries):
        row: dict[str, Any] = {
            "run": label, "name": run.name, "attack": run.attack, "fraction": run.fraction,
            "defense": run.defense, "seed": run.seed, "dir": str(run.dir),
        }
        row.update({k: s.get(k) for k in keys})
        rows.append(row)
    columns = list(ID_COLUMNS) + keys
    csv_path = out / COMPARE_CSV
    atomic_write_text(csv_path, csv_text(columns, rows))
    labels_of = dict(SUMMARY_FIELDS)
    md_cols = ["run"] + keys
    md = "# Run comparison\n\n" + markdown_table(md_cols, rows, ["run"] + [labels_of.get(k, k) for k in keys])
    md += "\n" + "\n".join(f"- {lab}: `{r.dir}`" for lab, r in zip(labels, runs)) + "\n"
    md_path = out / COMPARE_MD
    atomic_write_text(md_path, md)
    return png, csv_path, md_path
