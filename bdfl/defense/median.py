"""Coordinate-wise median (Yin et al. 2018) of every update a peer receives. No audit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bdfl.defense.aggregate import coordinate_median
from bdfl.defense.strategy import Strategy
from bdfl.types import NDArrays

__all__ = ["Median"]


@dataclass(frozen=True)
class Median(Strategy):
    """Coordinate-wise median; for an even count, the mean of the two middle values."""

    name = "median"
    summary = "coordinate-wise median, Yin et al. 2018"

    def aggregate(self, updates: Sequence[NDArrays], weights: Sequence[float] | None = None) -> NDArrays:
        return coordinate_median(updates)
