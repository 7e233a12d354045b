"""``distance``: the candidate is much farther from the auditor's trained model than the
other candidates are (noise, boosted or scaled updates).

Distances are compared on a log scale. Score: distance over the median distance. Threshold
(as a ratio to the median): ``exp(k x max(Qn, FLOOR))`` with Qn of the log distances (:func:`.calibration.one_sided_bar`). ``FLOOR`` (0.1, i.e. distances
within about 10 % count as equal) only matters when the candidates are nearly equidistant.
Needs ``min_candidates``.
"""

from __future__ import annotations

import math

import numpy as np

from bdfl.defense.detectors.base import Detector, Evidence, Finding, enough
from bdfl.defense.detectors.calibration import one_sided_bar, safe_log

__all__ = ["FLOOR", "DistanceDetector"]

#: Smallest spread of log distances used (a resolution, not a tuning knob).
FLOOR = 0.1


class DistanceDetector(Detector):
    name = "distance"
    evidence_family = "distance"

    def judge(self, ev: Evidence) -> list[Finding | None]:
        logs = safe_log(ev.values("distance"))
        if not enough(logs, self.min_candidates):
            return [None] * len(ev.valid)
        med = float(np.nanmedian(logs))
        k = self.k_for(ev)
        top, spread = one_sided_bar(logs, k, "high", FLOOR)
        bar = math.exp(top - med)
        out: list[Finding | None] = []
        for x in ev.distance:
            if math.isnan(x):
                out.append(None)
                continue
            ratio = x / math.exp(med)
            failed = ratio > bar
            out.append(self.finding(ratio, bar, failed, f"distance {ratio:.2f}x the median {'>' if failed else '<='} "
                                                        f"calibrated {bar:.2f}x", math.log(max(ratio, 1e-12)) / spread, k))
        return out
