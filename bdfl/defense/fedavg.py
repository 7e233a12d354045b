"""FedAvg (McMahan et al. 2017): the weighted average of every update a peer receives
(weights: the caller's, e.g. sample counts; uniform when none are given). No audit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bdfl.defense.aggregate import weighted_average
from bdfl.defense.strategy import Strategy
from bdfl.types import NDArrays

__all__ = ["FedAvg"]


@dataclass(frozen=True)
class FedAvg(Strategy):
    """Weighted average, no audit, no robustness."""

    name = "fedavg"
    summary = "weighted average (weights = sample counts, or uniform when none are given), McMahan et al. 2017"
    uses_weights = True

    def aggregate(self, updates: Sequence[NDArrays], weights: Sequence[float] | None = None) -> NDArrays:
        return weighted_average(updates, weights)
