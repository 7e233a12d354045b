"""Krum (Blanchard et al. 2017): the one update with the smallest sum of squared distances
to its ``n - f - 2`` nearest others. Settings: ``[defense.krum] malicious`` (f; -1 = the
attackers assumed). No audit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bdfl.defense.aggregate import krum
from bdfl.defense.strategy import Strategy, assumed_malicious, check_count
from bdfl.types import NDArrays

__all__ = ["Krum"]


@dataclass(frozen=True)
class Krum(Strategy):
    """Krum with ``num_malicious`` = f; Byzantine-resilient for ``n >= 2f + 3``."""

    name = "krum"
    summary = "Krum, Blanchard et al. 2017"
    num_malicious: int = 0

    def __post_init__(self) -> None:
        check_count(self.name, "num_malicious", self.num_malicious, 0)

    @classmethod
    def from_config(cls, defense: Any, num_attackers: int = 0) -> Krum:
        return cls(num_malicious=assumed_malicious(defense.krum.malicious, num_attackers))

    def aggregate(self, updates: Sequence[NDArrays], weights: Sequence[float] | None = None) -> NDArrays:
        return krum(updates, self.num_malicious)
