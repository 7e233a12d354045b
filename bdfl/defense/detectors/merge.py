"""``merge``: averaging the candidate into the auditor's model, ``(own + candidate) / 2``,
raises the loss on the auditor's data far above what the median candidate does.

A model that is fine on its own can still pull an average apart (its parameters sit in
another basin, or it undoes what the others learned); this measures what aggregation would
do. Score: that merged loss. Threshold: ``median x exp(k x max(Qn of the
candidates' log merged losses, 1 / sqrt(n)))`` (:func:`.calibration.one_sided_bar`). Needs ``min_candidates`` merged losses.
"""

from __future__ import annotations

import math

import numpy as np

from bdfl.defense.detectors.base import Detector, Evidence, Finding, enough
from bdfl.defense.detectors.calibration import log_mean_se, one_sided_bar, safe_log

__all__ = ["MergeDetector"]


class MergeDetector(Detector):
    name = "merge"

    def calibrate(self, ev: Evidence) -> tuple[float, float]:
        """(median, spread) of the log merged losses (NaN: too few to judge)."""
        logs = safe_log(ev.values("merged_loss"))
        if not enough(logs, self.min_candidates):
            return math.nan, math.nan
        _, spread = one_sided_bar(logs, self.k_for(ev), "high", floor=log_mean_se(ev.n_val))
        return float(np.nanmedian(logs)), spread

    def threshold(self, ev: Evidence) -> float:
        centre, spread = self.calibrate(ev)
        return float(math.exp(centre + self.k_for(ev) * spread))

    def judge(self, ev: Evidence) -> list[Finding | None]:
        centre, spread = self.calibrate(ev)
        bar = self.threshold(ev)
        if not math.isfinite(bar):
            return [None] * len(ev.valid)
        out: list[Finding | None] = []
        for x in ev.merged_loss:
            if math.isnan(x):
                out.append(None)
                continue
            failed = not x <= bar
            out.append(self.finding(x, bar, failed, f"loss merged with own model {x:.3f} {'>' if failed else '<='} "
                                                    f"calibrated bar {bar:.3f}", (float(safe_log(x)) - centre) / spread))
        return out
