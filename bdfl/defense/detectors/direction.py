"""``direction``: the candidate's move points away from where the others move.

The move is ``candidate - its trainer's start`` (rebuilt from the chain) or ``candidate -
auditor's start``. Two cosines: with the consensus move (coordinate-wise median of the
candidates' moves and the auditor's own) and with the auditor's own move. A candidate fails
when **both** are more than ``k`` spreads below the candidates' median of the same
cosine (spread: ``max(Qn, FLOOR)``, ``FLOOR`` 0.05; :func:`.calibration.one_sided_bar`): a consensus that attackers dominate cannot
make an honest candidate fail alone. Late in training, when honest moves barely agree, the
spread is wide and the test grows lenient by itself (the ``consistency`` detector still sees a
reversal then). Needs ``min_candidates`` moves.
"""

from __future__ import annotations

import math

import numpy as np

from bdfl.defense.detectors.base import Detector, Evidence, Finding, enough
from bdfl.defense.detectors.calibration import one_sided_bar

__all__ = ["FLOOR", "DirectionDetector"]

#: Smallest spread of cosines used (a resolution, not a tuning knob).
FLOOR = 0.05


class DirectionDetector(Detector):
    name = "direction"

    def _bar(self, values: np.ndarray, k: float) -> tuple[float, float, float]:
        """(bar, median, spread); NaNs with too few values."""
        if not enough(values, self.min_candidates):
            return math.nan, math.nan, math.nan
        bar, spread = one_sided_bar(values, k, "low", FLOOR)
        return bar, float(np.nanmedian(values)), spread

    def judge(self, ev: Evidence) -> list[Finding | None]:
        bar, med, spread = self._bar(ev.values("cosine"), self.k_for(ev))
        own_bar, own_med, own_spread = self._bar(ev.values("own_cosine"), self.k_for(ev))
        if not math.isfinite(bar):
            return [None] * len(ev.valid)
        out: list[Finding | None] = []
        for c, o in zip(ev.cosine, ev.own_cosine):
            if math.isnan(c):
                out.append(None)
                continue
            own_fails = not math.isfinite(own_bar) or math.isnan(o) or o < own_bar
            failed = c < bar and own_fails
            z = (med - c) / spread
            if math.isfinite(own_bar) and not math.isnan(o):
                z = min(z, (own_med - o) / own_spread)  # both must deviate
            out.append(self.finding(c, bar, failed, f"cosine with the consensus move {c:.2f} {'<' if c < bar else '>='} "
                                                    f"calibrated {bar:.2f}, with own move {o:.2f} (bar {own_bar:.2f})", z))
        return out
