"""The interface every defense strategy implements (one strategy per module of
:mod:`bdfl.defense`, in the spirit of Flower's ``flwr.server.strategy``).

A strategy is a frozen dataclass whose fields are its parameters, resolved from its own
config table (``[defense.<name>]``, validated in :mod:`bdfl.config`) by
:meth:`Strategy.from_config`. It says whether it needs the on-chain audit (``audited``: it
combines only updates approved on chain, the caller selects them) and whether it takes a
weight per update (``uses_weights``), and :meth:`Strategy.aggregate` combines the models by a
pure function of :mod:`bdfl.defense.aggregate`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar, get_type_hints

import numpy as np

from bdfl.config import check_value
from bdfl.defense.aggregate import AggregationError, check_models
from bdfl.types import NDArrays

__all__ = ["Strategy", "assumed_malicious", "build_strategy", "check_count"]


@dataclass(frozen=True)
class Strategy(ABC):
    """How a peer combines its own model with the updates it may use."""

    #: the registry name (``defense.name``) and a one-line description
    name: ClassVar[str]
    summary: ClassVar[str]
    #: combines only updates approved by the on-chain audit (the caller passes only those)
    audited: ClassVar[bool] = False
    #: takes one weight per update (reputation, sample count); robust rules take none
    uses_weights: ClassVar[bool] = False

    @classmethod
    def from_config(cls, defense: Any, num_attackers: int = 0) -> Strategy:
        """This strategy with the parameters of a validated ``[defense]`` table (its own
        sub-table ``defense.<name>``). ``num_attackers``: the attackers a peer may assume
        where a setting says -1 (a simulation knows its count; ``bdfl peer`` passes 0).
        This default takes the dataclass fields from ``[defense] params`` (a plugin's strategy;
        the built-in ones with settings read their own table instead)."""
        return build_strategy(cls, dict(getattr(defense, "params", None) or {}))

    @abstractmethod
    def aggregate(self, updates: Sequence[NDArrays], weights: Sequence[float] | None = None) -> NDArrays:
        """Combine ``updates`` (at least one; the first is the aggregating peer's own model)
        into a new model with their shapes and dtypes. ``weights``: one per update, only for a
        strategy with ``uses_weights`` (None = uniform)."""

    def combine(self, own: NDArrays, others: Sequence[NDArrays], weights: Sequence[float] | None = None) -> NDArrays:
        """What a peer calls: its own model with the ``others`` it may use. ``weights`` (own
        first, ``1 + len(others)`` of them) only where ``uses_weights``. With no ``others``, a
        copy of ``own``."""
        models = [own, *others]
        check_models(models)
        if weights is not None:
            if not self.uses_weights:
                raise AggregationError(f"defense '{self.name}' does not take weights")
            if len(weights) != len(models):
                raise AggregationError(
                    f"{len(weights)} weights for {len(models)} models (own model first, then {len(others)} others)"
                )
        if not others:
            return [np.array(a, copy=True) for a in own]
        return self._checked(self.aggregate(models, None if weights is None else list(weights)), models)

    def _checked(self, out: Any, models: Sequence[NDArrays]) -> NDArrays:
        """``aggregate``'s result held to its contract: a list of arrays of the own model's count,
        shapes and dtypes, finite where every input was. A strategy of a plugin that broke it was
        blamed on the task's ``fit`` a round later, or ran on with NaN models to "completed"."""
        own = models[0]
        if not isinstance(out, (list, tuple)) or len(out) != len(own) or not all(isinstance(a, np.ndarray) for a in out):
            raise AggregationError(f"defense '{self.name}' returned {type(out).__name__} "
                                   f"{'of ' + str(len(out)) + ' entries ' if isinstance(out, (list, tuple)) else ''}"
                                   f"instead of a list of {len(own)} NumPy arrays (the model's)",
                                   fix="aggregate must return the model's arrays, like the updates it is given")
        for i, (a, ref) in enumerate(zip(out, own)):
            ref = np.asarray(ref)
            if a.shape != ref.shape or a.dtype != ref.dtype:
                raise AggregationError(f"defense '{self.name}' returned array {i} with shape {a.shape} and dtype {a.dtype}, "
                                       f"the model's is {ref.shape} {ref.dtype}",
                                       fix="return arrays of the updates' shapes and dtypes (bdfl.attacks.cast_like casts back)")
        if not all(np.isfinite(a).all() for a in out if a.dtype.kind in "fc") and \
                all(np.isfinite(np.asarray(a)).all() for m in models for a in m if np.asarray(a).dtype.kind in "fc"):
            raise AggregationError(f"defense '{self.name}' returned NaN or inf from finite models")
        return list(out)


def build_strategy(cls: type[Strategy], params: dict[str, Any]) -> Strategy:
    """``cls(**params)``, each parameter first held to the type its field declares (bool, int,
    float, str, as config fields are: a plugin's ``scale = "abc"`` failed with a NumPy traceback
    after the devnet started); an unknown parameter names the known ones."""
    try:
        hints = get_type_hints(cls)
    except Exception:  # noqa: BLE001 - an annotation its module cannot resolve: the strategy checks it
        hints = {}
    for key, value in params.items():
        if hints.get(key) in (bool, int, float, str):
            check_value(f"defense.params.{key}", value, hints[key])
    try:
        return cls(**params)
    except TypeError:
        known = ", ".join(f.name for f in fields(cls)) or "none"
        unknown = sorted(set(params) - {f.name for f in fields(cls)}) or sorted(params)  # else a value's type was wrong
        raise AggregationError(f"defense '{cls.name}' has no parameter {', '.join(repr(p) for p in unknown)}",
                               fix=f"parameters of '{cls.name}' ([defense] params for a plugin's): {known}") from None


def check_count(rule: str, field: str, value: Any, lo: int) -> None:
    """A strategy's integer parameter ``field`` must be an integer >= ``lo``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise AggregationError(f"{rule}: {field} must be an integer >= {lo}, got {value!r}")


def assumed_malicious(setting: int, num_attackers: int) -> int:
    """A ``malicious`` setting resolved: itself when >= 0, else (-1) the attackers assumed."""
    return setting if setting >= 0 else max(0, num_attackers)
