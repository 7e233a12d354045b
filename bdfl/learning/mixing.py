"""Quasi-global momentum for decentralised averaging, at the round level (issue 23).

On a sparse overlay a peer's next model is the average of ~d + 1 models, not of all N: the
network's *mean* model moves like FedAvg's, but each peer's own model carries the noise of
its d + 1 sources (measured at N = 1000, d = 24: the mean model's accuracy after round 2 is
FedAvg's 0.43, the peers' mean accuracy 0.33; docs/learning.md, "Quasi-global momentum").
Following Lin et al. (ICML 2021, "Quasi-global momentum: accelerating decentralized deep
learning on heterogeneous data"), a peer adds to what it trained the *round-level* velocity
of its own start: ``update = trained + beta * (start_r - start_{r-1})``. Its start moves
by local training *and* by mixing with its neighbours, so the velocity is an estimate of the
network's (quasi-global) direction, averaged over rounds: the per-round noise of the few
sources is smoothed over time instead of over more neighbours, for no extra bytes.

Why in the update and not after the average: a peer's start stays the weighted average of
its own and its sources' *published* updates (all on chain), so the auditors' rebuilt starts
(:func:`bdfl.peer.sources.start_recipes`) stay exact; a trainer's judged move is its local
move plus the velocity of its own (rebuildable) start. Nothing about what is aggregated
changes: only approved, hash-checked updates.

In effect only where the overlay is not the complete graph (:func:`momentum_in_effect`):
there every peer already averages every approved update (FedAvg's model), and momentum would
turn it into server momentum (FedAvgM), another algorithm than the one compared with. So the
default experiment (20 peers, degree 24: the complete graph) is unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from bdfl.types import NDArrays


def momentum_in_effect(beta: float, overlay: Any) -> float:
    """The momentum a peer applies this round: ``beta`` unless the overlay is known and the
    complete graph (then 0). Before the first overlay is built (round 0) ``beta``: a round-0
    start has no earlier start, so nothing is added yet, but it is remembered for round 1."""
    if beta <= 0.0:
        return 0.0
    if overlay is not None and overlay.complete:
        return 0.0
    return float(beta)


def with_momentum(trained: Sequence[np.ndarray], start: Sequence[np.ndarray], previous_start: Sequence[np.ndarray],
                  beta: float) -> NDArrays:
    """``trained + beta * (start - previous_start)`` per floating-point array (computed in
    float64, cast back to each array's dtype); integer arrays (counters) are left as trained.
    Inputs are not modified."""
    if not (len(trained) == len(start) == len(previous_start)):
        raise ValueError(f"array counts differ: trained {len(trained)}, start {len(start)}, previous start {len(previous_start)}")
    out: NDArrays = []
    for t, s, p in zip(trained, start, previous_start):
        t = np.asarray(t)
        s, p = np.asarray(s), np.asarray(p)
        if t.shape != s.shape or s.shape != p.shape:
            raise ValueError(f"array shapes differ: {t.shape}, {s.shape}, {p.shape}")
        if not np.issubdtype(t.dtype, np.floating):
            out.append(t.copy())
            continue
        v = s.astype(np.float64) - p.astype(np.float64)
        out.append((t.astype(np.float64) + beta * v).astype(t.dtype))
    return out
