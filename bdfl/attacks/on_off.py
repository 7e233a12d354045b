"""``on_off``: behave honestly to build reputation, then attack (periodically).

Wraps any other attack (``inner`` with ``inner_params``). Round ``r`` (0-based) is *on* iff
``r >= on_after`` and, when ``period > 0``, ``(r - on_after) % period < on_rounds``.
In off rounds the peer is fully honest (clean data, honest update, honest vote). With a
data-poisoning inner attack (``label_flip``, ``backdoor``) ``poison_data`` returns the
poisoned shard for the *on* rounds only: build the peer's client with
:func:`bdfl.attacks.attacker_client`, which trains on the clean shard in off rounds.
From trust/reputation systems: Sun et al. 2006, "Defense of trust management
vulnerabilities in distributed networks" (IEEE Comm. Mag.).
"""

from __future__ import annotations

from typing import Any

from bdfl.attacks import (
    ATTACKS,
    Attack,
    AttackContext,
    AttackError,
    NDArrays,
    Param,
    VoteContext,
    integer,
    register,
)


@register
class OnOff(Attack):
    name = "on_off"
    summary = "wrap another attack: honest for on_after rounds, then on (for on_rounds of every period)"
    paper = "Sun et al. 2006 (IEEE Communications Magazine)"
    PARAMS = {
        "inner": Param("sign_flip", lambda v: isinstance(v, str), "the name of another attack"),
        "inner_params": Param({}, lambda v: isinstance(v, dict), "a dict of the inner attack's parameters"),
        "on_after": integer(0, default=5, doc="first round (0-based) that can be on"),
        "period": integer(0, default=0, doc="0: on for good after on_after; else cycle length"),
        "on_rounds": integer(1, default=1, doc="on rounds at the start of each period"),
    }

    def _validate(self) -> None:
        if self.inner == self.name:
            raise AttackError("attack 'on_off': 'inner' cannot be on_off itself")
        inner_names = ", ".join(sorted(n for n in ATTACKS if n not in (self.name, "none")))
        if self.inner not in ATTACKS:
            raise AttackError(f"attack 'on_off': unknown inner attack '{self.inner}'", fix=f"use one of: {inner_names}",
                              param="inner")
        if self.inner == "none":  # its "attackers" would be honest peers counted as attackers
            raise AttackError("attack 'on_off': inner attack 'none' never attacks", fix=f"use one of: {inner_names}",
                              param="inner")
        if self.period and self.on_rounds > self.period:
            raise AttackError(f"attack 'on_off': on_rounds ({self.on_rounds}) must be <= period ({self.period})")
        params: dict[str, Any] = dict(self.inner_params)
        if self.collude:
            params.setdefault("collude", True)
        try:
            self.inner_attack: Attack = ATTACKS[self.inner](**params)
        except AttackError as exc:  # the field at fault is inside inner_params
            raise AttackError(exc.message, fix=exc.fix, param=f"inner_params.{exc.param}" if exc.param else "inner_params") from None

    # capabilities follow the inner attack
    @property
    def poisons_data(self) -> bool:
        return self.inner_attack.poisons_data

    @property
    def poisons_update(self) -> bool:
        return self.inner_attack.poisons_update

    @property
    def colludes(self) -> bool:
        return self.inner_attack.colludes

    @property
    def needs_honest_updates(self) -> bool:  # type: ignore[override]
        return self.inner_attack.needs_honest_updates

    @property
    def trains(self) -> bool:  # type: ignore[override]
        return self.inner_attack.trains

    @property
    def data_poisoning_varies(self) -> bool:
        """A data-poisoning inner attack is on in some rounds only (unless it is on from
        round 0 for good): the peer needs a clean client for the off rounds
        (:func:`bdfl.attacks.attacker_client`)."""
        always_on = self.on_after == 0 and (self.period == 0 or self.on_rounds >= self.period)
        return self.inner_attack.poisons_data and not always_on

    def active(self, round: int) -> bool:  # noqa: A002
        if round < self.on_after:
            return False
        if self.period == 0:
            return True
        return (round - self.on_after) % self.period < self.on_rounds

    def poison_data(self, X, y, rng, *, num_classes=None):  # noqa: ANN001, ANN201
        return self.inner_attack.poison_data(X, y, rng, num_classes=num_classes)

    def poison_update(self, ctx: AttackContext) -> NDArrays:
        return self.inner_attack.poison_update(ctx)

    def abstains(self, round: int) -> bool:  # noqa: A002
        return self.active(round) and self.inner_attack.abstains(round)

    def claimed_samples(self, trained: int) -> int:
        """The inner attack's claim: the peer asks only in rounds it is on (off, it states what it trained)."""
        return self.inner_attack.claimed_samples(trained)

    def vote(self, ctx: VoteContext | AttackContext, candidate_is_attacker: bool, honest_verdict: bool) -> bool:
        if not self.active(ctx.round):
            return bool(honest_verdict)
        return self.inner_attack.vote(ctx, candidate_is_attacker, honest_verdict)



