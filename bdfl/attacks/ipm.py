"""``ipm``: Inner Product Manipulation (Xie, Koyejo & Gupta, UAI 2020, "Fall of Empires").

Attackers send ``-epsilon`` times the mean honest update, so the inner product between
the aggregate and the true update turns negative. In parameter space, with the
attacker's own pre-training parameters ``ref``::

    sent = ref - epsilon * mean_i(honest_i - ref)

Small ``epsilon`` (the paper: 0.1) slips past Krum / median; large ``epsilon`` breaks
plain averaging. Knowledge: ``ctx.honest_updates`` (omniscient); when empty the attacker
uses its own trained model as the estimate of the honest mean (then IPM equals a sign
flip scaled by epsilon).
"""

from __future__ import annotations

import numpy as np

from bdfl.attacks import Attack, AttackContext, NDArrays, number, register
from bdfl.attacks._search import unflatten
from bdfl.defense.aggregate import flatten


def ipm_model(benign: np.ndarray, reference: np.ndarray, epsilon: float) -> np.ndarray:
    """``reference - epsilon * (mean - reference)`` for the mean of the benign rows ``benign``."""
    return reference - epsilon * (benign.mean(axis=0) - reference)


@register
class IPM(Attack):
    name = "ipm"
    summary = "send ref - epsilon * mean(honest updates)"
    paper = "Xie et al. 2020, 'Fall of Empires' (UAI)"
    needs_honest_updates = True
    PARAMS = {"epsilon": number(0, lo_open=True, default=0.5, doc="multiplier of the negated mean update")}

    def poison_update(self, ctx: AttackContext) -> NDArrays:
        benign = np.stack([flatten(m) for m in list(ctx.honest_updates) or [ctx.trained]])
        return unflatten(ipm_model(benign, flatten(ctx.reference), self.epsilon), ctx.trained)
