"""Shared helpers of the optimised attacks: models as vectors, the benign set, and the
two searches of the literature.

* :func:`agr_search` — the halving search for the largest scale ``gamma`` whose
  perturbed mean still satisfies a condition (Shejwalkar & Houmansadr, NDSS'21, Alg. 1);
  :class:`AgrSearchAttack` is the attack built on it (``min_max``, ``min_sum``).
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

from bdfl.attacks import Attack, AttackContext, NDArrays, cast_like, choice, number
from bdfl.defense import aggregate as ra
from bdfl.defense.aggregate import coordinate_median, flatten, krum, trimmed_mean

#: Aggregators an optimised attack can be tuned against (``against`` parameter).
TARGETS = ("mean", "median", "trimmed_mean", "krum", "geometric_median", "centered_clipping", "nnm_trimmed_mean")

#: Directions ``p`` an :class:`AgrSearchAttack` pushes the benign mean against.
PERTURBATIONS = ("std", "unit", "sign")


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
    return cast_like(out, like)


def benign_std(benign: np.ndarray) -> np.ndarray:
    """Coordinate-wise sample standard deviation of the benign rows (zeros for one row)."""
    return benign.std(axis=0, ddof=1) if len(benign) > 1 else np.zeros(benign.shape[1])


def perturbation(kind: str, benign: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The direction ``p`` the benign mean is pushed against (``mean - gamma * p``)."""
    if kind == "std":
        return benign_std(benign)
    move = benign.mean(axis=0) - reference
    if kind == "sign":
        return np.sign(move)
    norm = np.linalg.norm(move)
    return move / norm if norm > 0 else move


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


def agr_model(benign: np.ndarray, p: np.ndarray, ok: Callable[[np.ndarray], bool],
              gamma_init: float = 10.0) -> np.ndarray:
    """``mean - gamma * p`` for the benign mean and the largest ``gamma`` :func:`agr_search` finds."""
    mean = benign.mean(axis=0)
    return mean - agr_search(mean, p, ok, gamma_init) * p


class AgrSearchAttack(Attack):
    """Attackers send :func:`agr_model` of the benign set along :func:`perturbation`; a subclass
    gives the condition (:meth:`craft`)."""

    needs_honest_updates = True
    PARAMS = {
        "perturbation": choice(*PERTURBATIONS, default="std", doc="direction p: std, unit (of the mean move) or sign"),
        "gamma_init": number(0, lo_open=True, default=10.0, doc="start of the halving search for gamma"),
    }

    def craft(self, benign: np.ndarray, p: np.ndarray, gamma_init: float) -> np.ndarray:
        raise NotImplementedError

    def poison_update(self, ctx: AttackContext) -> NDArrays:
        benign = benign_vectors(ctx)
        p = perturbation(self.perturbation, benign, flatten(ctx.reference))
        return unflatten(self.craft(benign, p, self.gamma_init), ctx.trained)


def line_search(objective: Callable[[float], float], start: float = 0.0, delta: float = 10.0,
                evals: int = 20, ratio: float = 0.8) -> float:
    """ByzFL's search for the factor maximising ``objective``: expand (double the step while it
    improves), then contract (shrink the step by ``ratio``), ``evals`` evaluations in all."""
    best_x, best_y = start, objective(start)
    expanding = True
    for _ in range(evals - 1):
        x = best_x + delta
        y = objective(x)
        if y > best_y:
            best_x, best_y = x, y
            if expanding:
                delta *= 2
                continue
        else:
            expanding = False  # the first miss ends the expansion
        delta *= ratio
    return best_x
