"""``bdfl sweep`` reuses a run only when it ran with the configuration the grid asks for now.

Each grid point is a subprocess; here the subprocess is a stand-in for ``bdfl run`` that
writes what the reuse check reads (the resolved ``config.toml``, written exactly as the
orchestrator writes it, and a completed ``summary.json``) and logs which point ran, so the
test follows the sweep's real bookkeeping in seconds. ``test_stale_sweep_reruns_real_runs``
does the same with real runs.
"""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
from pathlib import Path

import pytest

from bdfl.errors import BDFLError
from bdfl.experiment import sweep
from bdfl.experiment.results import read_metrics, read_rounds, read_summary
from bdfl.experiment.sweep import SWEEP_MANIFEST, config_hash, run_config_hash, run_sweep
from tests.experiment.test_tracking import scalars

ROOT = Path(__file__).resolve().parents[2]

FAKE_RUN = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from bdfl.config import dump_toml, load_config
    from bdfl.plugins import code_digests
    cfg_path, out = Path(sys.argv[1]), Path(sys.argv[2])
    cfg = load_config(cfg_path)
    out.mkdir(parents=True, exist_ok=True)
    code = code_digests([*cfg.plugins, cfg.task.client])
    (out / "config.toml").write_text(dump_toml(cfg, {"versions": {"bdfl": "test", "code": code}}))
    (out / "summary.json").write_text(json.dumps({"status": "completed", "rounds": cfg.rounds,
                                                  "final_honest_accuracy": 0.5, "ran_at": time.time_ns()}))
    with open(sys.argv[3], "a") as log:
        log.write(out.name + "\\n")
    """)


def _grid(path: Path, *, rounds: int, fraction: float) -> Path:
    path.write_text(textwrap.dedent(f"""\
        name = "stale"
        base = "{ROOT / 'experiments' / 'configs' / 'default.toml'}"
        [set]
        peers = 6
        rounds = {rounds}
        "attack.fraction" = {fraction}
        [grid]
        "attack.name" = ["none", "label_flip"]
        "defense.name" = ["fedavg"]
        """))
    return path


def _small_grid(path: Path, name: str, grid: str) -> Path:
    """A grid file on the default experiment at 6 peers and 2 rounds; ``grid``: its [grid] lines."""
    path.write_text(f'name = "{name}"\nbase = "{ROOT / "experiments" / "configs" / "default.toml"}"\n'
                    f"[set]\npeers = 6\nrounds = 2\n[grid]\n{grid}\n")
    return path


@pytest.fixture
def fake_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    script = tmp_path / "fake_run.py"
    script.write_text(FAKE_RUN)
    log = tmp_path / "ran.log"
    monkeypatch.setattr(sweep, "run_command", lambda cfg, out: [sys.executable, str(script), str(cfg), str(out), str(log)])
    return log


def _ran(log: Path) -> list[str]:
    lines = log.read_text().splitlines() if log.exists() else []
    log.unlink(missing_ok=True)
    return sorted(lines)


def test_stale_sweep_reruns_changed_points_only(tmp_path: Path, fake_runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    grid = _grid(tmp_path / "grid.toml", rounds=2, fraction=0.2)
    out = tmp_path / "sweep"
    run_sweep(grid, out=out)
    runs = sorted(p.name for p in (out / "runs").iterdir())
    assert len(runs) == 2 and _ran(fake_runs) == runs  # both points ran
    flip = next(out / "runs" / r for r in runs if "label_flip" in r)
    clean = next(out / "runs" / r for r in runs if "none" in r)
    first = {d: read_summary(d)["ran_at"] for d in (flip, clean)}

    # one line per run as it starts and as it ends, with its result and what is left
    printed = capsys.readouterr().out
    assert "[sweep 1/2] attack.name=none defense.name=fedavg: running" in printed
    assert printed.count("completed, honest accuracy 0.500") == 2 and "1 to go, about" in printed

    # the same grid again: nothing runs, both kept
    run_sweep(grid, out=out)
    assert _ran(fake_runs) == []
    assert capsys.readouterr().out.count("with this configuration, kept") == 2

    # the attacker fraction changes the label_flip point only (attack "none" runs at fraction 0)
    _grid(grid, rounds=2, fraction=0.34)
    old_hash = run_config_hash(flip)
    run_sweep(grid, out=out)
    assert _ran(fake_runs) == [flip.name]
    aside = flip.with_name(f"{flip.name}.earlier-{old_hash}")
    assert f"that run is kept as {aside.name}" in capsys.readouterr().out
    assert read_summary(clean)["ran_at"] == first[clean]  # kept, untouched
    assert read_summary(flip)["ran_at"] != first[flip]
    # the finished run of the earlier configuration is set aside, never deleted (an outside probe: it
    # was deleted the moment its point started, so a Ctrl-C then left neither run)
    assert read_summary(aside)["ran_at"] == first[flip] and run_config_hash(aside) == old_hash
    assert aside.name not in (out / "sweep_runs.csv").read_text()
    manifest = json.loads((out / SWEEP_MANIFEST).read_text())
    actions = {Path(p["run"]).name: p["action"] for p in manifest["points"]}
    assert actions == {flip.name: "stale", clean.name: "kept"}
    assert all(p["config_hash"] == run_config_hash(out / p["run"]) for p in manifest["points"])

    # the case: [set] rounds 2 -> 3 changes every point; the table shows the new runs
    _grid(grid, rounds=3, fraction=0.34)
    run_sweep(grid, out=out)
    assert _ran(fake_runs) == sorted([flip.name, clean.name])
    table = (out / "sweep_runs.csv").read_text()
    assert read_summary(flip)["rounds"] == 3 and read_summary(clean)["rounds"] == 3
    assert "final_honest_accuracy" in table


def test_a_run_that_cannot_be_read_back_is_run_again(tmp_path: Path, fake_runs: Path) -> None:
    grid = _grid(tmp_path / "grid.toml", rounds=2, fraction=0.2)
    out = tmp_path / "sweep"
    run_sweep(grid, out=out)
    _ran(fake_runs)
    victim = sorted((out / "runs").iterdir())[0]
    (victim / "config.toml").write_text("peers = 'many'\n")  # edited by hand / an older version
    assert run_config_hash(victim) is None
    run_sweep(grid, out=out)
    assert _ran(fake_runs) == [victim.name]


def test_config_hash_ignores_name_out_and_versions(tmp_path: Path) -> None:
    from bdfl.config import dump_toml, load_config

    a = load_config(None, {"peers": 6, "name": "a", "out": "x"})
    b = load_config(None, {"peers": 6, "name": "b", "out": "y"})
    c = load_config(None, {"peers": 6, "rounds": 3})
    assert config_hash(a) == config_hash(b) != config_hash(c)
    (tmp_path / "config.toml").write_text(dump_toml(a, {"versions": {"torch": "0"}}))
    assert run_config_hash(tmp_path) == config_hash(a)


@pytest.mark.slow
@pytest.mark.chain
def test_stale_sweep_reruns_real_runs(tmp_path: Path) -> None:
    """Real ``bdfl run`` subprocesses: 4 peers, 1 round; the changed point re-runs, the other is kept."""
    grid = tmp_path / "grid.toml"

    def write(fraction: float) -> None:
        grid.write_text(textwrap.dedent(f"""\
            name = "stale-real"
            [set]
            peers = 4
            rounds = 1
            "attack.fraction" = {fraction}
            [grid]
            "attack.name" = ["none", "label_flip"]
            "defense.name" = ["fedavg"]
            """))

    write(0.25)
    out = tmp_path / "sweep"
    run_sweep(grid, out=out, quiet=True)
    dirs = {p.name: p for p in (out / "runs").iterdir()}
    flip = next(d for n, d in dirs.items() if "label_flip" in n)
    clean = next(d for n, d in dirs.items() if "none" in n)
    assert sum(r["attacker"] for r in read_metrics(flip)) == 1
    before = {d: (d / "metrics.csv").stat().st_mtime_ns for d in (flip, clean)}
    write(0.5)
    run_sweep(grid, out=out, quiet=True)
    assert (clean / "metrics.csv").stat().st_mtime_ns == before[clean]
    assert (flip / "metrics.csv").stat().st_mtime_ns != before[flip]
    assert sum(r["attacker"] for r in read_metrics(flip)) == 2
    assert run_config_hash(flip) == json.loads((out / SWEEP_MANIFEST).read_text())["points"][1]["config_hash"]
    # live tracking of a real run: its round's figures are in the TensorBoard event files
    tb = scalars(flip)
    rounds = read_rounds(flip)
    assert [step for step, _ in tb["round/honest_accuracy"]] == [r["round"] for r in rounds] == [1]
    assert tb["round/honest_accuracy"][0][1] == pytest.approx(rounds[0]["honest_accuracy"], rel=1e-6)
    assert tb["round/gas_used"][0][1] == pytest.approx(rounds[0]["gas_used"], rel=1e-6)
    assert {"reputation/attacker_max", "reputation/honest_min", "tokens/honest_stake_mean"} <= set(tb)


FAKE_SEED_RUN = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    sys.path.insert(0, {root!r})
    from bdfl.config import dump_toml, load_config
    from tests.experiment.test_results import make_run
    cfg_path, out = Path(sys.argv[1]), Path(sys.argv[2])
    cfg = load_config(cfg_path)
    make_run(out, seed=cfg.seed, acc_shift=0.01 * cfg.seed)  # a synthetic run whose accuracy follows the seed
    (out / "config.toml").write_text(dump_toml(cfg))
    summary = json.loads((out / "summary.json").read_text())
    (out / "summary.json").write_text(json.dumps({{**summary, "status": "completed"}}))
    with open(sys.argv[3], "a") as log:
        log.write(out.name + "\\n")
    """)


def test_seed_group_runs_each_seed_and_compares_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import csv

    from bdfl.config import load_config
    from bdfl.experiment.sweep import parse_seeds, run_seed_group

    script = tmp_path / "fake_seed_run.py"
    script.write_text(FAKE_SEED_RUN.format(root=str(ROOT)))
    log = tmp_path / "ran.log"
    monkeypatch.setattr(sweep, "run_command", lambda cfg, out: [sys.executable, str(script), str(cfg), str(out), str(log)])
    cfg = load_config(None, {"peers": 6, "rounds": 2, "name": "grp"})
    out = run_seed_group(cfg, parse_seeds("0-2"), out=tmp_path / "group", quiet=True)
    assert _ran(log) == ["seed=0", "seed=1", "seed=2"]
    with open(out / "compare_groups.csv", newline="") as f:
        (group,) = list(csv.DictReader(f))
    assert group["n_runs"] == "3" and group["seeds"] == "0 1 2"
    assert float(group["final_honest_accuracy_mean"]) == pytest.approx(0.925)  # 0.915, 0.925, 0.935
    assert float(group["final_honest_accuracy_std"]) == pytest.approx(0.01)
    assert (out / "compare_accuracy.png").is_file() and (out / "compare_accuracy.svg").is_file()
    # again with one more seed: the three done are kept, only seed 3 runs
    run_seed_group(cfg, [0, 1, 2, 3], out=out, quiet=True)
    assert _ran(log) == ["seed=3"]
    with pytest.raises(Exception, match="distinct"):
        parse_seeds("1,1")


def test_a_sweep_run_in_parts_keeps_every_parts_points(tmp_path: Path, fake_runs: Path) -> None:
    """robustness_table.py --only runs one cell at a time into one folder: the manifest must keep
    the earlier cells' points (their labels), not only the last invocation's."""
    out = tmp_path / "sweep"
    grid = tmp_path / "grid.toml"
    for attack in ("none", "label_flip"):
        _small_grid(grid, "parts", f'"attack.name" = ["{attack}"]\n"defense.name" = ["fedavg"]')
        run_sweep(grid, out=out, quiet=True)
    points = json.loads((out / SWEEP_MANIFEST).read_text())["points"]
    by_attack = {p["params"]["attack.name"]: p["action"] for p in points}
    assert by_attack == {"none": "earlier", "label_flip": "run"}
    # a point whose run folder is gone is not carried on
    shutil.rmtree(out / [p["run"] for p in points if p["params"]["attack.name"] == "none"][0])
    run_sweep(grid, out=out, quiet=True)
    points = json.loads((out / SWEEP_MANIFEST).read_text())["points"]
    assert [p["params"]["attack.name"] for p in points] == ["label_flip"]


def test_sigterm_to_a_sweep_stops_its_running_point(tmp_path: Path) -> None:
    """`kill`, `timeout` and job schedulers send SIGTERM: the sweep died at once and its running
    `bdfl run` went on alone (devnet and all), re-parented to init (an outside probe)."""
    import os
    import signal
    import subprocess
    import time

    import psutil

    grid = _grid(tmp_path / "grid.toml", rounds=3, fraction=0.3)
    pid_file = tmp_path / "child.pid"
    driver = tmp_path / "driver.py"
    driver.write_text(textwrap.dedent(f"""\
        import sys
        from pathlib import Path
        from bdfl.experiment import sweep
        child = "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(120)"
        sweep.run_command = lambda cfg, out: [sys.executable, "-c", child, {str(pid_file)!r}]
        sweep.run_sweep(Path({str(grid)!r}), out=Path({str(tmp_path / 'out')!r}), quiet=True, jobs=1)
        """))
    proc = subprocess.Popen([sys.executable, str(driver)], cwd=ROOT, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 60
        while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
            time.sleep(0.1)
        child = int(pid_file.read_text())
        assert psutil.pid_exists(child)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "the same command again resumes" in err
    gone = time.monotonic() + 10
    while psutil.pid_exists(child) and psutil.Process(child).status() != psutil.STATUS_ZOMBIE and time.monotonic() < gone:
        time.sleep(0.1)
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE


def test_a_grid_without_attack_keys_labels_its_rows_with_the_runs_attack(tmp_path: Path, fake_runs: Path) -> None:
    """The heat map's rows and panels are by attack and fraction: a grid varying only the defense was
    drawn as "attack: none, attacker fraction 0" although every run had 30 % label flipping."""
    import csv

    grid = _small_grid(tmp_path / "grid.toml", "defenses", '"defense.name" = ["fedavg", "median"]')
    out = tmp_path / "sw"
    run_sweep(grid, out=out, quiet=True)
    rows = list(csv.DictReader((out / "sweep_runs.csv").open()))
    assert [(r["attack.name"], float(r["attack.fraction"])) for r in rows] == [("label_flip", 0.3)] * 2


def test_a_sweep_never_writes_into_a_run_folder(tmp_path: Path, fake_runs: Path) -> None:
    """`bdfl sweep GRID --out <a run's folder>` mixed runs/ and the tables into it (an outside probe)."""
    run = tmp_path / "a_run"
    run.mkdir()
    (run / "metrics.csv").write_text("round,peer\n")
    grid = _small_grid(tmp_path / "grid.toml", "into_run", '"defense.name" = ["fedavg"]')
    with pytest.raises(BDFLError, match="one run's results folder"):
        run_sweep(grid, out=run, quiet=True)
    assert not (run / "runs").exists() and _ran(fake_runs) == []


def test_an_edited_plugin_reruns_its_points(tmp_path: Path, fake_runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The configuration names a plugin file, not its code: after an edit the sweep said "done
    earlier with this configuration, kept" (an outside probe). Each run records its user code's
    digests; a changed file re-runs the point, the earlier run set aside."""
    plugin = tmp_path / "my_plugin.py"
    plugin.write_text("# version 1\n")
    grid = tmp_path / "grid.toml"
    grid.write_text(f'name = "code"\nbase = "{ROOT / "experiments" / "configs" / "default.toml"}"\n'
                    f'[set]\npeers = 6\nrounds = 2\nplugins = ["{plugin}"]\n[grid]\n"defense.name" = ["fedavg"]\n')
    out = tmp_path / "sw"
    run_sweep(grid, out=out, quiet=True)
    assert len(_ran(fake_runs)) == 1
    run_sweep(grid, out=out, quiet=True)
    assert _ran(fake_runs) == []  # unchanged: kept
    plugin.write_text("# version 2\n")
    run_sweep(grid, out=out)
    assert len(_ran(fake_runs)) == 1
    assert "a plugin or task file changed since" in capsys.readouterr().out
    assert len(list((out / "runs").glob("*.earlier-*"))) == 1
