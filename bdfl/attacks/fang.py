"""``fang``: the full-knowledge local model poisoning attacks of Fang, Cao, Jia & Gong,
"Local Model Poisoning Attacks to Byzantine-Robust Federated Learning" (USENIX Security 2020).

``target = "trimmed_mean"`` (the paper's attack on trimmed mean, which it also uses against
the median): with ``s_j`` the sign of the benign mean move of coordinate j from the
attacker's reference and ``w_max,j`` / ``w_min,j`` the largest / smallest benign move,
each attacker draws its move of coordinate j uniformly from

* ``s_j > 0``: ``[w_min,j / b, w_min,j]`` if ``w_min,j > 0`` else ``[b * w_min,j, w_min,j]``;
* ``s_j <= 0``: ``[w_max,j, b * w_max,j]`` if ``w_max,j > 0`` else ``[w_max,j, w_max,j / b]``;

(``b`` = 2 in the paper), i.e. just beyond the benign extreme on the side opposite to the
honest direction. ``target = "krum"``: the paper's attack on Krum: ``ref - lambda * s``
with the largest ``lambda`` (halved from an upper bound until 1e-5) for which Krum, given
the benign models and ``f`` copies of it, selects it.

The paper crafts local *models* against the global model; BDFL has no global model, so
moves are taken from the attacker's own start of the round (``ctx.reference``).
Knowledge: ``ctx.honest_updates`` (full knowledge); without them, the attacker's trained
model and the models it received.
"""

from __future__ import annotations

import numpy as np

from bdfl.attacks import Attack, AttackContext, NDArrays, choice, number, register
from bdfl.attacks._search import benign_vectors, num_copies, unflatten
from bdfl.defense.aggregate import flatten, krum_scores


def fang_trimmed_move(moves: np.ndarray, rng: np.random.Generator, b: float = 2.0) -> np.ndarray:
    """One attacker's move against trimmed mean / median for benign ``moves`` (rows)."""
    s = np.sign(moves.mean(axis=0))
    wmax, wmin = moves.max(axis=0), moves.min(axis=0)
    lo = np.where(s > 0, np.where(wmin > 0, wmin / b, b * wmin), wmax)
    hi = np.where(s > 0, wmin, np.where(wmax > 0, b * wmax, wmax / b))
    return lo + rng.random(moves.shape[1]) * (hi - lo)


def fang_krum_model(benign: np.ndarray, reference: np.ndarray, f: int, tol: float = 1e-5) -> np.ndarray:
    """The model ``reference - lambda * s`` that Krum selects among ``benign`` and ``f`` copies,
    with the largest ``lambda`` the paper's halving search finds (``lambda`` 0 when none)."""
    s = np.sign(benign.mean(axis=0) - reference)
    n, d = len(benign) + f, benign.shape[1]
    if d == 0 or not np.any(s):
        return reference.copy()
    dist = np.sqrt(((benign[:, None, :] - benign[None, :, :]) ** 2).sum(-1))
    nearest = np.sort(dist, axis=1)[:, 1 : max(2, n - f - 1)].sum(axis=1)  # its n - f - 2 nearest benign models
    far = np.linalg.norm(benign - reference, axis=1).max()
    m = max(1, n - 2 * f - 1)
    lam = float(nearest.min() / (m * np.sqrt(d)) + far / np.sqrt(d))
    while lam > tol:
        crafted = reference - lam * s
        stack = np.vstack([benign, np.repeat(crafted[None, :], f, axis=0)])
        if int(np.argmin(krum_scores([[v] for v in stack], f))) >= len(benign):
            return crafted
        lam /= 2
    return reference - lam * s


@register
class Fang(Attack):
    name = "fang"
    summary = "full-knowledge attack on the aggregation rule in use (trimmed mean / median, or Krum)"
    paper = "Fang et al. 2020, 'Local Model Poisoning Attacks to Byzantine-Robust FL' (USENIX Security)"
    needs_honest_updates = True
    PARAMS = {
        "target": choice("trimmed_mean", "krum", default="trimmed_mean",
                         doc="aggregation attacked: trimmed_mean (also median) or krum"),
        "b": number(1, lo_open=True, default=2.0, doc="trimmed mean: how far beyond the benign extreme (paper: 2)"),
    }

    def poison_update(self, ctx: AttackContext) -> NDArrays:
        benign = benign_vectors(ctx)
        ref = flatten(ctx.reference)
        if self.target == "krum":
            return unflatten(fang_krum_model(benign, ref, num_copies(ctx)), ctx.trained)
        return unflatten(ref + fang_trimmed_move(benign - ref, ctx.rng, self.b), ctx.trained)
