"""Geometric median (Pillutla, Kakade & Harchaoui 2022, RFA) by smoothed Weiszfeld iterations.
Settings: ``[defense.geometric_median] max_iter, tol``. No audit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bdfl.defense.aggregate import AggregationError, geometric_median
from bdfl.defense.strategy import Strategy, check_count
from bdfl.types import NDArrays

__all__ = ["GeometricMedian"]


@dataclass(frozen=True)
class GeometricMedian(Strategy):
    """The point minimising the sum of Euclidean distances to the updates (breakdown point 1/2)."""

    name = "geometric_median"
    summary = "geometric median (smoothed Weiszfeld), Pillutla et al. 2022 (RFA)"
    max_iter: int = 100
    tol: float = 1e-7

    def __post_init__(self) -> None:
        check_count(self.name, "max_iter", self.max_iter, 1)
        if not self.tol > 0:
            raise AggregationError(f"{self.name}: tol must be > 0, got {self.tol!r}")

    @classmethod
    def from_config(cls, defense: Any, num_attackers: int = 0) -> GeometricMedian:
        t = defense.geometric_median
        return cls(max_iter=t.max_iter, tol=t.tol)

    def aggregate(self, updates: Sequence[NDArrays], weights: Sequence[float] | None = None) -> NDArrays:
        return geometric_median(updates, max_iter=self.max_iter, tol=self.tol)
