"""Paper-ready figures: SVG beside PNG, separation marked, reputation on [0, 1], legends off
the data, a heat map whose colour-bar label is saved whole, seed bands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.figure import Figure

from bdfl.experiment.plots import (
    PLOT_FILES,
    accuracy_figure,
    band,
    gas_figure,
    make_all_plots,
    new_figure,
    reputation_figure,
    time_figure,
    tokens_figure,
)
from bdfl.experiment.results import read_metrics, read_rounds
from bdfl.experiment.sweep_table import heatmap_figure
from tests.experiment.test_results import make_run


def _renderer(fig: Figure) -> Any:
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def _legend_off_the_data(fig: Figure) -> None:
    """Every legend's box lies outside every axes' data area (it covers no bar or line)."""
    r = _renderer(fig)
    legends = [lg for ax in fig.axes if (lg := ax.get_legend()) is not None]
    assert legends, "no legend drawn"
    for lg in legends:
        box = lg.get_window_extent(r)
        for ax in fig.axes:
            assert not box.overlaps(ax.get_window_extent(r)), (lg, ax.get_title())


def _separation_lines(fig: Figure) -> list[float]:
    return [float(line.get_xdata()[0]) for ax in fig.axes for line in ax.get_lines()
            if line.get_linestyle() == ":" and len(set(np.asarray(line.get_xdata(), dtype=float))) == 1]


def test_svg_beside_every_png(tmp_path: Path) -> None:
    d = make_run(tmp_path / "run")
    for png in make_all_plots(d):
        svg = png.with_suffix(".svg")
        assert svg.is_file() and svg.read_text().lstrip().startswith(("<?xml", "<svg")), svg
        assert "</svg>" in svg.read_text()
    assert sorted(p.name for p in d.glob("*.svg")) == sorted(Path(n).with_suffix(".svg").name for n in PLOT_FILES.values())


def test_separation_round_marked_and_reputation_axis_fixed(tmp_path: Path) -> None:
    d = make_run(tmp_path / "run")  # separated from round 3 (test_compute_summary_by_hand)
    metrics, rounds = read_metrics(d), read_rounds(d)
    rep = reputation_figure(metrics, separated=3)
    assert rep.axes[0].get_ylim() == (0.0, 1.0)
    assert _separation_lines(rep) == [3.0]
    assert _separation_lines(accuracy_figure(rounds, separated=3)) == [3.0]
    assert _separation_lines(accuracy_figure(rounds, separated=None)) == []
    # the axis does not follow the data: a run whose reputations stay in 0.5-0.73 gets [0, 1] too
    narrow = [{**m, "reputation": 0.5 + 0.23 * (m["peer"] % 2)} for m in metrics]
    assert reputation_figure(narrow).axes[0].get_ylim() == (0.0, 1.0)


@pytest.mark.parametrize("build", ["accuracy", "reputation", "tokens", "gas", "time"])
def test_legends_do_not_cover_data(tmp_path: Path, build: str) -> None:
    d = make_run(tmp_path / "run")
    metrics, rounds = read_metrics(d), read_rounds(d)
    fig = {"accuracy": lambda: accuracy_figure(rounds, separated=3), "reputation": lambda: reputation_figure(metrics, separated=3),
           "tokens": lambda: tokens_figure(metrics), "gas": lambda: gas_figure(rounds), "time": lambda: time_figure(rounds)}[build]()
    _legend_off_the_data(fig)


def test_tokens_figure_has_balance_stake_unclaimed(tmp_path: Path) -> None:
    fig = tokens_figure(read_metrics(make_run(tmp_path / "run")))
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["wallet balance", "stake", "unclaimed rewards"]
    # unclaimed: honest mean in round 4 is 50 (test_compute_summary_by_hand)
    means = [line for line in fig.axes[2].get_lines() if line.get_linewidth() == 2.5]
    assert max(float(np.nanmax(line.get_ydata())) for line in means) == pytest.approx(50.0)
    # every panel says its unit; the attackers' mean is dashed, so an honest mean of the same value
    # (every wallet at its starting balance) is not hidden under it
    assert [ax.get_ylabel() for ax in fig.axes[:3]] == ["tokens"] * 3
    styles = {line.get_color(): line.get_linestyle() for line in fig.axes[0].get_lines() if line.get_linewidth() == 2.5}
    assert sorted(styles.values()) == ["-", "--"]


def test_heatmap_colourbar_label_is_saved_whole(tmp_path: Path) -> None:
    rows = [({"attack.name": a, "attack.fraction": f, "defense.name": dfn, "seed": 0},
             {"final_honest_accuracy": 0.5 + 0.1 * i})
            for i, (a, f, dfn) in enumerate((a, f, dfn) for a in ("label_flip", "sign_flip") for f in (0.3, 0.5)
                                           for dfn in ("bdfl", "fedavg", "krum"))]
    fig = heatmap_figure(rows)
    r = _renderer(fig)
    cbar_axes = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(cbar_axes) == 1
    label = cbar_axes[0].yaxis.label
    assert "final honest accuracy" in label.get_text()
    saved = fig.get_tightbbox(r).transformed(fig.dpi_scale_trans)  # what bbox_inches="tight" keeps
    box = label.get_window_extent(r)
    assert saved.x0 <= box.x0 and box.x1 <= saved.x1 and saved.y0 <= box.y0 and box.y1 <= saved.y1
    # and it fits the figure as laid out (a long label is wrapped, not left sticking out)
    fb = fig.bbox
    assert fb.x0 <= box.x0 and box.x1 <= fb.x1 and fb.y0 <= box.y0 and box.y1 <= fb.y1


def test_band_is_mean_and_std_over_series() -> None:
    fig = new_figure()
    ax = fig.add_subplot()
    x = np.array([1.0, 2.0, 3.0])
    line = band(ax, x, [np.array([0.5, 0.6, 0.7]), np.array([0.7, 0.8, 0.9])], label="3 seeds")
    assert np.allclose(line.get_ydata(), [0.6, 0.7, 0.8])
    (poly,) = ax.collections
    ys = poly.get_paths()[0].vertices[:, 1]
    assert ys.max() == pytest.approx(0.8 + np.std([0.7, 0.9], ddof=1))
    # one series: a line, no band
    ax2 = new_figure().add_subplot()
    band(ax2, x, [np.array([0.5, 0.6, 0.7])])
    assert not ax2.collections


def test_figures_break_at_a_missing_round_and_keep_their_marks_inside(tmp_path: Path) -> None:
    """An outside probe deleted round 2 from the CSVs: the lines went straight across it. Now they
    break there; the honest accuracy is drawn over the attackers'; the transactions line clears the
    top edge; the token axes start at 0 (one 10-token slash filled an 80-90 axis)."""
    d = make_run(tmp_path / "run")
    metrics, rounds = read_metrics(d), read_rounds(d)
    gap = [r for r in rounds if r["round"] != 2]
    ax = accuracy_figure(gap).axes[0]
    honest = next(line for line in ax.get_lines() if line.get_label() == "honest peers (mean)")
    assert list(honest.get_xdata()) == [float(r) for r in range(rounds[0]["round"], rounds[-1]["round"] + 1)]
    assert np.isnan(np.asarray(honest.get_ydata(), dtype=float)[list(honest.get_xdata()).index(2.0)])
    attackers = next(line for line in ax.get_lines() if line.get_label() == "attackers (mean)")
    assert honest.get_zorder() > attackers.get_zorder() and attackers.get_linestyle() == "--"
    gas = gas_figure(rounds)
    tx_axis = gas.axes[1]
    assert tx_axis.get_ylim()[1] > max(r["tx_count"] for r in rounds) and gas.axes[0].get_ylabel() == "gas used per round (millions)"
    for panel in tokens_figure(metrics).axes[:3]:
        assert panel.get_ylim()[0] == 0.0


def test_the_attackers_line_stops_where_every_attacker_is_out(tmp_path: Path) -> None:
    """The default run's attackers' line fell from 0.93 to 0.33 after they were slashed out: their
    left-over models, which nobody trains. From the round no attacker submits, it is drawn apart."""
    from bdfl.experiment.plots import attackers_out_from

    metrics, rounds = read_metrics(make_run(tmp_path / "run")), read_rounds(tmp_path / "run")
    last = max(r["round"] for r in rounds)
    gone = [{**m, "submitted": 0} if m.get("attacker") and m["round"] == last else m for m in metrics]
    assert attackers_out_from(metrics) is None and attackers_out_from(gone) == last
    ax = accuracy_figure(rounds, attackers_out=last).axes[0]
    mean = next(line for line in ax.get_lines() if line.get_label() == "attackers (mean)")
    assert np.isnan(np.asarray(mean.get_ydata(), dtype=float)[-1])
    assert any(line.get_label().startswith("attackers' stale models (all out from round") for line in ax.get_lines())
