"""BDFL's audited aggregation (``defense.name = "bdfl"``): a peer aggregates only updates the
on-chain audit approved, weighted by their authors' on-chain reputation (or reputation x
the capped on-chain sample count), and of those only clear approvals.

The selection is the caller's (``bdfl.peer.sources``: approved on chain, :func:`clear_approval`
with ``defense.bdfl.max_reject_share`` over the votes that count under ``defense.bdfl.dissent_limit``,
weights by :func:`update_weight` with ``defense.bdfl.weighting``); :class:`Audited` then averages
the peer's own model with them by those weights.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bdfl.config import check_defense_setting
from bdfl.defense.aggregate import AggregationError, merge_copies, weighted_average
from bdfl.defense.backdoor_clip import CLIPS, clip_models
from bdfl.defense.strategy import Strategy
from bdfl.errors import ConfigError
from bdfl.types import NDArrays

__all__ = ["Audited", "WEIGHTINGS", "clear_approval", "update_weight"]


#: How ``bdfl`` weighs an approved update (``defense.bdfl.weighting``).
WEIGHTINGS = ("reputation", "reputation_samples")


def clear_approval(accepts: int, rejects: int, max_reject_share: float = 1.0) -> bool:
    """Whether an update approved on chain with these revealed votes may be aggregated:
    at most ``max_reject_share`` of its votes rejected it (``defense.bdfl.max_reject_share``;
    1 = every approved update, 0 = unanimous approvals only).

    Why: a majority of auditors approves an attack that each honest auditor detects only
    some of the time (8-18 % of the votes for reversed updates, docs/learning.md). The
    chain's verdict (reputation, slashing) still needs its supermajority; this only keeps
    contested updates out of a peer's model. An honest update loses a neighbour's weight
    for a round when one auditor falsely rejects it, never reputation or stake.
    """
    if not (math.isfinite(max_reject_share) and 0 <= max_reject_share <= 1):
        raise AggregationError(f"max_reject_share must lie in [0, 1], got {max_reject_share!r}")
    if accepts < 0 or rejects < 0:
        raise AggregationError(f"bad vote counts: {accepts} accepts, {rejects} rejects")
    votes = accepts + rejects
    return votes == 0 or rejects <= max_reject_share * votes


def update_weight(reputation: float, num_samples: int, weighting: str = "reputation") -> float:
    """Aggregation weight of one approved update under ``bdfl``.

    ``reputation``: its author's on-chain reputation in [0, 1]; ``num_samples``: the sample
    count recorded with the submission on chain (self-reported, capped by the contract at
    ``maxSamples``, so a peer cannot buy weight by claiming more). ``"reputation"`` weighs by
    reputation alone; ``"reputation_samples"`` by reputation x capped sample count (FedAvg's
    weighting, damped by reputation). Never below 1e-6, so a model is never dropped by weight.
    """
    if weighting not in WEIGHTINGS:
        raise AggregationError(f"unknown weighting {weighting!r}; known: {', '.join(WEIGHTINGS)}")
    if not (math.isfinite(reputation) and reputation >= 0) or num_samples < 0:
        raise AggregationError(f"bad weight inputs: reputation {reputation!r}, samples {num_samples!r}")
    w = reputation * (num_samples if weighting == "reputation_samples" else 1)
    return max(float(w), 1e-6)


@dataclass(frozen=True)
class Audited(Strategy):
    """The weighted average of the peer's own model and the approved updates it was given
    (weights: the caller's, own first; see :func:`update_weight`; identical models count once,
    :func:`bdfl.defense.aggregate.merge_copies`), after the backdoor clip
    ``clip`` with ``clip_k`` (:mod:`bdfl.defense.backdoor_clip`; ``"off"``: none)."""

    name = "bdfl"
    summary = ("reputation-weighted average of the peer's own model and the audit-approved neighbour "
               "models; the caller passes the weights (own weight first)")
    audited = True
    uses_weights = True

    clip: str = "off"
    clip_k: float = 1.0

    def __post_init__(self) -> None:
        if self.clip not in CLIPS:
            raise AggregationError(f"bdfl: unknown clip {self.clip!r}; known: {', '.join(CLIPS)}")
        # checked here as the config checks it: built from Python, clip_k = -1 failed only at the
        # first aggregation of several models (an outside probe of the library)
        try:
            check_defense_setting("bdfl.clip_k", self.clip_k)
        except ConfigError as exc:
            raise AggregationError(f"bdfl: {exc.message}") from None

    @classmethod
    def from_config(cls, defense: Any, num_attackers: int = 0) -> Audited:
        return cls(clip=defense.bdfl.clip, clip_k=defense.bdfl.clip_k)

    def aggregate(self, updates: Sequence[NDArrays], weights: Sequence[float] | None = None) -> NDArrays:
        models, w = merge_copies(updates, weights)  # copies of one model count once (Mimic)
        return weighted_average(clip_models(models, self.clip, self.clip_k), w)
