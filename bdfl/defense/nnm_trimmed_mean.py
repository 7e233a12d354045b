"""Nearest Neighbour Mixing, then a trimmed mean cutting f a side (Allouah et al. 2023,
"Fixing by Mixing"). Settings: ``[defense.nnm_trimmed_mean] malicious`` (f; -1 = the
attackers assumed). No audit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bdfl.defense.aggregate import nnm_trimmed_mean
from bdfl.defense.strategy import Strategy, assumed_malicious, check_count
from bdfl.types import NDArrays

__all__ = ["NNMTrimmedMean"]


@dataclass(frozen=True)
class NNMTrimmedMean(Strategy):
    """NNM + trimmed mean with f = ``num_malicious``, capped at ``n - 1`` for small candidate sets."""

    name = "nnm_trimmed_mean"
    summary = "nearest-neighbour mixing + trimmed mean, Allouah et al. 2023"
    num_malicious: int = 0

    def __post_init__(self) -> None:
        check_count(self.name, "num_malicious", self.num_malicious, 0)

    @classmethod
    def from_config(cls, defense: Any, num_attackers: int = 0) -> NNMTrimmedMean:
        return cls(num_malicious=assumed_malicious(defense.nnm_trimmed_mean.malicious, num_attackers))

    def aggregate(self, updates: Sequence[NDArrays], weights: Sequence[float] | None = None) -> NDArrays:
        return nnm_trimmed_mean(updates, min(self.num_malicious, len(updates) - 1))
