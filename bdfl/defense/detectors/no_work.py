"""``no_work``: the candidate's move is far shorter than the other candidates' moves (a
free-rider re-publishing the model it started from).

Lengths are compared on a log scale, relative to the auditor's own move. Score: the move's
length over the candidates' median move length. Threshold (as a ratio to the median): ``exp(-k x
max(Qn, FLOOR))`` with Qn of the log lengths (``FLOOR`` 0.1;
:func:`.calibration.one_sided_bar`). A move of length 0 always fails when the others moved.
Needs ``min_candidates`` moves.

Small shards: an honest trainer with fewer samples takes fewer local steps and moves less. When
the audit knows each trainer's claimed steps (``Evidence.steps``: batches an epoch of the sample
count it states on chain), a candidate claiming fewer steps than the audit's median candidate has
its length counted up by ``median steps / its steps`` before it is compared (:func:`step_credit`).
That factor is a bound, not a fit: a move's length is concave in the number of SGD steps from
the same start (each step adds at most its own length; later steps add less as the shard's loss
flattens), and a concave ``f`` with ``f(0) = 0`` has ``f(a) >= (a / b) f(b)`` for ``a <= b``, so
an honest trainer with ``a`` steps moves at least ``a / b`` of one with ``b``. A candidate
claiming more steps than the median gets no credit and no penalty (past the median steps, moves
need not grow). The claim is self-reported: understating it buys at most ``median steps`` times
(a zero move still fails), and it costs the claimant its weight under sample-weighted
aggregation.
"""

from __future__ import annotations

import math

import numpy as np

from bdfl.defense.detectors.base import Detector, Evidence, Finding, enough
from bdfl.defense.detectors.calibration import one_sided_bar

__all__ = ["FLOOR", "NoWorkDetector", "step_credit"]

#: Smallest spread of log move lengths used (a resolution, not a tuning knob).
FLOOR = 0.1


def step_credit(ev: Evidence) -> tuple[np.ndarray, float]:
    """Each candidate's length credit (>= 1) for claiming fewer local steps than the audit's
    median candidate, and that median (NaN when no candidate of the calibration sample claims)."""
    steps = np.asarray(ev.steps, dtype=np.float64)
    known = np.isfinite(steps) & (steps > 0)
    ref = known & ev.sample
    if not ref.any():
        return np.ones(len(steps)), math.nan
    median = float(np.median(steps[ref]))
    credit = np.ones(len(steps))
    credit[known] = np.maximum(1.0, median / steps[known])
    return credit, median


class NoWorkDetector(Detector):
    name = "no_work"
    evidence_family = "move_length"

    def judge(self, ev: Evidence) -> list[Finding | None]:
        credit, median_steps = step_credit(ev)
        ratios = ev.values("update_ratio") * credit
        with np.errstate(divide="ignore"):
            logs = np.log(ratios)  # 0 -> -inf: not finite, so not in the median, and fails below
        if not enough(logs, self.min_candidates):
            return [None] * len(ev.valid)
        med = float(np.median(logs[np.isfinite(logs)]))
        k = self.k_for(ev)
        low, spread = one_sided_bar(logs, k, "low", FLOOR)
        bar = math.exp(low - med)
        out: list[Finding | None] = []
        for r, c, s in zip(ev.update_ratio, credit, ev.steps):
            if math.isnan(r):
                out.append(None)
                continue
            rel = r * c / math.exp(med)
            failed = rel < bar
            why = f" (x{c:.2f}: {s:g} steps claimed, the median {median_steps:g})" if c > 1 else ""
            out.append(self.finding(rel, bar, failed, f"move {rel:.3f}x the median move{why} {'<' if failed else '>='} "
                                                      f"calibrated {bar:.3f}x", -math.log(max(rel, 1e-12)) / spread, k))
        return out
