"""``alie_opt`` and ``ipm_opt``: ALIE and IPM with the attack factor searched, as ByzFL's
``Optimal_ALittleIsEnough`` / ``Optimal_InnerProductManipulation`` (Allouah et al.,
"Fixing by Mixing", AISTATS 2023; ByzFL, Gonzalez et al. 2024, ``byzfl`` 0.0.11).

For each round the attacker searches the factor ``tau`` that maximises the distance
between the aggregate of the benign models plus ``f`` copies of the crafted model and the
benign mean, with the aggregation rule ``against`` (one of
:data:`bdfl.attacks._search.TARGETS`), by ByzFL's expansion/contraction line search
(start 0, step 10, 20 evaluations, ratio 0.8). Crafted models, as in :mod:`bdfl.attacks.alie`
and :mod:`bdfl.attacks.ipm`: ALIE ``mean - tau * std``; IPM ``ref - tau * (mean - ref)``.

``byzfl`` itself is not used: ``import byzfl`` needs torchvision and seaborn (see
:mod:`bdfl.attacks._search`). Knowledge: ``ctx.honest_updates`` (omniscient); without them,
the attacker's trained model and the models it received.
"""

from __future__ import annotations

import numpy as np

from bdfl.attacks import Attack, AttackContext, NDArrays, choice, integer, register
from bdfl.attacks._search import TARGETS, benign_vectors, damage, line_search, num_copies, unflatten
from bdfl.attacks.alie import alie_model
from bdfl.attacks.ipm import ipm_model
from bdfl.defense.aggregate import flatten

_PARAMS = {
    "against": choice(*TARGETS, default="median", doc="aggregation rule the factor is tuned against"),
    "evals": integer(2, 200, default=20, doc="evaluations of the line search (ByzFL: 20)"),
}


class _Optimised(Attack):
    needs_honest_updates = True
    PARAMS = _PARAMS

    def craft(self, benign: np.ndarray, ref: np.ndarray, tau: float) -> np.ndarray:
        raise NotImplementedError

    def best_tau(self, benign: np.ndarray, ref: np.ndarray, f: int) -> float:
        return line_search(lambda t: damage(self.against, benign, self.craft(benign, ref, t), f), evals=self.evals)

    def poison_update(self, ctx: AttackContext) -> NDArrays:
        benign, ref = benign_vectors(ctx), flatten(ctx.reference)
        tau = self.best_tau(benign, ref, num_copies(ctx))
        return unflatten(self.craft(benign, ref, tau), ctx.trained)


@register
class OptimalALIE(_Optimised):
    name = "alie_opt"
    summary = "ALIE (mean - tau * std) with tau searched against the aggregation rule (ByzFL)"
    paper = "Baruch et al. 2019 (NeurIPS), optimised as in ByzFL / Allouah et al. 2023 (AISTATS)"

    def craft(self, benign: np.ndarray, ref: np.ndarray, tau: float) -> np.ndarray:
        return alie_model(benign, tau)


@register
class OptimalIPM(_Optimised):
    name = "ipm_opt"
    summary = "IPM (ref - tau * mean move) with tau searched against the aggregation rule (ByzFL)"
    paper = "Xie et al. 2020 (UAI), optimised as in ByzFL / Allouah et al. 2023 (AISTATS)"

    def craft(self, benign: np.ndarray, ref: np.ndarray, tau: float) -> np.ndarray:
        return ipm_model(benign, ref, tau)
