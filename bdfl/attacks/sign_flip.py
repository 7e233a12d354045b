"""``sign_flip``: publish the local update with its sign reversed (and scaled).

Sent parameters: ``reference - scale * (trained - reference)``.

Variants differ across papers: Li et al. 2019 (RSA, AAAI) and Allen-Zhu et al. 2021
send the negated gradient (``scale = 1``); others use a larger multiplier (e.g.
``-4 g``). BDFL implements the negated *model update* (peers exchange parameters, so
the "gradient" is the local update ``trained - reference``) with ``scale`` default 1.
"""

from __future__ import annotations

from bdfl.attacks import Attack, AttackContext, NDArrays, cast_like, number, register


@register
class SignFlip(Attack):
    name = "sign_flip"
    summary = "send reference - scale * (trained - reference)"
    paper = "Li et al. 2019 (RSA, AAAI); Allen-Zhu et al. 2021 (ICLR)"
    PARAMS = {"scale": number(0, lo_open=True, default=1.0, doc="multiplier of the reversed update")}

    def poison_update(self, ctx: AttackContext) -> NDArrays:
        out = [r - self.scale * (t - r) for t, r in zip(ctx.trained, ctx.reference)]
        return cast_like(out, ctx.trained)
