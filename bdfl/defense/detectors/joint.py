"""``joint``: the candidate is moderately bad on several parameter-space measurements at once.

Why: under non-IID data one auditor's view of an honest candidate is wide on every single
measurement, so each detector's bar sits 4-5 honest spreads out, and a colluding label flipper
or Fang's attack stays inside each bar (measured on digits at 30 %, issue 22: the attackers are
1.5-2.5 spreads out on each of the measurements below, every one of which ranks them below the
honest candidates of the same audit with a within-audit AUC of 0.8-1.0). An honest candidate far
out on one measurement (its data differs from the auditor's) is rarely far out on the others
too; an attacker is out on all of them. Averaging the measurements' z-scores keeps the honest
spread near 1 while the attacker's mean stays at its per-measurement distance.

Measurements (each a z-score: how many spreads from the candidates' centre towards the bad
side; a measurement not taken, or with fewer than ``min_candidates`` values, is left out):

* ``own``: the cosine of the move with the auditor's **own** move (low is bad): a move that
  makes the auditor's own training undone;
* ``consensus``: the cosine of the move with the consensus move (low is bad; as :mod:`.direction`);
* ``distance``: the log distance to the auditor's trained model (high is bad; as :mod:`.distance`).

Not included: the accuracy, loss and balanced accuracy on the auditor's data. Their spreads are
at least the sampling error of the auditor's few samples, so every candidate's z is small on
them and averaging them in dilutes the others (measured: with the balanced accuracy as a fourth
measurement the test caught 31 % of label flippers' and 22 % of Fang's votes at the same clean
false rejection, without it 40 % and 36 %).

Calibration, in every audit: centre and spread of each measurement from the candidates with one
reweighting step (:func:`.calibration.reweighted_centre_spread`), so the attackers, already out,
do not pull the centre towards them or widen the spread; the spread is at least the measurement's
resolution (``FLOORS``). Each z is clipped to ``[-CLIP, CAP]``: being very good on one
measurement does not pay for being bad on the others, and one measurement alone, however far
out, cannot fail this test (that is the single detectors' job). Score: the mean of the clipped
z-scores. Fails above ``k`` (widened for few candidates, :meth:`Detector.k_for`); needs 2
measurements. ``k`` (default 3.0) was set from clean digits audits (seeds 11-13, 6 rounds:
this test alone rejects under 0.5 % of honest votes) and checked on MNIST and Seattle weather; see
docs/results/robustness.md, "Detector sensitivity (issue 22)".
"""

from __future__ import annotations

import math

import numpy as np

from bdfl.defense.detectors.base import Detector, Evidence, Finding
from bdfl.defense.detectors.calibration import reweighted_centre_spread, safe_log

__all__ = ["CAP", "CLIP", "FLOORS", "JointDetector"]

#: Smallest spread of each measurement (resolutions, not tuning knobs: as the single detectors').
FLOORS = {"own": 0.05, "consensus": 0.05, "distance": 0.1}

#: A measurement's z counts at least ``-CLIP``.
CLIP = 1.0

#: A measurement's z counts at most ``CAP``: one measurement far out is its own detector's
#: business, not this one's. With 3 measurements one capped z and two clipped ones average
#: (6 - 2) / 3 = 1.33, with 2 measurements 2.5: under any bar of ``k`` >= 2.5, so this test fails
#: a candidate only when at least two measurements are out. (On Seattle weather, whose honest
#: consensus cosines reach z = 8-15 in round 1, the uncapped mean added 0.8 points of honest
#: votes rejected in clean runs; capped, 0.2.)
CAP = 6.0


def _z(values: np.ndarray, sample: np.ndarray, bad: str, floor: float, min_candidates: int) -> np.ndarray | None:
    """Clipped z-scores of ``values`` towards the ``bad`` side (NaN where a value is NaN), centre
    and spread from the entries of ``values`` where ``sample`` is True; None with fewer than
    ``min_candidates`` finite values there."""
    calibrating = np.where(sample, values, math.nan)
    if int(np.isfinite(calibrating).sum()) < max(2, min_candidates):
        return None
    centre, spread = reweighted_centre_spread(calibrating, bad, floor)
    if not (math.isfinite(spread) and spread > 0):
        return None
    z = (values - centre) / spread if bad == "high" else (centre - values) / spread
    return np.clip(z, -CLIP, CAP)


class JointDetector(Detector):
    name = "joint"
    evidence_family = "joint"
    combined = True

    def components(self, ev: Evidence) -> dict[str, np.ndarray]:
        """Each available measurement's clipped z-scores (one per candidate; NaN: not measured)."""
        out: dict[str, np.ndarray] = {}
        for key, values, bad in (("own", ev.valid_values("own_cosine"), "low"), ("consensus", ev.valid_values("cosine"), "low"),
                                 ("distance", safe_log(ev.valid_values("distance")), "high")):
            z = _z(values, ev.sample, bad, FLOORS[key], self.min_candidates)
            if z is not None:
                out[key] = z
        return out

    def scores(self, ev: Evidence) -> np.ndarray:
        """Each candidate's mean clipped z over the measurements taken of it (NaN: fewer than 2)."""
        return _mean_z(self.components(ev), len(ev.valid))

    def judge(self, ev: Evidence) -> list[Finding | None]:
        comps = self.components(ev)
        if len(comps) < 2:
            return [None] * len(ev.valid)
        bar = self.k_for(ev)
        out: list[Finding | None] = []
        for i, s in enumerate(_mean_z(comps, len(ev.valid))):
            if math.isnan(s) or not ev.valid[i]:
                out.append(None)
                continue
            failed = s > bar
            parts = ", ".join(f"{k} {v[i]:.1f}" for k, v in comps.items() if math.isfinite(v[i]))
            out.append(self.finding(s, bar, failed, f"mean z {s:.2f} ({parts}) {'>' if failed else '<='} {bar:.2f}", s, bar))
        return out


def _mean_z(comps: dict[str, np.ndarray], n_candidates: int) -> np.ndarray:
    """Each candidate's mean over the measurements in ``comps`` (NaN with fewer than 2)."""
    if not comps:
        return np.full(n_candidates, math.nan)
    Z = np.stack(list(comps.values()))
    n = np.isfinite(Z).sum(axis=0)
    with np.errstate(invalid="ignore"):
        mean = np.nansum(Z, axis=0) / np.maximum(n, 1)
    return np.where(n >= 2, mean, math.nan)
