"""``gaussian_noise``: publish noise.

* ``mode="additive"`` (default): ``trained + N(0, sigma^2)`` per coordinate;
* ``mode="random"``: ``N(0, sigma^2)`` per coordinate, ignoring training — the "Gaussian
  attack" of Blanchard et al. 2017 (Krum paper) and Fang et al. 2020, applied to
  parameters instead of gradients.
"""

from __future__ import annotations

from bdfl.attacks import Attack, AttackContext, NDArrays, cast_like, choice, number, register


@register
class GaussianNoise(Attack):
    name = "gaussian_noise"
    summary = "send trained + N(0, sigma^2) (or pure N(0, sigma^2) with mode='random')"
    paper = "Blanchard et al. 2017 (NeurIPS); Fang et al. 2020 (USENIX Security)"
    PARAMS = {
        "sigma": number(0, lo_open=True, default=0.5, doc="noise standard deviation"),
        "mode": choice("additive", "random", default="additive"),
    }

    def poison_update(self, ctx: AttackContext) -> NDArrays:
        out = []
        for t in ctx.trained:
            noise = ctx.rng.normal(0.0, self.sigma, size=t.shape)
            out.append(t + noise if self.mode == "additive" else noise)
        return cast_like(out, ctx.trained)
