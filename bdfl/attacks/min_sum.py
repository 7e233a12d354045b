"""``min_sum``: the Min-Sum attack (Shejwalkar & Houmansadr, NDSS 2021).

Like :mod:`bdfl.attacks.min_max`, attackers send ``mean - gamma * p`` with the largest
``gamma`` found by the paper's halving search, under a tighter condition: the crafted
model's sum of squared distances to the benign models is at most the largest such sum of
any benign model::

    sum_i ||m - b_i||^2 <= max_i sum_j ||b_i - b_j||^2

Same perturbations, knowledge and model-space reading as ``min_max``.
"""

from __future__ import annotations

import numpy as np

from bdfl.attacks import Attack, AttackContext, NDArrays, choice, number, register
from bdfl.attacks._search import agr_search, benign_vectors, unflatten
from bdfl.attacks.min_max import PERTURBATIONS, pairwise_sq, perturbation
from bdfl.learning.aggregation import flatten


def min_sum_model(benign: np.ndarray, p: np.ndarray, gamma_init: float = 10.0) -> np.ndarray:
    """The Min-Sum model for benign rows ``benign`` and perturbation ``p``."""
    bound = float(pairwise_sq(benign).sum(axis=1).max())
    mean = benign.mean(axis=0)
    gamma = agr_search(mean, p, lambda m: float(np.sum((benign - m) ** 2)) <= bound, gamma_init)
    return mean - gamma * p


@register
class MinSum(Attack):
    name = "min_sum"
    summary = "benign mean pushed along -p while its summed squared distance stays within a benign model's"
    paper = "Shejwalkar & Houmansadr 2021, 'Manipulating the Byzantine' (NDSS), Min-Sum"
    needs_honest_updates = True
    PARAMS = {
        "perturbation": choice(*PERTURBATIONS, default="std", doc="direction p: std, unit (of the mean move) or sign"),
        "gamma_init": number(0, lo_open=True, default=10.0, doc="start of the halving search for gamma"),
    }

    def poison_update(self, ctx: AttackContext) -> NDArrays:
        benign = benign_vectors(ctx)
        p = perturbation(self.perturbation, benign, flatten(ctx.reference))
        return unflatten(min_sum_model(benign, p, self.gamma_init), ctx.trained)
