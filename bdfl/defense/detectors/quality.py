"""``accuracy``: the candidate is clearly less accurate on the auditor's data than both the
auditor's own model and the median candidate.

Score: the candidate's accuracy on the auditor's ``n`` validation samples. Threshold:
``min(own, median) - k x max(Qn of the candidates' accuracies, accuracy_se(n))``
(:mod:`.calibration`). Under non-IID data honest models differ a lot on one auditor's
classes, which the candidates' spread measures; a small validation split resolves little,
which the binomial standard error measures. Without a median (fewer than
``min_candidates`` evaluable candidates) the bar is the own model's. A task whose
``evaluate`` reports no accuracy is judged by the ``loss`` detector only.
"""

from __future__ import annotations

import math

import numpy as np

from bdfl.defense.detectors.base import Detector, Evidence, Finding, enough
from bdfl.defense.detectors.calibration import accuracy_se, good_side_spread

__all__ = ["AccuracyDetector"]


class AccuracyDetector(Detector):
    name = "accuracy"
    evidence_family = "auditor_data"

    def calibrate(self, ev: Evidence) -> tuple[float, float]:
        """(centre, spread) of this audit (NaN: not judged)."""
        if not math.isfinite(ev.own_accuracy):
            return math.nan, math.nan
        acc = ev.values("accuracy")
        centre, spread = ev.own_accuracy, 0.0
        if enough(acc, self.min_candidates):
            centre = min(centre, float(np.nanmedian(acc)))
            spread = good_side_spread(acc, "low")
        return centre, max(spread, accuracy_se(centre, ev.n_val))

    def threshold(self, ev: Evidence) -> float:
        """The accuracy below which a candidate fails in this audit (NaN: not judged)."""
        centre, spread = self.calibrate(ev)
        return centre - self.k_for(ev) * spread

    def judge(self, ev: Evidence) -> list[Finding | None]:
        centre, spread = self.calibrate(ev)
        k = self.k_for(ev)
        bar = centre - k * spread
        if not math.isfinite(bar):
            return [None] * len(ev.valid)
        out: list[Finding | None] = []
        for a in ev.accuracy:
            failed = not a >= bar  # NaN fails
            out.append(self.finding(a, bar, failed, f"accuracy {a:.3f} {'<' if failed else '>='} calibrated bar {bar:.3f}",
                                    (centre - a) / spread if spread > 0 else math.nan, k))
        return out
