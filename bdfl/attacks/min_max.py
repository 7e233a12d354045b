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

from bdfl.attacks import register
from bdfl.attacks._search import PERTURBATIONS, AgrSearchAttack, agr_model, perturbation
from bdfl.defense.aggregate import pairwise_sq

__all__ = ["PERTURBATIONS", "MinMax", "min_max_model", "pairwise_sq", "perturbation"]


def min_max_model(benign: np.ndarray, p: np.ndarray, gamma_init: float = 10.0) -> np.ndarray:
    """The Min-Max model for benign rows ``benign`` and perturbation ``p``."""
    bound = float(np.sqrt(pairwise_sq(benign).max()))
    return agr_model(benign, p, lambda m: float(np.linalg.norm(benign - m, axis=1).max()) <= bound, gamma_init)


@register
class MinMax(AgrSearchAttack):
    name = "min_max"
    summary = "benign mean pushed along -p as far as its largest distance to a benign model stays in their spread"
    paper = "Shejwalkar & Houmansadr 2021, 'Manipulating the Byzantine' (NDSS), Min-Max"

    def craft(self, benign: np.ndarray, p: np.ndarray, gamma_init: float) -> np.ndarray:
        return min_max_model(benign, p, gamma_init)
