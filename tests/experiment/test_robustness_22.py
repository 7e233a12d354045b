"""experiments/robustness_table.py, issue 22's mode, on a synthetic sweep folder: labelled
attacks from sweep.json, the drop against each defense's own clean run, the targets named as
met or missed, the backdoor and adaptive tables, grid narrowing and the time estimate."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

from tests.experiment.scripts import experiment_script

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def table():  # noqa: ANN201
    with experiment_script("robustness_table", "robustness_table_22") as mod:
        yield mod


def _run(sweep: Path, label: str, attack: str, defense: str, acc: float, *, fraction: float = 0.3, asr: float | None = None,
         honest_rejected: int = 0, separated: bool = True, seed: int = 11, manifest: list | None = None) -> None:
    name = f"{label}-{defense}-{fraction}-{seed}"
    d = sweep / "runs" / name
    d.mkdir(parents=True)
    (d / "summary.json").write_text(json.dumps({"status": "completed", "final_honest_accuracy": acc, "attack_success_rate_final": asr,
                                                "seconds_wall": 30.0, "seconds_total": 20.0, "rounds_completed": 4}))
    (d / "config.toml").write_text(f'seed = {seed}\nrounds = 4\npeers = 20\n[task]\nclient = "clients.digits"\n'
                                   f'[attack]\nname = "{attack}"\nfraction = {0.0 if attack == "none" else fraction}\n'
                                   f'[defense]\nname = "{defense}"\n')
    rows = []
    for r in range(1, 5):
        if attack != "none":
            rows.append({"round": r, "peer": 0, "attacker": 1, "reputation": 0.1 if separated else 0.9, "approved": 0, "stake": 90})
        for p in (1, 2, 3):
            ok = 0 if (r == 1 and p <= honest_rejected) else 1
            rows.append({"round": r, "peer": p, "attacker": 0, "reputation": 0.6, "approved": ok, "stake": 100})
    with open(d / "metrics.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["round", "peer", "attacker", "reputation", "approved", "stake"])
        w.writeheader()
        w.writerows(rows)
    if manifest is not None:
        manifest.append({"params": {"attack": label, "defense.name": defense}, "run": f"runs/{name}"})


def test_issue_22_table_names_targets_met_and_missed(table, tmp_path: Path) -> None:  # noqa: ANN001
    sweep = tmp_path / "sweep"
    points: list = []
    for d, acc in (("bdfl", 0.90), ("median", 0.88)):
        _run(sweep, "none", "none", d, acc, manifest=points)
    _run(sweep, "sign_flip_x4", "sign_flip", "bdfl", 0.895, manifest=points)  # -0.5 pts: holds
    _run(sweep, "sign_flip_x4", "sign_flip", "median", 0.60, manifest=points)
    _run(sweep, "backdoor_4x4", "backdoor", "bdfl", 0.86, asr=0.40, honest_rejected=1, separated=False, manifest=points)
    _run(sweep, "adaptive_alie", "adaptive", "bdfl", 0.85, manifest=points)
    _run(sweep, "adaptive_alie", "adaptive", "median", 0.80, manifest=points)
    (sweep / "sweep.json").write_text(json.dumps({"points": points}))
    assert table.main(["--targets", str(sweep), "--results-dir", str(tmp_path / "out")]) == 0
    md = (tmp_path / "out" / "robustness_22.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| sign_flip_x4 |"))
    assert "0.895 ± 0.000 (1)" in row and "0.600 ± 0.000 (1)" in row and "| -0.5 | 0.0% | 1 |" in row
    assert "* digits/20/30%/sign_flip_x4: within 2 points of clean: -0.5 pts" in md.split("Missed:")[1]  # under Met
    missed = md.split("Missed:")[1].split("Met:")[0]
    assert "digits/20/30%/backdoor_4x4: within 2 points of clean: -4.0 pts" in missed
    assert "digits/20/30%/backdoor_4x4: backdoor success < 5 %: 40.0%" in missed
    assert "digits/20/30%/backdoor_4x4: honest false rejection < 2 %: 8.3%" in missed
    assert "digits/20/30%/backdoor_4x4: attackers below every honest peer from round 5: never" in missed
    assert "| backdoor_4x4 | 40.0% | – |" in md  # the backdoor table, BDFL and median columns
    drops = md.split("Drop against each defense's own clean run")[1].split("\n\n")[1]
    assert "| sign_flip_x4 | -0.5 | -28.0 |" in drops  # each defense against its own clean run
    adaptive = [line for line in md.splitlines() if line.startswith("| adaptive_alie |")][-1]  # its own table
    assert "| -5.0 | -8.0 | 0% (0/4) |" in adaptive  # drop against each defense's own clean run


def test_narrowed_grid_and_estimate(table, tmp_path: Path) -> None:  # noqa: ANN001
    grid = ROOT / "experiments" / "configs" / "sweep_robustness_22.toml"
    data = table.narrowed_grid(grid, ["task.client=clients.digits", "attack=dba,none", "peers=20"], ["rounds=6"], outer="attack")
    assert [a["label"] for a in data["grid"]["attack"]] == ["dba", "none"] and data["grid"]["peers"] == [20]
    assert next(iter(data["grid"])) == "attack"  # the outermost loop
    assert data["grid"]["attack"][0]["params.parts"] == 4  # flat: written inline, so the order holds
    from bdfl.experiment.sweep import expand

    (tmp_path / "g.toml").write_text(table.dump_grid(data))
    _name, runs = expand(tmp_path / "g.toml")
    seq = [p["attack"] for p, _c in runs]
    assert seq == sorted(seq, key=lambda a: a != "dba") and seq[-1] == "none"  # every dba point first
    assert runs[0][1].attack.params["parts"] == 4
    assert data["set"]["rounds"] == 6 and Path(data["base"]).is_absolute()
    with pytest.raises(SystemExit):
        table.narrowed_grid(grid, ["attack=nothing"], [])
    # seeds repeat the design: a subset file may name seeds the grid does not list; the command line
    # only narrows, and no other key takes a value the grid does not have
    assert table.narrowed_grid(grid, [], [], None, {"seed": [31, 12]})["grid"]["seed"] == [31, 12]
    for only, subset in ((["seed=31"], None), ([], {"peers": [21]}), ([], {"seed": ["x"]})):
        with pytest.raises(SystemExit):
            table.narrowed_grid(grid, only, [], None, subset)
    points = table.grid_points(grid)
    assert not any(p["task.client"] == "clients.seattle_weather" and p["attack"] == "dba" for p in points)
    assert not any(p["task.client"] == "clients.seattle_weather" and p["peers"] == 50 for p in points)
    sweep = tmp_path / "sweep"
    _run(sweep, "none", "none", "bdfl", 0.9)
    _run(sweep, "none", "none", "fedavg", 0.9)
    lines = "\n".join(table.estimate(table.load_runs_22(sweep), grid))
    # 5 s a round and 10 s of setup, measured for digits/20 only: 20 rounds -> 110 s a run
    assert "| digits | 20 | bdfl | 1 | 5.00 | 10.0 |" in lines
    n = sum(1 for p in points if p["task.client"] == "clients.digits" and p["peers"] == 20)
    assert f"{n * 110 / 3600:.1f} h" in lines


def test_a_run_gets_its_label_from_the_grid_by_name_and_parameters(table, tmp_path: Path) -> None:  # noqa: ANN001
    sweep = tmp_path / "sweep"
    _run(sweep, "x", "backdoor", "bdfl", 0.9)
    cfg = next((sweep / "runs").iterdir()) / "config.toml"
    cfg.write_text(cfg.read_text() + "[attack.params]\ntarget_label = 0\ntrigger_size = 4\n")
    grid = ROOT / "experiments" / "configs" / "sweep_robustness_22.toml"
    assert [r["label"] for r in table.load_runs_22(sweep, grid)] == ["backdoor_4x4"]
    assert [r["label"] for r in table.load_runs_22(sweep)] == ["backdoor"]  # no grid, no manifest: the name


def test_a_subset_file_narrows_the_grid_and_the_command_line_narrows_it_further(table, tmp_path: Path) -> None:  # noqa: ANN001
    grid = ROOT / "experiments" / "configs" / "sweep_robustness_22.toml"
    sub = tmp_path / "sub.toml"
    sub.write_text(f'grid = "{grid}"\nout = "results/x"\nouter = "defense.name"\n'
                   '[only]\n"task.client" = ["clients.digits"]\npeers = [20]\nseed = [12, 13]\n'
                   '"attack.fraction" = [0.45]\nattack = ["none", "fang"]\n"defense.name" = ["krum", "bdfl"]\n[set]\nrounds = 6\n')
    assert table.is_subset(sub) and not table.is_subset(grid)
    s = table.load_subset(sub)
    assert s["grid"] == grid and s["out"] == Path("results/x") and s["set"] == ["rounds=6"]
    data = table.narrowed_grid(s["grid"], ["defense.name=bdfl"], s["set"], s["outer"], s["only"])
    assert data["grid"]["defense.name"] == ["bdfl"] and data["grid"]["seed"] == [12, 13]
    assert [a["label"] for a in data["grid"]["attack"]] == ["none", "fang"] and data["set"]["rounds"] == 6
    assert next(iter(data["grid"])) == "defense.name"
    with pytest.raises(SystemExit, match="median"):  # the command line cannot widen the subset
        table.narrowed_grid(s["grid"], ["defense.name=median"], [], None, s["only"])
    with pytest.raises(SystemExit, match="99"):  # nor ask for a seed the subset does not name
        table.narrowed_grid(s["grid"], ["seed=99"], [], None, s["only"])
    bad = tmp_path / "bad.toml"
    bad.write_text(f'grid = "{grid}"\nout = "x"\nrounds = 6\n')
    with pytest.raises(SystemExit, match="rounds"):
        table.load_subset(bad)


def test_the_committed_subset_files_name_grid_values(table) -> None:  # noqa: ANN001
    files = sorted((ROOT / "experiments" / "configs").glob("sweep_22_subset_*.toml"))
    assert files
    for f in files:
        s = table.load_subset(f)
        data = table.narrowed_grid(s["grid"], [], s["set"], s["outer"], s["only"])  # SystemExit on a value not in the grid
        assert all(data["grid"][k] for k in data["grid"]) and str(s["out"]).startswith("results/")


def test_several_folders_make_one_table_newest_run_wins_with_its_code(table, tmp_path: Path) -> None:  # noqa: ANN001
    old, new = tmp_path / "old", tmp_path / "new"
    p_old: list = []
    p_new: list = []
    _run(old, "none", "none", "bdfl", 0.90, manifest=p_old)
    _run(old, "sign_flip_x4", "sign_flip", "bdfl", 0.70, manifest=p_old)  # replaced by the newer run below
    _run(new, "sign_flip_x4", "sign_flip", "bdfl", 0.89, manifest=p_new)
    _run(new, "ipm_opt", "ipm_opt", "krum", 0.10, fraction=0.45, manifest=p_new)
    _run(new, "none", "none", "krum", 0.60, manifest=p_new)
    _run(old, "alie", "alie", "bdfl", 0.88, manifest=p_old)  # compares with its own folder's clean run
    _run(new, "none", "none", "bdfl", 0.80, manifest=p_new)  # the newer clean run: the new folder's reference
    (old / "sweep.json").write_text(json.dumps({"points": p_old}))
    (new / "sweep.json").write_text(json.dumps({"points": p_new}))
    failed = new / "runs" / "ipm_opt-krum-0.45-11" / "summary.json"
    failed.write_text(json.dumps({**json.loads(failed.read_text()), "status": "failed", "rounds_completed": 3}))
    newer = new / "runs" / "sign_flip_x4-bdfl-0.3-11" / "summary.json"
    os.utime(newer, (newer.stat().st_mtime + 10, newer.stat().st_mtime + 10))
    (new / "provenance.jsonl").write_text(json.dumps({
        "start": {"head": "abc1234", "dirty": ["bdfl/defense/audit.py"]}, "end": {"head": "abc1234", "dirty": []},
        "runs": ["runs/sign_flip_x4-bdfl-0.3-11"]}) + "\n")
    assert table.main(["--targets", str(old), str(new), "--results-dir", str(tmp_path / "out")]) == 0
    md = (tmp_path / "out" / "robustness_22.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| sign_flip_x4 |"))
    assert "0.890" in row and "0.700" not in row and "| +9.0 |" in row
    assert "| -2.0 |" in next(line for line in md.splitlines() if line.startswith("| alie |"))
    assert "BDFL, no attackers (1 run(s)): final honest accuracy 0.800" in md  # the newest clean run per seed
    assert "* `abc1234 + uncommitted bdfl/defense/audit.py` (1 run(s)): digits/20/30%/sign_flip_x4/s11" in md
    assert "* `unrecorded` (3 run(s)): digits/20/clean/none/s11, digits/20/clean/none/s11, digits/20/30%/alie/s11" in md
    krum = next(line for line in md.splitlines() if line.startswith("| ipm_opt |"))
    assert "0.100 ± 0.000 (1)†" in krum  # the diverged run is a result, marked
    assert "digits/20/45%/ipm_opt/krum/s11 (round 3 of 4)" in md
