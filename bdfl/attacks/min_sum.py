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

from bdfl.attacks import register
from bdfl.attacks._search import AgrSearchAttack, agr_model
from bdfl.defense.aggregate import pairwise_sq


def min_sum_model(benign: np.ndarray, p: np.ndarray, gamma_init: float = 10.0) -> np.ndarray:
    """The Min-Sum model for benign rows ``benign`` and perturbation ``p``."""
    bound = float(pairwise_sq(benign).sum(axis=1).max())
    return agr_model(benign, p, lambda m: float(np.sum((benign - m) ** 2)) <= bound, gamma_init)


@register
class MinSum(AgrSearchAttack):
    name = "min_sum"
    summary = "benign mean pushed along -p while its summed squared distance stays within a benign model's"
    paper = "Shejwalkar & Houmansadr 2021, 'Manipulating the Byzantine' (NDSS), Min-Sum"

    def craft(self, benign: np.ndarray, p: np.ndarray, gamma_init: float) -> np.ndarray:
        return min_sum_model(benign, p, gamma_init)
