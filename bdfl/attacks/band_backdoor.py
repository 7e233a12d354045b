"""``band_backdoor``: a backdoor that knows BDFL's backdoor clip (``defense.bdfl.clip = "band"``,
:mod:`bdfl.defense.backdoor_clip`) and sends the most backdoor its aggregation lets through.

Threat model (issue 22's adaptive attacker, aimed at the aggregation instead of the audit): the
colluding attackers know the honest peers' trained models of the round (the omniscient
assumption of ALIE / IPM: ``ctx.honest_updates``) and the public ``clip_k``. Each trains on a
poisoned shard as :class:`bdfl.attacks.backdoor.Backdoor`, boosts its move
(``reference + boost x (trained - reference)``), and then moves every coordinate to just inside
the band the peers will compute: the median +- ``clip_k`` x 1.4826 x MAD over the honest models
and ``num_attackers`` copies of its own (the attackers all send the same, so they also drag the
median and widen the MAD as far as 30 % of the values can). Two passes, since its own values
move the band. The result is what the band clip cannot shrink any further: the strongest
per-coordinate push a minority has under the rule. Without honest models (none known) it
sends the boosted model unchanged.
"""

from __future__ import annotations

import numpy as np

from bdfl.attacks import AttackContext, NDArrays, number, register
from bdfl.attacks.backdoor import Backdoor
from bdfl.defense.backdoor_clip import band


def _in_band(honest: list[np.ndarray], own: np.ndarray, copies: int, k: float) -> np.ndarray:
    """``own`` (one layer) clipped into the band of ``honest`` + ``copies`` x itself, two passes."""
    H = np.stack([np.asarray(h, dtype=np.float64) for h in honest])
    x = np.asarray(own, dtype=np.float64)
    for _ in range(2):
        X = np.concatenate([H, np.broadcast_to(x, (copies, *x.shape))])
        x = np.clip(np.asarray(own, dtype=np.float64), *band(X, k))
    return x


@register
class BandBackdoor(Backdoor):
    name = "band_backdoor"
    summary = "backdoor boosted and moved to just inside BDFL's backdoor clip band (knows clip_k and the honest models)"
    paper = "this project (issue 22): adaptive against bdfl.defense.backdoor_clip; data poisoning as Gu et al. 2017"
    PARAMS = {**Backdoor.PARAMS,
              "boost": number(0, lo_open=True, default=10.0, doc="update multiplier before the band"),
              "clip_k": number(0, lo_open=True, default=1.0, doc="the deployed defense.bdfl.clip_k")}
    needs_honest_updates = True

    def poison_update(self, ctx: AttackContext) -> NDArrays:
        boosted = [np.asarray(r, dtype=np.float64) + self.boost * (np.asarray(t, dtype=np.float64) - np.asarray(r, dtype=np.float64))
                   for t, r in zip(ctx.trained, ctx.reference)]
        if not ctx.honest_updates:
            return [b.astype(np.asarray(t).dtype) for b, t in zip(boosted, ctx.trained)]
        copies = max(1, int(ctx.num_attackers or 1))
        return [_in_band([h[i] for h in ctx.honest_updates], b, copies, self.clip_k).astype(np.asarray(t).dtype)
                for i, (b, t) in enumerate(zip(boosted, ctx.trained))]
