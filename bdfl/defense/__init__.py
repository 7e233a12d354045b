"""Defenses: how a peer decides what to aggregate and how.

One strategy per module (the interface: :class:`~bdfl.defense.strategy.Strategy`), each a
thin wrapper around a pure function of :mod:`bdfl.defense.aggregate`, each with its own
config table ``[defense.<name>]`` (validated in :mod:`bdfl.config`):

* ``bdfl`` (:mod:`~bdfl.defense.audited`) — only updates approved by the on-chain audit,
  weighted by reputation; the default;
* baselines without audit: ``fedavg``, ``krum``, ``multikrum``, ``median``,
  ``trimmed_mean``, ``geometric_median``, ``centered_clipping``, ``nnm_trimmed_mean``.

:data:`STRATEGIES` maps ``defense.name`` to its class; :func:`strategy_of` builds the one a
config names. This package sits above :mod:`bdfl.learning` and below :mod:`bdfl.peer`;
attacks may import it (an adaptive attacker runs the public policy).
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from bdfl.defense.aggregate import AggregationError
from bdfl.defense.audited import Audited
from bdfl.defense.centered_clipping import CenteredClipping
from bdfl.defense.fedavg import FedAvg
from bdfl.defense.geometric_median import GeometricMedian
from bdfl.defense.krum import Krum
from bdfl.defense.median import Median
from bdfl.defense.multikrum import MultiKrum
from bdfl.defense.nnm_trimmed_mean import NNMTrimmedMean
from bdfl.defense.strategy import Strategy
from bdfl.defense.trimmed_mean import TrimmedMean
from bdfl.plugins import register_class

__all__ = ["STRATEGIES", "Strategy", "defense_params", "make_strategy", "register", "strategy_class", "strategy_of"]

#: ``defense.name`` -> strategy class, the default (``bdfl``) first.
STRATEGIES: dict[str, type[Strategy]] = {
    s.name: s
    for s in (Audited, FedAvg, Krum, MultiKrum, Median, TrimmedMean, GeometricMedian, CenteredClipping, NNMTrimmedMean)
}


def register(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator: add a strategy (a :class:`Strategy` subclass with a ``name``) to
    :data:`STRATEGIES`, for a plugin (docs/extending.md). Its parameters come from
    ``[defense] params``; ``audited = True`` makes it combine only updates approved on chain."""
    return register_class(STRATEGIES, cls, Strategy, "defense")


def strategy_class(name: str) -> type[Strategy]:
    """The strategy class registered as ``name``; AggregationError naming the known ones."""
    if name not in STRATEGIES:
        raise AggregationError(f"unknown defense '{name}'", fix=f"use one of: {', '.join(STRATEGIES)}")
    return STRATEGIES[name]


def make_strategy(name: str, **params: Any) -> Strategy:
    """The strategy ``name`` with ``params`` (its dataclass fields; missing ones default)."""
    cls = strategy_class(name)
    try:
        return cls(**params)
    except TypeError:
        known = ", ".join(f.name for f in fields(cls)) or "none"
        unknown = sorted(set(params) - {f.name for f in fields(cls)}) or sorted(params)  # else a value's type was wrong
        raise AggregationError(f"defense '{name}' has no parameter {', '.join(repr(p) for p in unknown)}",
                               fix=f"parameters of '{name}': {known}") from None


def strategy_of(defense: Any, num_attackers: int = 0) -> Strategy:
    """The strategy a validated ``[defense]`` table names, with its own table's settings;
    ``num_attackers``: the attackers a ``malicious = -1`` setting assumes (a simulation knows
    its count; ``bdfl peer`` passes 0). The one builder for ``bdfl run`` and ``bdfl peer``."""
    return strategy_class(defense.name).from_config(defense, num_attackers)


def defense_params(defense: Any, num_attackers: int = 0) -> dict[str, Any]:
    """:func:`strategy_of`'s parameters as a dict (``make_strategy(defense.name, **them)``
    rebuilds it): what a simulation hands its peers."""
    strategy = strategy_of(defense, num_attackers)
    return {f.name: getattr(strategy, f.name) for f in fields(strategy)}
