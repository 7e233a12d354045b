"""Robust statistics the detectors calibrate their thresholds with.

Every threshold is ``centre +/- k x spread`` (:func:`one_sided_bar`): the centre is a median
(of the candidates an auditor judges, or the auditor's own model's score), the spread is the
larger of

* the **candidates' spread**: Rousseeuw and Croux's Qn (:func:`qn_scale`, 2.2219 x the first
  quartile of the pairwise distances), which equals the standard deviation for Gaussian data,
  has a 50 % breakdown point and, unlike the MAD, needs no centre, so a bad minority on one
  side does not inflate it by pulling the median (the pairs inside each group are close), and
* the **sampling spread** of the auditor's own measurement: the standard error of an
  accuracy, loss or share measured on ``n`` of its samples. Small validation shards get wide
  bars; a round whose candidates happen to agree closely cannot make the bar narrower than
  what the auditor's data can resolve.

``k`` (in those spreads) is the only setting: see docs/learning.md, section 4, for how the
defaults were chosen.

How the detectors' findings combine into one vote (:func:`bdfl.defense.audit.rejecting`): a
detector failing alone must lie :data:`EQUAL_EVIDENCE` times its own bar out (in z), as far as
two independent detectors failing at their bars together.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["EQUAL_EVIDENCE", "MAD_TO_SIGMA", "NEAR_COPY", "copy_groups", "typical_distance", "QN_SHARE", "REWEIGHT_CUT", "accuracy_se", "balanced_accuracy_se", "finite", "good_side_spread", "log_mean_se", "one_sided_bar", "qn_scale", "reweighted_centre_spread", "robust_centre_spread", "safe_log",
           "share_se", "skewed_spread", "small_sample_factor"]

#: The good-side spread is at least this share of the two-sided Qn. A bad minority on the bad
#: side inflates Qn by at most about 2x at 30 % (1.8x measured on sign-flipped cosines), so half
#: of it stays below the honest spread there; a cluster of colluders placed just on the good
#: side of the median (ALIE) cannot shrink the bar below half the overall spread.
QN_SHARE = 0.5

#: How far out on the bad side (in spreads) a value is left out of the second estimate of
#: :func:`reweighted_centre_spread` (a resolution, not a tuning knob: 2 spreads keep 97.7 % of
#: Gaussian values).
REWEIGHT_CUT = 2.0

#: How many times its own bar out (in z) one failed finding must lie to weigh as much as two
#: independent findings each just past its bar (``[defense.detectors] corroboration``'s
#: default). For Gaussian tails P(Z > x) ~ exp(-x^2 / 2), so two independent ones at ``k`` have
#: exp(-k^2) = exp(-(sqrt(2) k)^2 / 2): one finding at ``sqrt(2) k``. Derived, not tuned
#: (issue 22: honest reject votes under non-IID data come mostly from one detector alone,
#: attackers' from several; docs/results/robustness.md, "False rejections").
EQUAL_EVIDENCE = math.sqrt(2)

#: Two models closer to each other than this share of how far apart the models of the set
#: typically lie (:func:`typical_distance`) are one model (:func:`copy_groups`). Honest models are
#: trained on different data: the closest honest pair of an audit lay at 0.19-0.58 of that
#: distance (digits, MNIST, Seattle weather at seeds 11-13, 10 mirrored rounds, and digits at 50
#: peers, 6 rounds: every honest audit); Mimic's copies with noise of 1 % of the honest spread at
#: about 0.01. Half the smallest honest ratio measured, so that clean audits do not group; a
#: resolution, not a tuning knob (docs/learning.md, section 4).
NEAR_COPY = 0.1

#: 1 / Phi^-1(3/4): the MAD of a Gaussian times this is its standard deviation.
MAD_TO_SIGMA = 1.4826


def finite(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """The finite entries of ``values`` as a float array."""
    a = np.asarray(values, dtype=np.float64).ravel()
    return a[np.isfinite(a)]


def safe_log(values: Sequence[float] | np.ndarray | float) -> np.ndarray:
    """log of non-negative values, clipped at 1e-12 (a perfect fit or a zero distance has a finite log)."""
    return np.log(np.maximum(np.asarray(values, dtype=np.float64), 1e-12))


def robust_centre_spread(values: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """(median, 1.4826 x MAD) of the finite ``values``; (NaN, NaN) when there are none."""
    a = finite(values)
    if a.size == 0:
        return math.nan, math.nan
    med = float(np.median(a))
    return med, MAD_TO_SIGMA * float(np.median(np.abs(a - med)))


def qn_scale(values: Sequence[float] | np.ndarray) -> float:
    """Rousseeuw and Croux's Qn of the finite ``values``: 2.2219 x the ``C(h, 2)``-th smallest
    of the pairwise distances ``|x_i - x_j|`` (i < j), h = n // 2 + 1 (about their first
    quartile), times Rousseeuw and Croux's small-sample factor: a consistent estimate of the
    standard deviation for Gaussian data. NaN with fewer than 2 values."""
    a = finite(values)
    n = a.size
    if n < 2:
        return math.nan
    diffs = _pairwise_distances(a)
    h = n // 2 + 1
    rank = min(len(diffs), h * (h - 1) // 2) - 1
    return 2.2219 * _QN_SMALL.get(n, n / (n + 1.4) if n % 2 else n / (n + 3.8)) * float(np.partition(diffs, rank)[rank])


def _pairwise_distances(a: np.ndarray) -> np.ndarray:
    """``|a_i - a_j|`` for every i < j (row-major, as ``np.triu_indices``). Small inputs (an
    audit's candidates) in one vectorised step; large ones row by row into one array, without
    the n x n matrix and index arrays (20,000 values: 8 GB and 25 s that way, 1.6 GB here)."""
    n = a.size
    if n <= _DENSE_MAX:
        return np.abs(a[:, None] - a[None, :])[np.triu_indices(n, 1)]
    out = np.empty(n * (n - 1) // 2)
    pos = 0
    for i in range(n - 1):
        row = out[pos : pos + n - 1 - i]
        np.subtract(a[i + 1 :], a[i], out=row)
        pos += row.size
    return np.abs(out, out=out)


#: Above this many values :func:`_pairwise_distances` goes row by row (the same values).
_DENSE_MAX = 512

#: Qn's small-sample correction factors d_n (Rousseeuw and Croux 1993), n <= 9; above:
#: n / (n + 1.4) for odd n, n / (n + 3.8) for even n.
_QN_SMALL = {2: 0.399, 3: 0.994, 4: 0.512, 5: 0.844, 6: 0.611, 7: 0.857, 8: 0.669, 9: 0.872}


def good_side_spread(values: Sequence[float] | np.ndarray, bad: str) -> float:
    """The spread of the finite ``values`` measured on their **good side** (``bad``: "low" or
    "high"): 1.4826 x the median distance from the median of the distinct values at or beyond
    it on the good side (the one-sided MAD; for Gaussian data the standard deviation), and at
    least ``QN_SHARE`` x :func:`qn_scale`. Attackers are only ever bad in one direction, so a
    bad minority, however far out, does not widen it (it only moves the median); identical
    scores (copies of one model) count once. NaN with fewer than 2 finite values."""
    a = finite(values)
    if a.size < 2:
        return math.nan
    med = float(np.median(a))
    u = np.unique(a)  # identical scores (copies of one model) count once: colluders cannot shrink it
    good = u[u >= med] - med if bad == "low" else med - u[u <= med]
    return max(MAD_TO_SIGMA * float(np.median(good)), QN_SHARE * qn_scale(a))


def one_sided_bar(values: Sequence[float] | np.ndarray, k: float, bad: str, floor: float = 0.0) -> tuple[float, float]:
    """(bar, spread) for a score whose ``bad`` side is "low" or "high": the median of the finite
    ``values`` -/+ ``k x max(good_side_spread(values, bad), floor)``. (NaN, NaN) without 2 finite values."""
    a = finite(values)
    spread = good_side_spread(a, bad)
    if not math.isfinite(spread):
        return math.nan, math.nan
    spread = max(spread, floor)
    med = float(np.median(a))
    return (med - k * spread if bad == "low" else med + k * spread), spread


def reweighted_centre_spread(values: Sequence[float] | np.ndarray, bad: str, floor: float = 0.0,
                             cut: float = REWEIGHT_CUT) -> tuple[float, float]:
    """(centre, spread) of the finite ``values`` whose ``bad`` side is "low" or "high", with one
    reweighting step: the median and :func:`good_side_spread` (at least ``floor``) of all values,
    then again of the values within ``cut`` of those spreads of that median on the bad side.

    A bad minority on one side pulls the median towards it (30 % of the values below the honest
    ones put it at the honest 29th percentile) and the good-side spread, measured from that
    median, widens with it (1.5x measured on digits under label flipping); both make a bar
    ``centre - k x spread`` lenient for exactly the candidates it is meant for. Dropping the
    values already ``cut`` spreads out on the bad side and measuring again takes most of that
    pull away; in a clean audit it drops only the honest tail beyond ``cut`` (2.3 % of Gaussian
    values at 2), which narrows the spread by a few per cent. (NaN, NaN) without 2 finite values."""
    a = finite(values)
    if a.size < 2:
        return math.nan, math.nan
    sign = -1.0 if bad == "low" else 1.0
    med = float(np.median(a))
    spread = max(good_side_spread(a, bad), floor)
    kept = a[sign * (a - med) <= cut * spread] if spread > 0 else a
    if kept.size >= 2:
        med = float(np.median(kept))
        spread = max(good_side_spread(kept, bad), floor)
    return med, spread


def skewed_spread(values: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """(median, spread) of non-negative scores whose honest values are like ``|noise|`` (a
    half-normal: many near 0, a long right tail): the spread is the larger of Qn and the
    half-normal scale that has this median, ``median / 0.6745``. The Qn or MAD alone of such
    scores is small when most are near 0, and an honest tail value would fail.

    Median and Qn are taken over the **distinct** values, as :func:`good_side_spread` does:
    identical scores (copies of one model) count once. Colluders sending one model several
    times (ALIE's ``mean - z std``) otherwise raise the median by their number alone, and the
    bar with it (``median / 0.6745``: 1.6x the honest scale at 30 % copies above the honest
    values). Honest models are never identical, so clean audits are unchanged."""
    a = np.unique(finite(values))
    if a.size == 0:
        return math.nan, math.nan
    med = float(np.median(a))
    qn = qn_scale(a)
    return med, max(qn if math.isfinite(qn) else 0.0, abs(med) / 0.6745)


def accuracy_se(accuracy: float, n: int) -> float:
    """Standard error of the *difference* of two models' accuracies measured on the same ``n``
    samples, at most: ``sqrt(2 p (1 - p) / n)`` with the Laplace estimate
    ``p = (accuracy n + 1) / (n + 2)`` (never 0, so a perfect score on 4 samples still has a
    bar). Fewer samples give a wider bar."""
    if n <= 0 or not math.isfinite(accuracy):
        return math.inf
    p = (accuracy * n + 1) / (n + 2)
    return math.sqrt(2 * p * (1 - p) / n)


def balanced_accuracy_se(accuracy: Sequence[float] | np.ndarray, counts: Sequence[int] | np.ndarray) -> float:
    """Standard error of the *difference* of two models' class-balanced accuracies (the mean
    over ``C`` classes of the per-class accuracies ``accuracy[c]``, each measured on
    ``counts[c]`` of the same samples), at most: ``sqrt(sum_c 2 p_c (1 - p_c) / n_c) / C``
    with Laplace estimates ``p_c`` as :func:`accuracy_se` (the accuracy's error on ``C`` x the
    harmonic mean of the counts). A class the auditor holds a single sample of weighs as much
    as any other and so widens the bar most. ``inf`` without classes."""
    n = np.asarray(counts, dtype=np.float64)
    a = np.asarray(accuracy, dtype=np.float64)
    keep = (n > 0) & np.isfinite(a)
    if not keep.any():
        return math.inf
    n, a = n[keep], a[keep]
    p = (a * n + 1) / (n + 2)
    return float(math.sqrt(float(np.sum(2 * p * (1 - p) / n))) / len(n))


def log_mean_se(n: int) -> float:
    """Standard error of the log of a mean loss over ``n`` samples, taking the per-sample
    losses' coefficient of variation as 1 (an exponential distribution; cross-entropy losses
    are at least as dispersed): ``1 / sqrt(n)``."""
    return math.inf if n <= 0 else 1 / math.sqrt(n)


def share_se(share: float | np.ndarray, n: int) -> float | np.ndarray:
    """Binomial standard error of a share measured on ``n`` inputs (Laplace estimate, as
    :func:`accuracy_se`)."""
    if n <= 0:
        return math.inf
    p = (np.asarray(share) * n + 1) / (n + 2)
    return np.sqrt(p * (1 - p) / n)


#: One-sided 99 % quantiles of Student's t by degrees of freedom (larger: interpolated to the
#: normal's 2.326).
_T99 = {1: 31.82, 2: 6.965, 3: 4.541, 4: 3.747, 5: 3.365, 6: 3.143, 7: 2.998, 8: 2.896, 9: 2.821, 10: 2.764,
        12: 2.681, 15: 2.602, 20: 2.528, 30: 2.457, 60: 2.390}
_Z99 = 2.326


def small_sample_factor(m: int) -> float:
    """How much wider a bar estimated from ``m`` candidates must be than one from infinitely
    many, for the same false-alarm rate: the prediction interval's ``t_{0.99, m-1} / z_{0.99}
    x sqrt(1 + 1/m)`` (1.0 as m grows; 3.45 at m = 3, 1.13 at m = 18). 1.0 for m < 2 (no
    candidate spread is used then)."""
    if m < 2:
        return 1.0
    dof = m - 1
    keys = sorted(_T99)
    if dof >= keys[-1]:
        t = _Z99 + (_T99[keys[-1]] - _Z99) * keys[-1] / dof
    else:
        lo = max(k for k in keys if k <= dof)
        hi = min(k for k in keys if k >= dof)
        t = _T99[lo] if lo == hi else _T99[lo] + (_T99[hi] - _T99[lo]) * (dof - lo) / (hi - lo)
    return t / _Z99 * math.sqrt(1 + 1 / m)


def typical_distance(dist: np.ndarray) -> float:
    """The median over ``n`` models of each one's median distance to the others (``dist``: their
    (n, n) distances; NaN entries are left out): how far apart models of this set typically lie.
    A median of medians: a set of models far off must be half of the others to inflate it, and a
    cluster of near-copies must be more than half of the others to shrink it (a copy's median
    distance is to the models outside its cluster as long as they are the majority). NaN with
    fewer than 2 models."""
    d = np.asarray(dist, dtype=np.float64)
    n = d.shape[0]
    if n < 2:
        return math.nan
    off = d[~np.eye(n, dtype=bool)].reshape(n, n - 1)
    if np.isfinite(off).all():  # the common case in one call (the same values as row by row)
        return float(np.median(np.median(off, axis=1)))
    rows = [float(np.median(r[np.isfinite(r)])) for r in off if np.isfinite(r).any()]
    return float(np.median(rows)) if rows else math.nan


def copy_groups(sq_dist: np.ndarray, share: float = NEAR_COPY) -> np.ndarray:
    """For each of ``n`` models (``sq_dist``: their (n, n) squared distances), the index of the
    model it counts as: itself, or the first member of its group of near-copies.

    A group is a set of models all within ``share`` x :func:`typical_distance` of each other:
    complete linkage, greedy in index order, so a chain of models, each close to the next, does
    not join models that are far apart (colluders placed between honest models cannot merge
    those). Why: the detectors' medians are safe up to half the candidates, the spreads measured
    around them are not: a cluster of near-copies just under half of an audit (Mimic with a little
    noise) makes every spread its own width and every honest model an outlier (issue 22, 45 %
    Mimic with noise: 60.8 % of the honest updates voted down). Counted once, the cluster is one
    value among the honest ones. Neither the median pairwise distance (distant attackers inflate it
    from 29 % of the models) nor the median nearest-neighbour distance (Mimic's cluster holds the
    copied honest model too: half of the models at 45 % attackers) would do as the scale."""
    d2 = np.asarray(sq_dist, dtype=np.float64)
    n = d2.shape[0]
    out = np.arange(n)
    if n < 3:
        return out
    dist = np.sqrt(np.maximum(d2, 0.0))
    scale = typical_distance(dist)
    if not math.isfinite(scale):
        return out
    # near[g] says which models lie within the bar of model g, read as the pair test always read
    # it (row j, column g: distances from a Gram need not be exactly symmetric); NaN compares False
    near = np.ascontiguousarray((dist <= share * scale).T)
    free = np.ones(n, dtype=bool)
    # greedy in index order, one row operation per member instead of a Python test per pair (an
    # auditor's ~470 candidates at N = 1000 took 110k pair tests: a tenth of its judging): the
    # first free model after the last member that lies within the bar of every member so far
    # joins; a model passed over failed a member, so it can never join later
    for i in range(n):
        if not free[i]:
            continue
        free[i] = False
        joinable = near[i] & free
        while True:
            j = int(joinable.argmax())
            if not joinable[j]:
                break
            out[j] = i
            free[j] = False
            joinable &= near[j]
            joinable[j] = False
    return out
