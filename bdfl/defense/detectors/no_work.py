"""``no_work``: the candidate's move is far shorter than the other candidates' moves (a
free-rider re-publishing the model it started from).

Lengths are compared on a log scale, relative to the auditor's own move. Score: the move's
length over the candidates' median move length. Threshold (as a ratio to the median): ``exp(-k x
max(Qn, FLOOR))`` with Qn of the log lengths (``FLOOR`` 0.1;
:func:`.calibration.one_sided_bar`). Honest peers with small shards take fewer steps and move
less; the candidates' spread of lengths measures that. A move of length 0 always fails when
the others moved. Needs ``min_candidates`` moves.
"""

from __future__ import annotations

import math

import numpy as np

from bdfl.defense.detectors.base import Detector, Evidence, Finding, enough
from bdfl.defense.detectors.calibration import one_sided_bar

__all__ = ["FLOOR", "NoWorkDetector"]

#: Smallest spread of log move lengths used (a resolution, not a tuning knob).
FLOOR = 0.1


class NoWorkDetector(Detector):
    name = "no_work"
    evidence_family = "move_length"

    def judge(self, ev: Evidence) -> list[Finding | None]:
        ratios = ev.values("update_ratio")
        with np.errstate(divide="ignore"):
            logs = np.log(ratios)  # 0 -> -inf: not finite, so not in the median, and fails below
        if not enough(logs, self.min_candidates):
            return [None] * len(ev.valid)
        med = float(np.median(logs[np.isfinite(logs)]))
        k = self.k_for(ev)
        low, spread = one_sided_bar(logs, k, "low", FLOOR)
        bar = math.exp(low - med)
        out: list[Finding | None] = []
        for r in ev.update_ratio:
            if math.isnan(r):
                out.append(None)
                continue
            rel = r / math.exp(med)
            failed = rel < bar
            out.append(self.finding(rel, bar, failed, f"move {rel:.3f}x the median move {'<' if failed else '>='} "
                                                      f"calibrated {bar:.3f}x", -math.log(max(rel, 1e-12)) / spread, k))
        return out
