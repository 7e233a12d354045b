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

Every run gets its own results folder under ``<out>/runs/``; a run whose
``summary.json`` says ``completed`` is not run again, so an interrupted sweep
resumes where it stopped. All configurations are validated before the first run.
"""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path
from typing import Any

from bdfl.config import ExperimentConfig, load_config, read_toml
from bdfl.errors import ConfigError


def load_grid(path: Path) -> tuple[str, Path | None, dict[str, Any], dict[str, list[Any]]]:
    data = read_toml(path, "grid")
    unknown = sorted(set(data) - {"name", "base", "set", "grid"})
    if unknown:
        raise ConfigError(f"grid.{unknown[0]}", "unknown field", "name, base, set, grid")
    grid = data.get("grid", {})
    if not isinstance(grid, dict) or not grid:
        raise ConfigError("grid.grid", "a sweep needs a non-empty [grid] table of key = [values]")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"grid.grid.{key}", f"expected a non-empty list, got {values!r}")
    base = (path.parent / data["base"]) if data.get("base") else None
    fixed = data.get("set", {})
    if not isinstance(fixed, dict):
        raise ConfigError("grid.set", "expected a table of overrides")
    return str(data.get("name", path.stem)), base, fixed, grid


def _slug(params: dict[str, Any]) -> str:
    parts = []
    for key, value in params.items():
        short = key.split(".")[-1]
        parts.append(f"{short}={value}")
    return "_".join(parts).replace("/", "-")


def expand(path: Path) -> tuple[str, list[tuple[dict[str, Any], ExperimentConfig]]]:
    """Every (grid point, validated config) of a grid file."""
    from bdfl.experiment.setup import preflight

    name, base, fixed, grid = load_grid(path)
    keys = list(grid)
    runs = []
    for combo in itertools.product(*(grid[k] for k in keys)):
        params = dict(zip(keys, combo))
        overrides = {**{k: v for k, v in fixed.items()}, **params}
        if overrides.get("attack.name") == "none":
            overrides["attack.fraction"] = 0.0
        try:
            cfg = load_config(base, {**overrides, "name": f"{name}-{_slug(params)}"})
            preflight(cfg)
        except ConfigError as exc:
            raise ConfigError(exc.field, f"in grid point {params}: {exc.message}") from None
        runs.append((params, cfg))
    return name, runs


def run_sweep(path: Path, *, out: Path | None = None, quiet: bool = False) -> Path:
    """Run (or resume) every grid point, then write the table and heat map."""
    from bdfl.experiment.runner import run_experiment
    from bdfl.experiment.sweep_table import write_sweep_outputs

    name, runs = expand(path)  # all validated before anything starts
    out = out or Path("results") / f"sweep-{name}"
    (out / "runs").mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (params, cfg) in enumerate(runs, 1):
        run_dir = out / "runs" / _slug(params)
        summary_path = run_dir / "summary.json"
        summary = json.loads(summary_path.read_text()) if summary_path.is_file() else None
        if summary is None or summary.get("status") != "completed":
            if run_dir.exists():
                shutil.rmtree(run_dir)  # an interrupted run starts over
            if not quiet:
                print(f"[sweep {i}/{len(runs)}] {params}", flush=True)
            run_experiment(cfg, quiet=True, out=run_dir)
            summary = json.loads(summary_path.read_text())
        elif not quiet:
            print(f"[sweep {i}/{len(runs)}] {params}: done earlier, kept", flush=True)
        rows.append({"params": params, "summary": summary})
    write_sweep_outputs(rows, out)
    return out
