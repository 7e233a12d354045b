"""Trigger geometry of the backdoor family (issue 22): where a trigger sits, what it looks
like, and how it is put on an image.

A trigger is a boolean **mask** over the image's last two axes (H, W) and the **values**
written where the mask is set (all channels):

* shape (:data:`SHAPES`): ``square`` (``size`` x ``size``), ``cross`` (a plus sign: the middle
  row and column of a ``size`` x ``size`` box), ``line`` (one row of ``size`` pixels);
* position (:data:`POSITIONS`): ``corner`` (the ``corner`` given), ``centre``, or ``random``
  (a position drawn once from ``seed``, the same for every image and every peer);
* value (:data:`VALUES`): ``fixed`` (``value``), ``max`` / ``min`` (the inputs' maximum /
  minimum), ``pattern`` (a checkerboard of the maximum and minimum).

``blended`` (Chen et al. 2017, "Targeted backdoor attacks ... using data poisoning") is not a
patch: the whole image becomes ``(1 - alpha) x + alpha p`` with ``p`` a fixed random image
(seeded) in the inputs' range (:func:`blend`).

DBA (Xie et al., ICLR'20) splits one global trigger into ``parts`` local ones:
:func:`dba_masks` gives the parts, whose union is the global trigger (:func:`global_mask`).
"""

from __future__ import annotations

import math

import numpy as np

from bdfl.attacks import AttackError

SHAPES = ("square", "cross", "line")
POSITIONS = ("corner", "centre", "random")
VALUES = ("fixed", "max", "min", "pattern")
CORNERS = ("bottom_right", "bottom_left", "top_right", "top_left")


def image_size(X: np.ndarray) -> tuple[int, int]:
    """(H, W) of images ``X`` (N, C, H, W) or (N, H, W); an AttackError for other inputs."""
    if np.ndim(X) < 3:
        raise AttackError(f"backdoor trigger needs image inputs (N, [C,] H, W), got shape {np.shape(X)}")
    return int(np.shape(X)[-2]), int(np.shape(X)[-1])


def _offset(H: int, W: int, h: int, w: int, position: str, corner: str, seed: int) -> tuple[int, int]:
    """Top-left (row, col) of an h x w box."""
    if h > H or w > W:
        raise AttackError(f"backdoor trigger of {h}x{w} pixels exceeds the image size {H}x{W}")
    if position == "centre":
        return (H - h) // 2, (W - w) // 2
    if position == "random":
        rng = np.random.default_rng([seed, H, W, h, w])
        return int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1))
    row = H - h if corner.startswith("bottom") else 0
    col = W - w if corner.endswith("right") else 0
    return row, col


def shape_box(shape: str, size: int) -> np.ndarray:
    """The shape's own mask in its bounding box."""
    if shape == "square":
        return np.ones((size, size), bool)
    if shape == "line":
        return np.ones((1, size), bool)
    if shape == "cross":
        box = np.zeros((size, size), bool)
        box[size // 2, :] = True
        box[:, size // 2] = True
        return box
    raise AttackError(f"unknown trigger shape {shape!r}; allowed: {', '.join(SHAPES)}")


def place(H: int, W: int, box: np.ndarray, position: str = "corner", corner: str = "bottom_right", seed: int = 0) -> np.ndarray:
    """An (H, W) mask with ``box`` placed at ``position``."""
    h, w = box.shape
    r, c = _offset(H, W, h, w, position, corner, seed)
    mask = np.zeros((H, W), bool)
    mask[r:r + h, c:c + w] = box
    return mask


def trigger_mask(H: int, W: int, *, shape: str = "square", size: int = 2, position: str = "corner",
                 corner: str = "bottom_right", seed: int = 0) -> np.ndarray:
    """The (H, W) mask of one patch trigger."""
    return place(H, W, shape_box(shape, size), position, corner, seed)


def dba_layout(parts: int, size: int, gap: int = 1) -> list[np.ndarray]:
    """DBA's global trigger in its bounding box, one mask per part: ``parts`` lines of
    ``size`` pixels on a grid of ``ceil(sqrt(parts))`` columns, ``gap`` pixels apart
    (the paper's four bars in a 2 x 2 arrangement for ``parts = 4``)."""
    cols = math.ceil(math.sqrt(parts))
    rows = math.ceil(parts / cols)
    h, w = rows * (1 + gap) - gap, cols * (size + gap) - gap
    out = []
    for k in range(parts):
        m = np.zeros((h, w), bool)
        r, c = divmod(k, cols)
        m[r * (1 + gap), c * (size + gap): c * (size + gap) + size] = True
        out.append(m)
    return out


def dba_masks(H: int, W: int, *, parts: int = 4, size: int = 2, position: str = "corner",
              corner: str = "top_left", seed: int = 0) -> list[np.ndarray]:
    """The ``parts`` local triggers of DBA as (H, W) masks (their union: :func:`global_mask`)."""
    return [place(H, W, box, position, corner, seed) for box in dba_layout(parts, size)]


def global_mask(masks: list[np.ndarray]) -> np.ndarray:
    """The union of local trigger masks."""
    return np.logical_or.reduce(masks)


def trigger_values(X: np.ndarray, mask: np.ndarray, mode: str = "fixed", value: float = 1.0) -> np.ndarray:
    """An (H, W) array of what the trigger writes (only read where ``mask``)."""
    H, W = mask.shape
    hi, lo = float(np.max(X)), float(np.min(X))
    if mode == "fixed":
        return np.full((H, W), float(value))
    if mode == "max":
        return np.full((H, W), hi)
    if mode == "min":
        return np.full((H, W), lo)
    if mode == "pattern":
        checker = (np.add.outer(np.arange(H), np.arange(W)) % 2 == 0)
        return np.where(checker, hi, lo)
    raise AttackError(f"unknown trigger value {mode!r}; allowed: {', '.join(VALUES)}")


def stamp(X: np.ndarray, mask: np.ndarray, values: np.ndarray) -> np.ndarray:
    """A copy of images ``X`` with ``values`` written where ``mask`` is set (all channels)."""
    X = np.array(X, copy=True)
    image_size(X)
    X[..., mask] = values[mask].astype(X.dtype)
    return X


def blend_pattern(X: np.ndarray, seed: int) -> np.ndarray:
    """A fixed random (H, W) image uniform in the inputs' range (the blended trigger)."""
    H, W = image_size(X)
    return np.random.default_rng([seed, 17, H, W]).uniform(float(np.min(X)), float(np.max(X)), size=(H, W))


def blend(X: np.ndarray, alpha: float, pattern: np.ndarray) -> np.ndarray:
    """``(1 - alpha) X + alpha pattern`` on every image and channel."""
    X = np.asarray(X)
    image_size(X)
    return ((1 - alpha) * X.astype(np.float64) + alpha * pattern).astype(X.dtype)
