"""``scaling``: boost the local update.

Sent parameters: ``reference + boost * (trained - reference)``. On clean data this is an
untargeted "boosting" attack (an over-sized step); with backdoor data it becomes model
replacement (Bagdasaryan et al. 2020), registered as ``model_replacement`` in
:mod:`bdfl.attacks.backdoor`.
"""

from __future__ import annotations

from bdfl.attacks import Attack, AttackContext, NDArrays, cast_like, number, register


def boost_update(ctx: AttackContext, boost: float) -> NDArrays:
    out = [r + boost * (t - r) for t, r in zip(ctx.trained, ctx.reference)]
    return cast_like(out, ctx.trained)


@register
class Scaling(Attack):
    name = "scaling"
    summary = "send reference + boost * (trained - reference)"
    paper = "Bhagoji et al. 2019 (ICML, explicit boosting); Bagdasaryan et al. 2020 (AISTATS)"
    PARAMS = {"boost": number(0, lo_open=True, default=10.0, doc="update multiplier")}

    def poison_update(self, ctx: AttackContext) -> NDArrays:
        return boost_update(ctx, self.boost)
