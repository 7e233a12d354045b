"""``free_rider``: contributes nothing; re-submits a model it received.

``source``: ``"received_random"`` (default: one of the models received last round, chosen
with the rng), ``"received_mean"`` (their average) or ``"reference"`` (its own current
model, i.e. the aggregate of what it received). Falls back to the reference when nothing
was received. Optional Gaussian noise disguises the copy (Fraboni et al. 2021, "disguised
free-riders"): ``sigma_t = sigma * (round + 1) ** -gamma``.
No local training is needed (``trains = False``). ``claim``: the sample count it states on chain
(default 0, no claim); a free-rider that knows the no-work test's small-shard credit claims 1
sample, the fewest steps, to excuse the shortest move (:mod:`bdfl.defense.detectors.no_work`).
"""

from __future__ import annotations

import numpy as np

from bdfl.attacks import Attack, AttackContext, NDArrays, cast_like, choice, integer, number, register


@register
class FreeRider(Attack):
    name = "free_rider"
    summary = "skip training, re-submit a received model (optionally + decaying Gaussian noise)"
    paper = "Lin et al. 2019 (arXiv:1911.12560); Fraboni et al. 2021 (AISTATS)"
    trains = False
    PARAMS = {
        "source": choice("received_random", "received_mean", "reference", default="received_random"),
        "sigma": number(0, default=0.0, doc="noise std at round 0"),
        "gamma": number(0, default=0.0, doc="noise decay exponent"),
        "claim": integer(0, 2**32 - 1, default=0, doc="sample count stated on chain with each update"),
    }

    def claimed_samples(self, trained: int) -> int:
        return int(self.claim)

    def poison_update(self, ctx: AttackContext) -> NDArrays:
        received = list(ctx.received)
        if self.source == "reference" or not received:
            base = [np.asarray(a, dtype=np.float64) for a in ctx.reference]
        elif self.source == "received_mean":
            base = [np.mean([np.asarray(m[i], dtype=np.float64) for m in received], axis=0) for i in range(len(ctx.reference))]
        else:
            pick = received[int(ctx.rng.integers(len(received)))]
            base = [np.asarray(a, dtype=np.float64) for a in pick]
        if self.sigma > 0:
            sd = self.sigma * (ctx.round + 1) ** (-self.gamma)
            base = [b + ctx.rng.normal(0.0, sd, size=b.shape) for b in base]
        return cast_like(base, ctx.reference)
