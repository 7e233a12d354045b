"""An example plugin (docs/extending.md): an attack, an aggregation strategy and an audit
detector of one's own, registered when the module is imported; no file of BDFL changes.

    bdfl run --plugin experiments/plugins/example_plugin.py --attack reverse_noise \\
        --defense audited_trimmed --set defense.params.trim=1 \\
        --set defense.detectors.plugins.negative_cosine.k=3

``--plugin`` makes every process of the run (the workers too) import this file before it reads
a name; ``config.toml`` records it, so the run reproduces from its results folder.
tests/experiment/test_plugins.py runs exactly this.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bdfl.attacks import Attack, AttackContext, NDArrays, cast_like, number, register
from bdfl.defense import Strategy
from bdfl.defense import register as register_strategy
from bdfl.defense.aggregate import coordinate_median
from bdfl.defense.detectors import Detector, Evidence, Finding
from bdfl.defense.detectors import register as register_detector
from bdfl.defense.detectors.calibration import one_sided_bar


@register
class ReverseNoise(Attack):
    """Send the reversed local update plus Gaussian noise (``sigma`` x the update's RMS)."""

    name = "reverse_noise"
    summary = "send reference - (trained - reference) + noise"
    paper = "an example plugin (docs/extending.md)"
    PARAMS = {"sigma": number(0, default=0.1, doc="noise standard deviation, relative to the update's RMS")}

    def poison_update(self, ctx: AttackContext) -> NDArrays:
        out = []
        for trained, ref in zip(ctx.trained, ctx.reference):
            move = np.asarray(trained, dtype=np.float64) - np.asarray(ref, dtype=np.float64)
            rms = float(np.sqrt(np.mean(move * move))) if move.size else 0.0
            out.append(np.asarray(ref, dtype=np.float64) - move + ctx.rng.normal(0.0, self.sigma * rms, size=move.shape))
        return cast_like(out, ctx.trained)  # the model's own dtypes and shapes (the client contract)


@register_strategy
@dataclass(frozen=True)
class AuditedTrimmed(Strategy):
    """Of the updates approved on chain (``audited``: the caller passes only those), the
    coordinate-wise mean after dropping the ``trim`` largest and smallest values; the median
    where too few remain."""

    name = "audited_trimmed"
    summary = "approved updates only, coordinate-wise trimmed mean"
    audited = True
    trim: int = 1  # set with [defense] params (--set defense.params.trim=2)

    def __post_init__(self) -> None:
        if isinstance(self.trim, bool) or not isinstance(self.trim, int) or self.trim < 0:
            raise ValueError(f"trim must be an integer >= 0, got {self.trim!r}")

    def aggregate(self, updates: Sequence[NDArrays], weights: Sequence[float] | None = None) -> NDArrays:
        if len(updates) <= 2 * self.trim:
            return coordinate_median(updates)
        out = []
        for arrays in zip(*updates):
            stacked = np.sort(np.stack([np.asarray(a, dtype=np.float64) for a in arrays]), axis=0)
            kept = stacked[self.trim:len(arrays) - self.trim]
            out.append(kept.mean(axis=0))
        return cast_like(out, updates[0])


@register_detector
class NegativeCosine(Detector):
    """Fails a candidate whose move points against the consensus move by more than ``k`` spreads
    of the candidates' cosines (and below zero). ``z`` and ``z_bar`` say how far out it lies, so
    the audit rule's corroboration applies (a finding without them counts as far out and rejects
    on its own)."""

    name = "negative_cosine"
    evidence_family = "direction"  # the same evidence as the built-in direction test (under the default rule each
    # detector still counts as its own measurement: a failure of both is two failures; docs/extending.md)

    def judge(self, ev: Evidence) -> list[Finding | None]:
        cosines = ev.values("cosine")  # the calibration sample (near-copies once); NaN elsewhere
        if np.sum(np.isfinite(cosines)) < self.min_candidates:
            return [None] * len(ev.valid)
        k = self.k_for(ev)
        bar, spread = one_sided_bar(cosines, k, "low", 0.05)
        bar = min(bar, 0.0)
        centre = float(np.nanmedian(cosines))
        out: list[Finding | None] = []
        for c in ev.cosine:  # every candidate's own
            if math.isnan(c):
                out.append(None)
                continue
            out.append(self.finding(c, bar, c < bar, f"cosine {c:.2f} with the consensus move, bar {bar:.2f}",
                                    z=(centre - c) / spread, z_bar=(centre - bar) / spread))
        return out
