"""``shift``: the candidate sits on one side of the auditor's model in almost every coordinate.

Score: ``|sum(c - t)| / sum(|c - t|)`` with ``t`` the auditor's trained model (ALIE's ``mean -
z x std``, label-flipped and backdoored models once the federation has learned something).
Honest models differ from each other in both directions, so their shifts are like the
absolute value of noise (many near 0, a long tail). Threshold: the candidates' median plus
``k x max(MAD spread, median / 0.6745, FLOOR)`` (:func:`.calibration.skewed_spread`: the
half-normal scale with that median; ``FLOOR`` 0.02; median and Qn over the distinct shifts, so
copies of one model count once). When the auditor's own model is the outlier
every candidate sits on one side of it, the median rises with them and the test stands down
by itself. Needs ``min_candidates``.
"""

from __future__ import annotations

import math

from bdfl.defense.detectors.base import Detector, Evidence, Finding, enough
from bdfl.defense.detectors.calibration import skewed_spread

__all__ = ["FLOOR", "ShiftDetector"]

#: Smallest spread of shifts used (a resolution, not a tuning knob).
FLOOR = 0.02


class ShiftDetector(Detector):
    name = "shift"
    evidence_family = "shift"

    def judge(self, ev: Evidence) -> list[Finding | None]:
        shifts = ev.values("shift")
        if not enough(shifts, self.min_candidates):
            return [None] * len(ev.valid)
        med, spread = skewed_spread(shifts)
        k = self.k_for(ev)
        bar = med + k * max(spread, FLOOR)
        out: list[Finding | None] = []
        for s in ev.shift:
            if math.isnan(s):
                out.append(None)
                continue
            failed = s > bar
            out.append(self.finding(s, bar, failed, f"coherent shift {s:.2f} {'>' if failed else '<='} calibrated {bar:.2f}",
                                    (s - med) / max(spread, FLOOR), k))
        return out
