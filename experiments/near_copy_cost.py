"""What counting near-copies once costs (issue 22, 2026-12-05): the best of 3 timings of
:func:`bdfl.defense.audit.candidate_statistics` (19 candidates) and of
:func:`bdfl.defense.aggregate.merge_copies` (9 models) at ``P`` parameters, on random models (none
grouped: the cost every audit pays). Run it at two commits (a ``git archive`` export each, with
``PYTHONPATH`` set to it) to compare; docs/learning.md, "Cost", has the figures.

    OMP_NUM_THREADS=1 .venv/bin/python experiments/near_copy_cost.py 1000000
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bdfl.defense.aggregate import merge_copies  # noqa: E402
from bdfl.defense.audit import candidate_statistics  # noqa: E402


def best_of(fn, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    p = int(args[0]) if args else 1_000_000
    rng = np.random.default_rng(0)
    start = [rng.standard_normal(p).astype(np.float32)]
    ref = [start[0] + 0.01 * rng.standard_normal(p).astype(np.float32)]
    cands = [[start[0] + 0.01 * rng.standard_normal(p).astype(np.float32)] for _ in range(19)]
    stats = best_of(lambda: candidate_statistics(ref, cands, start))
    merge = best_of(lambda: merge_copies([ref, *cands[:8]]))
    print(f"P={p}: candidate_statistics of 19 candidates {stats:.3f} s; merge_copies of 9 models {merge:.4f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
