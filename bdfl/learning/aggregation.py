"""Pure aggregation functions over lists of models.

A *model* is ``NDArrays`` = ``list[np.ndarray]`` (the arrays a ``NumPyClient`` returns).
Every function takes ``list[NDArrays]`` and returns a new ``NDArrays`` with the same
shapes and dtypes as the inputs; inputs are never modified.

Where Flower already has the rule, it is used: :func:`flwr.server.strategy.aggregate.aggregate`
(weighted average), ``aggregate_krum``, ``aggregate_median``, ``aggregate_trimmed_avg``
(they take ``list[tuple[NDArrays, num_examples]]``; the wrappers here build that).

:func:`aggregate` is what a peer calls: it combines the peer's own freshly trained
model with the approved models of its neighbours, by rule name (see :data:`AGGREGATORS`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from flwr.server.strategy.aggregate import (
    aggregate as _flwr_weighted,
    aggregate_krum as _flwr_krum,
    aggregate_median as _flwr_median,
    aggregate_trimmed_avg as _flwr_trimmed,
)

from bdfl.errors import BDFLError
from bdfl.types import NDArrays

__all__ = [
    "AGGREGATORS",
    "AggregationError",
    "Aggregator",
    "NDArrays",
    "aggregate",
    "coordinate_median",
    "defense_params",
    "flatten",
    "krum",
    "krum_scores",
    "pairwise_sq",
    "WEIGHTINGS",
    "clear_approval",
    "trimmed_mean",
    "update_weight",
    "validate_aggregator",
    "weighted_average",
]


class AggregationError(BDFLError):
    """Models that cannot be aggregated (shape mismatch, bad weights or parameters)."""


#: How ``bdfl`` weighs an approved update (``defense.weighting``).
WEIGHTINGS = ("reputation", "reputation_samples")


def clear_approval(accepts: int, rejects: int, max_reject_share: float = 1.0) -> bool:
    """Whether an update approved on chain with these revealed votes may be aggregated:
    at most ``max_reject_share`` of its votes rejected it (``defense.max_reject_share``;
    1 = every approved update, 0 = unanimous approvals only).

    Why: a majority of auditors approves an attack that each honest auditor detects only
    some of the time (8-18 % of the votes for reversed updates, docs/learning.md). The
    chain's verdict (reputation, slashing) still needs its supermajority; this only keeps
    contested updates out of a peer's model. An honest update loses a neighbour's weight
    for a round when one auditor falsely rejects it, never reputation or stake.
    """
    if not (math.isfinite(max_reject_share) and 0 <= max_reject_share <= 1):
        raise AggregationError(f"max_reject_share must lie in [0, 1], got {max_reject_share!r}")
    if accepts < 0 or rejects < 0:
        raise AggregationError(f"bad vote counts: {accepts} accepts, {rejects} rejects")
    votes = accepts + rejects
    return votes == 0 or rejects <= max_reject_share * votes


def update_weight(reputation: float, num_samples: int, weighting: str = "reputation") -> float:
    """Aggregation weight of one approved update under ``bdfl``.

    ``reputation``: its author's on-chain reputation in [0, 1]; ``num_samples``: the sample
    count recorded with the submission on chain (self-reported, capped by the contract at
    ``maxSamples``, so a peer cannot buy weight by claiming more). ``"reputation"`` weighs by
    reputation alone; ``"reputation_samples"`` by reputation x capped sample count (FedAvg's
    weighting, damped by reputation). Never below 1e-6, so a model is never dropped by weight.
    """
    if weighting not in WEIGHTINGS:
        raise AggregationError(f"unknown weighting {weighting!r}; known: {', '.join(WEIGHTINGS)}")
    if not (math.isfinite(reputation) and reputation >= 0) or num_samples < 0:
        raise AggregationError(f"bad weight inputs: reputation {reputation!r}, samples {num_samples!r}")
    w = reputation * (num_samples if weighting == "reputation_samples" else 1)
    return max(float(w), 1e-6)


def _check_models(models: Sequence[NDArrays]) -> list[NDArrays]:
    if len(models) == 0:
        raise AggregationError("cannot aggregate an empty list of models")
    first = models[0]
    for k, model in enumerate(models):
        if len(model) != len(first):
            raise AggregationError(f"model {k} has {len(model)} arrays, model 0 has {len(first)}")
        for i, (a, b) in enumerate(zip(model, first)):
            if np.shape(a) != np.shape(b):
                raise AggregationError(f"model {k} array {i} has shape {np.shape(a)}, model 0 has {np.shape(b)}")
    return [[np.asarray(a) for a in m] for m in models]


def _restore_dtypes(result: NDArrays, like: NDArrays) -> NDArrays:
    out = []
    for r, ref in zip(result, like):
        r = np.asarray(r)
        if np.issubdtype(ref.dtype, np.integer):
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


def weighted_average(models: Sequence[NDArrays], weights: Sequence[float] | None = None) -> NDArrays:
    """sum_k w_k * model_k / sum_k w_k (uniform weights when ``weights`` is None).

    Weights must be finite and >= 0 with a positive sum. Computed in float64 via
    Flower's ``aggregate``, then cast back to the input dtypes.
    """
    models = _check_models(models)
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
    results = [([a.astype(np.float64) for a in m], x) for m, x in zip(models, w) if x > 0]
    return _restore_dtypes(_flwr_weighted(results), models[0])


def krum_scores(models: Sequence[NDArrays], num_malicious: int) -> np.ndarray:
    """Krum score of each model: sum of squared distances to its ``n - f - 2`` nearest others
    (at least 1), Blanchard et al. 2017."""
    models = _check_models(models)
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
    models = _check_models(models)
    if isinstance(num_malicious, bool) or not isinstance(num_malicious, (int, np.integer)) or num_malicious < 0:
        raise AggregationError(f"krum: num_malicious must be an integer >= 0, got {num_malicious!r}")
    if multi_k is not None and not (1 <= multi_k <= len(models)):
        raise AggregationError(f"krum: multi_k must lie in [1, {len(models)}], got {multi_k}")
    if len(models) == 1:
        return [a.copy() for a in models[0]]
    results = [([a.astype(np.float64) for a in m], 1) for m in models]
    out = _flwr_krum(results, num_malicious=int(num_malicious), to_keep=int(multi_k or 0))
    return _restore_dtypes(out, models[0])


def coordinate_median(models: Sequence[NDArrays]) -> NDArrays:
    """Coordinate-wise median (Yin et al. 2018); for an even count, the mean of the two middle values."""
    models = _check_models(models)
    results = [([a.astype(np.float64) for a in m], 1) for m in models]
    return _restore_dtypes(_flwr_median(results), models[0])


def trimmed_mean(models: Sequence[NDArrays], beta: float) -> NDArrays:
    """Coordinate-wise trimmed mean (Yin et al. 2018): drop the ``floor(beta * n)`` largest and
    smallest values of each coordinate, average the rest. ``0 <= beta < 0.5``."""
    models = _check_models(models)
    if not 0.0 <= beta < 0.5:
        raise AggregationError(f"trimmed_mean: beta must lie in [0, 0.5), got {beta}")
    results = [([a.astype(np.float64) for a in m], 1) for m in models]
    return _restore_dtypes(_flwr_trimmed(results, proportiontocut=float(beta)), models[0])


# --------------------------------------------------------------------------- #
# Dispatch by name
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Aggregator:
    """A named rule for :func:`aggregate`: its parameters (name -> default) and description."""

    name: str
    description: str
    fn: Callable[..., NDArrays] = field(repr=False)
    params: dict[str, Any] = field(default_factory=dict)
    uses_weights: bool = False


def _agg_weighted(models: list[NDArrays], weights: list[float] | None) -> NDArrays:
    return weighted_average(models, weights)


def _agg_krum(models: list[NDArrays], weights: list[float] | None, *, num_malicious: int = 0) -> NDArrays:
    return krum(models, num_malicious)


def _agg_multikrum(
    models: list[NDArrays], weights: list[float] | None, *, num_malicious: int = 0, multi_k: int | None = None
) -> NDArrays:
    k = multi_k if multi_k is not None else max(1, len(models) - num_malicious)
    return krum(models, num_malicious, multi_k=min(k, len(models)))


def _agg_median(models: list[NDArrays], weights: list[float] | None) -> NDArrays:
    return coordinate_median(models)


def _agg_trimmed(models: list[NDArrays], weights: list[float] | None, *, beta: float = 0.1) -> NDArrays:
    return trimmed_mean(models, beta)


AGGREGATORS: dict[str, Aggregator] = {
    a.name: a
    for a in (
        Aggregator(
            "bdfl",
            "reputation-weighted average of the peer's own model and the audit-approved neighbour "
            "models; the caller passes the weights (own weight first)",
            _agg_weighted,
            uses_weights=True,
        ),
        Aggregator(
            "fedavg",
            "weighted average (weights = sample counts, or uniform when none are given), McMahan et al. 2017",
            _agg_weighted,
            uses_weights=True,
        ),
        Aggregator("krum", "Krum, Blanchard et al. 2017", _agg_krum, {"num_malicious": 0}),
        Aggregator(
            "multikrum",
            "Multi-Krum: average of the multi_k best Krum scores (default n - num_malicious)",
            _agg_multikrum,
            {"num_malicious": 0, "multi_k": None},
        ),
        Aggregator("median", "coordinate-wise median, Yin et al. 2018", _agg_median),
        Aggregator(
            "trimmed_mean", "coordinate-wise beta-trimmed mean, Yin et al. 2018", _agg_trimmed, {"beta": 0.1}
        ),
    )
}


def defense_params(defense: Any, num_attackers: int) -> dict[str, Any]:
    """The aggregation parameters of a baseline defense (``defense``: a config's ``[defense]``
    table): trimmed mean's ``beta``; Krum's ``num_malicious`` = ``krum_malicious``, or with -1
    ``num_attackers`` (a simulation knows its attackers; ``bdfl peer`` passes 0). One builder
    for bdfl run and bdfl peer."""
    if defense.name == "trimmed_mean":
        return {"beta": defense.trimmed_beta}
    if defense.name in ("krum", "multikrum", "nnm_trimmed_mean"):
        return {"num_malicious": defense.krum_malicious if defense.krum_malicious >= 0 else max(0, num_attackers)}
    return {}


def validate_aggregator(method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Check a rule name and its parameters; return the parameters with defaults filled in."""
    if method not in AGGREGATORS:
        raise AggregationError(
            f"unknown aggregation method '{method}'", fix=f"use one of: {', '.join(AGGREGATORS)}"
        )
    agg = AGGREGATORS[method]
    params = dict(params or {})
    unknown = sorted(set(params) - set(agg.params))
    if unknown:
        allowed = ", ".join(agg.params) or "none"
        raise AggregationError(
            f"aggregation method '{method}' has no parameter {', '.join(repr(u) for u in unknown)}",
            fix=f"parameters of '{method}': {allowed}",
        )
    full = {**agg.params, **params}
    if "num_malicious" in full:
        f = full["num_malicious"]
        if isinstance(f, bool) or not isinstance(f, (int, np.integer)) or f < 0:
            raise AggregationError(f"aggregation parameter 'num_malicious' must be an integer >= 0, got {f!r}")
    if full.get("multi_k") is not None:
        k = full["multi_k"]
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise AggregationError(f"aggregation parameter 'multi_k' must be an integer >= 1, got {k!r}")
    if "beta" in full and not (isinstance(full["beta"], (int, float)) and 0 <= full["beta"] < 0.5):
        raise AggregationError(f"aggregation parameter 'beta' must lie in [0, 0.5), got {full['beta']!r}")
    return full


def aggregate(
    method: str,
    own: NDArrays,
    others: Sequence[NDArrays],
    weights: Sequence[float] | None = None,
    **params: Any,
) -> NDArrays:
    """Combine a peer's own model with ``others`` (its approved neighbour models) by ``method``.

    ``weights`` (only for "bdfl" and "fedavg") has one entry per model, own first:
    ``len(weights) == 1 + len(others)``; None means uniform. Robust rules ("krum",
    "multikrum", "median", "trimmed_mean") treat ``[own, *others]`` as the candidate set.
    With no ``others`` the result is a copy of ``own``.
    """
    full = validate_aggregator(method, params)
    agg = AGGREGATORS[method]
    models = [own, *others]
    _check_models(models)
    if weights is not None:
        if not agg.uses_weights:
            raise AggregationError(f"aggregation method '{method}' does not take weights")
        if len(weights) != len(models):
            raise AggregationError(
                f"{len(weights)} weights for {len(models)} models (own model first, then {len(others)} others)"
            )
    if not others:
        return [np.array(a, copy=True) for a in own]
    return agg.fn(models, None if weights is None else list(weights), **full)
