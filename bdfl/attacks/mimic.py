"""``mimic``: the Mimic attack (Karimireddy, He & Jaggi, "Byzantine-Robust Learning on
Heterogeneous Datasets via Bucketing", ICLR 2022).

All attackers copy one honest peer's model, so that peer's data is over-represented and
the aggregate drifts towards it: on heterogeneous data this alone biases robust rules,
while every crafted model is a genuine honest model (no test of distance or quality flags
it). The paper picks the honest worker that maximises the spread along the direction of
largest variance ``z`` of the honest models; here ``z`` is the top principal direction of
this round's honest models (power iteration) and the copied model is the one with the
largest ``|<b_i - mean, z>|`` (the paper estimates ``z`` online over a warm-up phase; this
per-round choice needs no state across rounds).

``jitter`` > 0 is the variant that knows BDFL counts identical models once
(``bdfl.defense.aggregate.merge_copies``): each attacker adds its own Gaussian noise of
``jitter`` x the honest models' per-coordinate standard deviation, so no two copies are equal.
BDFL groups near-copies too (``bdfl.defense.detectors.calibration.copy_groups``): a jitter of
about 0.1 or more escapes that.

Knowledge: ``ctx.honest_updates`` (omniscient); without them, the received models.
"""

from __future__ import annotations

import numpy as np

from bdfl.attacks import Attack, AttackContext, NDArrays, number, register
from bdfl.attacks._search import benign_vectors, unflatten


def mimic_index(benign: np.ndarray, iterations: int = 50) -> int:
    """Index of the benign row farthest out along the top principal direction."""
    centred = benign - benign.mean(axis=0)
    if len(benign) < 2 or not np.any(centred):
        return 0
    z = centred[int(np.argmax(np.linalg.norm(centred, axis=1)))].copy()
    for _ in range(iterations):
        z = centred.T @ (centred @ z)
        norm = np.linalg.norm(z)
        if norm == 0:
            break
        z /= norm
    return int(np.argmax(np.abs(centred @ z)))


@register
class Mimic(Attack):
    name = "mimic"
    summary = "copy the honest model farthest out along the honest models' top principal direction"
    paper = "Karimireddy, He & Jaggi 2022, 'Byzantine-Robust Learning on Heterogeneous Datasets via Bucketing' (ICLR)"
    needs_honest_updates = True
    PARAMS = {"jitter": number(0, default=0.0, doc="own noise per attacker, x the honest per-coordinate std (0: exact copies)")}

    def poison_update(self, ctx: AttackContext) -> NDArrays:
        benign = benign_vectors(ctx) if ctx.honest_updates or ctx.received else None
        if benign is None:
            return ctx.trained
        if not ctx.honest_updates:
            benign = benign[1:]  # the received models only
        copy = benign[mimic_index(benign)]
        if self.jitter > 0:
            copy = copy + self.jitter * benign.std(axis=0) * ctx.rng.standard_normal(copy.shape)
        return unflatten(copy, ctx.trained)
