"""A coalition that agrees with the median steers the direction test's top-half consensus (issue 22).

Synthetic moves through :func:`bdfl.defense.audit.candidate_statistics`: 13 honest moves (their
direction plus noise, cosine ~0.37 with it) and 6 colluders sending the honest mean plus a push of
``push`` times its length along one direction orthogonal to it, each with its own noise
(``jitter`` times the honest noise: 0.01 makes near-copies, which count once; 0.3 escapes the
near-copy bar). Prints the honest and the colluders' median cosine with the consensus move, once
with the top-half consensus and once with the coordinate-wise median alone.
docs/results/robustness.md, "The top-half consensus", has the numbers.

Run (seconds): .venv/bin/python experiments/top_half_steering.py
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bdfl.defense.audit as audit  # noqa: E402

DIM, HONEST, COLLUDERS, TRIALS = 2000, 13, 6, 30


def median_cosines(moves: np.ndarray, own: np.ndarray, top_half: bool) -> tuple[float, float]:
    """(honest, colluders') median cosine with the consensus move in one audit."""
    keep = audit.top_half_cosines
    if not top_half:
        audit.top_half_cosines = lambda *a, **k: None  # the coordinate-wise median alone
    try:
        st = audit.candidate_statistics([own.astype(np.float32)], [[m.astype(np.float32)] for m in moves],
                                        [np.zeros(DIM, np.float32)])
    finally:
        audit.top_half_cosines = keep
    c = np.array([s.cosine for s in st])
    return float(np.median(c[:HONEST])), float(np.median(c[HONEST:]))


def main() -> int:
    rng = np.random.default_rng(0)
    noise = 2.5 / math.sqrt(DIM)
    for jitter in (0.01, 0.3):
        for push in (0.0, 1.0, 2.0, 4.0):
            rows: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
            for _ in range(TRIALS):
                d = rng.normal(size=DIM)
                d /= np.linalg.norm(d)
                honest = d + noise * rng.normal(size=(HONEST, DIM))
                own = d + noise * rng.normal(size=DIM)
                p = rng.normal(size=DIM)
                p -= (p @ d) * d
                p /= np.linalg.norm(p)
                mean = honest.mean(axis=0)
                colluders = mean + push * np.linalg.norm(mean) * p + jitter * noise * rng.normal(size=(COLLUDERS, DIM))
                moves = np.vstack([honest, colluders])
                for top_half in (True, False):
                    rows[top_half].append(median_cosines(moves, own, top_half))
            text = {k: "honest {:.2f}, colluders {:.2f}".format(*np.mean(v, axis=0)) for k, v in rows.items()}
            print(f"jitter {jitter:<4} push {push:<3}: top half: {text[True]} | median alone: {text[False]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
