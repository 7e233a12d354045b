"""``consistency``: the candidate's move reverses its own trainer's latest accepted move.

A peer trains on the same data every round, so its honest moves in consecutive rounds agree
(median cosine 0.8-0.95 measured on digits); an on-off attacker that turns to sign flipping
reverses its move. Score: the cosine of the move with the same trainer's latest earlier
move that was not rejected. Threshold: ``min(0, median - k x max(Qn, FLOOR))`` over the
candidates' such cosines (``FLOOR`` 0.05; :func:`.calibration.one_sided_bar`): only a reversal
(negative cosine) that is also an outlier fails. With fewer than ``min_candidates`` known
histories the bar is ``-k x FLOOR``.
"""

from __future__ import annotations

import math

import numpy as np

from bdfl.defense.detectors.base import Detector, Evidence, Finding, enough
from bdfl.defense.detectors.calibration import one_sided_bar

__all__ = ["FLOOR", "ConsistencyDetector"]

#: Smallest spread of cosines used (a resolution, not a tuning knob).
FLOOR = 0.05


class ConsistencyDetector(Detector):
    name = "consistency"
    evidence_family = "history"

    def judge(self, ev: Evidence) -> list[Finding | None]:
        cos = ev.values("history_cosine")
        med, spread = 0.0, FLOOR
        if enough(cos, self.min_candidates):
            _, spread = one_sided_bar(cos, self.k_for(ev), "low", FLOOR)
            med = float(np.nanmedian(cos))
        bar = min(0.0, med - self.k_for(ev) * spread)
        out: list[Finding | None] = []
        for c in ev.history_cosine:
            if math.isnan(c):
                out.append(None)
                continue
            failed = c < bar
            out.append(self.finding(c, bar, failed, f"cosine with its trainer's earlier move {c:.2f} "
                                                    f"{'<' if failed else '>='} calibrated {bar:.2f}",
                                    (med - c) / spread if c < 0 else 0.0, (med - bar) / spread))
        return out
