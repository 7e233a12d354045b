"""``alie``: "A Little Is Enough" (Baruch, Baruch & Goldberg, NeurIPS 2019).

Colluding attackers send the coordinate-wise ``mean - z * std`` of the benign models,
a small shift that stays inside the spread of honest updates (so distance- and
median-based defences keep it) yet biases every coordinate the same way.

``z`` follows the paper from n peers and f attackers::

    s = floor(n / 2 + 1) - f          # honest supporters the attackers need
    z = Phi^-1((n - s) / n)           # Phi: standard normal CDF

clamped to ``>= 0`` (and to ``p <= (n - 0.5) / n`` when ``s <= 0``). Pass ``z`` to
override; when neither ``z`` nor n and f (``ctx.num_peers`` / ``ctx.num_attackers``) are
known, ``z = 1.0`` (the value common reference implementations hard-code). Statistics are over whole parameter vectors (peers exchange models, not
gradients), with the sample standard deviation (ddof = 1), as in the common reference
implementation (Karimireddy et al. 2022). The paper's sign convention varies between
implementations (``mu + z sigma`` vs ``mu - z sigma``); BDFL uses ``mu - z sigma``.

Knowledge: ``ctx.honest_updates`` (omniscient: this round's honest models). When that
is empty the attacker estimates mean/std from its own trained model and the models
it received last round (``[ctx.trained, *ctx.received]``).
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from bdfl.attacks import Attack, AttackContext, AttackError, NDArrays, number, register
from bdfl.attacks._search import benign_std, benign_vectors, unflatten


def alie_z(num_peers: int, num_attackers: int) -> float:
    """z_max of Baruch et al. 2019 for n peers of which f are attackers."""
    n, f = int(num_peers), int(num_attackers)
    if n < 1 or f < 0 or f > n:
        raise AttackError(f"attack 'alie': need 0 <= num_attackers <= num_peers, got n={n}, f={f}")
    s = math.floor(n / 2 + 1) - f
    p = (n - s) / n
    p = min(p, (n - 0.5) / n)
    if p <= 0.5:
        return 0.0
    return NormalDist().inv_cdf(p)


def alie_model(benign: np.ndarray, z: float) -> np.ndarray:
    """``mean - z * std`` of the benign rows ``benign`` (coordinate-wise; std 0 for one row)."""
    return benign.mean(axis=0) - z * benign_std(benign)


DEFAULT_Z = 1.0


@register
class ALIE(Attack):
    name = "alie"
    summary = "send mean - z * std of the benign models (z from n and f)"
    paper = "Baruch et al. 2019, 'A Little Is Enough' (NeurIPS)"
    needs_honest_updates = True
    PARAMS = {"z": number(0, default=None, optional=True, doc="override z; default from n and f")}

    def z_for(self, ctx: AttackContext) -> float:
        if self.z is not None:
            return float(self.z)
        if ctx.num_peers is None or ctx.num_attackers is None:
            return DEFAULT_Z
        return alie_z(ctx.num_peers, ctx.num_attackers)

    def poison_update(self, ctx: AttackContext) -> NDArrays:
        return unflatten(alie_model(benign_vectors(ctx), self.z_for(ctx)), ctx.trained)
