"""Local training alone, without BDFL: how one client's fit time grows with model size here.

    .venv/bin/python experiments/fit_scaling_probe.py                  # 1m, 4m, 11m; 7 fits each
    .venv/bin/python experiments/fit_scaling_probe.py --sizes 1m 11m --fits 5

The model-size sweep (``experiments/model_size_sweep.py``, issue 23) compares whole BDFL rounds at
1M and 11M parameters, local training included. This probe measures the part no protocol change can
touch: one ``TorchClient.fit`` of the sweep's own task modules (``clients.digits_1m`` /
``_4m`` / ``_11m``: the same data, shard size, hyper-parameters, proximal term and optimizer as in
the sweep's runs) in one process set up like a simulation worker (one torch thread,
``keep_freed_memory``, ``THP_MEM_ALLOC_ENABLE=1``). The first fit of each size (first touch of its
memory) is reported apart; the figure is the median of the rest. If the fit alone grows faster
than the parameter count, a round that includes it cannot grow at most linearly either.

Prints a Markdown table (and writes it to ``--out`` when given), with the date, commit and load.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib
import os
import statistics
import subprocess
import sys
import time

from bdfl.net.allocator import keep_freed_memory

if __name__ == "__main__":  # set up as a simulation worker, before torch allocates (not when a test imports this)
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")  # bdfl.experiment.pool.WORKER_ENV
    keep_freed_memory()

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bdfl.config import TaskConfig  # noqa: E402
from bdfl.learning.task import task_base_config, task_hparams  # noqa: E402

SIZES = {"wide": "clients.digits_wide", "1m": "clients.digits_1m", "4m": "clients.digits_4m", "11m": "clients.digits_11m"}


def fit_seconds(module: str, fits: int, samples: int, seed: int = 0) -> tuple[int, float, list[float]]:
    """(parameters, first fit s, later fits' s) of one client of ``module`` on ``samples`` images."""
    task = importlib.import_module(module)
    data = task.load_dataset(None)
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(data.y_train), size=samples, replace=False)
    train = (data.X_train[idx], data.y_train[idx])
    defaults = TaskConfig()  # the [task] defaults: the hyper-parameters and fit config of the sweep's runs
    client = task.make_client(train, train, seed=seed, hparams=task_hparams(defaults))
    params = client.get_parameters({})
    config = task_base_config(defaults, data.num_classes)
    times = []
    for r in range(fits):
        t0 = time.perf_counter()
        params, _, _ = client.fit(params, {**config, "server_round": r + 1})
        times.append(time.perf_counter() - t0)
    return sum(int(p.size) for p in params), times[0], times[1:]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", nargs="+", default=["1m", "4m", "11m"], choices=list(SIZES),
                    help="wide: clients.digits_wide (85k parameters, for a quick check)")
    ap.add_argument("--fits", type=int, default=7, help="fits per size (the first is reported apart)")
    ap.add_argument("--samples", type=int, default=72,
                    help="training images of the client (digits' 1,438 over 20 peers: ~72)")
    ap.add_argument("--out", help="also write the table here")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = ap.parse_args(argv)
    if args.fits < 2:
        ap.error("--fits must be at least 2 (the first fit is reported apart)")
    torch.set_num_threads(1)
    rows = []
    for size in args.sizes:
        n, first, rest = fit_seconds(SIZES[size], args.fits, args.samples)
        rows.append((size, n, first, statistics.median(rest), min(rest), max(rest)))
    base_n, base_s = rows[0][1], rows[0][3]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip() or "unknown"
    when = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"Measured {when}, commit `{commit}`, load average {os.getloadavg()[0]:.1f}; reproduce: "
        f"`python experiments/fit_scaling_probe.py {' '.join(argv)}`".rstrip(),
        "",
        f"| size | parameters | first fit s | fit s (median of {args.fits - 1}) | min / max s | params x | fit time x |",
        "|---|---:|---:|---:|---|---:|---:|",
    ]
    for size, n, first, med, lo, hi in rows:
        lines.append(f"| {size} | {n:,} | {first:.3f} | {med:.3f} | {lo:.3f} / {hi:.3f} | {n / base_n:.1f} | {med / base_s:.1f} |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
