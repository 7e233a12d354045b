"""Pure aggregation functions over lists of models (the strategies of :mod:`bdfl.defense`
call these; so do attacks that run the public policy).

A *model* is ``NDArrays`` = ``list[np.ndarray]`` (the arrays a ``NumPyClient`` returns).
Every function takes ``list[NDArrays]`` and returns a new ``NDArrays`` with the same
shapes and dtypes as the inputs; inputs are never modified.

Where Flower already has the rule, it is used: :func:`flwr.server.strategy.aggregate.aggregate`
(weighted average), ``aggregate_krum``, ``aggregate_median``, ``aggregate_trimmed_avg``
(they take ``list[tuple[NDArrays, num_examples]]``; the wrappers here build that). The
others:

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
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
from flwr.server.strategy.aggregate import (
    aggregate_krum as _flwr_krum,
    aggregate_median as _flwr_median,
    aggregate_trimmed_avg as _flwr_trimmed,
)

from bdfl.defense.detectors.calibration import copy_groups
from bdfl.errors import BDFLError
from bdfl.types import NDArrays

__all__ = [
    "AggregationError",
    "NDArrays",
    "centered_clipping",
    "check_models",
    "difference_gram",
    "coordinate_median",
    "flatten",
    "geometric_median",
    "gram_sq",
    "krum",
    "krum_scores",
    "measured_arrays",
    "merge_copies",
    "nnm",
    "nnm_trimmed_mean",
    "pairwise_sq",
    "trimmed_mean",
    "weighted_average",
]


class AggregationError(BDFLError):
    """Models that cannot be aggregated (shape mismatch, bad weights or parameters)."""


def check_models(models: Sequence[NDArrays]) -> list[NDArrays]:
    """The models as arrays; a non-empty list of models with the same shapes and the same dtypes
    (array by array), or AggregationError. Values are not read here (a
    pass over every model at every aggregation); the decoder refuses NaN and Inf before any
    aggregation (:func:`bdfl.net.serialization.decode_arrays`)."""
    if len(models) == 0:
        raise AggregationError("cannot aggregate an empty list of models")
    first = [a if type(a) is np.ndarray else np.asarray(a) for a in models[0]]
    shapes = [b.shape for b in first]
    dtypes = [b.dtype for b in first]
    for k, model in enumerate(models):
        if len(model) != len(first):
            raise AggregationError(f"model {k} has {len(model)} arrays, model 0 has {len(first)}")
        for i, (a, s) in enumerate(zip(model, shapes)):
            # a plain ndarray's .shape is np.shape's answer without the call (issue 23: this
            # check ran for every weighted average of every start rebuild)
            if (a.shape if type(a) is np.ndarray else np.shape(a)) != s:
                raise AggregationError(f"model {k} array {i} has shape {np.shape(a)}, model 0 has {s}")
            if (a.dtype if type(a) is np.ndarray else np.asarray(a).dtype) != dtypes[i]:
                # the result takes model 0's dtypes: another one's would be cast silently (float64 -> float32)
                raise AggregationError(f"model {k} array {i} has dtype {np.asarray(a).dtype}, model 0 has {dtypes[i]}",
                                       fix="cast every model to one set of dtypes first")
    # np.asarray returns a plain ndarray itself: skip the call for those
    return [[a if type(a) is np.ndarray else np.asarray(a) for a in m] for m in models]


def rounded_on_cast(dtype: np.dtype) -> bool:
    """Whether values computed in floating point are rounded before they are cast back to
    ``dtype``: integers and bools (a cast truncated -0.6 to 0, and a bool mean of 1/3 to True)."""
    return dtype.kind in "iub"


def _restore_dtypes(result: NDArrays, like: NDArrays) -> NDArrays:
    out = []
    for r, ref in zip(result, like):
        r = np.asarray(r)
        if rounded_on_cast(ref.dtype):
            r = np.rint(r)
        out.append(np.ascontiguousarray(r.astype(ref.dtype, copy=False)).reshape(ref.shape))
    return out


def flatten(model: NDArrays) -> np.ndarray:
    """All arrays of ``model`` concatenated into one float64 vector."""
    return np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in model]) if model else np.zeros(0)


def pairwise_sq(X: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances between the rows of ``X``."""
    sq = np.sum(X**2, axis=1)
    return np.maximum(sq[:, None] + sq[None, :] - 2 * X @ X.T, 0.0)


#: Values per array sampled for :func:`merge_copies`' fingerprint (a prefilter only: equality decides).
FINGERPRINT_VALUES = 16


def _fingerprint(model: NDArrays) -> tuple:
    return tuple((a.shape, a.dtype.str, a.reshape(-1)[:: max(1, a.size // FINGERPRINT_VALUES)][:FINGERPRINT_VALUES].tobytes())
                 for a in model)


def merge_copies(models: Sequence[NDArrays], weights: Sequence[float] | None = None) -> tuple[list[NDArrays], list[float] | None]:
    """Copies of one model count once: each group of identical models (equal in every array:
    shape, dtype, values), then each group of **near-copies** (all within
    :data:`~bdfl.defense.detectors.calibration.NEAR_COPY` x the models' typical distance of each
    other, :func:`~bdfl.defense.detectors.calibration.copy_groups`; three models at least) is kept as
    its first member, with the group's largest weight. Order is kept, so an aggregating peer's own
    model stays first and leads any group it is in.

    Why: peers that train on their own data never send the same model, nor models closer to each
    other than a small share of how far honest models lie apart (0.19 at least, measured), so
    copies carry no new information; the Mimic attack (Karimireddy et al., ICLR'22) is exactly
    copies, of one honest model chosen to over-represent its data, which every test of an
    update's content passes, and a little noise on each copy (``mimic`` ``jitter``) must not make
    them count again. Counting them once leaves nothing to over-represent. Cost: a few sampled
    values per array for the identical ones; one pass over the rest for their distances."""
    if weights is not None and len(weights) != len(models):
        raise AggregationError(f"{len(weights)} weights for {len(models)} models")
    kept: list[int] = []
    weight: dict[int, float] = {}
    seen: dict[tuple, list[int]] = {}
    for i, m in enumerate(models):
        key = _fingerprint(m)
        same = next((j for j in seen.get(key, ()) if all(np.array_equal(a, b) for a, b in zip(models[j], m))), None)
        w = 1.0 if weights is None else float(weights[i])
        if same is None:
            seen.setdefault(key, []).append(i)
            kept.append(i)
            weight[i] = w
        else:
            weight[same] = max(weight[same], w)
    if len(kept) >= 3:
        group = copy_groups(_difference_sq([models[i] for i in kept]))  # the first model (own) leads its group
        for k, g in enumerate(group.tolist()):
            if g != k:
                weight[kept[g]] = max(weight[kept[g]], weight.pop(kept[k]))
        kept = [i for k, i in enumerate(kept) if group[k] == k]
    if len(kept) == len(models):
        return list(models), None if weights is None else list(weights)
    return [models[i] for i in kept], None if weights is None else [weight[i] for i in kept]


#: values per array and model converted to float64 at a time by :func:`difference_gram`
GRAM_BLOCK = 1 << 14


def measured_arrays(model: Sequence[np.ndarray]) -> list[int]:
    """Indices of the arrays of ``model`` that parameter-space statistics measure (distances and
    directions of the audit, near-copies, the replay sketch): its floating-point arrays; all of them
    when it has none (a fully quantized model's integers are its weights).

    Why: integer and bool arrays next to floating ones are counters, not learned values. BatchNorm's
    ``num_batches_tracked`` counts the batches a peer trained on: ``s`` steps add ``s**2`` to a squared
    distance, against ~0.05 for all the learned weights of a small model, so the counter decided
    every distance; a clean run of a BatchNorm task had 40.9 % of its honest updates rejected as
    ``republished`` (tests/defense/test_measured_arrays.py). The counters still travel, are hashed,
    checked for equality and averaged (rounded) like every array."""
    floating = [i for i, a in enumerate(model) if np.issubdtype(np.asarray(a).dtype, np.inexact)]
    return floating or list(range(len(model)))


def difference_gram(base: Sequence[np.ndarray], models: Sequence[Sequence[np.ndarray]], block: int = GRAM_BLOCK) -> np.ndarray | None:
    """The (n, n) Gram matrix of the ``models``' float64 differences from ``base`` over their
    :func:`measured_arrays` (no cancellation for near-copies; its diagonal holds their squared
    distances to ``base``), ``block`` values at a time of the measured arrays laid end to end, as
    :func:`_streamed_weighted` runs (no float64 copy of a model). None when a model's arrays do
    not match ``base``'s in number or size.

    Each block: every model's values (and ``base``'s) gathered into a float64 buffer by one
    ``np.concatenate`` (each value cast as a float64 subtraction casts it), one subtraction, one
    product. Per array, a small model paid a product and a few calls for each of its arrays (four
    for the digits MLP): most of :func:`merge_copies`' cost in every rebuilt start and aggregation
    (issue 23)."""
    n = len(models)
    G = np.zeros((n, n))
    if any(len(m) != len(base) for m in models):
        return None
    measured = measured_arrays(base)
    refs = [np.asarray(base[li]) for li in measured]
    chosen = [[np.asarray(m[li]) for li in measured] for m in models]
    if any(a.size != r.size for m in chosen for a, r in zip(m, refs)):
        return None
    sizes = [r.size for r in refs]
    width = min(block, sum(sizes)) or 1
    R, X = np.empty(width), np.empty((n, width))
    for pieces in _end_to_end_blocks(sizes, width):
        w = sum(b - a for _, a, b in pieces)
        np.concatenate(_pieces_of(refs, pieces, sizes), axis=None, out=R[:w], casting="unsafe")
        for k, m in enumerate(chosen):
            np.concatenate(_pieces_of(m, pieces, sizes), axis=None, out=X[k, :w], casting="unsafe")
        Xw = X[:, :w]
        Xw -= R[:w]
        G += Xw @ Xw.T
    return G


def _end_to_end_blocks(sizes: Sequence[int], width: int) -> Iterator[list[tuple[int, int, int]]]:
    """The blocks of at most ``width`` values over arrays of ``sizes`` values laid end to end,
    in order: each a list of (array, start, end) pieces; empty arrays are skipped."""
    li, pos = 0, 0
    while li < len(sizes):
        pieces: list[tuple[int, int, int]] = []
        n = 0
        while li < len(sizes) and n < width:
            take = min(sizes[li] - pos, width - n)
            if take > 0:
                pieces.append((li, pos, pos + take))
                n += take
                pos += take
            if pos >= sizes[li]:
                li, pos = li + 1, 0
        if pieces:
            yield pieces


def _pieces_of(model: Sequence[np.ndarray], pieces: Sequence[tuple[int, int, int]], sizes: Sequence[int]) -> list[np.ndarray]:
    """``model``'s values of a block's ``pieces``: a whole array as given (``np.concatenate``
    ravels it), part of one as a raveled slice."""
    return [model[i] if a == 0 and b == sizes[i] else np.asarray(model[i]).reshape(-1)[a:b] for i, a, b in pieces]


def gram_sq(G: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances between the vectors whose Gram matrix is ``G``."""
    d = np.diag(G)
    return np.maximum(d[:, None] + d[None, :] - 2 * G, 0.0)


def _difference_sq(models: Sequence[NDArrays]) -> np.ndarray:
    """The models' (n, n) squared distances (:func:`difference_gram` from the first); models whose
    arrays do not match the first's count as infinitely far from every other."""
    G = difference_gram(models[0], models)
    n = len(models)
    return np.where(np.eye(n, dtype=bool), 0.0, np.inf) if G is None else gram_sq(G)


def weighted_average(models: Sequence[NDArrays], weights: Sequence[float] | None = None) -> NDArrays:
    """sum_k w_k * model_k / sum_k w_k (uniform weights when ``weights`` is None).

    Weights must be finite and >= 0 with a positive sum. Computed in float64 as Flower's
    ``aggregate`` computes it (the same values), streamed one layer at a time, then cast back
    to the input dtypes.
    """
    models = check_models(models)
    if weights is None:
        weights = [1.0] * len(models)
    if len(weights) != len(models):
        raise AggregationError(f"{len(weights)} weights for {len(models)} models")
    w = [float(x) for x in weights]
    if any(not math.isfinite(x) or x < 0 for x in w):
        raise AggregationError(f"weights must be finite and >= 0, got {w}")
    total = math.fsum(w)
    if total <= 0:
        raise AggregationError("weights sum to zero")
    w = [x / total for x in w]  # normalised: keeps the float64 sums well-scaled
    return _streamed_weighted(models, w)


#: values per block of :func:`_streamed_weighted` (two 128 kB float64 buffers: in cache)
WEIGHTED_BLOCK = 1 << 14


def _streamed_weighted(models: Sequence[NDArrays], w: Sequence[float], block: int = WEIGHTED_BLOCK) -> NDArrays:
    """Flower's ``aggregate`` of the models with weight > 0 in float64, cast back to the first
    model's dtypes as :func:`_restore_dtypes` casts it, bit for bit (the same products, the same
    left-to-right sums, the same division, the same rounding), ``block`` values at a time into a
    float64 accumulator that stays in cache, written straight into the result: no float64 copy
    of any model or layer (issue 23: at 11M parameters Flower's version holds 2 x 88 MB per
    model being averaged, a layer-wide accumulator passes 88 MB float64 arrays per model).

    A block runs over the models' arrays laid end to end, so several small layers share one
    block (issue 23, N = 100: the digits MLP's four layers, 4,810 values, are one block): a
    model's values of the block are gathered into the float64 buffer by one ``np.concatenate``
    (each value cast as the multiply cast it) and multiplied by its weight in place, three calls
    per model and block instead of two per model and layer. Every value is computed on its own,
    so the grouping changes no value."""
    kept = [(m, x) for m, x in zip(models, w) if x > 0]
    if not kept:
        return []
    total = sum(x for _, x in kept)  # as Flower: sum(), not fsum
    ref = [np.asarray(a) for a in models[0]][: len(kept[0][0])]
    out: NDArrays = [np.empty(a.shape, dtype=a.dtype) for a in ref]
    dst = [r.reshape(-1) for r in out]
    sizes = [d.size for d in dst]
    integer = [rounded_on_cast(a.dtype) for a in ref]
    width = min(block, sum(sizes)) or 1
    acc_buf, tmp_buf = np.empty(width), np.empty(width)
    for pieces in _end_to_end_blocks(sizes, width):
        n = sum(b - a for _, a, b in pieces)
        acc, tmp = acc_buf[:n], tmp_buf[:n]
        for k, (m, x) in enumerate(kept):
            into = tmp if k else acc
            np.concatenate(_pieces_of(m, pieces, sizes), axis=None, out=into, casting="same_kind")  # each value as float64
            np.multiply(into, x, out=into)
            if k:
                acc += tmp
        acc /= total
        off = 0
        for i, a, b in pieces:
            seg = acc[off : off + b - a]
            if integer[i]:
                np.rint(seg, out=seg)
            np.copyto(dst[i][a:b], seg, casting="unsafe")
            off += b - a
    return out


def krum_scores(models: Sequence[NDArrays], num_malicious: int) -> np.ndarray:
    """Krum score of each model: sum of squared distances to its ``n - f - 2`` nearest others
    (at least 1), Blanchard et al. 2017."""
    models = check_models(models)
    dist = pairwise_sq(np.stack([flatten(m) for m in models]))
    np.fill_diagonal(dist, np.inf)
    k = max(1, len(models) - num_malicious - 2)
    k = min(k, len(models) - 1)
    if k == 0:
        return np.zeros(len(models))
    return np.sort(dist, axis=1)[:, :k].sum(axis=1)


def krum(models: Sequence[NDArrays], num_malicious: int, multi_k: int | None = None) -> NDArrays:
    """Krum (Blanchard et al. 2017): the model with the smallest sum of squared distances to
    its ``n - f - 2`` nearest neighbours. With ``multi_k = m`` (Multi-Krum), the plain average
    of the ``m`` best-scoring models. Byzantine-resilience needs ``n >= 2f + 3``.

    Uses Flower's ``aggregate_krum`` (ties: first index wins).
    """
    models = check_models(models)
    if isinstance(num_malicious, bool) or not isinstance(num_malicious, (int, np.integer)) or num_malicious < 0:
        raise AggregationError(f"krum: num_malicious must be an integer >= 0, got {num_malicious!r}")
    if multi_k is not None and not (1 <= multi_k <= len(models)):
        raise AggregationError(f"krum: multi_k must lie in [1, {len(models)}], got {multi_k}")
    # a model holding NaN or Inf has a NaN score, which Flower's argmin picks: never select it
    # (its distances are read below anyway, so this pass costs no more than they do)
    finite = [m for m in models if all(np.isfinite(a).all() for a in m if a.dtype.kind == "f")]
    if not finite:
        raise AggregationError("krum: every model holds NaN or Inf")
    if multi_k is not None and multi_k > len(finite):
        raise AggregationError(f"krum: multi_k {multi_k} exceeds the {len(finite)} models without NaN or Inf")
    models = finite
    if len(models) == 1:
        return [a.copy() for a in models[0]]
    results = [([a.astype(np.float64) for a in m], 1) for m in models]
    out = _flwr_krum(results, num_malicious=int(num_malicious), to_keep=int(multi_k or 0))
    return _restore_dtypes(out, models[0])


def coordinate_median(models: Sequence[NDArrays]) -> NDArrays:
    """Coordinate-wise median (Yin et al. 2018); for an even count, the mean of the two middle values."""
    models = check_models(models)
    results = [([a.astype(np.float64) for a in m], 1) for m in models]
    return _restore_dtypes(_flwr_median(results), models[0])


def trimmed_mean(models: Sequence[NDArrays], beta: float) -> NDArrays:
    """Coordinate-wise trimmed mean (Yin et al. 2018): drop the ``floor(beta * n)`` largest and
    smallest values of each coordinate, average the rest. ``0 <= beta < 0.5``."""
    models = check_models(models)
    if not 0.0 <= beta < 0.5:
        raise AggregationError(f"trimmed_mean: beta must lie in [0, 0.5), got {beta}")
    results = [([a.astype(np.float64) for a in m], 1) for m in models]
    return _restore_dtypes(_flwr_trimmed(results, proportiontocut=float(beta)), models[0])


def _matrix(models: Sequence[NDArrays]) -> tuple[list[NDArrays], np.ndarray]:
    checked = check_models(models)
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
