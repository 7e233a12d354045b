"""``min_max``: the Min-Max attack (Shejwalkar & Houmansadr, "Manipulating the Byzantine:
Optimizing Model Poisoning Attacks and Defenses for Federated Learning", NDSS 2021).

Attackers send ``mean - gamma * p``, the benign mean pushed along a perturbation ``p``, with
the largest ``gamma`` for which the crafted model's largest distance to any benign model is
at most the largest distance between two benign models (so it is no outlier)::

    max_i ||m - b_i|| <= max_{i,j} ||b_i - b_j||

``gamma`` is found by the paper's halving search (Algorithm 1, from ``gamma_init`` = 10 to
1e-5). ``p`` (``perturbation``): ``"std"`` (the coordinate-wise standard deviation of the
benign models; the paper's best against most rules), ``"unit"`` (the unit vector of the mean
benign move from the attacker's reference: the crafted model moves backwards) or ``"sign"``
(its sign). The paper works on gradients; BDFL peers exchange models, so the benign set is
models (distances between models equal distances between their moves from one start).

Knowledge: ``ctx.honest_updates`` (omniscient, the paper's AGR-agnostic setting); without
them, the attacker's own trained model and the models it received last round.
"""

from __future__ import annotations

import numpy as np

from bdfl.attacks import Attack, AttackContext, NDArrays, choice, number, register
from bdfl.attacks._search import agr_search, benign_vectors, unflatten
from bdfl.learning.aggregation import flatten

PERTURBATIONS = ("std", "unit", "sign")


def perturbation(kind: str, benign: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The direction ``p`` the benign mean is pushed against (``mean - gamma * p``)."""
    if kind == "std":
        return benign.std(axis=0, ddof=1) if len(benign) > 1 else np.zeros(benign.shape[1])
    move = benign.mean(axis=0) - reference
    if kind == "sign":
        return np.sign(move)
    norm = np.linalg.norm(move)
    return move / norm if norm > 0 else move


def pairwise_sq(X: np.ndarray) -> np.ndarray:
    sq = np.sum(X**2, axis=1)
    return np.maximum(sq[:, None] + sq[None, :] - 2 * X @ X.T, 0.0)


def min_max_model(benign: np.ndarray, p: np.ndarray, gamma_init: float = 10.0) -> np.ndarray:
    """The Min-Max model for benign rows ``benign`` and perturbation ``p``."""
    bound = float(np.sqrt(pairwise_sq(benign).max()))
    mean = benign.mean(axis=0)
    gamma = agr_search(mean, p, lambda m: float(np.linalg.norm(benign - m, axis=1).max()) <= bound, gamma_init)
    return mean - gamma * p


@register
class MinMax(Attack):
    name = "min_max"
    summary = "benign mean pushed along -p as far as its largest distance to a benign model stays in their spread"
    paper = "Shejwalkar & Houmansadr 2021, 'Manipulating the Byzantine' (NDSS), Min-Max"
    needs_honest_updates = True
    PARAMS = {
        "perturbation": choice(*PERTURBATIONS, default="std", doc="direction p: std, unit (of the mean move) or sign"),
        "gamma_init": number(0, lo_open=True, default=10.0, doc="start of the halving search for gamma"),
    }

    def poison_update(self, ctx: AttackContext) -> NDArrays:
        benign = benign_vectors(ctx)
        p = perturbation(self.perturbation, benign, flatten(ctx.reference))
        return unflatten(min_max_model(benign, p, self.gamma_init), ctx.trained)
