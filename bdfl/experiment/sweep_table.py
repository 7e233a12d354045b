"""Tables and a heat map for a sweep: mean ± std over seeds of each grid point.

The sweep runner hands :func:`write_sweep_outputs` one ``(params, summary)`` pair
per finished run, where ``params`` are the grid values of that run (``attack``,
``fraction``, ``defense``, ``seed``, ... — dotted config keys such as
``attack.name`` / ``attack.fraction`` / ``defense.name`` are understood too) and
``summary`` is its ``summary.json``. Runs whose params agree on everything but
the seed (and ``name`` / ``out`` / ``dir`` / ``run``, which usually embed it) form
one grid point.
"""

from __future__ import annotations

import json
import math
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from bdfl.experiment.compare import csv_text, mean_std, mean_std_text
from bdfl.experiment.plots import new_figure, save_figure
from bdfl.experiment.results import SUMMARY_FIELDS, atomic_write_text, format_value

RUNS_CSV = "sweep_runs.csv"
TABLE_CSV = "sweep_table.csv"
TABLE_MD = "sweep_table.md"
HEATMAP_PNG = "sweep_heatmap.png"

#: Params that vary between repetitions of one grid point (not grouped on).
NON_GROUP_PARAMS = frozenset({"seed", "name", "out", "dir", "run"})

#: Summary figures aggregated by default (those present in at least one summary).
SWEEP_METRICS: tuple[str, ...] = (
    "final_honest_accuracy", "honest_accuracy_last3", "final_attacker_accuracy", "accuracy_drop", "attack_success_rate_final",
    "attacker_mean_reputation_final", "honest_min_reputation_final", "separated_from_round", "mean_separated_from_round",
    "honest_false_rejection_rate", "attacker_approval_rate",
    "tx_count_total", "gas_used_total", "seconds_total",
)

_ALIASES = {
    "attack": ("attack", "attack.name", "attack_name"),
    "fraction": ("fraction", "attack.fraction", "attack_fraction", "attackers"),
    "defense": ("defense", "defense.name", "defense_name"),
}


class SweepOutputs(NamedTuple):
    runs_csv: Path
    table_csv: Path
    table_md: Path
    heatmap_png: Path


def _pair(item: Any) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    if isinstance(item, Mapping) and "params" in item and "summary" in item:
        return item["params"], item["summary"] or {}
    params, summary = item
    return params, summary or {}


def _hashable(v: Any) -> Any:
    if isinstance(v, (dict, list, tuple, set)):
        return json.dumps(v, sort_keys=True, default=str)
    return v


def _number(v: Any) -> float | None:
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float, np.integer, np.floating)) and math.isfinite(float(v)):
        return float(v)
    return None


def aggregate(rows: Sequence[Any], metrics: Sequence[str] | None = None) -> tuple[list[str], list[str], list[dict[str, Any]]]:
    """Group runs by their non-seed params; returns (param columns, metric keys, aggregated rows).

    Each aggregated row holds the params, ``n_runs``, ``seeds`` (space-separated) and,
    per metric ``m``: ``m_mean``, ``m_std`` (sample std, None for one value) and
    ``m_n`` (how many runs had a value: e.g. ``separated_from_round`` is None when the
    attackers were never separated). Groups keep the order of first appearance.
    """
    pairs = [_pair(r) for r in rows]
    param_cols: list[str] = []
    for params, _ in pairs:
        for k in params:
            if k not in NON_GROUP_PARAMS and k not in param_cols:
                param_cols.append(k)
    if metrics is None:
        metrics = [m for m in SWEEP_METRICS if any(_number(s.get(m)) is not None for _, s in pairs)]
    groups: dict[tuple[Any, ...], list[tuple[Mapping[str, Any], Mapping[str, Any]]]] = {}
    for params, summary in pairs:
        key = tuple(_hashable(params.get(k)) for k in param_cols)
        groups.setdefault(key, []).append((params, summary))
    out = []
    for members in groups.values():
        first = members[0][0]
        row: dict[str, Any] = {k: first.get(k) for k in param_cols}
        row["n_runs"] = len(members)
        row["seeds"] = " ".join(str(p.get("seed")) for p, _ in members if p.get("seed") is not None)
        for m in metrics:
            vals = [v for v in (_number(s.get(m)) for _, s in members) if v is not None]
            mean, std = mean_std(vals)
            row[f"{m}_mean"], row[f"{m}_std"], row[f"{m}_n"] = mean, std, len(vals)
            row[f"{m}_counts"] = all(isinstance(s.get(m), int) for _, s in members if s.get(m) is not None)
        out.append(row)
    return param_cols, list(metrics), out


def _mean_pm_std(row: Mapping[str, Any], m: str) -> str:
    mean, std, n = row.get(f"{m}_mean"), row.get(f"{m}_std"), row.get(f"{m}_n", 0)
    if mean is None:
        return "—"
    text = mean_std_text(mean, std, counts=bool(row.get(f"{m}_counts")))  # a count or a round: 63 ± 0, not 63.0000
    if n != row["n_runs"]:
        text += f" ({n}/{row['n_runs']})"
    return text


def _param_text(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (dict, list, tuple)):
        return json.dumps(v, sort_keys=True, default=str)
    return str(v)


def markdown(param_cols: Sequence[str], metrics: Sequence[str], agg: Sequence[Mapping[str, Any]]) -> str:
    labels = dict(SUMMARY_FIELDS)
    headers = list(param_cols) + ["runs"] + [labels.get(m, m) for m in metrics]
    lines = [
        "# Sweep results",
        "",
        "mean ± sample std (ddof=1) over the runs (seeds) of each grid point; "
        "(k/n): only k of n runs had a value.",
        "",
        "| " + " | ".join(h.replace("|", "\\|") for h in headers) + " |",
        "| " + " | ".join([":---"] * len(param_cols) + ["---:"] * (1 + len(metrics))) + " |",
    ]
    for row in agg:
        cells = [_param_text(row.get(k)) for k in param_cols] + [str(row["n_runs"])] + [_mean_pm_std(row, m) for m in metrics]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _get(params: Mapping[str, Any], what: str, default: Any) -> Any:
    for k in _ALIASES[what]:
        if k in params and params[k] is not None:
            return params[k]
    return default


def plot_heatmap(rows: Sequence[Any], path: str | Path, metric: str = "final_honest_accuracy") -> Path:
    """Attack × defense heat map of the mean ``metric``, one panel per attacker fraction
    (PNG + SVG, tight bounding box: the colour bar's label is never cut off).

    A cell averages every run with that (fraction, attack, defense), over seeds and
    any other varied parameter; empty cells are grey.
    """
    return save_figure(heatmap_figure(rows, metric), path)


def heatmap_figure(rows: Sequence[Any], metric: str = "final_honest_accuracy") -> Figure:
    """The figure of :func:`plot_heatmap`."""
    cells: dict[tuple[float, str, str], list[float]] = {}
    attacks: list[str] = []
    defenses: list[str] = []
    fractions: list[float] = []
    for item in rows:
        params, summary = _pair(item)
        f = _number(_get(params, "fraction", 0.0)) or 0.0
        a = str(_get(params, "attack", "none"))
        d = str(_get(params, "defense", "bdfl"))
        for lst, v in ((attacks, a), (defenses, d), (fractions, f)):
            if v not in lst:
                lst.append(v)
        v = _number(summary.get(metric))
        cells.setdefault((f, a, d), [])
        if v is not None:
            cells[(f, a, d)].append(v)
    fractions.sort()
    attacks.sort(key=lambda a: (a != "none", a))
    label = dict(SUMMARY_FIELDS).get(metric, metric)

    if not cells:
        fig = new_figure(6, 3)
        ax = fig.add_subplot()
        ax.text(0.5, 0.5, "no runs", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig

    panel_attacks = [[a for a in attacks if any((f, a, d) in cells for d in defenses)] for f in fractions]
    n_rows = max(len(p) for p in panel_attacks)
    width = min(30.0, len(fractions) * (1.3 * len(defenses) + 2.0) + 1.5)
    height = min(20.0, 0.55 * n_rows + 2.2)
    fig = new_figure(width, height)
    axes = fig.subplots(1, len(fractions), squeeze=False)[0]
    vmin, vmax = (0.0, 1.0) if "accuracy" in metric or "rate" in metric else (None, None)
    if vmin is None:
        allv = [v for vs in cells.values() for v in vs]
        vmin, vmax = (min(allv), max(allv)) if allv else (0.0, 1.0)
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="0.85")
    image = None
    for ax, f, p_attacks in zip(axes, fractions, panel_attacks):
        grid = np.full((len(p_attacks), len(defenses)), np.nan)
        for i, a in enumerate(p_attacks):
            for j, d in enumerate(defenses):
                vs = cells.get((f, a, d))
                if vs:
                    grid[i, j] = float(np.mean(vs))
        masked = np.ma.masked_invalid(grid)
        image = ax.imshow(masked, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
        for i in range(len(p_attacks)):
            for j in range(len(defenses)):
                v = grid[i, j]
                if np.isnan(v):
                    ax.text(j, i, "—", ha="center", va="center", color="0.4", fontsize="small")
                    continue
                frac = (v - vmin) / (vmax - vmin) if vmax > vmin else 0.5
                ax.text(j, i, format_value(v), ha="center", va="center", fontsize="small",
                        color="black" if frac > 0.55 else "white")
        ax.set_xticks(range(len(defenses)), defenses, rotation=30, ha="right")
        ax.set_yticks(range(len(p_attacks)), p_attacks)
        ax.set_title(f"attacker fraction {f:g}")
        ax.set_xlabel("defense")
    axes[0].set_ylabel("attack")
    if image is not None:
        # wrapped to the bar's height: a long label would otherwise stick out past the figure
        fig.colorbar(image, ax=list(axes), label=textwrap.fill(f"{label} (mean over seeds)", 34), shrink=0.9)
    fig.suptitle(f"Sweep: {label}")
    return fig


def write_sweep_outputs(rows: Sequence[Any], out_dir: str | Path, *, metrics: Sequence[str] | None = None,
                        heatmap_metric: str = "final_honest_accuracy") -> SweepOutputs:
    """Write ``sweep_runs.csv`` (one row per run), ``sweep_table.csv`` / ``.md``
    (mean ± std per grid point) and ``sweep_heatmap.png`` into ``out_dir``.

    ``rows``: ``(params, summary)`` pairs (or ``{"params": ..., "summary": ...}``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pairs = [_pair(r) for r in rows]
    param_cols, metric_keys, agg = aggregate(pairs, metrics)

    run_params: list[str] = []
    for params, _ in pairs:
        for k in params:
            if k not in run_params:
                run_params.append(k)
    run_rows = []
    for params, summary in pairs:
        r = {k: _hashable(params.get(k)) for k in run_params}
        r.update({m: summary.get(m) for m in metric_keys})
        run_rows.append(r)
    runs_csv = out / RUNS_CSV
    atomic_write_text(runs_csv, csv_text(run_params + [m for m in metric_keys if m not in run_params], run_rows))

    cols = list(param_cols) + ["n_runs", "seeds"] + [f"{m}_{s}" for m in metric_keys for s in ("mean", "std", "n")]
    agg_csv_rows = [{k: (_hashable(v) if k in param_cols else v) for k, v in row.items()} for row in agg]
    table_csv = out / TABLE_CSV
    atomic_write_text(table_csv, csv_text(cols, agg_csv_rows))
    table_md = out / TABLE_MD
    atomic_write_text(table_md, markdown(param_cols, metric_keys, agg))
    png = plot_heatmap(pairs, out / HEATMAP_PNG, heatmap_metric)
    return SweepOutputs(runs_csv, table_csv, table_md, png)
