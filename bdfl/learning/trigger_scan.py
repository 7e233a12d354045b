"""Trigger scan: does a candidate model send stamped inputs to one class?

A pixel-trigger backdoor (BadNets, Gu et al. 2017; in federated learning Bagdasaryan et al.
2020) teaches a model that a small square patch means "class t", while it keeps its
accuracy on clean inputs, so the quality tests cannot see it, and its parameter move looks
like that of an honest peer whose data is skewed towards class t. What does differ is the
model's *behaviour on stamped inputs*: stamp the patch on any image and the backdoored
model answers t.

The auditor cannot know the trigger, so it tries square stamps of side ``size`` (at the
inputs' maximum value) at every position of a grid over the image, on its own inputs
(:func:`auditor_inputs`), and measures for every position ``p`` and class ``c`` the share
of inputs the model does not put in ``c`` when clean but does once stamped at ``p``.
A candidate's **trigger excess** is the largest amount by which that share exceeds the
larger of the auditor's own model's share and the candidates' median share, at the same
position and class: a patch that flips many inputs in every model (it hides a stroke the
digit needs) gives no excess; one that flips them in this candidate only does. And a
trigger is local: only classes whose excess is above 0.5 at no more than ``max_spread`` of
the positions count (a barely trained model biased towards one class flips stamped inputs
there from anywhere). The audit rejects a candidate whose excess is above
``AuditRule.trigger_limit``.

This is a Neural-Cleanse-like check (Wang et al. 2019) by exhaustive search over a small
family of triggers instead of by optimisation. It sees square, solid patches of about the
scanned size; blended, distributed (DBA) or semantic triggers are outside that family.

The scan needs two optional capabilities of the auditor's client, beyond Flower's
``NumPyClient``: ``predict(parameters, X) -> labels`` and ``audit_inputs() -> X`` (the
auditor's own inputs, as images ``(N, [C,] H, W)``). A client without them, or with
non-image inputs, is not scanned (:func:`supports_scan`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from bdfl.types import NDArrays

__all__ = ["auditor_inputs", "flip_shares", "grid_positions", "localised_excess", "stamp", "supports_scan",
           "trigger_excess"]


def supports_scan(client: Any) -> bool:
    """Whether ``client`` offers ``predict`` and ``audit_inputs`` (see the module docstring)."""
    return callable(getattr(client, "predict", None)) and callable(getattr(client, "audit_inputs", None))


def auditor_inputs(client: Any, max_inputs: int) -> np.ndarray | None:
    """The first ``max_inputs`` of the client's own inputs, or None when they are not images."""
    X = np.asarray(client.audit_inputs())
    if X.ndim < 3 or len(X) == 0:
        return None
    return X[:max_inputs]


def grid_positions(length: int, size: int, grid: int) -> list[int]:
    """Offsets of a ``size``-long stamp along an axis of ``length``: every offset when there
    are at most ``grid`` of them, else ``grid`` evenly spaced ones, both ends included."""
    last = length - size
    if last < 0:
        return []
    if last + 1 <= grid:
        return list(range(last + 1))
    return sorted({int(round(x)) for x in np.linspace(0, last, grid)})


def stamp(X: np.ndarray, size: int, grid: int, value: float) -> np.ndarray:
    """Every input of ``X`` (N, [C,] H, W) with a ``size`` x ``size`` square of ``value``
    at each grid position: shape (P, N, ...) for P positions (all channels stamped)."""
    H, W = X.shape[-2], X.shape[-1]
    out = []
    for i in grid_positions(H, size, grid):
        for j in grid_positions(W, size, grid):
            Xp = np.array(X, copy=True)
            Xp[..., i:i + size, j:j + size] = value
            out.append(Xp)
    return np.stack(out) if out else np.zeros((0, *X.shape), dtype=X.dtype)


def flip_shares(clean: np.ndarray, stamped: np.ndarray, num_classes: int) -> np.ndarray:
    """(P, num_classes): for each stamp position and class c, the share of the inputs not
    predicted c when clean that are predicted c when stamped (0 where all were c)."""
    clean = np.asarray(clean)
    stamped = np.asarray(stamped)
    out = np.zeros((stamped.shape[0], num_classes))
    for c in range(num_classes):
        others = clean != c
        if others.any():
            out[:, c] = (stamped[:, others] == c).mean(axis=1)
    return out


def trigger_excess(
    client: Any,
    reference_params: NDArrays,
    candidates: Sequence[Any],
    valid: Sequence[bool],
    *,
    size: int = 2,
    grid: int = 8,
    max_inputs: int = 128,
    min_candidates: int = 3,
    max_spread: float = 1.0,
) -> list[float]:
    """Each candidate's trigger excess (module docstring) on the auditor's inputs; NaN for
    invalid candidates, and for all when the client cannot be scanned. The median share
    counts only with at least ``min_candidates`` valid candidates; only classes flipped at
    no more than ``max_spread`` of the positions count (:func:`localised_excess`)."""
    nan = [math.nan] * len(candidates)
    if not supports_scan(client):
        return nan
    X = auditor_inputs(client, max_inputs)
    if X is None:
        return nan
    stamped = stamp(X, size, grid, float(X.max()))
    if len(stamped) == 0:
        return nan
    flat = stamped.reshape(-1, *X.shape[1:])  # every stamped input, position-major

    def predictions(params: Any) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(client.predict(list(params), X)), np.asarray(client.predict(list(params), flat))

    own_clean, own_stamped = predictions(reference_params)
    preds = {i: predictions(c) for i, (c, ok) in enumerate(zip(candidates, valid)) if ok}
    # classes are the labels any model predicts here: enough to compare shares
    num_classes = 1 + int(max([own_clean.max(), own_stamped.max(), *(max(a.max(), b.max()) for a, b in preds.values())]))
    P = stamped.shape[0]
    own = flip_shares(own_clean, own_stamped.reshape(P, len(X)), num_classes)
    shares = {i: flip_shares(a, b.reshape(P, len(X)), num_classes) for i, (a, b) in preds.items()}
    bar = own
    if len(shares) >= min_candidates:
        bar = np.maximum(own, np.median(np.stack(list(shares.values())), axis=0))
    return [localised_excess(shares[i] - bar, max_spread) if i in shares else math.nan for i in range(len(candidates))]


def localised_excess(excess: np.ndarray, max_spread: float, level: float = 0.5) -> float:
    """The largest entry of ``excess`` (P positions x classes) in a class whose excess is
    above ``level`` at no more than ``max_spread`` of the positions (0 when no class is).

    A trigger is local: stamped where the backdoor expects it, inputs go to the target;
    elsewhere they do not. A barely trained model biased towards one class can send
    stamped inputs there from many positions; that is not a trigger (measured on digits:
    the honest candidates that reached an excess above 0.9 in rounds 1-2 did so at a
    median 14-27 % of the 49 positions, backdoored ones at 6 %)."""
    if excess.size == 0:
        return math.nan
    spread = (excess > level).mean(axis=0)
    local = spread <= max_spread
    return float(excess[:, local].max()) if local.any() else 0.0
