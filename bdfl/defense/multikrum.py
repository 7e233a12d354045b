"""Multi-Krum (Blanchard et al. 2017): the plain mean of the ``multi_k`` updates with the best
Krum scores. Settings: ``[defense.multikrum] malicious`` (f; -1 = the attackers assumed) and
``keep`` (``multi_k``; 0 = ``n - f``). No audit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bdfl.defense.aggregate import krum
from bdfl.defense.strategy import Strategy, assumed_malicious, check_count
from bdfl.types import NDArrays

__all__ = ["MultiKrum"]


@dataclass(frozen=True)
class MultiKrum(Strategy):
    """Mean of the ``multi_k`` best Krum scores (None: ``n - num_malicious``, at least 1), capped at n."""

    name = "multikrum"
    summary = "Multi-Krum: average of the multi_k best Krum scores (default n - num_malicious)"
    num_malicious: int = 0
    multi_k: int | None = None

    def __post_init__(self) -> None:
        check_count(self.name, "num_malicious", self.num_malicious, 0)
        if self.multi_k is not None:
            check_count(self.name, "multi_k", self.multi_k, 1)

    @classmethod
    def from_config(cls, defense: Any, num_attackers: int = 0) -> MultiKrum:
        t = defense.multikrum
        return cls(num_malicious=assumed_malicious(t.malicious, num_attackers), multi_k=t.keep or None)

    def aggregate(self, updates: Sequence[NDArrays], weights: Sequence[float] | None = None) -> NDArrays:
        k = self.multi_k if self.multi_k is not None else max(1, len(updates) - self.num_malicious)
        return krum(updates, self.num_malicious, multi_k=min(k, len(updates)))
