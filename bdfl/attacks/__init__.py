"""Poisoning behaviours of malicious peers: base class, hooks and registry.

An :class:`Attack` has four optional hooks. The peer/runner layer calls them as follows
(see docs/attacks.md):

1. ``poison_data(X, y, rng, num_classes=C) -> (X, y)`` — **once**, on the attacker's
   *training* shard before its client is built (the validation shard it audits with
   stays clean). Only needed when ``attack.poisons_data``; time-varying attacks
   (``on_off``) need a second client on the clean shard for their honest rounds:
   :func:`attacker_client` builds the right client for any attack (one client, or a
   :class:`RoundSwitchingClient` that trains on the clean shard in off rounds).
2. ``poison_update(ctx) -> NDArrays`` — every round in which ``attack.active(round)``,
   after local training, on the attacker's trained parameters; the result is what the
   attacker publishes. Use :func:`attacker_update`, which applies the ``active`` gate.
   When ``attack.trains`` is False (free-rider) local training may be skipped and
   ``ctx.trained`` set to the reference parameters.
3. ``vote(ctx, candidate_is_attacker, honest_verdict) -> bool`` — when the attacker sits
   on an audit committee: its vote on one candidate given the verdict the honest audit
   rule produced. Default: the honest verdict. With ``collude=True`` (a parameter every
   attack accepts; ``colluding_auditors=True`` is an accepted alias) it accepts fellow
   attackers and rejects honest peers — only in rounds where the attack is active.
4. ``active(round) -> bool`` — whether the attack is on in ``round`` (0-based); when off
   the attacker behaves exactly like an honest peer (clean data, honest update, honest vote).

:class:`AttackContext` carries what an attacker knows in a round. ``honest_updates`` is
the *omniscient-attacker* assumption of ALIE (Baruch et al. 2019) and IPM (Xie et al.
2020): colluding attackers know this round's honest models. In simulation the runner
passes them (it must then train honest peers first); on real hosts it is normally empty
and those attacks fall back to estimates (documented per attack).

Attacks are built by name with :func:`make_attack`, which validates every parameter.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from bdfl.defense.aggregate import rounded_on_cast
from bdfl.errors import BDFLError
from bdfl.plugins import register_class
from bdfl.types import NDArrays

__all__ = [
    "ATTACKS",
    "Attack",
    "AttackContext",
    "AttackError",
    "NDArrays",
    "Param",
    "VoteContext",
    "RoundSwitchingClient",
    "attacker_client",
    "attacker_update",
    "attacker_vote",
    "boolean",
    "cast_like",
    "choice",
    "describe_attacks",
    "integer",
    "make_attack",
    "number",
    "register",
]


class AttackError(BDFLError):
    """Unknown attack name or an attack parameter outside its allowed range; ``param``: the
    parameter at fault, when one is (a config error then names ``attack.params.<param>``)."""

    def __init__(self, message: str, fix: str | None = None, *, param: str | None = None) -> None:
        super().__init__(message, fix=fix)
        self.param = param


# --------------------------------------------------------------------------- #
# Parameter specs
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Param:
    """One attack parameter: default, validity check, and a human description of the allowed range."""

    default: Any
    check: Callable[[Any], bool] = field(repr=False)
    allowed: str
    doc: str = ""


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(v)


def number(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False, hi_open: bool = False,
           default: Any, doc: str = "", optional: bool = False) -> Param:
    """A real-number parameter in [lo, hi] (open ends with lo_open / hi_open)."""
    lo_s = "-inf" if lo is None else f"{lo:g}"
    hi_s = "inf" if hi is None else f"{hi:g}"
    allowed = f"a number in {'(' if lo_open or lo is None else '['}{lo_s}, {hi_s}{')' if hi_open or hi is None else ']'}"
    if optional:
        allowed += " or left out (None)"

    def check(v: Any) -> bool:
        if v is None:
            return optional
        if not _is_num(v):
            return False
        if lo is not None and (v < lo or (lo_open and v == lo)):
            return False
        return not (hi is not None and (v > hi or (hi_open and v == hi)))

    return Param(default, check, allowed, doc)


def integer(lo: int | None = None, hi: int | None = None, *, default: Any, doc: str = "", optional: bool = False) -> Param:
    """An integer parameter in [lo, hi]."""
    allowed = f"an integer >= {lo}" if hi is None else f"an integer in [{lo}, {hi}]"
    if optional:
        allowed += " or left out (None)"

    def check(v: Any) -> bool:
        if v is None:
            return optional
        return _is_int(v) and (lo is None or v >= lo) and (hi is None or v <= hi)

    return Param(default, check, allowed, doc)


def choice(*values: Any, default: Any, doc: str = "") -> Param:
    return Param(default, lambda v: v in values, "one of " + ", ".join(repr(v) for v in values), doc)


def boolean(default: bool, doc: str = "") -> Param:
    return Param(default, lambda v: isinstance(v, bool), "true or false", doc)


# --------------------------------------------------------------------------- #
# Contexts
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class AttackContext:
    """What an attacker knows when it forms its update in one round.

    round: 0-based round number.
    trained: the attacker's parameters after local training this round (on its
        possibly poisoned data); for a non-training attacker, the reference.
    reference: the attacker's parameters before local training this round.
    honest_updates: honest peers' trained parameters of this round, known to colluding
        attackers (omniscient assumption of ALIE / IPM); may be empty.
    received: models the attacker received from its neighbours last round; may be empty.
    rng: the attacker's own random generator (seeded by the runner).
    num_peers / num_attackers: n and f of the experiment (ALIE derives z from them).
    honest_steps: the local steps an epoch each of ``honest_updates`` claims (its sample
        count on chain, :func:`bdfl.defense.audit.claimed_steps`), NaN where unknown; empty
        when not known. The audit's no-work test credits small claims (audit-aware attacks).
    own_steps: the steps the attacker's own claimed sample count implies (NaN: unknown).
    """

    round: int
    trained: NDArrays
    reference: NDArrays
    honest_updates: Sequence[NDArrays] = ()
    received: Sequence[NDArrays] = ()
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    num_peers: int | None = None
    num_attackers: int | None = None
    honest_steps: Sequence[float] = ()
    own_steps: float = math.nan


@dataclass(frozen=True)
class VoteContext:
    """An attacking auditor's view of one vote: the round, and optionally who is judged."""

    round: int
    candidate: int | str | None = None


# --------------------------------------------------------------------------- #
# Base class
# --------------------------------------------------------------------------- #


def _copy(params: Sequence[np.ndarray]) -> NDArrays:
    return [np.array(a, copy=True) for a in params]


def cast_like(values: Sequence[np.ndarray], like: Sequence[np.ndarray]) -> NDArrays:
    """Cast computed arrays back to the dtypes/shapes of ``like`` (an attack's update must keep the
    model's: the client contract), rounded first where aggregation rounds
    (:func:`bdfl.defense.aggregate.rounded_on_cast`)."""
    out = []
    for v, r in zip(values, like):
        dtype = np.asarray(r).dtype
        v = np.asarray(v)
        if rounded_on_cast(dtype) and v.dtype.kind == "f":
            v = np.rint(v)
        out.append(v.astype(dtype, copy=False).reshape(np.shape(r)))
    return out


class Attack:
    """Base class: an honest peer. Subclasses override the hooks they need.

    Class attributes: ``name`` (registry key), ``summary``, ``paper`` (source paper),
    ``PARAMS`` (name -> :class:`Param`). Every attack also accepts ``collude``
    (bool, default False): vote to accept attackers and reject honest peers.
    """

    name: ClassVar[str] = "base"
    summary: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    PARAMS: ClassVar[dict[str, Param]] = {}
    COMMON_PARAMS: ClassVar[dict[str, Param]] = {
        "collude": boolean(False, "as an auditor, accept attackers' updates and reject honest ones"),
    }
    #: whether the attacker runs local training at all (False: free-rider)
    trains: ClassVar[bool] = True
    #: whether poison_update uses ctx.honest_updates (the runner should supply them)
    needs_honest_updates: ClassVar[bool] = False

    #: accepted alternative spellings of parameters (alias -> name)
    ALIASES: ClassVar[dict[str, str]] = {"colluding_auditors": "collude"}

    def __init__(self, **params: Any) -> None:
        spec = self.param_specs()
        for alias, real in self.ALIASES.items():
            if alias in params:
                if real in params and params[real] != params[alias]:
                    raise AttackError(f"attack '{self.name}': '{alias}' and '{real}' given with different values")
                params[real] = params.pop(alias)
        for key in params:
            if key not in spec:
                raise AttackError(
                    f"attack '{self.name}' has no parameter '{key}'",
                    fix=f"parameters of '{self.name}': {', '.join(spec)}", param=key,
                )
        values = {k: p.default for k, p in spec.items()}
        values.update(params)
        for key, value in params.items():
            if not spec[key].check(value):
                raise AttackError(
                    f"attack '{self.name}': parameter '{key}' = {value!r} is invalid; allowed: {spec[key].allowed}", param=key,
                )
        self.params: dict[str, Any] = values
        for key, value in values.items():
            setattr(self, key, value)
        self._validate()

    @classmethod
    def param_specs(cls) -> dict[str, Param]:
        return {**cls.PARAMS, **cls.COMMON_PARAMS}

    def _validate(self) -> None:
        """Cross-parameter checks (override; raise AttackError)."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"

    # ---- capabilities ---------------------------------------------------- #

    @property
    def poisons_data(self) -> bool:
        return type(self).poison_data is not Attack.poison_data

    @property
    def poisons_update(self) -> bool:
        return type(self).poison_update is not Attack.poison_update

    @property
    def colludes(self) -> bool:
        return bool(self.params.get("collude", False))

    @property
    def data_poisoning_varies(self) -> bool:
        """True when the attack poisons data in some rounds only (``on_off`` around a data
        attack): its peer must then train on the clean shard in the off rounds."""
        return False

    # ---- hooks ----------------------------------------------------------- #

    def active(self, round: int) -> bool:  # noqa: A002 - "round" is the protocol's term
        """Whether the attack is on in ``round`` (0-based). Default: always."""
        return True

    def abstains(self, round: int) -> bool:  # noqa: A002
        """Whether, as an auditor in ``round``, it casts no vote at all (lazy_auditor). Default: False."""
        return False

    def poison_data(
        self, X: np.ndarray, y: np.ndarray, rng: np.random.Generator, *, num_classes: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return a poisoned copy of the attacker's training shard. Default: unchanged."""
        return X, y

    def poison_update(self, ctx: AttackContext) -> NDArrays:
        """Return the parameters to publish this round. Default: the trained parameters."""
        return ctx.trained

    def claimed_samples(self, trained: int) -> int:
        """The sample count it states on chain with its update, having trained on ``trained``
        samples (0 for a non-training attacker). Default: the truth."""
        return trained

    def vote(self, ctx: VoteContext | AttackContext, candidate_is_attacker: bool, honest_verdict: bool) -> bool:
        """The attacker's audit vote (True = accept). Default: the honest verdict;
        with ``collude=True`` and while :meth:`active` in ``ctx.round``: accept attackers,
        reject honest peers. (Any ``ctx`` with a ``round`` attribute works.)"""
        if self.colludes and self.active(ctx.round):
            return bool(candidate_is_attacker)
        return bool(honest_verdict)


def attacker_update(attack: Attack, ctx: AttackContext) -> NDArrays:
    """``attack.poison_update(ctx)`` when the attack is active in ``ctx.round``, else ``ctx.trained``."""
    if not attack.active(ctx.round):
        return ctx.trained
    shapes = [np.shape(a) for a in ctx.trained]
    for what, models in (("honest_updates", ctx.honest_updates), ("received", ctx.received)):
        for k, m in enumerate(models):  # else a raw NumPy broadcast error deep in the attack
            if [np.shape(a) for a in m] != shapes:
                raise AttackError(f"attack '{attack.name}': {what}[{k}] has array shapes {[np.shape(a) for a in m]}, "
                                  f"the attacker's model {shapes}")
    out = attack.poison_update(ctx)
    if len(out) != len(ctx.trained) or any(np.shape(a) != np.shape(b) for a, b in zip(out, ctx.trained)):
        raise AttackError(f"attack '{attack.name}' returned parameters of the wrong shapes")
    return list(out)


def attacker_vote(attack: Attack, ctx: VoteContext | AttackContext, candidate_is_attacker: bool, honest_verdict: bool) -> bool:
    """``attack.vote(...)`` when the attack is active in ``ctx.round``, else the honest verdict."""
    if not attack.active(ctx.round):
        return bool(honest_verdict)
    return bool(attack.vote(ctx, candidate_is_attacker, honest_verdict))


class RoundSwitchingClient:
    """A client for an attacker whose data poisoning is switched on and off by round.

    Wraps two clients built identically (same seed, same validation split) except for
    the training shard: ``fit`` trains ``poisoned`` in rounds where ``attack.active``
    is True and ``clean`` otherwise (``config["server_round"]`` - 1: the chain's 0-based
    round), so an off round is bit-for-bit what an honest peer with the same seed and data
    would compute. ``evaluate`` and ``get_parameters`` use the clean client (the
    validation split is clean in both). Any other attribute is the clean client's.
    A ``fit`` without a ``round`` counts this client's own fit calls (0, 1, ...).
    """

    def __init__(self, clean: Any, poisoned: Any, attack: Attack) -> None:
        self.clean = clean
        self.poisoned = poisoned
        self.attack = attack
        self._fits = 0

    def client_for(self, round: int) -> Any:  # noqa: A002
        return self.poisoned if self.attack.active(round) else self.clean

    def fit(self, parameters: NDArrays, config: dict[str, Any]) -> Any:
        rnd = int(config["server_round"]) - 1 if "server_round" in config else int(config.get("round", self._fits))  # 0-based
        self._fits += 1
        return self.client_for(rnd).fit(parameters, config)

    def evaluate(self, parameters: NDArrays, config: dict[str, Any]) -> Any:
        return self.clean.evaluate(parameters, config)

    def get_parameters(self, config: dict[str, Any]) -> NDArrays:
        return self.clean.get_parameters(config)

    def __getattr__(self, name: str) -> Any:
        if name in ("clean", "poisoned", "attack", "_fits"):
            raise AttributeError(name)
        return getattr(self.clean, name)


def attacker_client(
    attack: Attack,
    make_client: Callable[[tuple[np.ndarray, np.ndarray]], Any],
    train: tuple[np.ndarray, np.ndarray],
    rng: np.random.Generator,
    *,
    num_classes: int | None = None,
) -> Any:
    """The client an attacking peer trains with.

    ``make_client((X, y))`` must build the peer's client on a training shard (same seed
    and validation split every call). An attack that does not poison data gets the
    clean client; one that always poisons gets a client on ``attack.poison_data(...)``;
    one whose data poisoning varies by round (``on_off`` around ``label_flip``,
    ``backdoor``...) gets a :class:`RoundSwitchingClient` that trains on the clean shard
    in its off rounds — exactly like an honest peer.
    """
    X, y = train
    bind = getattr(attack, "bind_client", None)
    if callable(bind):  # the adaptive attacker audits with a client on its own (clean) data
        bind(make_client((X, y)))
    if not attack.poisons_data:
        return make_client((X, y))
    poisoned = attack.poison_data(X, y, rng, num_classes=num_classes)
    if not attack.data_poisoning_varies:
        return make_client(poisoned)
    return RoundSwitchingClient(make_client((X, y)), make_client(poisoned), attack)


# --------------------------------------------------------------------------- #
# Registry
# --------------------------------------------------------------------------- #

ATTACKS: dict[str, type[Attack]] = {}


def register(cls: type[Attack]) -> type[Attack]:
    """Class decorator: add an attack (an :class:`Attack` subclass with a ``name``) to :data:`ATTACKS`
    (a plugin's too: docs/extending.md)."""
    return register_class(ATTACKS, cls, Attack, "attack")


def make_attack(name: str, **params: Any) -> Attack:
    """Build the attack registered as ``name``; unknown names and bad parameters raise AttackError."""
    try:
        cls = ATTACKS[name]
    except (KeyError, TypeError):
        raise AttackError(f"unknown attack '{name}'", fix=f"use one of: {', '.join(sorted(ATTACKS))}") from None
    return cls(**params)


def describe_attacks() -> str:
    """One line per registered attack with its parameters and defaults."""
    lines = []
    for name in sorted(ATTACKS):
        cls = ATTACKS[name]
        ps = ", ".join(f"{k}={p.default!r}" for k, p in cls.param_specs().items())
        lines.append(f"{name}: {cls.summary} [{ps}]")
    return "\n".join(lines)


# Populate the registry (modules import the base class from this package).
from bdfl.attacks import (  # noqa: E402
    adaptive,
    alie,
    backdoor,
    band_backdoor,
    colluding_auditor,
    dba,
    dissensus,
    edge_case,
    fang,
    free_rider,
    gaussian_noise,
    ipm,
    label_flip,
    lazy_auditor,
    mimic,
    min_max,
    min_sum,
    none,
    on_off,
    optimal,
    scaling,
    sign_flip,
)
