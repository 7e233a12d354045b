"""PNG plots of one run, drawn with Matplotlib's Agg canvas (no display, no pyplot state).

Each ``plot_*(rows, path)`` takes the parsed rows of :mod:`bdfl.experiment.results`
(``read_rounds`` or ``read_metrics``) and writes one PNG atomically; an empty input
gives a valid PNG that says "no data". :func:`make_all_plots` draws them all for a
results folder.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from bdfl.experiment.results import SECONDS_COLUMNS, read_metrics, read_rounds

HONEST_COLOR = "tab:blue"
ATTACKER_COLOR = "tab:red"
PLOT_FILES = {
    "accuracy": "accuracy.png",
    "reputation": "reputation.png",
    "tokens": "tokens.png",
    "gas": "gas.png",
    "time": "time.png",
}
DPI = 100

Rows = Sequence[Mapping[str, Any]]


def new_figure(width: float = 8.0, height: float = 4.5) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Figure, path: str | Path) -> Path:
    """Save atomically (temporary file + rename) as PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}")
    fig.savefig(tmp, format="png", dpi=DPI)
    os.replace(tmp, path)
    return path


def _num(v: Any) -> float:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    return math.nan


def _column(rows: Rows, key: str) -> np.ndarray:
    return np.array([_num(r.get(key)) for r in rows], dtype=float)


def _no_data(ax: Any, title: str) -> None:
    ax.set_title(title)
    ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def integer_xaxis(ax: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


# -- per-round figures (rounds.csv) ---------------------------------------------------

def plot_accuracy(rounds: Rows, path: str | Path) -> Path:
    """Honest mean accuracy per round with a ±std band, and the attackers' mean accuracy."""
    fig = new_figure()
    ax = fig.add_subplot()
    title = "Test accuracy per round"
    if not rounds:
        _no_data(ax, title)
        return save_png(fig, path)
    x = _column(rounds, "round")
    h = _column(rounds, "honest_accuracy")
    sd = np.nan_to_num(_column(rounds, "honest_accuracy_std"), nan=0.0)
    a = _column(rounds, "attacker_accuracy")
    ax.plot(x, h, color=HONEST_COLOR, marker="o", ms=3, label="honest peers (mean)")
    ax.fill_between(x, h - sd, h + sd, color=HONEST_COLOR, alpha=0.2, linewidth=0, label="honest ± std")
    if np.isfinite(a).any():
        ax.plot(x, a, color=ATTACKER_COLOR, marker="s", ms=3, label="attackers (mean)")
    asr = _column(rounds, "attack_success_rate")
    if np.isfinite(asr).any():
        ax.plot(x, asr, color=ATTACKER_COLOR, ls="--", label="attack success rate")
    ax.set_title(title)
    ax.set_xlabel("round")
    ax.set_ylabel("accuracy on the test set")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    integer_xaxis(ax)
    ax.legend(loc="lower right", fontsize="small")
    return save_png(fig, path)


def plot_gas(rounds: Rows, path: str | Path) -> Path:
    """Gas used per round (bars) and transactions per round (line, right axis)."""
    fig = new_figure()
    ax = fig.add_subplot()
    title = "Gas and transactions per round"
    if not rounds:
        _no_data(ax, title)
        return save_png(fig, path)
    x = _column(rounds, "round")
    gas = np.nan_to_num(_column(rounds, "gas_used"))
    tx = np.nan_to_num(_column(rounds, "tx_count"))
    ax.bar(x, gas, color="tab:gray", alpha=0.7, label="gas used")
    ax.set_xlabel("round")
    ax.set_ylabel("gas used")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 4))
    ax2 = ax.twinx()
    ax2.plot(x, tx, color="tab:green", marker="o", ms=3, label="transactions")
    ax2.set_ylabel("transactions")
    ax2.set_ylim(bottom=0)
    ax.set_title(title)
    ax.grid(alpha=0.3, axis="y")
    integer_xaxis(ax)
    handles = [h for a_ in (ax, ax2) for h in a_.get_legend_handles_labels()[0]]
    labels = [lab for a_ in (ax, ax2) for lab in a_.get_legend_handles_labels()[1]]
    ax.legend(handles, labels, loc="upper left", fontsize="small")
    return save_png(fig, path)


def plot_time(rounds: Rows, path: str | Path) -> Path:
    """Seconds per round, stacked by phase (train, exchange, audit, chain, other)."""
    fig = new_figure()
    ax = fig.add_subplot()
    title = "Time per round"
    if not rounds:
        _no_data(ax, title)
        return save_png(fig, path)
    x = _column(rounds, "round")
    bottom = np.zeros(len(x))
    colors = {"seconds_train": "tab:blue", "seconds_exchange": "tab:orange",
              "seconds_audit": "tab:purple", "seconds_chain": "tab:green", "seconds_eval": "tab:gray"}
    for col in SECONDS_COLUMNS:
        v = np.nan_to_num(_column(rounds, col))
        ax.bar(x, v, bottom=bottom, color=colors[col], label=col.removeprefix("seconds_"))
        bottom += v
    total = _column(rounds, "seconds_total")
    other = np.where(np.isfinite(total), total - bottom, 0.0)
    if (other > 1e-9).any():
        ax.bar(x, np.clip(other, 0, None), bottom=bottom, color="0.75", label="other")
    ax.set_title(title)
    ax.set_xlabel("round")
    ax.set_ylabel("seconds")
    ax.grid(alpha=0.3, axis="y")
    integer_xaxis(ax)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    return save_png(fig, path)


# -- per-peer figures (metrics.csv) ---------------------------------------------------

def _per_peer(metrics: Rows, key: str) -> tuple[np.ndarray, dict[Any, np.ndarray], dict[Any, bool]]:
    """(round values, peer -> values aligned to rounds (NaN where absent), peer -> attacker)."""
    rounds = sorted({r["round"] for r in metrics if r.get("round") is not None})
    col = {r: i for i, r in enumerate(rounds)}
    series: dict[Any, np.ndarray] = {}
    attacker: dict[Any, bool] = {}
    for m in metrics:
        p, r = m.get("peer"), m.get("round")
        if r is None:
            continue
        if p not in series:
            series[p] = np.full(len(rounds), np.nan)
            attacker[p] = False
        series[p][col[r]] = _num(m.get(key))
        attacker[p] = attacker[p] or bool(m.get("attacker"))
    return np.array(rounds, dtype=float), series, attacker


def _group_line(x: np.ndarray, ys: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Many series as one NaN-separated polyline (fast for thousands of peers)."""
    if not ys:
        return np.array([]), np.array([])
    y = np.hstack([np.vstack(ys), np.full((len(ys), 1), np.nan)])
    xs = np.tile(np.append(x, np.nan), len(ys))
    return xs, y.ravel()


def _plot_per_peer(metrics: Rows, key: str, path: str | Path, title: str, ylabel: str) -> Path:
    fig = new_figure()
    ax = fig.add_subplot()
    x, series, attacker = _per_peer(metrics, key)
    if not series:
        _no_data(ax, title)
        return save_png(fig, path)
    handles = []
    for is_att, color, label in ((False, HONEST_COLOR, "honest"), (True, ATTACKER_COLOR, "attacker")):
        ys = [series[p] for p in series if attacker[p] == is_att]
        if not ys:
            continue
        alpha = 0.6 if len(ys) <= 20 else max(0.08, 12.0 / len(ys))
        xs, yy = _group_line(x, ys)
        ax.plot(xs, yy, color=color, lw=1.0, alpha=alpha)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a round where no peer has a value
            mean = np.nanmean(np.vstack(ys), axis=0) if len(x) else np.array([])
        ax.plot(x, mean, color=color, lw=2.5)
        handles.append(Line2D([], [], color=color, lw=1.0, alpha=0.6, label=f"{label} peers ({len(ys)})"))
        handles.append(Line2D([], [], color=color, lw=2.5, label=f"{label} mean"))
    ax.set_title(title)
    ax.set_xlabel("round")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    integer_xaxis(ax)
    ax.legend(handles=handles, loc="best", fontsize="small")
    return save_png(fig, path)


def plot_reputation(metrics: Rows, path: str | Path) -> Path:
    """Reputation of every peer per round; honest blue, attackers red (thick: group mean)."""
    return _plot_per_peer(metrics, "reputation", path, "Reputation per peer", "reputation (1.0 = max)")


def plot_tokens(metrics: Rows, path: str | Path) -> Path:
    """Reward tokens (claimable + claimed) of every peer per round; honest blue, attackers red."""
    return _plot_per_peer(metrics, "tokens", path, "Reward tokens per peer", "tokens (claimable + claimed)")


def make_all_plots(dir: str | Path, *, metrics: Rows | None = None, rounds: Rows | None = None) -> list[Path]:
    """Draw every plot of a results folder into it; returns the PNG paths.

    ``metrics`` / ``rounds`` may be passed when already read, to avoid re-reading.
    """
    d = Path(dir)
    metrics = read_metrics(d) if metrics is None else metrics
    rounds = read_rounds(d) if rounds is None else rounds
    return [
        plot_accuracy(rounds, d / PLOT_FILES["accuracy"]),
        plot_reputation(metrics, d / PLOT_FILES["reputation"]),
        plot_tokens(metrics, d / PLOT_FILES["tokens"]),
        plot_gas(rounds, d / PLOT_FILES["gas"]),
        plot_time(rounds, d / PLOT_FILES["time"]),
    ]
