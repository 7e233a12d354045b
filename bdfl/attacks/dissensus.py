"""``dissensus``: the dissensus attack on decentralised averaging (He, Karimireddy & Jaggi,
"Byzantine-robust Decentralized Learning via ClippedGossip", 2022).

In gossip averaging an honest peer j moves towards its neighbours. The paper's attacker
sends j ``x_j - eps * sum_k w_jk (x_k - x_j) / sum_b w_jb``: it cancels (eps = 1) or
reverses (eps > 1) j's pull towards consensus, so the honest models drift apart while each
attacking model stays next to the model it targets (it passes clipping and distance tests).

A BDFL peer publishes one model per round (its hash is on chain), not one per neighbour, so
the attack targets one neighbour: the honest model ``x_j`` farthest from the honest
centroid ``c``, and sends ``x_j + eps * (x_j - c)`` (its pull towards ``c`` reversed). Every
other neighbour that aggregates it is pulled towards the outlier and away from consensus.

Knowledge: the neighbours' models (``ctx.received``, last round); this round's honest
models (``ctx.honest_updates``) when the runner supplies them. Without either, the
attacker's own model is sent.
"""

from __future__ import annotations

import numpy as np

from bdfl.attacks import Attack, AttackContext, NDArrays, number, register
from bdfl.attacks._search import unflatten
from bdfl.defense.aggregate import flatten


def dissensus_model(honest: np.ndarray, eps: float) -> np.ndarray:
    """``x_j + eps * (x_j - c)`` for the row ``x_j`` of ``honest`` farthest from its centroid ``c``."""
    c = honest.mean(axis=0)
    j = int(np.argmax(np.linalg.norm(honest - c, axis=1)))
    return honest[j] + eps * (honest[j] - c)


@register
class Dissensus(Attack):
    name = "dissensus"
    summary = "push neighbours apart: the farthest honest model, moved further from the honest centroid"
    paper = "He, Karimireddy & Jaggi 2022, 'Byzantine-robust Decentralized Learning via ClippedGossip'"
    needs_honest_updates = True
    PARAMS = {"eps": number(0, lo_open=True, default=1.0, doc="how far past the targeted model (paper's epsilon)")}

    def poison_update(self, ctx: AttackContext) -> NDArrays:
        models = list(ctx.honest_updates) or list(ctx.received)
        if not models:
            return ctx.trained
        return unflatten(dissensus_model(np.stack([flatten(m) for m in models]), self.eps), ctx.trained)
