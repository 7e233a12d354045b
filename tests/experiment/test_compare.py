"""``bdfl compare``: figures and tables for several runs, seed groups and sweep folders."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

import bdfl.experiment.compare as compare
from bdfl.errors import BDFLError
from bdfl.experiment.compare import compare_runs, config_diff, flatten
from bdfl.experiment.results import load_run, read_summary
from tests.experiment.test_report import assert_png
from tests.experiment.test_results import ROUNDS, make_run


def test_compare_three_runs(tmp_path: Path) -> None:
    runs = [
        make_run(tmp_path / "a", name="clean", attack="none", fraction=0.0, acc_shift=0.03),
        make_run(tmp_path / "b", name="flip", attack="label_flip", defense="bdfl"),
        make_run(tmp_path / "c", name="flip", attack="label_flip", defense="fedavg", acc_shift=-0.2,
                 summary=False),  # a run that crashed before its summary: rebuilt from the CSVs
    ]
    png, csv_path, md_path, groups_csv, rep_png = compare_runs(runs, tmp_path / "cmp")
    assert_png(rep_png) and png.with_suffix(".svg").is_file()
    assert png.parent == csv_path.parent == md_path.parent == tmp_path / "cmp"
    assert_png(png)

    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3
    # labelled by what differs in their configs, not by their names
    # short keys; a clean run is "attack=none", without the unused attack's fraction (an outside
    # probe's clean run read "attack.name=label_flip, attack.fraction=0")
    assert [r["run"] for r in rows] == ["attack=none, defense=bdfl",
                                        "attack=label_flip, fraction=0.34, defense=bdfl",
                                        "attack=label_flip, fraction=0.34, defense=fedavg"]
    assert rows[2]["defense.name"] == "fedavg" and rows[0]["attack.fraction"] == "0.0"
    assert [r["dir"] for r in rows] == [str(p) for p in runs]
    assert float(rows[0]["final_honest_accuracy"]) == pytest.approx(0.945)
    assert float(rows[1]["final_honest_accuracy"]) == pytest.approx(read_summary(runs[1])["final_honest_accuracy"])
    assert float(rows[2]["final_honest_accuracy"]) == pytest.approx(0.715)
    assert rows[1]["separated_from_round"] == "3" and int(rows[1]["gas_used_total"]) == 1_500_000
    assert (tmp_path / "cmp" / "compare_groups.csv").is_file()
    assert read_summary(runs[2]) is None  # compare never writes into the runs it reads

    md = md_path.read_text().splitlines()
    runs_at = md.index("## Runs")
    table = [line for line in md[runs_at:] if line.startswith("|")]
    assert len(table) == 2 + 3  # header, alignment, one row per run
    assert "final honest accuracy" in table[0]
    assert "0.9450" in table[2] and "0.7150" in table[4]
    diff_table = [line for line in md[:runs_at] if line.startswith("|")]
    assert "defense.name" in diff_table[0] and "| fedavg |" in diff_table[-1]


def test_identical_configs_are_told_apart_by_folder(tmp_path: Path) -> None:
    a = make_run(tmp_path / "first")
    b = make_run(tmp_path / "second")
    out = compare_runs([a, b], tmp_path / "cmp")
    with open(out.runs_csv, newline="") as f:
        labels = [r["run"] for r in csv.DictReader(f)]
    assert len(set(labels)) == 2 and labels[0].endswith("[first]") and labels[1].endswith("[second]")
    assert "identical" in out.markdown.read_text()


def test_config_diff_names_the_fields_that_differ(tmp_path: Path) -> None:
    runs = [load_run(make_run(tmp_path / "a", name="x")), load_run(make_run(tmp_path / "b", name="y", defense="krum", seed=3))]
    assert config_diff(runs) == ["seed", "defense.name"]  # name is not a difference
    assert config_diff(runs[:1]) == []


def test_a_clean_run_does_not_make_shared_attack_settings_differ(tmp_path: Path) -> None:
    """A clean run leaves its unused attack settings out; the attacked runs' shared ones were
    then "different" and labelled every attacked run (an outside probe of the docs)."""
    dirs = [make_run(tmp_path / "a", attack="none", fraction=0.0), make_run(tmp_path / "b", attack="label_flip"),
            make_run(tmp_path / "c", attack="label_flip", defense="krum")]
    for d in dirs:  # every run records the attack's settings; a clean run's are unused
        cfg = d / "config.toml"
        cfg.write_text(cfg.read_text().replace("[attack]\n", '[attack]\nknowledge = "omniscient"\n'))
    runs = [load_run(d) for d in dirs]
    assert "attack.knowledge" in flatten(runs[1].config)
    assert sorted(config_diff(runs)) == ["attack.fraction", "attack.name", "defense.name"]
    # attack "none" at fraction 0 with attacker groups is attacked: its settings are compared
    grouped = [make_run(tmp_path / f"g{i}", attack="none", fraction=0.0) for i in range(2)]
    for d, inner in zip(grouped, ("sign_flip", "ipm")):
        cfg = d / "config.toml"
        cfg.write_text(cfg.read_text() + f'\n[[attack.groups]]\nname = "{inner}"\nfraction = 0.3\n')
    assert config_diff([load_run(d) for d in grouped]) == ["attack.groups"]


def test_seed_groups_mean_and_std_over_seeds(tmp_path: Path) -> None:
    """Three seeds of one config and one of another: two groups; the first with mean ± std over seeds."""
    dirs = [make_run(tmp_path / f"bdfl{s}", seed=s, acc_shift=0.01 * s) for s in range(3)]
    dirs.append(make_run(tmp_path / "fedavg0", seed=0, defense="fedavg", acc_shift=-0.2))
    out = compare_runs(dirs, tmp_path / "cmp")
    with open(out.groups_csv, newline="") as f:
        groups = list(csv.DictReader(f))
    assert [g["group"] for g in groups] == ["defense=bdfl", "defense=fedavg"]
    g = groups[0]
    assert g["n_runs"] == "3" and g["seeds"] == "0 1 2"
    # final honest accuracy per seed: 0.915, 0.925, 0.935
    assert float(g["final_honest_accuracy_mean"]) == pytest.approx(0.925)
    assert float(g["final_honest_accuracy_std"]) == pytest.approx(0.01)
    assert groups[1]["n_runs"] == "1" and groups[1]["final_honest_accuracy_std"] == ""
    md = out.markdown.read_text()
    assert "Seed groups" in md and "0.9250 ± 0.0100" in md
    # counts (rounds completed, equal over the seeds) read as counts: "2.0000 ± 0.0000" before
    group_row = next(line for line in md.splitlines() if line.startswith("| defense=bdfl |"))
    assert f"| {ROUNDS} ± 0 |" in group_row and ".0000 ± 0.0000" not in group_row
    with open(out.runs_csv, newline="") as f:
        assert [r["run"] for r in csv.DictReader(f)][:2] == ["defense=bdfl seed=0", "defense=bdfl seed=1"]


def test_a_run_named_twice_counts_once(tmp_path: Path) -> None:
    """`bdfl compare DIR DIR` (or a sweep and one of its runs) counted each run twice: a seed
    group of 4 with seeds 0 1 0 1 and a smaller std."""
    sweep = tmp_path / "sweep"
    runs = [make_run(sweep / "runs" / f"seed={s}", seed=s, acc_shift=0.01 * s) for s in (0, 1)]
    out = compare_runs([sweep, sweep, runs[0]], tmp_path / "cmp")
    with open(out.groups_csv, newline="") as f:
        (group,) = list(csv.DictReader(f))
    assert group["n_runs"] == "2" and group["seeds"] == "0 1"


def test_compare_accepts_a_sweep_folder(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    for s in (0, 1):
        make_run(sweep / "runs" / f"seed={s}", seed=s, acc_shift=0.01 * s)
    extra = make_run(tmp_path / "other", defense="median")
    out = compare_runs([sweep, extra], tmp_path / "cmp")
    with open(out.runs_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [Path(r["dir"]).name for r in rows] == ["seed=0", "seed=1", "other"]
    assert [r["run"] for r in rows] == ["defense=bdfl seed=0", "defense=bdfl seed=1", "defense=median seed=0"]
    empty = tmp_path / "empty-sweep"
    (empty / "runs").mkdir(parents=True)
    with pytest.raises(BDFLError, match="no finished run"):
        compare_runs([empty], tmp_path / "cmp2")
    shutil.rmtree(empty / "runs")
    with pytest.raises(BDFLError, match="neither a results folder"):
        compare_runs([empty], tmp_path / "cmp2")


def test_compare_errors(tmp_path: Path) -> None:
    with pytest.raises(BDFLError, match="nothing to compare"):
        compare_runs([], tmp_path / "cmp")
    with pytest.raises(BDFLError, match="does not exist") as exc:
        compare_runs([tmp_path / "nope"], tmp_path / "cmp")
    assert exc.value.fix


def _set_status(run: Path, status: str, **extra: object) -> Path:
    s = read_summary(run)
    (run / "summary.json").write_text(json.dumps({**s, "status": status, **extra}))
    return run


def test_unfinished_runs_are_shown_but_left_out_of_their_seed_group(tmp_path: Path) -> None:
    """An interrupted seed was averaged into its group ("rounds completed 2.0 ± 1.73"; an outside
    probe): a group's figures are over its finished runs; the others stay in the runs table."""
    dirs = [_set_status(make_run(tmp_path / f"bdfl{s}", seed=s, acc_shift=0.01 * s), "completed") for s in range(2)]
    dirs.append(_set_status(make_run(tmp_path / "bdfl2", seed=2, acc_shift=-0.5), "interrupted"))
    out = compare_runs(dirs, tmp_path / "cmp")
    with open(out.groups_csv, newline="") as f:
        (group,) = list(csv.DictReader(f))
    assert group["n_runs"] == "2" and group["seeds"] == "0 1"
    assert float(group["final_honest_accuracy_mean"]) == pytest.approx(0.92)  # 0.915 and 0.925: seed 2's -0.5 left out
    with open(out.runs_csv, newline="") as f:
        assert [r["status"] for r in csv.DictReader(f)] == ["completed", "completed", "interrupted"]
    assert "Not finished, so left out of their seed groups and the figures: synthetic (label_flip 0.34/bdfl) seed=2 (interrupted)" \
        in out.markdown.read_text()


def test_a_baseline_shows_no_audit_figures(tmp_path: Path) -> None:
    """Under a baseline nobody votes: reputations fall only for missed reveals, and the run's own
    summary says n/a; compare showed the numbers as if they meant something."""
    runs = [_set_status(make_run(tmp_path / "bdfl"), "completed", audited=True),
            _set_status(make_run(tmp_path / "fedavg", defense="fedavg"), "completed", audited=False)]
    out = compare_runs(runs, tmp_path / "cmp")
    with open(out.runs_csv, newline="") as f:
        rows = {r["defense"]: r for r in csv.DictReader(f)}
    assert rows["bdfl"]["attacker_mean_reputation_final"] != ""
    assert rows["fedavg"]["attacker_mean_reputation_final"] == "" and rows["fedavg"]["honest_false_rejection_rate"] == ""


def test_a_seed_without_a_value_is_counted_in_its_groups_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A seed that never separated has no separation round: the group's row showed the other
    seed's round alone, as if every seed had separated (an outside probe); it now says how many
    of the group's runs had a value."""
    runs = [make_run(tmp_path / f"s{s}", seed=s) for s in (0, 1)]
    full = compare_runs(runs, tmp_path / "cmp0").markdown.read_text()
    assert "(1/2)" not in full and "(k/n)" not in full
    summary = compare._summary
    monkeypatch.setattr(compare, "_summary", lambda run: {**summary(run), **({"separated_from_round": None} if run.seed == 0 else {})})
    md = compare_runs(runs, tmp_path / "cmp").markdown.read_text()
    groups = md.split("## Seed groups")[1].split("## Runs")[0]
    assert "| 3 (1/2) |" in groups and "(k/n): only k of the group's n runs had a value" in groups


def test_the_terminal_overview_names_each_run_and_its_key_figures(tmp_path: Path) -> None:
    """`bdfl compare` printed only the paths it wrote (an outside probe): now a line per run with
    its accuracy, separation round and verdict rates; a baseline's absent verdicts are "—"."""
    dirs = [make_run(tmp_path / "bdfl0", seed=0), make_run(tmp_path / "fedavg0", seed=0, defense="fedavg")]
    out = compare_runs(dirs, tmp_path / "cmp")
    lines = compare.overview(out.runs_csv).splitlines()
    assert lines[0].split()[:2] == ["run", "status"] and "honest accuracy" in lines[0]
    summaries = [compare._summary(load_run(d)) for d in dirs]
    bdfl_line = next(line for line in lines if line.startswith("defense=bdfl"))
    assert f"{summaries[0]['final_honest_accuracy']:.3f}" in bdfl_line
    assert f"{100 * summaries[0]['honest_false_rejection_rate']:.1f} %" in bdfl_line
    fedavg_line = next(line for line in lines if line.startswith("defense=fedavg"))
    assert fedavg_line.split()[-2:] == ["—", "—"]  # nobody audits a baseline: no verdict rates
    acc = f"{summaries[0]['final_honest_accuracy']:.3f}"  # right-aligned under its title
    assert lines[0].index("honest accuracy") + len("honest accuracy") == bdfl_line.index(acc) + len(acc)
