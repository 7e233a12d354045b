"""What the replay check by content costs per model (issue 23): :class:`bdfl.peer.republished.EarlierModels`
at 1M, 4M and 11M float32 parameters. ``add`` (a digest and a count sketch of each earlier-round
model a worker decodes, up to ~2N a round), ``holds`` (a candidate's sampled key) and ``near_share``
(a candidate's sketch and its start's, against every earlier model's sketch; the first call
stacks the sketches, a second candidate's call is the steady cost), and ``prepare`` (a worker's
``--batch`` candidates searched together, each by another trainer of the index, before its
auditors judge them). Median of ``--repeat``.
Reproduce::

    .venv/bin/python experiments/republished_cost.py [--sizes 1000000 4000000 11000000] [--earlier 40] [--repeat 5]
    .venv/bin/python experiments/republished_cost.py --sizes 1000 --earlier 20000 --repeat 3  # a worker at N = 10,000
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from bdfl.peer.republished import EarlierModels


def _model(rng: np.random.Generator, size: int) -> list[np.ndarray]:
    """A model of ``size`` float32 values in a few arrays, as a task's would be."""
    cuts = [size // 2, size // 2 + size // 4, size - 10]
    flat = rng.standard_normal(size, dtype=np.float32)
    return [a.copy() for a in np.split(flat, cuts)]


@contextmanager
def _one_value_changed(model: list[np.ndarray], k: int) -> Iterator[list[np.ndarray]]:
    """``model`` made distinct from its other variants (a copy would tie every distance) by its
    ``k``-th value changed in place, and put back on leaving: the timing holds no copy of it."""
    first, at = model[0], k % model[0].size
    kept = first[at]
    first[at] = kept + 1.0
    try:
        yield model
    finally:
        first[at] = kept


def _candidates(model: list[np.ndarray], start: list[np.ndarray], n: int, authors: int) -> Iterator[tuple[str, list[np.ndarray], list[np.ndarray], str]]:
    """``n`` distinct candidates of trainers that have earlier models in the index, made from
    ``model`` (each put back once prepare has sketched it)."""
    for k in range(n):
        with _one_value_changed(model, k) as candidate:
            yield f"0xc{k:063x}", candidate, start, f"0x{(k * 7) % max(authors, 1):040x}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 4_000_000, 11_000_000])
    p.add_argument("--earlier", type=int, default=40, help="earlier models added (2N at N = 20; ~20,000 in a worker at N = 10,000)")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--batch", type=int, default=64, help="candidates searched together by prepare")
    a = p.parse_args(argv)
    rng = np.random.default_rng(0)
    print("| parameters | earlier models | add (digest + sketch), s per model | holds, ms per candidate | near_share, s per candidate (first) | near_share, ms per candidate (next) | prepare, ms per candidate |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for size in a.sizes:
        models = [_model(rng, size) for _ in range(5)]
        adds, holds, nears, nexts, batched = [], [], [], [], []
        for rep in range(a.repeat):
            index = EarlierModels(seed=rep)
            index.sketch(models[0])  # the sketch's buckets, drawn once per seed and size
            t0 = time.perf_counter()
            for k in range(a.earlier):
                with _one_value_changed(models[k % 3], k) as model:
                    index.add(f"0x{rep:04x}{k:060x}", model, f"0x{k:040x}")
            adds.append((time.perf_counter() - t0) / a.earlier)
            t0 = time.perf_counter()
            index.holds(models[3])
            holds.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            index.near_share(models[3], models[0], "0x" + "ff" * 20)
            nears.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            index.near_share(models[4], models[0], "0x" + "fe" * 20)
            nexts.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            index.prepare(_candidates(models[3], models[0], a.batch, a.earlier))
            batched.append((time.perf_counter() - t0) / a.batch)
        print(f"| {size:,} | {a.earlier:,} | {statistics.median(adds):.3f} | {1000 * statistics.median(holds):.2f} | "
              f"{statistics.median(nears):.3f} | {1000 * statistics.median(nexts):.1f} | "
              f"{1000 * statistics.median(batched):.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
