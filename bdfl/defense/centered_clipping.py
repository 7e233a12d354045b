"""Centered clipping (Karimireddy, He & Jaggi 2021) around the peer's own model (the first
update: in decentralised learning a peer's own model is its natural centre), after bucketing
(Karimireddy, He & Jaggi 2022). Settings: ``[defense.centered_clipping] bucket_size,
iterations, tau`` (tau 0 = the median distance from the own model). No audit.

Without an outlier it is the mean: with ``tau`` 0 every bucket lies within the radius of the
centre once the first step has moved it off the own model, so from the second iteration on the
result is the mean of the bucket means (FedAvg where the buckets are equal: 4 models in buckets of
2, or ``bucket_size`` 1; ``tests/defense/test_centered_clipping.py``). It clips only models (or
buckets) farther out than the models' median distance from the own model."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bdfl.defense.aggregate import AggregationError, centered_clipping
from bdfl.defense.strategy import Strategy, check_count
from bdfl.types import NDArrays

__all__ = ["CenteredClipping"]


@dataclass(frozen=True)
class CenteredClipping(Strategy):
    """``v <- v + mean_i clip(b_i - v, tau)`` for ``iterations`` steps from the own model, over
    buckets ``b_i`` of ``bucket_size`` updates (seeded permutation, ``seed``); ``tau`` None =
    the updates' median distance from the own model."""

    name = "centered_clipping"
    summary = "centered clipping around the own model after bucketing (s=2), Karimireddy et al. 2021/2022"
    bucket_size: int = 2
    iterations: int = 3
    tau: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        check_count(self.name, "bucket_size", self.bucket_size, 1)
        check_count(self.name, "iterations", self.iterations, 1)
        if self.tau is not None and not self.tau > 0:
            raise AggregationError(f"{self.name}: tau must be > 0 or None, got {self.tau!r}")

    @classmethod
    def from_config(cls, defense: Any, num_attackers: int = 0) -> CenteredClipping:
        t = defense.centered_clipping
        return cls(bucket_size=t.bucket_size, iterations=t.iterations, tau=t.tau or None)

    def aggregate(self, updates: Sequence[NDArrays], weights: Sequence[float] | None = None) -> NDArrays:
        return centered_clipping(updates, tau=self.tau, iterations=self.iterations,
                                 bucket_size=self.bucket_size, seed=self.seed)
