"""Modern robust aggregators, as pure functions over lists of models (baselines beside
FedAvg, Krum, median and trimmed mean of :mod:`bdfl.learning.aggregation`).

* :func:`geometric_median` — the point minimising the sum of Euclidean distances to the
  models, by smoothed Weiszfeld iterations (Pillutla, Kakade & Harchaoui, "Robust
  Aggregation for Federated Learning" (RFA), IEEE TSP 2022).
* :func:`centered_clipping` — ``v <- v + mean_i clip(x_i - v, tau)``, a few iterations from a
  centre (Karimireddy, He & Jaggi, "Learning from History for Byzantine Robust
  Optimization", ICML 2021), after *bucketing*: averaging random groups of ``bucket_size``
  models (Karimireddy, He & Jaggi, "Byzantine-Robust Learning on Heterogeneous Datasets via
  Bucketing", ICLR 2022).
* :func:`nnm_trimmed_mean` — Nearest Neighbour Mixing (each model replaced by the mean of its
  ``n - f`` nearest models, itself included), then a coordinate-wise trimmed mean cutting f
  a side (Allouah et al., "Fixing by Mixing", AISTATS 2023).

Importing this module registers them in :data:`bdfl.learning.aggregation.AGGREGATORS` as
``geometric_median``, ``centered_clipping`` and ``nnm_trimmed_mean`` (defenses of bdfl run).
A peer passes ``[own, *others]``: the own model is the first model, and centered clipping
starts from it (in decentralised learning a peer's own model is its natural centre).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bdfl.learning.aggregation import (
    AGGREGATORS,
    AggregationError,
    Aggregator,
    NDArrays,
    _check_models,
    _restore_dtypes,
    flatten,
    pairwise_sq,
)

__all__ = ["centered_clipping", "geometric_median", "nnm", "nnm_trimmed_mean"]


def _matrix(models: Sequence[NDArrays]) -> tuple[list[NDArrays], np.ndarray]:
    checked = _check_models(models)
    return checked, np.stack([flatten(m) for m in checked])


def _unflatten(vec: np.ndarray, like: NDArrays) -> NDArrays:
    out, pos = [], 0
    for a in like:
        out.append(vec[pos:pos + a.size].reshape(a.shape))
        pos += a.size
    return _restore_dtypes(out, like)


def _weiszfeld(X: np.ndarray, max_iter: int, tol: float, eps: float) -> np.ndarray:
    z = X.mean(axis=0)
    for _ in range(max_iter):
        w = 1.0 / np.maximum(np.linalg.norm(X - z, axis=1), eps)
        new = (w[:, None] * X).sum(axis=0) / w.sum()
        if np.linalg.norm(new - z) <= tol * max(1.0, np.linalg.norm(z)):
            return new
        z = new
    return z


def geometric_median(models: Sequence[NDArrays], *, max_iter: int = 100, tol: float = 1e-7, eps: float = 1e-8) -> NDArrays:
    """Geometric median of the models (smoothed Weiszfeld: distances floored at ``eps``),
    started at the mean, stopped when a step moves less than ``tol`` (relative)."""
    if max_iter < 1 or not tol > 0 or not eps > 0:
        raise AggregationError(f"geometric_median: need max_iter >= 1, tol > 0, eps > 0; got {max_iter}, {tol}, {eps}")
    checked, X = _matrix(models)
    return _unflatten(_weiszfeld(X, max_iter, tol, eps), checked[0])


def _buckets(X: np.ndarray, bucket_size: int, seed: int) -> np.ndarray:
    if bucket_size <= 1:
        return X
    order = np.random.default_rng(seed).permutation(len(X))
    return np.stack([X[order[i:i + bucket_size]].mean(axis=0) for i in range(0, len(X), bucket_size)])


def centered_clipping(models: Sequence[NDArrays], *, tau: float | None = None, iterations: int = 3,
                      bucket_size: int = 2, seed: int = 0) -> NDArrays:
    """Centered clipping with bucketing. Centre: the first model (a peer's own). Buckets: a
    permutation seeded with ``seed``, averaged ``bucket_size`` at a time (1 = none); the first
    model stays the centre. ``tau``: the clipping radius; None = the median distance of the
    models (before bucketing, which would mix outliers into most buckets) from the centre
    (scale-free: model distances differ by task)."""
    if iterations < 1 or bucket_size < 1 or (tau is not None and not tau > 0):
        raise AggregationError(f"centered_clipping: need iterations >= 1, bucket_size >= 1, tau > 0 or None; "
                               f"got {iterations}, {bucket_size}, {tau}")
    checked, X = _matrix(models)
    v = X[0].copy()
    B = _buckets(X, bucket_size, seed)
    radius = float(np.median(np.linalg.norm(X - v, axis=1))) if tau is None else float(tau)
    for _ in range(iterations):
        d = B - v
        norms = np.linalg.norm(d, axis=1)
        scale = np.minimum(1.0, radius / np.maximum(norms, 1e-12))
        v = v + (scale[:, None] * d).mean(axis=0)
    return _unflatten(v, checked[0])


def nnm(models: Sequence[NDArrays], num_malicious: int) -> list[NDArrays]:
    """Nearest Neighbour Mixing: each model replaced by the mean of its ``n - f`` nearest
    models (Euclidean, itself included; ties by index)."""
    checked, X = _matrix(models)
    n, f = len(X), int(num_malicious)
    if isinstance(num_malicious, bool) or f < 0 or f >= n:
        raise AggregationError(f"nnm: num_malicious must be an integer in [0, {n - 1}], got {num_malicious!r}")
    dist = pairwise_sq(X)
    np.fill_diagonal(dist, -1.0)  # itself first
    nearest = np.argsort(dist, axis=1, kind="stable")[:, : n - f]
    return [_unflatten(X[idx].mean(axis=0), checked[0]) for idx in nearest]


def nnm_trimmed_mean(models: Sequence[NDArrays], num_malicious: int) -> NDArrays:
    """NNM, then the coordinate-wise mean without the ``f`` largest and ``f`` smallest values
    (f capped so that at least one value remains)."""
    mixed = nnm(models, num_malicious)
    X = np.stack([flatten(m) for m in mixed])
    n = len(X)
    f = min(int(num_malicious), (n - 1) // 2)
    S = np.sort(X, axis=0)
    return _unflatten(S[f : n - f].mean(axis=0), mixed[0])  # mixed[0]: shapes and dtypes of models[0]


def _agg_gm(models: list[NDArrays], weights: list[float] | None) -> NDArrays:
    return geometric_median(models)


def _agg_cc(models: list[NDArrays], weights: list[float] | None, *, bucket_size: int = 2, iterations: int = 3) -> NDArrays:
    return centered_clipping(models, bucket_size=bucket_size, iterations=iterations)


def _agg_nnm(models: list[NDArrays], weights: list[float] | None, *, num_malicious: int = 0) -> NDArrays:
    return nnm_trimmed_mean(models, min(num_malicious, len(models) - 1))


AGGREGATORS.update({
    a.name: a
    for a in (
        Aggregator("geometric_median", "geometric median (smoothed Weiszfeld), Pillutla et al. 2022 (RFA)", _agg_gm),
        Aggregator("centered_clipping", "centered clipping around the own model after bucketing (s=2), "
                   "Karimireddy et al. 2021/2022", _agg_cc, {"bucket_size": 2, "iterations": 3}),
        Aggregator("nnm_trimmed_mean", "nearest-neighbour mixing + trimmed mean, Allouah et al. 2023", _agg_nnm,
                   {"num_malicious": 0}),
    )
})
