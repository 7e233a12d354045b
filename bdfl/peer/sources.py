"""Which closed-round updates a peer may aggregate, and with which weights.

One rule for the simulated peers (:meth:`bdfl.experiment.orchestrator.Orchestrator._aggregation_inputs`)
and ``bdfl peer`` (:meth:`bdfl.peer.standalone.StandalonePeer._aggregation_plan`). Under
``bdfl``: updates approved on chain whose revealed votes are clear enough
(``defense.max_reject_share``, :func:`bdfl.learning.aggregation.clear_approval`), weighted by
on-chain reputation (times the capped on-chain sample count with ``defense.weighting =
"reputation_samples"``, :func:`bdfl.learning.aggregation.update_weight`), from the overlay
neighbours topped up to ``overlay.min_sources``. Under a baseline: every submission, weight 1,
neighbours only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AggregationRule:
    """``usable``: peer -> ``0x`` update hash of the submissions it may aggregate;
    ``weight(peer)``: that peer's aggregation weight (also for a peer's own model);
    ``min_sources``: the argument for :meth:`bdfl.net.overlay.Overlay.aggregation_sources`."""

    usable: dict[str, str]
    weight: Callable[[str], float]
    min_sources: int


def aggregation_rule(cfg: Any, subs: Iterable[Any], reputation: Mapping[str, float]) -> AggregationRule:
    """The rule for a closed round's submissions ``subs`` (:class:`bdfl.chain.protocol.Submission`)
    under config ``cfg`` (its ``defense`` and ``overlay`` tables); ``reputation``: peer ->
    on-chain reputation in [0, 1] (0 for a peer not in it)."""
    from bdfl.chain.protocol import Outcome
    from bdfl.learning.aggregation import clear_approval, update_weight

    subs = list(subs)
    bdfl = cfg.defense.name == "bdfl"
    if not bdfl:
        return AggregationRule({s.peer: "0x" + s.update_hash.hex() for s in subs}, lambda _a: 1.0, 0)
    share = cfg.defense.max_reject_share
    weighting = cfg.defense.weighting
    samples = {s.peer: s.num_samples for s in subs}  # capped at maxSamples by the contract
    usable = {s.peer: "0x" + s.update_hash.hex() for s in subs
              if s.outcome == Outcome.APPROVED and clear_approval(s.accepts, s.rejects, share)}

    def weight(a: str) -> float:
        return update_weight(reputation.get(a, 0.0), samples.get(a, 1), weighting)

    return AggregationRule(usable, weight, cfg.overlay.min_sources)
