"""Figures of one run, drawn with Matplotlib's Agg canvas (no display, no pyplot state).

Each ``plot_*(rows, path)`` takes the parsed rows of :mod:`bdfl.experiment.results`
(``read_rounds`` or ``read_metrics``) and writes one PNG (150 dpi, for screens and the
report) and one SVG beside it (vector, for papers), atomically and with a tight bounding
box (no label cut off); an empty input gives a valid figure that says "no data". Each
has a ``*_figure`` twin that returns the Figure (tests inspect its axes). Legends sit
outside the axes, so they never cover data; the reputation axis is fixed to [0, 1]; the
round from which the attackers stay separated is a dotted vertical line.
:func:`make_all_plots` draws them all for a results folder.
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

from bdfl.experiment.results import SECONDS_COLUMNS, read_metrics, read_rounds, separated_from, separation_by_round

HONEST_COLOR = "tab:blue"
ATTACKER_COLOR = "tab:red"
#: the backdoor's attack success rate: another measure than the attackers' accuracy, so another colour and style
SUCCESS_COLOR = "tab:purple"
PLOT_FILES = {
    "accuracy": "accuracy.png",
    "reputation": "reputation.png",
    "tokens": "tokens.png",
    "gas": "gas.png",
    "time": "time.png",
}
DPI = 150
SEPARATION_COLOR = "0.25"
#: Where legends go: outside the axes, top right (never over the data).
LEGEND_OUTSIDE: dict[str, Any] = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0), "fontsize": "small", "borderaxespad": 0.0}

Rows = Sequence[Mapping[str, Any]]


def new_figure(width: float = 8.0, height: float = 4.5) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Save as PNG at ``path`` and as SVG beside it (same stem), each atomically
    (temporary file + rename) and with a tight bounding box; returns the PNG path. The figure's
    layout is frozen afterwards (its layout engine set to "none")."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Lay the figure out once and freeze it: every savefig draw (the tight-bbox pass and the
    # output, for each format) would otherwise run constrained layout again, a third of the
    # end-of-run report's time (py-spy), for the same geometry.
    engine = fig.get_layout_engine()
    if engine is not None:
        engine.execute(fig)
        fig.set_layout_engine("none")
    for target, fmt in ((path, "png"), (path.with_suffix(".svg"), "svg")):
        tmp = target.with_name(f".{target.name}.tmp.{os.getpid()}")
        fig.savefig(tmp, format=fmt, dpi=DPI, bbox_inches="tight", pad_inches=0.08)
        os.replace(tmp, target)
    return path


save_png = save_figure  # the name callers used before SVGs were written beside the PNGs


def _num(v: Any) -> float:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    return math.nan


def _column(rows: Rows, key: str) -> np.ndarray:
    return np.array([_num(r.get(key)) for r in rows], dtype=float)


def every_round(rounds: Rows) -> list[Mapping[str, Any]]:
    """``rounds`` with an empty row for each round missing between the first and the last, so
    that lines break there instead of bridging it (an outside probe deleted a round from the
    CSVs: the accuracy line went straight across it, leaving no trace)."""
    by_round = {int(r["round"]): r for r in rounds if isinstance(r.get("round"), (int, float)) and not isinstance(r.get("round"), bool)}
    if not by_round:
        return list(rounds)
    return [by_round.get(n, {"round": n}) for n in range(min(by_round), max(by_round) + 1)]


def _no_data(ax: Any, title: str) -> None:
    ax.set_title(title)
    ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def integer_xaxis(ax: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def mark_separation(ax: Any, round_: Any, *, color: str = SEPARATION_COLOR, label: str | None = None) -> Any:
    """A dotted vertical line at the round from which the attackers stay separated; returns
    the line (None, and nothing drawn, when there is no such round)."""
    if isinstance(round_, (int, float)) and not isinstance(round_, bool) and math.isfinite(round_):
        return ax.axvline(round_, color=color, ls=":", lw=1.5,
                          label=label if label is not None else f"separated from round {round_:g}")
    return None


def band(ax: Any, x: np.ndarray, ys: Sequence[np.ndarray], *, color: str | None = None, label: str = "",
         marker: str = "o") -> Any:
    """Mean of several aligned series as a line, with a ±std band when there are two or more
    (e.g. over seeds); returns the line."""
    stack = np.vstack([np.asarray(y, dtype=float) for y in ys])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a round no series reached
        mean = np.nanmean(stack, axis=0)
        sd = np.nanstd(stack, axis=0, ddof=1) if len(ys) > 1 else None
    (line,) = ax.plot(x, mean, color=color, marker=marker, ms=3, label=label)
    if sd is not None:
        ax.fill_between(x, mean - sd, mean + sd, color=line.get_color(), alpha=0.18, linewidth=0)
    return line


def run_separation(metrics: Rows) -> int | None:
    """The round from which every attacker stays below every honest peer (summary's separated_from_round)."""
    return separated_from(separation_by_round(metrics))


# -- per-round figures (rounds.csv) ---------------------------------------------------

def plot_accuracy(rounds: Rows, path: str | Path, *, separated: int | None = None, attackers_out: int | None = None) -> Path:
    """Honest mean accuracy per round with a ±std band (over honest peers), the attackers'
    mean accuracy, and the separation round marked."""
    return save_figure(accuracy_figure(rounds, separated=separated, attackers_out=attackers_out), path)


def attackers_out_from(metrics: Rows) -> int | None:
    """The round from which no attacker submits any more (all slashed out or left), if any: from
    then on their accuracy is that of models nobody trains (the default run's attackers' line fell
    from 0.93 to 0.33 in rounds 12-13, which read as an event in training)."""
    attacker_rounds = {m["round"] for m in metrics if m.get("attacker") and m.get("round") is not None}
    submitting = {m["round"] for m in metrics if m.get("attacker") and m.get("submitted")}
    if not attacker_rounds or not submitting:
        return None
    last = max(submitting)
    return last + 1 if last < max(attacker_rounds) else None


def accuracy_figure(rounds: Rows, *, separated: int | None = None, attackers_out: int | None = None) -> Figure:
    fig = new_figure()
    ax = fig.add_subplot()
    title = "Test accuracy per round"
    if not rounds:
        _no_data(ax, title)
        return fig
    rounds = every_round(rounds)
    x = _column(rounds, "round")
    h = _column(rounds, "honest_accuracy")
    sd = np.nan_to_num(_column(rounds, "honest_accuracy_std"), nan=0.0)
    a = _column(rounds, "attacker_accuracy")
    # the honest line on top: where both groups hold one model (most rounds), the attackers' line
    # drawn over it hid the headline curve
    ax.plot(x, h, color=HONEST_COLOR, marker="o", ms=3, zorder=3, label="honest peers (mean)")
    if (sd > 1e-3).any():  # honest peers holding one model: no band worth a legend entry
        ax.fill_between(x, h - sd, h + sd, color=HONEST_COLOR, alpha=0.2, linewidth=0, label="honest ± std over peers")
    if np.isfinite(a).any():
        if attackers_out is not None:  # their own models, which nobody trains any more
            stale = x >= attackers_out
            ax.plot(x[x >= attackers_out - 1], a[x >= attackers_out - 1], color=ATTACKER_COLOR, ls=":", lw=1.0, alpha=0.6, zorder=1,
                    label=f"attackers' stale models (all out from round {attackers_out})")
            a = np.where(stale, np.nan, a)
        ax.plot(x, a, color=ATTACKER_COLOR, ls="--", lw=1.2, marker="s", ms=2.5, zorder=2, label="attackers (mean)")
    asr = _column(rounds, "attack_success_rate")
    if np.isfinite(asr).any():
        ax.plot(x, asr, color=SUCCESS_COLOR, ls=":", lw=1.8, marker="x", ms=4, zorder=2, label="attack success rate")
    mark_separation(ax, separated)
    ax.set_title(title)
    ax.set_xlabel("round")
    ax.set_ylabel("accuracy (and attack success rate)" if np.isfinite(asr).any() else "accuracy on the test set")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    integer_xaxis(ax)
    ax.legend(**LEGEND_OUTSIDE)
    return fig


def plot_gas(rounds: Rows, path: str | Path) -> Path:
    """Gas used per round (bars) and transactions per round (line, right axis)."""
    return save_figure(gas_figure(rounds), path)


def gas_figure(rounds: Rows) -> Figure:
    fig = new_figure()
    ax = fig.add_subplot()
    title = "Gas and transactions per round"
    if not rounds:
        _no_data(ax, title)
        return fig
    rounds = every_round(rounds)
    x = _column(rounds, "round")
    gas = _column(rounds, "gas_used") / 1e6  # a missing round: no bar, a break in the line
    tx = _column(rounds, "tx_count")
    ax.bar(x, np.nan_to_num(gas), color="tab:gray", alpha=0.7, label="gas used")
    ax.set_xlabel("round")
    ax.set_ylabel("gas used per round (millions)")
    ax2 = ax.twinx()
    ax2.plot(x, tx, color="tab:green", marker="o", ms=3, label="transactions")
    ax2.set_ylabel("transactions per round")
    top = np.nanmax(tx) if np.isfinite(tx).any() else 1.0
    ax2.set_ylim(0, 1.12 * max(top, 1.0))  # the line's markers clear the top edge
    ax.set_xlim(x[0] - 0.6, x[-1] + 0.6)  # no empty round 0 or R + 1
    ax.set_title(title)
    ax.grid(alpha=0.3, axis="y")
    integer_xaxis(ax)
    handles = [h for a_ in (ax, ax2) for h in a_.get_legend_handles_labels()[0]]
    labels = [lab for a_ in (ax, ax2) for lab in a_.get_legend_handles_labels()[1]]
    # outside, right of the second axis' labels: the legend never covers a bar
    ax.legend(handles, labels, **{**LEGEND_OUTSIDE, "bbox_to_anchor": (1.12, 1.0)})
    return fig


def plot_time(rounds: Rows, path: str | Path) -> Path:
    """Seconds per round, stacked by phase (train, exchange, audit, chain, other)."""
    return save_figure(time_figure(rounds), path)


def time_figure(rounds: Rows) -> Figure:
    fig = new_figure()
    ax = fig.add_subplot()
    title = "Time per round"
    if not rounds:
        _no_data(ax, title)
        return fig
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
    ax.legend(**LEGEND_OUTSIDE)
    return fig


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


def _draw_per_peer(ax: Any, metrics: Rows, key: str, title: str, ylabel: str) -> list[Any]:
    """Every peer's ``key`` per round (thin) and each group's mean (thick); returns legend handles."""
    x, series, attacker = _per_peer(metrics, key)
    if not series or not any(np.isfinite(v).any() for v in series.values()):
        _no_data(ax, title)
        return []
    handles = []
    # the attackers' mean is dashed: where both groups hold the same value (every wallet at 100 tokens)
    # the honest line shows through it instead of being drawn over
    for is_att, color, label, style in ((False, HONEST_COLOR, "honest", "-"), (True, ATTACKER_COLOR, "attacker", "--")):
        ys = [series[p] for p in series if attacker[p] == is_att]
        if not ys:
            continue
        alpha = 0.6 if len(ys) <= 20 else max(0.08, 12.0 / len(ys))
        xs, yy = _group_line(x, ys)
        ax.plot(xs, yy, color=color, lw=1.0, alpha=alpha)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a round where no peer has a value
            mean = np.nanmean(np.vstack(ys), axis=0) if len(x) else np.array([])
        ax.plot(x, mean, color=color, lw=2.5, ls=style)
        handles.append(Line2D([], [], color=color, lw=1.0, alpha=0.6, label=f"{label} peers ({len(ys)})"))
        handles.append(Line2D([], [], color=color, lw=2.5, ls=style, label=f"{label} mean"))
    ax.set_title(title)
    ax.set_xlabel("round")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    integer_xaxis(ax)
    return handles


def plot_reputation(metrics: Rows, path: str | Path, *, separated: int | None = None) -> Path:
    """Reputation of every peer per round; honest blue, attackers red (thick: group mean)."""
    return save_figure(reputation_figure(metrics, separated=separated), path)


def reputation_figure(metrics: Rows, *, separated: int | None = None) -> Figure:
    fig = new_figure()
    ax = fig.add_subplot()
    handles = _draw_per_peer(ax, metrics, "reputation", "Reputation per peer", "on-chain reputation")
    if handles:
        ax.set_ylim(0.0, 1.0)  # fixed, so that runs compare at a glance
        for line in ax.get_lines():
            line.set_clip_on(False)  # a peer at exactly 1.0 stays fully drawn on the top edge
        if (line := mark_separation(ax, separated)) is not None:
            handles.append(line)
        ax.legend(handles=handles, **LEGEND_OUTSIDE)
    return fig


#: tokens.png panels: metrics.csv column -> title (all in tokens, 1 token = 10**18 base units).
TOKEN_PANELS: tuple[tuple[str, str], ...] = (
    ("balance", "wallet balance"),
    ("stake", "stake"),
    ("unclaimed", "unclaimed rewards"),
)


def plot_tokens(metrics: Rows, path: str | Path) -> Path:
    """Each peer's tokens per round, split: wallet balance, stake, unclaimed rewards."""
    return save_figure(tokens_figure(metrics), path)


def tokens_figure(metrics: Rows) -> Figure:
    fig = new_figure(12.0, 4.0)
    axes = fig.subplots(1, len(TOKEN_PANELS), squeeze=False)[0]
    handles: list[Any] = []
    for ax, (key, title) in zip(axes, TOKEN_PANELS):
        drawn = _draw_per_peer(ax, metrics, key, title, "tokens")
        if drawn:
            # from 0: autoscaled, one 10-token slash filled a stake axis of 80-90, while the
            # same drop was a sliver of another run's 0-90 axis
            ax.set_ylim(bottom=0)
        handles = drawn or handles
    if handles:
        axes[-1].legend(handles=handles, **LEGEND_OUTSIDE)
    fig.suptitle("Tokens per peer")
    return fig


def make_all_plots(dir: str | Path, *, metrics: Rows | None = None, rounds: Rows | None = None) -> list[Path]:
    """Draw every plot of a results folder into it (PNG + SVG each); returns the PNG paths.

    ``metrics`` / ``rounds`` may be passed when already read, to avoid re-reading.
    """
    d = Path(dir)
    metrics = read_metrics(d) if metrics is None else metrics
    rounds = read_rounds(d) if rounds is None else rounds
    separated = run_separation(metrics)
    return [
        plot_accuracy(rounds, d / PLOT_FILES["accuracy"], separated=separated, attackers_out=attackers_out_from(metrics)),
        plot_reputation(metrics, d / PLOT_FILES["reputation"], separated=separated),
        plot_tokens(metrics, d / PLOT_FILES["tokens"]),
        plot_gas(rounds, d / PLOT_FILES["gas"]),
        plot_time(rounds, d / PLOT_FILES["time"]),
    ]
