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
from bdfl.defense.detectors import plugin_detector_class
from bdfl.defense.fedavg import FedAvg
from bdfl.defense.geometric_median import GeometricMedian
from bdfl.defense.krum import Krum
from bdfl.defense.median import Median
from bdfl.defense.multikrum import MultiKrum
from bdfl.defense.nnm_trimmed_mean import NNMTrimmedMean
from bdfl.defense.strategy import Strategy, build_strategy
from bdfl.defense.trimmed_mean import TrimmedMean
from bdfl.errors import BDFLError, ConfigError
from bdfl.plugins import register_class

__all__ = ["STRATEGIES", "Strategy", "check_defense", "defense_params", "make_strategy", "register", "strategy_class", "strategy_of"]

#: ``defense.name`` -> strategy class, the default (``bdfl``) first.
STRATEGIES: dict[str, type[Strategy]] = {
    s.name: s
    for s in (Audited, FedAvg, Krum, MultiKrum, Median, TrimmedMean, GeometricMedian, CenteredClipping, NNMTrimmedMean)
}


def register(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator: add a strategy (a :class:`Strategy` subclass with a ``name``) to
    :data:`STRATEGIES`, for a plugin (docs/extending.md). Its parameters come from
    ``[defense] params``; ``audited = True`` makes it combine only updates approved on chain."""
    if isinstance(cls, type) and "__dataclass_params__" not in cls.__dict__:
        # a subclass that is not a dataclass itself: its parameters are not fields, so the
        # peers rebuilt it from defense_params without them (an outside probe: scale 5 ran as 1)
        raise TypeError(f"register: strategy {cls.__name__} must be a frozen dataclass itself "
                        "(@dataclass(frozen=True) under @register): its fields are its parameters")
    return register_class(STRATEGIES, cls, Strategy, "defense")


def strategy_class(name: str) -> type[Strategy]:
    """The strategy class registered as ``name``; AggregationError naming the known ones."""
    if name not in STRATEGIES:
        raise AggregationError(f"unknown defense '{name}'", fix=f"use one of: {', '.join(STRATEGIES)}")
    return STRATEGIES[name]


def make_strategy(name: str, **params: Any) -> Strategy:
    """The strategy ``name`` with ``params`` (its dataclass fields; missing ones default)."""
    return build_strategy(strategy_class(name), params)


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


def check_defense(defense: Any, num_attackers: int = 0) -> type[Strategy]:
    """A validated ``[defense]`` table's names held to the registries (plugins imported first):
    the strategy, its parameters (``params`` only for a plugin's), the plugin detectors it names;
    ConfigError naming the field. What ``bdfl run`` checks before anything starts, and ``bdfl
    deploy`` before it fixes the policy's hash on chain (a typo there needed a new deployment)
    and ``bdfl peer`` before it joins. Returns the strategy's class."""
    if defense.name not in STRATEGIES:
        raise ConfigError("defense.name", f"unknown defense {defense.name!r}", ", ".join(STRATEGIES),
                          fix="a strategy of your own: list the module that registers it in plugins (docs/extending.md)")
    strategy = STRATEGIES[defense.name]
    if defense.params and getattr(strategy.from_config, "__func__", None) is not Strategy.from_config.__func__:
        raise ConfigError("defense.params", f"'{defense.name}' takes its settings from [defense.{defense.name}]",
                          fix="[defense] params is for a plugin's strategy")
    try:
        strategy_of(defense, num_attackers)
    except ConfigError:
        raise
    except BDFLError as exc:
        raise ConfigError("defense.params", exc.message, fix=exc.fix) from None
    for name in defense.detectors.plugins:
        plugin_detector_class(name)
    return strategy
