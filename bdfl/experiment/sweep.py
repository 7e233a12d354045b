"""`bdfl sweep`: a grid of experiments (attack × fraction × defense × seed ...), resumable.

A grid file is TOML::

    name = "robustness"
    base = "default.toml"          # an experiment config, relative to this file
    [set]                          # overrides applied to every run
    rounds = 30
    [grid]                         # dotted config keys -> lists of values
    "attack.name" = ["label_flip", "sign_flip"]
    "attack.fraction" = [0.3, 0.5]
    "defense.name" = ["bdfl", "fedavg", "krum"]
    seed = [0, 1, 2]

A grid value may be a table that sets several keys at once, named by its ``label`` (the
attack with its own parameters, e.g. ``attack = [{label = "sign_flip_x4", name = "sign_flip",
params = {scale = 4.0}}]``: every entry is a key under the grid key); the point then carries the
label. ``[[exclude]]`` tables leave out the points that match all of their entries (a value or
a list of values per grid key; a table value is matched by its label), e.g. image-only
attacks on a tabular task.

Every run gets its own results folder under ``<out>/runs/<slug>`` (the grid values,
e.g. ``name=label_flip_fraction=0.3_seed=0``). A run is reused only when its
``summary.json`` says ``completed`` *and* the configuration it ran with (its
``config.toml``) hashes to the one the grid asks for now (:func:`config_hash`); a
point whose configuration changed (an edited ``[set]``, ``base`` or default) is run
again, its earlier run moved to ``<slug>.earlier-<config hash>`` (never deleted), so an
interrupted sweep resumes where it stopped and an edited one never reuses stale runs.
All configurations are validated before the first run.
``<out>/sweep.json`` lists every point: params, config hash, run folder and whether it
was kept or run (docs/results-format.md, "Sweep folder"); points of an earlier invocation into the
same folder whose runs are still there stay listed (action ``earlier``).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import itertools
import json
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bdfl.config import ExperimentConfig, METADATA_KEYS, dump_toml, from_dict, load_config, read_toml
from bdfl.errors import BDFLError, ConfigError
from bdfl.experiment.compare import compare_runs
from bdfl.experiment.results import RUN_FILES, atomic_write_text
from bdfl.experiment.setup import preflight
from bdfl.experiment.signals import sigterm_as_interrupt
from bdfl.experiment.sweep_table import write_sweep_outputs
from bdfl.learning.task import task_defaults
from bdfl.plugins import code_digests

SWEEP_MANIFEST = "sweep.json"

#: Config fields that name or place a run without changing what it computes.
IDENTITY_FREE_KEYS = ("name", "out", *METADATA_KEYS)


def load_grid(path: Path) -> tuple[str, Path | None, dict[str, Any], dict[str, list[Any]]]:
    data = read_toml(path, "grid")
    unknown = sorted(set(data) - {"name", "base", "set", "grid", "exclude"})
    if unknown:
        raise ConfigError(unknown[0], "unknown field", "name, base, set, grid, exclude")
    grid = data.get("grid", {})
    if not isinstance(grid, dict) or not grid:
        raise ConfigError("grid", "a sweep needs a non-empty [grid] table of key = [values]")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"grid.{key}", f"expected a non-empty list, got {values!r}")
        tables = [v for v in values if isinstance(v, dict)]
        labels = [v.get("label") for v in tables]
        if tables and (len(tables) != len(values) or not all(isinstance(x, str) and x for x in labels)
                       or len(set(labels)) != len(labels)):
            raise ConfigError(f"grid.{key}", "table values need a distinct, non-empty label each (and no plain values beside them)")
    _check_excludes(data.get("exclude", []), grid)
    base = (path.parent / data["base"]) if data.get("base") else None
    fixed = data.get("set", {})
    if not isinstance(fixed, dict):
        raise ConfigError("set", "expected a table of overrides")
    return str(data.get("name", path.stem)), base, fixed, grid


def _check_excludes(excludes: Any, grid: Mapping[str, list[Any]]) -> None:
    if not isinstance(excludes, list) or not all(isinstance(e, dict) and e for e in excludes):
        raise ConfigError("exclude", "expected [[exclude]] tables of grid key = value or [values]")
    for i, ex in enumerate(excludes):
        for key in ex:
            if key not in grid:
                raise ConfigError(f"exclude[{i}].{key}", "not a key of [grid]", ", ".join(grid))


def _label(value: Any) -> Any:
    """A grid value as the point carries it: a table's label, else the value."""
    return value["label"] if isinstance(value, dict) else value


def _excluded(point: Mapping[str, Any], excludes: Sequence[Mapping[str, Any]]) -> bool:
    """Whether the (labelled) grid point matches every entry of one ``[[exclude]]`` table."""
    return any(all(point[k] in (v if isinstance(v, list) else [v]) for k, v in ex.items()) for ex in excludes)


def _point_overrides(point: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted-key overrides of a grid point: a table value sets each of its entries under its key."""
    out: dict[str, Any] = {}
    for key, value in point.items():
        if isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in value.items() if k != "label"})
        else:
            out[key] = value
    return out


def _slug(params: dict[str, Any]) -> str:
    parts = []
    for key, value in params.items():
        short = key.split(".")[-1]
        parts.append(f"{short}={value}")
    return "_".join(parts).replace("/", "-")


def expand(path: Path) -> tuple[str, list[tuple[dict[str, Any], ExperimentConfig]]]:
    """Every (grid point, validated config) of a grid file."""

    name, base, fixed, grid = load_grid(path)
    excludes = read_toml(path, "grid").get("exclude", [])
    keys = list(grid)
    runs = []
    for combo in itertools.product(*(grid[k] for k in keys)):
        params = {k: _label(v) for k, v in zip(keys, combo)}
        if _excluded(params, excludes):
            continue
        overrides = {**{k: v for k, v in fixed.items()}, **_point_overrides(dict(zip(keys, combo)))}
        if overrides.get("attack.name") == "none":
            overrides["attack.fraction"] = 0.0
        try:
            cfg = load_config(base, {**overrides, "name": f"{name}-{_slug(params)}"}, task_defaults=task_defaults)
            cfg = preflight(cfg)
        except ConfigError as exc:
            raise ConfigError(exc.field, f"in grid point {params}: {exc.detail}") from None
        runs.append((params, cfg))
    return name, runs


def _config_key(cfg: ExperimentConfig | Mapping[str, Any]) -> str:
    """Identity of a run's configuration, its name and folder aside (e.g. attack "none" at every fraction)."""
    data = dict(cfg.to_dict() if isinstance(cfg, ExperimentConfig) else cfg)
    for key in IDENTITY_FREE_KEYS:
        data.pop(key, None)
    return json.dumps(data, sort_keys=True, default=str)


def config_hash(cfg: ExperimentConfig | Mapping[str, Any]) -> str:
    """SHA-256 (hex, first 16 digits) of the resolved configuration, name/out/versions aside."""
    return hashlib.sha256(_config_key(cfg).encode()).hexdigest()[:16]


def _run_toml(run_dir: Path) -> dict[str, Any] | None:
    """A results folder's config.toml as a dict; None when absent or unreadable."""
    try:
        return tomllib.loads((Path(run_dir) / "config.toml").read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return None


def _hash_of(data: dict[str, Any] | None) -> str | None:
    """:func:`config_hash` of a config.toml's contents, resolved and validated by this version;
    None when there are none or they are no longer valid."""
    try:
        return None if data is None else config_hash(from_dict(data))
    except (ConfigError, TypeError, ValueError):
        return None


def run_config_hash(run_dir: Path) -> str | None:
    """:func:`config_hash` of the configuration a results folder ran with (its config.toml,
    resolved and validated by this version); None when absent or no longer valid."""
    return _hash_of(_run_toml(run_dir))


def _with_earlier_points(out: Path, manifest: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``manifest`` after the points an earlier invocation listed for other run folders that are
    still there (action ``"earlier"``): a sweep run in parts (``robustness_table.py --only``, one
    cell at a time into one folder) keeps every part's labels and parameters, not the last part's."""
    try:
        earlier = json.loads((out / SWEEP_MANIFEST).read_text()).get("points", [])
    except (OSError, ValueError, AttributeError):
        return manifest
    now = {entry["run"] for entry in manifest}
    kept = [{**p, "action": "earlier"} for p in earlier
            if isinstance(p, dict) and isinstance(p.get("run"), str) and p["run"] not in now and (out / p["run"]).is_dir()]
    return kept + manifest


def run_sweep(path: Path, *, out: Path | None = None, quiet: bool = False, jobs: int = 1) -> Path:
    """Run (or resume) every grid point, then write the table and heat map.

    Each run is a ``bdfl run`` subprocess, so one failed run is reported without ending the
    sweep (the others still run; the sweep then raises naming the failures). ``jobs`` > 1
    runs several at once, never two with the same seed together (a rule from when a seed fixed
    a run's endpoint ports; since setup.bind_endpoint, same-seed runs can share a machine).
    Grid points that resolve to the same configuration (attack "none" at every fraction)
    run once and share their results."""

    if not isinstance(jobs, int) or isinstance(jobs, bool) or not 1 <= jobs <= 64:
        raise ConfigError("--jobs", f"must be an integer in [1, 64], got {jobs!r}")
    name, runs = expand(path)  # all validated before anything starts
    out = out or Path("results") / f"sweep-{name}"
    _refuse_run_folder(out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    first_dir: dict[str, Path] = {}
    run_dirs: list[Path] = []
    todo: list[tuple[int, dict[str, Any], ExperimentConfig, Path]] = []
    manifest: list[dict[str, Any]] = []
    for i, (params, cfg) in enumerate(runs, 1):
        want = config_hash(cfg)
        run_dir = first_dir.setdefault(want, out / "runs" / _slug(params))
        run_dirs.append(run_dir)
        entry = {"params": params, "config_hash": want, "run": str(run_dir.relative_to(out)), "action": "run"}
        manifest.append(entry)
        if run_dir != out / "runs" / _slug(params):
            entry["action"] = "shared"  # same configuration as an earlier grid point
            continue
        reuse, recorded = _reuse(run_dir, want, _code(cfg))
        entry["action"] = reuse
        if reuse == "kept":
            if not quiet:
                print(f"[sweep {i}/{len(runs)}] {point_text(params)}: done earlier with this configuration, kept", flush=True)
            continue
        if reuse == "stale":
            _set_aside(run_dir, recorded, want, f"[sweep {i}/{len(runs)}] {point_text(params)}", quiet)
        todo.append((i, params, cfg, run_dir))

    atomic_write_text(out / SWEEP_MANIFEST, json.dumps(
        {"name": name, "grid_file": str(path), "points": _with_earlier_points(out, manifest)}, indent=2, default=str) + "\n")
    failures = _run_all(todo, len(runs), jobs, quiet)
    rows = []
    for (params, cfg), run_dir in zip(runs, run_dirs, strict=True):
        summary_path = run_dir / "summary.json"
        if summary_path.is_file():
            rows.append({"params": table_params(params, cfg), "summary": json.loads(summary_path.read_text())})
    write_sweep_outputs(rows, out)
    if failures:
        raise BDFLError(
            f"{len(failures)} of {len(todo)} sweep run(s) failed: " + "; ".join(t for t, _ in failures[:5]),
            fix=_where_failures_are(failures) + f"; the table in {out} has the runs that completed, and re-running the sweep "
            "retries only the failed ones",
        )
    return out


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` or ``"0-4"`` (or a mix: ``"0-2,7"``) as a list of distinct seeds, in order."""
    seeds: list[int] = []
    for part in (p.strip() for p in str(text).split(",")):
        try:
            if "-" in part[1:]:  # a range lo-hi
                lo, hi = (int(x) for x in part.split("-", 1))
                if hi < lo:
                    raise ValueError
                seeds += list(range(lo, hi + 1))
            else:
                seeds.append(int(part))
        except ValueError:
            raise ConfigError("--seeds", f"expected seeds like 0,1,2 or 0-4, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError("--seeds", f"expected distinct seeds like 0,1,2 or 0-4, got {text!r}")
    return seeds


def run_seed_group(cfg: ExperimentConfig, seeds: Sequence[int], *, out: Path | None = None,
                   quiet: bool = False, jobs: int = 1) -> Path:
    """Run ``cfg`` once per seed and compare the runs: ``bdfl run --seeds 0,1,2``.

    Each seed's run goes to ``<out>/runs/seed=<s>`` (a ``bdfl run`` subprocess, as in a
    sweep, and reused only when completed with the same configuration); then
    :func:`bdfl.experiment.compare.compare_runs` writes into ``<out>`` the comparison with
    mean ± std over seeds (``compare_groups.csv``, ``compare.md``) and seed bands
    (``compare_accuracy.png``, ``compare_reputation.png``). Returns ``out``.
    """
    seeds = list(seeds)
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError("--seeds", f"expected distinct seeds, got {seeds!r}")
    if not isinstance(jobs, int) or isinstance(jobs, bool) or not 1 <= jobs <= 64:
        raise ConfigError("--jobs", f"must be an integer in [1, 64], got {jobs!r}")
    variants = [from_dict({**cfg.to_dict(), "seed": s, "name": f"{cfg.name}-seed{s}", "out": ""}) for s in seeds]
    if out is None:
        out = Path(cfg.out) if cfg.out else Path("results") / f"{_dt.datetime.now():%Y%m%d-%H%M%S}-{cfg.name}-seeds"
    _refuse_run_folder(out)
    todo = []
    for i, (seed, c) in enumerate(zip(seeds, variants), 1):
        run_dir = out / "runs" / f"seed={seed}"
        want = config_hash(c)
        reuse, recorded = _reuse(run_dir, want, _code(c))
        if reuse == "kept":
            if not quiet:
                print(f"[seed {seed}] done earlier with this configuration, kept", flush=True)
            continue
        if reuse == "stale":
            _set_aside(run_dir, recorded, want, f"[seed {seed}]", quiet)
        todo.append((i, {"seed": seed}, c, run_dir))
    (out / "runs").mkdir(parents=True, exist_ok=True)
    failures = _run_all(todo, len(seeds), jobs, quiet)
    done = [out / "runs" / f"seed={s}" for s in seeds if (out / "runs" / f"seed={s}" / "metrics.csv").is_file()]
    if done:
        compare_runs(done, out)
    if failures:
        raise BDFLError(f"{len(failures)} of {len(todo)} seed run(s) failed: " + "; ".join(t for t, _ in failures[:5]),
                        fix=_where_failures_are(failures) + "; running the same command again retries only those")
    return out


def _where_failures_are(failures: list[tuple[str, Path]]) -> str:
    """Where to read more of the failed runs: their run.log, or, for runs stopped before they
    started (a configuration error: its message is above), that no folder holds one."""
    logged = [d for _, d in failures if (d / "run.log").is_file()]
    unlogged = len(failures) - len(logged)
    parts = [f"see run.log in {', '.join(str(d) for d in logged[:3])}" + (" ..." if len(logged) > 3 else "")] if logged else []
    if unlogged:
        parts.append(f"{unlogged} run(s) stopped before starting, on the error above, and left no run folder")
    return "; ".join(parts)


def table_params(params: Mapping[str, Any], cfg: ExperimentConfig) -> dict[str, Any]:
    """A point's grid values for the tables and the heat map, with the attack and its fraction
    the run used added when the grid does not vary them (the heat map's rows and panels are by
    attack and fraction: without them a label_flip 0.3 grid was drawn as "attack: none, attacker
    fraction 0")."""
    out = dict(params)
    groups = cfg.attack.groups
    if not any(k in params for k in ("attack", "attack.name", "attack.groups")):
        out["attack.name"] = "+".join(g.name for g in groups) if groups else cfg.attack.name
    if not any(k in params for k in ("fraction", "attack.fraction", "attack.groups")):
        out["attack.fraction"] = round(cfg.num_attackers / cfg.peers, 4) if groups else cfg.attack.fraction
    return out


def run_command(cfg_path: Path, run_dir: Path) -> list[str]:
    """The command line that runs one grid point (a ``bdfl run`` subprocess)."""
    return [sys.executable, "-m", "bdfl", "run", "--config", str(cfg_path), "--out", str(run_dir), "--quiet"]


def point_text(params: Mapping[str, Any]) -> str:
    """A grid point as ``key=value`` pairs (``attack.name=label_flip seed=0``)."""
    return " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def result_text(run_dir: Path) -> str:
    """One finished run in a few words, from its summary.json."""
    try:
        s = json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return "done (no summary.json)"
    acc, sep = s.get("final_honest_accuracy"), s.get("separated_from_round")
    parts = [str(s.get("status", "done"))]
    if isinstance(acc, (int, float)):
        parts.append(f"honest accuracy {acc:.3f}")
    if s.get("attackers"):
        parts.append(f"separated from round {sep}" if sep is not None else "attackers not separated")
    return ", ".join(parts)


def _code(cfg: ExperimentConfig) -> dict[str, str]:
    """The digests of a configuration's user code (plugins, a task module) as a run records them."""
    return code_digests([*cfg.plugins, cfg.task.client])


def _reuse(run_dir: Path, want: str, code: Mapping[str, str]) -> tuple[str, str | None]:
    """"kept" (completed with configuration ``want`` and user code ``code``, :func:`_code`),
    "stale" (completed with another configuration, or another version of a plugin or task file
    that it recorded) or "run"; with the hash of the configuration the run recorded (None when
    it recorded none valid; config.toml is read once). A run from before the code was recorded
    is judged by its configuration alone."""
    summary_path = run_dir / "summary.json"
    try:
        summary = json.loads(summary_path.read_text()) if summary_path.is_file() else None
    except (OSError, ValueError):
        summary = None
    if not isinstance(summary, dict) or summary.get("status") not in ("completed", "degraded"):
        return "run", None
    data = _run_toml(run_dir)
    recorded = _hash_of(data)
    if recorded != want:
        return "stale", recorded
    ran = _code_of(data)
    return ("stale" if ran is not None and any(ran.get(k) != v for k, v in code.items()) else "kept"), recorded


def _code_of(data: dict[str, Any] | None) -> dict[str, str] | None:
    """The user-code digests a run's config.toml recorded (``[versions.code]``); None before they were."""
    versions = (data or {}).get("versions")
    code = versions.get("code") if isinstance(versions, dict) else None
    return dict(code) if isinstance(code, dict) else None


def _refuse_run_folder(out: Path) -> None:
    """A sweep or seed group writes ``runs/`` and its tables into ``out``: never into one run's
    folder (they were mixed into it; an outside probe)."""
    held = [name for name in RUN_FILES if (out / name).exists()]
    if held:
        raise BDFLError(f"{out} is one run's results folder ({', '.join(held)}), not a sweep's",
                        fix="choose another --out for the sweep")


def _set_aside(run_dir: Path, recorded: str | None, want: str, label: str, quiet: bool) -> Path:
    """Move a run completed with another configuration out of its point's folder, to
    ``<folder>.earlier-<its config hash>`` (a number appended if taken), and say so: a finished
    run is never deleted (an edited grid, or a changed library default, re-runs the point; the
    earlier run was deleted the moment its point started, and Ctrl-C then left neither).
    ``recorded``: the configuration hash the run recorded (:func:`_reuse`)."""
    old = recorded or "unknown"
    why = f"config hash {old} != {want}" if old != want else "a plugin or task file changed since"
    aside = run_dir.with_name(f"{run_dir.name}.earlier-{old}")
    n = 2
    while aside.exists():
        aside = run_dir.with_name(f"{run_dir.name}.earlier-{old}-{n}")
        n += 1
    run_dir.rename(aside)
    if not quiet:
        print(f"{label}: done earlier with another configuration ({why}): that run is kept as "
              f"{aside.name}, running the point again", flush=True)
    return aside


def _launch_files(run_dir: Path) -> tuple[Path, Path]:
    """(config, stderr) of a point's launch, hidden beside its run folder; they live only while
    the point runs (a resume writes them again, and the run's own run.log keeps what it said)."""
    return run_dir.parent / f".{run_dir.name}.toml", run_dir.parent / f".{run_dir.name}.stderr"


def _run_all(todo: list[tuple[int, dict[str, Any], ExperimentConfig, Path]], total: int, jobs: int,
             quiet: bool) -> list[tuple[str, Path]]:
    """Run ``todo`` as subprocesses, at most ``jobs`` at once and one per seed; return the failures
    (what they said, their run folder)."""
    pending = list(todo)
    running: dict[Any, tuple[int, dict[str, Any], ExperimentConfig, Path]] = {}
    failures: list[tuple[str, Path]] = []
    started: dict[Any, float] = {}
    durations: list[float] = []

    # SIGTERM stops the running points as Ctrl-C does: without it the sweep died at once and its
    # `bdfl run` children ran on alone, devnets and all
    with sigterm_as_interrupt():
        try:
            while pending or running:
                busy_seeds = {cfg.seed for (_i, _p, cfg, _d) in running.values()}
                while len(running) < jobs:
                    pick = next((t for t in pending if t[2].seed not in busy_seeds), None)
                    if pick is None:
                        break
                    pending.remove(pick)
                    i, params, cfg, run_dir = pick
                    if run_dir.exists():
                        shutil.rmtree(run_dir)  # an unfinished run starts over (a finished one was set aside)
                    run_dir.parent.mkdir(parents=True, exist_ok=True)
                    cfg_path, err_path = _launch_files(run_dir)
                    cfg_path.write_text(dump_toml(cfg))
                    if not quiet:
                        print(f"[sweep {i}/{total}] {point_text(params)}: running", flush=True)
                    # stderr to a file, never a pipe: a pipe nobody reads until the run ends fills
                    # up (64 KiB) on a chatty run and blocks it forever
                    with open(err_path, "w") as err_file:
                        proc = subprocess.Popen(
                            run_command(cfg_path, run_dir),
                            stdout=subprocess.DEVNULL, stderr=err_file, text=True,
                        )
                    running[proc] = pick
                    started[proc] = time.monotonic()
                    busy_seeds.add(cfg.seed)
                time.sleep(0.2)
                for proc in [p for p in running if p.poll() is not None]:
                    i, params, cfg, run_dir = running.pop(proc)
                    durations.append(time.monotonic() - started.pop(proc))
                    cfg_path, err_path = _launch_files(run_dir)
                    err = err_path.read_text(errors="replace").strip() if err_path.exists() else ""
                    err_path.unlink(missing_ok=True)
                    cfg_path.unlink(missing_ok=True)
                    if proc.returncode == 130:
                        raise KeyboardInterrupt
                    if proc.returncode not in (0, 3):  # 3: ran every round, status "degraded" (a result too)
                        last = err.splitlines()[-2:] if err else [f"exit code {proc.returncode}"]
                        failures.append((f"{params}: {' '.join(last)}", run_dir))
                        if not quiet:
                            print(f"[sweep {i}/{total}] {point_text(params)}: FAILED ({' '.join(last)})", flush=True)
                    elif not quiet:
                        left = len(pending) + len(running)
                        eta = sum(durations) / len(durations) * left / jobs
                        print(f"[sweep {i}/{total}] {point_text(params)}: {result_text(run_dir)} in {durations[-1]:.0f} s"
                              + (f"; {left} to go, about {eta / 60:.1f} min left" if left else ""), flush=True)
        except KeyboardInterrupt:
            print("sweep interrupted: finished points are kept; the same command again resumes with the others",
                  file=sys.stderr, flush=True)
            raise
        finally:
            for proc in running:  # Ctrl-C or an error: runs stop cleanly (their own SIGINT/SIGTERM handling)
                if proc.poll() is None:
                    proc.terminate()
            for proc, (_i, _p, _c, run_dir) in running.items():
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                for launch_file in _launch_files(run_dir):  # were left hidden beside the runs
                    launch_file.unlink(missing_ok=True)
    return failures
