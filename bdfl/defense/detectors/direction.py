"""``direction``: the candidate's move points away from where the others move.

The move is ``candidate - its trainer's start`` (rebuilt from the chain) or ``candidate -
auditor's start``. Score: the cosine of the move with the consensus move: the coordinate-wise
median of the candidates' moves and the auditor's own (robust to a minority of attackers), and
in a large audit (``2 x min_candidates`` distinct moves in the half: 11 candidates at 3) the
**top-half consensus** built on it (the unit moves of the half of the
candidates that agree with that median most, summed, the move's own left out:
:func:`bdfl.defense.audit.top_half_cosines`), which the median's shrinkage under 30 %
reversed moves does not blur.
A candidate fails when it is more than ``k`` spreads below the candidates' median cosine;
the spread is measured on the good (high) side of the median only
(:func:`.calibration.good_side_spread`, at least ``FLOOR`` 0.05), so reversed moves, however
many, do not widen the bar. The cosine with the auditor's own move is reported, not tested:
under non-IID data the own move is a poor reference (an earlier version required both to
fail and let 80 % of sign-flipped moves through). Late in training, when honest moves barely
agree, the spread is wide and the test grows lenient by itself. Needs ``min_candidates`` moves.
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
    evidence_family = "direction"

    def _bar(self, values: np.ndarray, k: float) -> tuple[float, float, float]:
        """(bar, median, spread); NaNs with too few values."""
        if not enough(values, self.min_candidates):
            return math.nan, math.nan, math.nan
        bar, spread = one_sided_bar(values, k, "low", FLOOR)
        return bar, float(np.nanmedian(values)), spread

    def judge(self, ev: Evidence) -> list[Finding | None]:
        k = self.k_for(ev)
        bar, med, spread = self._bar(ev.values("cosine"), k)
        own_bar, _, _ = self._bar(ev.values("own_cosine"), k)
        if not math.isfinite(bar):
            return [None] * len(ev.valid)
        out: list[Finding | None] = []
        for c, o in zip(ev.cosine, ev.own_cosine):
            if math.isnan(c):
                out.append(None)
                continue
            failed = c < bar
            z = (med - c) / spread
            out.append(self.finding(c, bar, failed, f"cosine with the consensus move {c:.2f} {'<' if c < bar else '>='} "
                                                    f"calibrated {bar:.2f}, with own move {o:.2f} (not tested; its bar would be {own_bar:.2f})", z, k))
        return out
