"""Shared helpers of the optimised attacks: models as vectors, the benign set, and the
two searches of the literature.

* :func:`agr_search` — the halving search for the largest scale ``gamma`` whose
  perturbed mean still satisfies a condition (Shejwalkar & Houmansadr, NDSS'21, Alg. 1).
* :func:`line_search` — ByzFL's expansion/contraction search for the attack factor that
  maximises a damage function (``Optimal_ALittleIsEnough`` / ``Optimal_InnerProductManipulation``
  in ``byzfl`` 0.0.11, ``byzfl/attacks/attacks.py``), re-implemented here: ``import byzfl``
  runs its package ``__init__``, which imports its training framework and needs
  ``torchvision`` and ``seaborn`` (not dependencies of BDFL; torchvision is tied to the
  torch build), so the library itself is not used.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from bdfl.attacks import AttackContext, NDArrays, _like
from bdfl.learning import robust_aggregation as ra
from bdfl.learning.aggregation import coordinate_median, flatten, krum, trimmed_mean

#: Aggregators an optimised attack can be tuned against (``against`` parameter).
TARGETS = ("mean", "median", "trimmed_mean", "krum", "geometric_median", "centered_clipping", "nnm_trimmed_mean")


def benign_vectors(ctx: AttackContext) -> np.ndarray:
    """The honest models the attacker knows as a ``(k, d)`` float64 matrix: this round's
    honest models (omniscient), else its own trained model and the models it received."""
    models = list(ctx.honest_updates) or [ctx.trained, *ctx.received]
    return np.stack([flatten(m) for m in models])


def unflatten(vec: np.ndarray, like: Sequence[np.ndarray]) -> NDArrays:
    """Split a flat vector back into arrays shaped (and typed) like ``like``."""
    out, pos = [], 0
    for a in like:
        n = int(np.size(a))
        out.append(vec[pos:pos + n].reshape(np.shape(a)))
        pos += n
    return _like(out, like)


def num_copies(ctx: AttackContext) -> int:
    """How many attackers send the crafted model (f; at least 1)."""
    return max(1, int(ctx.num_attackers or 1))


def aggregate_vectors(name: str, vectors: np.ndarray, f: int) -> np.ndarray:
    """Aggregate rows of ``vectors`` with the rule ``name`` of :data:`TARGETS`, assuming ``f``
    attackers (Krum's and NNM's f; trimmed mean cuts f / n a side, below 1/2)."""
    models = [[v] for v in vectors]
    n = len(vectors)
    if name == "mean":
        return vectors.mean(axis=0)
    if name == "median":
        return coordinate_median(models)[0]
    if name == "trimmed_mean":
        return trimmed_mean(models, min(f / n, 0.499))[0]
    if name == "krum":
        return krum(models, f)[0]
    if name == "geometric_median":
        return ra.geometric_median(models)[0]
    if name == "centered_clipping":
        return ra.centered_clipping(models)[0]
    if name == "nnm_trimmed_mean":
        return ra.nnm_trimmed_mean(models, f)[0]
    raise ValueError(f"unknown aggregator {name!r}")


def damage(name: str, benign: np.ndarray, crafted: np.ndarray, f: int) -> float:
    """ByzFL's objective: distance from the aggregate of the benign models plus ``f`` copies of
    ``crafted`` to the benign mean."""
    stack = np.vstack([benign, np.repeat(crafted[None, :], f, axis=0)])
    return float(np.linalg.norm(aggregate_vectors(name, stack, f) - benign.mean(axis=0)))


def agr_search(mean: np.ndarray, direction: np.ndarray, ok: Callable[[np.ndarray], bool],
               gamma_init: float = 10.0, tol: float = 1e-5) -> float:
    """Largest ``gamma`` (to ``tol``) with ``ok(mean - gamma * direction)``, by the halving search
    of Shejwalkar & Houmansadr (NDSS'21, Algorithm 1; reaches [0, 2 gamma_init)); 0 when none passes."""
    gamma, step, best = gamma_init, gamma_init, 0.0  # as the authors' code: lamda_fail starts at lamda
    while abs(best - gamma) > tol and step > tol / 4:
        if ok(mean - gamma * direction):
            best = gamma
            gamma += step / 2
        else:
            gamma -= step / 2
        step /= 2
    return best


def line_search(objective: Callable[[float], float], start: float = 0.0, delta: float = 10.0,
                evals: int = 20, ratio: float = 0.8) -> float:
    """ByzFL's search for the factor maximising ``objective``: expand (double the step while it
    improves), then contract (shrink the step by ``ratio``), ``evals`` evaluations in all."""
    best_x, best_y = start, objective(start)
    remaining = evals - 1
    while remaining > 0:  # expansion
        x = best_x + delta
        y = objective(x)
        remaining -= 1
        if y > best_y:
            best_x, best_y = x, y
            delta *= 2
        else:
            delta *= ratio
            break
    while remaining > 0:  # contraction
        x = best_x + delta
        y = objective(x)
        remaining -= 1
        if y > best_y:
            best_x, best_y = x, y
        delta *= ratio
    return best_x
