"""Small models for the defense tests: rows of a matrix as two-array models."""

from __future__ import annotations

import numpy as np


def models(rows: np.ndarray) -> list[list[np.ndarray]]:
    """Each row of a (k, 6) matrix as a model of a (2,) and a (2, 2) float32 array."""
    return [[r[:2].astype(np.float32), r[2:].reshape(2, 2).astype(np.float32)] for r in rows]


def flat(m: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in m])


def model(rng: np.random.Generator, center: float = 0.0, scale: float = 1.0) -> list[np.ndarray]:
    return [
        (center + scale * rng.standard_normal((3, 4))).astype(np.float32),
        (center + scale * rng.standard_normal(5)).astype(np.float32),
    ]


def stack(ms: list[list[np.ndarray]], i: int) -> np.ndarray:
    return np.stack([m[i].astype(np.float64) for m in ms])


def honest_and_outliers(k: int = 7, f: int = 3, seed: int = 0, at: float = 50.0) -> np.ndarray:
    """``k`` honest rows around 1.0 (std 0.1), then ``f`` rows planted at ``at``."""
    rng = np.random.default_rng(seed)
    return np.vstack([1.0 + 0.1 * rng.standard_normal((k, 6)), np.full((f, 6), at)])
