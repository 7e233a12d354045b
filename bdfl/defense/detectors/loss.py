"""``loss``: the candidate's loss on the auditor's data is far above both the auditor's own
model's and the median candidate's.

Losses are compared on a log scale (a loss ratio, dimensionless). Score: the candidate's
loss. Threshold: ``max(own, median) x exp(k x max(MAD spread of the candidates' log losses,
1 / sqrt(n)))`` with ``n`` the auditor's validation samples (:func:`.calibration.log_mean_se`).
"""

from __future__ import annotations

import math

from bdfl.defense.detectors.base import Detector, Evidence, Finding, enough
from bdfl.defense.detectors.calibration import log_mean_se, robust_centre_spread, safe_log

__all__ = ["LossDetector"]


class LossDetector(Detector):
    name = "loss"

    def threshold(self, ev: Evidence) -> float:
        """The loss above which a candidate fails in this audit (NaN: not judged)."""
        if not math.isfinite(ev.own_loss):
            return math.nan
        logs = safe_log(ev.values("loss"))
        centre, spread = float(safe_log(ev.own_loss)), 0.0
        if enough(logs, self.min_candidates):
            med, spread = robust_centre_spread(logs)
            centre = max(centre, med)
        return float(math.exp(centre + self.k * max(spread, log_mean_se(ev.n_val))))

    def judge(self, ev: Evidence) -> list[Finding | None]:
        bar = self.threshold(ev)
        if not math.isfinite(bar):
            return [None] * len(ev.valid)
        out: list[Finding | None] = []
        for x in ev.loss:
            failed = not x <= bar
            out.append(self.finding(x, bar, failed, f"loss {x:.3f} {'>' if failed else '<='} calibrated bar {bar:.3f}"))
        return out
