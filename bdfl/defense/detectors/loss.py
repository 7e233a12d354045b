"""``loss``: the candidate's loss on the auditor's data is far above both the auditor's own
model's and the median candidate's.

Losses are compared on a log scale (a loss ratio, dimensionless). Score: the candidate's
loss. Threshold: ``max(own, median) x exp(k x max(Qn of the candidates' log losses,
1 / sqrt(n)))`` with ``n`` the auditor's validation samples (:func:`.calibration.log_mean_se`).
"""

from __future__ import annotations

import math

import numpy as np

from bdfl.defense.detectors.base import Evidence, LogLossDetector, enough
from bdfl.defense.detectors.calibration import good_side_spread, log_mean_se, safe_log

__all__ = ["LossDetector"]


class LossDetector(LogLossDetector):
    name = "loss"
    evidence_family = "auditor_data"
    score = "loss"
    label = "loss"

    def calibrate(self, ev: Evidence) -> tuple[float, float]:
        """(centre, spread) of the log losses in this audit (NaN: not judged)."""
        if not math.isfinite(ev.own_loss):
            return math.nan, math.nan
        logs = safe_log(ev.values("loss"))
        centre, spread = float(safe_log(ev.own_loss)), 0.0
        if enough(logs, self.min_candidates):
            centre = max(centre, float(np.nanmedian(logs)))
            spread = good_side_spread(logs, "high")
        return centre, max(spread, log_mean_se(ev.n_val))
