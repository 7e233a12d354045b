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

from bdfl.defense.detectors.base import Evidence, LogLossDetector, enough
from bdfl.defense.detectors.calibration import log_mean_se, one_sided_bar, safe_log

__all__ = ["MergeDetector"]


class MergeDetector(LogLossDetector):
    name = "merge"
    evidence_family = "auditor_data"
    score = "merged_loss"
    label = "loss merged with own model"
    nan_fails = False  # no merged loss for this candidate: not judged

    def calibrate(self, ev: Evidence) -> tuple[float, float]:
        """(median, spread) of the log merged losses (NaN: too few to judge)."""
        logs = safe_log(ev.values("merged_loss"))
        if not enough(logs, self.min_candidates):
            return math.nan, math.nan
        _, spread = one_sided_bar(logs, self.k_for(ev), "high", floor=log_mean_se(ev.n_val))
        return float(np.nanmedian(logs)), spread
