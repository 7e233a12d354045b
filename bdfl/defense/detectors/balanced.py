"""``balanced_accuracy``: the candidate is clearly less accurate, class by class, on **all** of
the auditor's labelled data than the median candidate.

Why all the data: a candidate was trained on none of the auditor's samples, so its training
shard is held-out data for the candidate just as its validation split is, and 5x more of it
(the validation split is 20 %). The auditor's own model *was* trained on that shard, so it is
no reference here: the centre is the candidates' median only.

Why class-balanced: label flipping and backdoors damage a few classes, and the auditor's
non-IID shard may hold those classes rarely; the overall accuracy weighs a class by how often
the auditor happens to hold it, the balanced accuracy (the mean of the per-class accuracies
over the classes the auditor holds) weighs every class alike, as the federation's test data
does.

Score: that balanced accuracy. Threshold: ``median - k x max(good-side spread of the
candidates' scores, balanced_accuracy_se)`` (:func:`.calibration.balanced_accuracy_se`: the
binomial error of the per-class medians on the auditor's per-class counts; a class held once
widens the bar). Needs a client with ``predict`` and ``audit_data`` and ``min_candidates``
measured candidates; otherwise not run.
"""

from __future__ import annotations

import math

import numpy as np

from bdfl.defense.detectors.base import Detector, Evidence, Finding
from bdfl.defense.detectors.calibration import balanced_accuracy_se, good_side_spread

__all__ = ["BalancedAccuracyDetector"]


class BalancedAccuracyDetector(Detector):
    name = "balanced_accuracy"
    evidence_family = "auditor_data"

    def scores(self, ev: Evidence) -> np.ndarray:
        """Each candidate's balanced accuracy (NaN: not measured or not valid)."""
        m = len(ev.valid)
        out = np.full(m, math.nan)
        if ev.classes is None:
            return out
        for i, acc in enumerate(ev.classes.accuracy):
            if acc is not None and ev.valid[i] and np.isfinite(acc).any():
                out[i] = float(np.nanmean(acc))
        return out

    def calibrate(self, ev: Evidence) -> tuple[float, float]:
        """(centre, spread) of the candidates' balanced accuracies (NaN: not judged)."""
        s = self.scores(ev)
        ok = np.isfinite(s) & ev.sample
        if ev.classes is None or int(ok.sum()) < self.min_candidates:
            return math.nan, math.nan
        per_class = np.median(np.stack([ev.classes.accuracy[i] for i in np.flatnonzero(ok)]), axis=0)
        return float(np.median(s[ok])), max(good_side_spread(s[ok], "low"), balanced_accuracy_se(per_class, ev.classes.counts))

    def threshold(self, ev: Evidence) -> float:
        """The balanced accuracy below which a candidate fails in this audit (NaN: not judged)."""
        centre, spread = self.calibrate(ev)
        return centre - self.k_for(ev) * spread

    def judge(self, ev: Evidence) -> list[Finding | None]:
        centre, spread = self.calibrate(ev)
        k = self.k_for(ev)
        bar = centre - k * spread
        if not math.isfinite(bar):
            return [None] * len(ev.valid)
        out: list[Finding | None] = []
        for a in self.scores(ev):
            if math.isnan(a):
                out.append(None)
                continue
            failed = a < bar
            out.append(self.finding(a, bar, failed, f"balanced accuracy {a:.3f} {'<' if failed else '>='} calibrated bar {bar:.3f}",
                                    (centre - a) / spread if spread > 0 else math.nan, k))
        return out
