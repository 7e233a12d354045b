"""Coordinate-wise beta-trimmed mean (Yin et al. 2018) of every update a peer receives.
Settings: ``[defense.trimmed_mean] beta``. No audit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bdfl.defense.aggregate import AggregationError, trimmed_mean
from bdfl.defense.strategy import Strategy
from bdfl.types import NDArrays

__all__ = ["TrimmedMean"]


@dataclass(frozen=True)
class TrimmedMean(Strategy):
    """Drop the ``floor(beta * n)`` largest and smallest values of each coordinate, average the rest."""

    name = "trimmed_mean"
    summary = "coordinate-wise beta-trimmed mean, Yin et al. 2018"
    beta: float = 0.2

    def __post_init__(self) -> None:
        if isinstance(self.beta, bool) or not isinstance(self.beta, (int, float)) or not 0 <= self.beta < 0.5:
            raise AggregationError(f"trimmed_mean: beta must lie in [0, 0.5), got {self.beta!r}")

    @classmethod
    def from_config(cls, defense: Any, num_attackers: int = 0) -> TrimmedMean:
        return cls(beta=defense.trimmed_mean.beta)

    def aggregate(self, updates: Sequence[NDArrays], weights: Sequence[float] | None = None) -> NDArrays:
        return trimmed_mean(updates, self.beta)
