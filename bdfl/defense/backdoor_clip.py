"""Aggregation-side backdoor mitigation for ``bdfl``: clip what only a minority of the approved
updates moved, before the reputation-weighted average.

Why here and not in the audit: a data-poisoning backdoor (BadNets-style patches, blended,
DBA, edge-case) changes a model in a few directions that honest training on clean data never
moves. The committee cannot see this once round 1's aggregate carries the backdoor (its own
models have it too: docs/results/robustness.md, "why the trigger scan misses"), but every
peer still sees the round's approved models side by side when it averages them.

Two pure rules, both calibrated from the round's models alone (dimensionless ``k``; no trigger
family, no attacker count, no start model):

* :func:`band_clip` (``defense.bdfl.clip = "band"``): per coordinate, the median of the models
  and their spread (1.4826 x MAD, the normal-consistent MAD); each model's value is clipped to
  ``median +- k x spread``. A weight that a minority (< 50 %) moved while the majority left it
  where it was (the trigger pixels' weights, a dead unit turned into a trigger detector) has
  spread ~0 and is pulled back to the majority's value; where honest models disagree the band
  is wide and the average is barely touched. The coordinate-wise analogue of FLAME's clipping
  (Nguyen et al., USENIX Security'22), with the coordinate median (Yin et al. 2018) as centre
  and the MAD as bound; with ``k`` -> infinity it is the plain weighted average.
* :func:`norm_clip` (``clip = "norm"``): FLAME's / Sun et al. 2019's norm bounding, centred on
  the coordinate median: each model's distance from it is clipped to ``k`` x the median
  distance. Kept for comparison (it limits boosted updates, not plain data poisoning).

FLAME's HDBSCAN clustering and its noise are not used: the committee already removes the
outlying updates that clustering removes, and the noise needs a shared random seed to keep
the peers' models reproducible (the project's runs are bit-reproducible by seed).
``byzfl`` (0.0.11) offers clipping aggregators but cannot be imported next to the pinned torch
(robustness.md, "Dependency note: byzfl"), and has no per-coordinate MAD band.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from bdfl.defense.aggregate import AggregationError, check_models
from bdfl.defense.detectors.calibration import MAD_TO_SIGMA
from bdfl.types import NDArrays

__all__ = ["CLIPS", "band", "band_clip", "clip_models", "norm_clip"]

#: ``defense.bdfl.clip``: no clipping, the per-coordinate band, the norm bound.
CLIPS = ("off", "band", "norm")
#: coordinates per block (bounded memory for large models: n x block float64 values)
BLOCK = 1 << 16


def _check_k(k: float) -> float:
    if isinstance(k, bool) or not isinstance(k, (int, float)) or not math.isfinite(k) or k <= 0:
        raise AggregationError(f"backdoor clip: k must be a finite number > 0, got {k!r}")
    return float(k)


def band(X: np.ndarray, k: float) -> tuple[np.ndarray, np.ndarray]:
    """The band of the rows of ``X`` (models x coordinates) at each coordinate: ``median +- k x
    1.4826 x MAD`` (:data:`.calibration.MAD_TO_SIGMA`), as (low, high)."""
    med = np.median(X, axis=0)
    half = k * MAD_TO_SIGMA * np.median(np.abs(X - med), axis=0)
    return med - half, med + half


def band_clip(models: Sequence[NDArrays], k: float) -> list[NDArrays]:
    """Each model with every coordinate clipped to the models' ``median +- k x 1.4826 x MAD``
    at that coordinate (module docstring). Returns new arrays in the input dtypes; with fewer
    than 3 models (no majority to speak of) copies."""
    k = _check_k(k)
    models = check_models(models)
    out: list[NDArrays] = [[np.array(a, copy=True) for a in m] for m in models]
    if len(models) < 3:
        return out
    for layer in range(len(models[0])):
        flat = [np.asarray(m[layer]).reshape(-1) for m in models]
        dst = [o[layer].reshape(-1) for o in out]  # views into the copies
        for lo in range(0, flat[0].size, BLOCK):
            X = np.stack([f[lo:lo + BLOCK] for f in flat]).astype(np.float64)
            np.clip(X, *band(X, k), out=X)
            for i, d in enumerate(dst):
                d[lo:lo + BLOCK] = X[i]
    return out


def norm_clip(models: Sequence[NDArrays], k: float) -> list[NDArrays]:
    """Each model moved towards the models' coordinate median until its distance from it is at
    most ``k`` x the median of those distances (FLAME / Sun et al. 2019 norm bounding, centred on
    the median). Returns new arrays in the input dtypes; with fewer than 3 models copies."""
    k = _check_k(k)
    models = check_models(models)
    out: list[NDArrays] = [[np.array(a, copy=True) for a in m] for m in models]
    if len(models) < 3:
        return out
    centre = [np.median(np.stack([np.asarray(m[i], dtype=np.float64) for m in models]), axis=0)
              for i in range(len(models[0]))]
    dist = np.array([math.sqrt(sum(float(np.sum((np.asarray(a, dtype=np.float64) - c) ** 2)) for a, c in zip(m, centre)))
                     for m in models])
    bound = k * float(np.median(dist))
    for m, o, d in zip(models, out, dist):
        if d > bound:
            scale = bound / d
            for i, (a, c) in enumerate(zip(m, centre)):
                o[i] = (c + scale * (np.asarray(a, dtype=np.float64) - c)).astype(o[i].dtype)
    return out


def clip_models(models: Sequence[NDArrays], clip: str, k: float) -> list[NDArrays] | Sequence[NDArrays]:
    """``models`` under the rule ``clip`` (:data:`CLIPS`; ``"off"`` returns them unchanged)."""
    if clip == "off":
        return models
    if clip == "band":
        return band_clip(models, k)
    if clip == "norm":
        return norm_clip(models, k)
    raise AggregationError(f"unknown backdoor clip {clip!r}; known: {', '.join(CLIPS)}")
