"""``trigger``: a stamp from a per-audit random family of triggers sends the auditor's inputs
to one class in this candidate, and not in the others.

A backdoor (BadNets, Gu et al. 2017; in FL Bagdasaryan et al. 2020; DBA, Xie et al. 2020)
keeps clean accuracy and moves like a skewed honest peer; what differs is its behaviour on
triggered inputs. The auditor cannot know the trigger, so every audit draws a **family** of
``patterns`` stamps from its own seed (:func:`trigger_family`): solid squares of varied size
and value (the input range's maximum or minimum) in the four corners (three sizes, in every
audit) and at random places (half of them in a corner),
checkerboard squares, distributed patterns of 2-4 small pieces (DBA's split trigger) and
full-image blends of a random pattern (``(1 - a) x + a p``, a in [0.1, 0.3]). An attacker who
knows the rule (it is public) still cannot know the stamps drawn in an audit.

For each stamp ``p`` and class ``c``, a model's *flip share* is the share of inputs not put in
``c`` when clean that are put in ``c`` once stamped (:func:`flip_shares`). A candidate's excess
over ``max(own model, median candidate)`` is taken, minus its own median excess over the
stamps (a model biased towards ``c`` sends stamped inputs there from every stamp; a trigger
acts on few), and its **score** is the largest such excess. **Threshold**: the candidates'
median score plus ``k x max(MAD spread of the scores, share_se)`` (the binomial error of a share
on the scanned inputs); with fewer than ``min_candidates`` scores the own model's zero score is
the centre. The bar is at least ``MAJORITY`` (0.5): a stamp that does not send most inputs
to its class is not a trigger, however tightly the other candidates agree. The finding states
the bar's own z, ``(bar - centre) / width`` (``z_bar``), so its :attr:`~.base.Finding.excess` is
how many times its bar out the score lies and a **lone** trigger failure needs corroboration
like any other (:func:`bdfl.defense.audit.rejecting`: about 1.24 times the bar, measured from the
centre, at 18 candidates). Conceded (issue 22, F3): a backdoor whose stamp flips just inside that
(a flip-share excess of about 0.62 when the bar is ``MAJORITY``) passes where nothing else is out;
before, 0.5 rejected it alone. Measured in exchange: honest MNIST reject votes 239 -> 160 of 5,760
(audit_rule_eval.py mirror, seeds 11 and 13), docs/results/robustness.md.

Cost: ``patterns x inputs`` predictions per candidate and for the auditor's own model (the
defaults, 16 x 64, are 1,024 predictions, a sixth of the earlier 2x2-stamp grid scan's 6,272).
Needs a client with ``predict(parameters, X)`` and image ``audit_inputs()``; otherwise not run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bdfl.defense.detectors.base import Detector, Evidence, Finding, TriggerEvidence, enough
from bdfl.defense.detectors.calibration import qn_scale, robust_centre_spread, share_se

#: A trigger must flip a class from this many stamps of the family (the score is that class's
#: REPEAT-th largest excess): a backdoor answers to related stamps, noise to one.
REPEAT = 2

#: A trigger decides the class: its stamps send more than this share of the inputs (beyond
#: what the other models do) to the target. A definition, not a tuned value: below it the
#: stamp does not control the model, whatever the candidates' spread.
MAJORITY = 0.5

__all__ = ["MAJORITY", "REPEAT", "Stamp", "TriggerDetector", "apply_stamp", "flip_shares", "scan", "trigger_family", "trigger_scores"]


@dataclass(frozen=True)
class Stamp:
    """One trigger of the family: ``mask`` (H, W) in [0, 1] (how much of ``pattern`` replaces the
    input at each pixel) and ``pattern`` (H, W), the stamped values."""

    kind: str
    mask: np.ndarray
    pattern: np.ndarray


def apply_stamp(X: np.ndarray, stamp: Stamp) -> np.ndarray:
    """Images ``X`` (N, [C,] H, W) with ``stamp`` applied (all channels)."""
    return (X * (1 - stamp.mask) + stamp.pattern * stamp.mask).astype(X.dtype, copy=False)


def _square(H: int, W: int, size: int, top: int, left: int) -> np.ndarray:
    m = np.zeros((H, W))
    m[top:top + size, left:left + size] = 1.0
    return m


def trigger_family(H: int, W: int, lo: float, hi: float, patterns: int, rng: np.random.Generator) -> list[Stamp]:
    """``patterns`` stamps for (H, W) images with values in [lo, hi]: first squares at ``hi`` in
    the four corners (the usual BadNets placement), of side ``s`` ~ min(H, W) / 7, 1.5s and 2s, then
    random draws of the kinds in the module docstring (side s-1 to 2s, random position, value
    ``hi`` or ``lo``)."""
    base = max(2, round(min(H, W) / 7))
    out: list[Stamp] = []
    full_hi = np.full((H, W), hi)
    for size in sorted({base, min((3 * base) // 2, min(H, W) // 2), min(2 * base, min(H, W) // 2)}):
        for top, left in ((H - size, W - size), (H - size, 0), (0, W - size), (0, 0)):
            out.append(Stamp("square", _square(H, W, size, top, left), full_hi))
    kinds = ("square", "square", "checker", "distributed", "blend")
    while len(out) < patterns:
        kind = kinds[int(rng.integers(len(kinds)))]
        size = int(rng.integers(max(1, base - 1), min(min(H, W) // 2, 2 * base) + 1))
        value = hi if rng.random() < 0.75 else lo
        corner = rng.random() < 0.5
        top = int(rng.choice([0, H - size])) if corner else int(rng.integers(0, H - size + 1))
        left = int(rng.choice([0, W - size])) if corner else int(rng.integers(0, W - size + 1))
        if kind == "square":
            out.append(Stamp(kind, _square(H, W, size, top, left), np.full((H, W), value)))
        elif kind == "checker":
            yy, xx = np.mgrid[0:H, 0:W]
            out.append(Stamp(kind, _square(H, W, size, top, left), np.where((yy + xx) % 2 == 0, hi, lo).astype(float)))
        elif kind == "distributed":  # 2-4 short bars near each other, as DBA splits one trigger
            mask = np.zeros((H, W))
            piece = max(1, size // 2)
            for _ in range(int(rng.integers(2, 5))):
                t = min(H - 1, max(0, top + int(rng.integers(-piece, piece + 1))))
                lft = min(W - 1, max(0, left + int(rng.integers(-piece, piece + 1))))
                mask[t:t + 1, lft:lft + 2 * piece] = 1.0
            out.append(Stamp(kind, mask, np.full((H, W), value)))
        else:  # blend a random pattern into the whole image
            alpha = float(rng.uniform(0.1, 0.3))
            out.append(Stamp(kind, np.full((H, W), alpha), rng.uniform(lo, hi, size=(H, W))))
    return out[:patterns]


def flip_shares(clean: np.ndarray, stamped: np.ndarray, num_classes: int) -> np.ndarray:
    """(P, num_classes): for each stamp and class c, the share of the inputs not predicted c when
    clean that are predicted c when stamped (0 where all were c). ``stamped``: (P, N)."""
    clean = np.asarray(clean)
    stamped = np.asarray(stamped)
    classes = np.arange(num_classes)
    others = clean[:, None] != classes  # (N, C): the inputs not predicted c when clean
    flipped = ((stamped[:, :, None] == classes) & others).sum(axis=1)  # (P, C) counts
    n_others = others.sum(axis=0)
    # count / n: the value the per-class mean of booleans gives (exact integer sums), 0 where n = 0
    return np.where(n_others > 0, flipped / np.maximum(n_others, 1), 0.0)


def scan(
    predict: Callable[[Any, np.ndarray], np.ndarray],
    X: np.ndarray,
    own_params: Any,
    candidates: Sequence[Any],
    valid: Sequence[bool],
    family: Sequence[Stamp],
) -> TriggerEvidence | None:
    """Flip shares of the auditor's model and of every valid candidate on ``X`` stamped with each
    of ``family`` (None when ``X`` are not images or the family is empty)."""
    X = np.asarray(X)
    if X.ndim < 3 or len(X) == 0 or not family:
        return None
    flat = np.concatenate([apply_stamp(X, s) for s in family])  # stamp-major
    P, N = len(family), len(X)
    both = np.concatenate([X, flat])  # clean inputs first: one predict (one parameter load) per model

    def labels(params: Any) -> tuple[np.ndarray, np.ndarray]:
        out = np.asarray(predict(params, both))
        return out[:N], out[N:].reshape(P, N)

    own = labels(own_params)
    preds = {i: labels(c) for i, (c, ok) in enumerate(zip(candidates, valid)) if ok}
    num_classes = 1 + int(max([own[0].max(), own[1].max(), *(max(a.max(), b.max()) for a, b in preds.values())]))
    return TriggerEvidence(
        own=flip_shares(*own, num_classes),
        candidates=tuple(flip_shares(*preds[i], num_classes) if i in preds else None for i in range(len(candidates))),
        n_inputs=N,
    )


def trigger_scores(ev: TriggerEvidence, min_candidates: int, sample: np.ndarray | None = None) -> tuple[list[float], float]:
    """(per candidate: its localised excess, NaN when not scanned; the share the bar was taken at).
    ``sample[i]`` False: candidate i is left out of the median shares (a near-copy)."""
    shares = [s for i, s in enumerate(ev.candidates) if s is not None and (sample is None or sample[i])]
    bar = ev.own
    if len(shares) >= min_candidates:
        bar = np.maximum(ev.own, np.median(np.stack(shares), axis=0))
    scores = []
    for s in ev.candidates:
        if s is None:
            scores.append(math.nan)
            continue
        excess = s - bar
        local = excess - np.median(excess, axis=0, keepdims=True)  # what this stamp adds beyond any stamp
        # a trigger answers to related stamps (a corner square of two sizes, of several values):
        # the class's second-largest excess over the family; a one-off flip is noise
        scores.append(float(np.sort(local, axis=0)[-REPEAT].max()) if len(local) >= REPEAT else float(local.max()))
    return scores, float(np.median(bar))


class TriggerDetector(Detector):
    name = "trigger"
    evidence_family = "trigger"

    def judge(self, ev: Evidence) -> list[Finding | None]:
        if ev.trigger is None:
            return [None] * len(ev.valid)
        scores, typical = trigger_scores(ev.trigger, self.min_candidates, ev.sample)
        arr = np.where(ev.sample, np.asarray(scores), math.nan)
        centre, spread = robust_centre_spread(arr) if enough(arr, self.min_candidates) else (0.0, 0.0)
        spread = qn_scale(arr) if enough(arr, self.min_candidates) else 0.0
        width = max(spread, float(share_se(typical, ev.trigger.n_inputs)))
        bar = max(centre + self.k_for(ev) * width, MAJORITY)
        out: list[Finding | None] = []
        for s in scores:
            if math.isnan(s):
                out.append(None)
                continue
            failed = s > bar
            out.append(self.finding(s, bar, failed, f"a stamp flips {s:.2f} more of the inputs to one class than the "
                                                    f"other models {'>' if failed else '<='} calibrated {bar:.2f}",
                                    (s - centre) / width if width > 0 else math.nan,
                                    (bar - centre) / width if width > 0 else math.nan))
        return out
