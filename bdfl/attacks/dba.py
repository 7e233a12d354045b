"""``dba``: the distributed backdoor attack (Xie, Huang, Chen & Li, "DBA: Distributed Backdoor
Attacks against Federated Learning", ICLR 2020).

One global trigger is split into ``parts`` local triggers (:func:`bdfl.attacks.triggers.dba_masks`:
lines of ``trigger_size`` pixels, the paper's four bars in a 2 x 2 arrangement for
``parts = 4``, at ``position`` / ``corner``, default the top-left corner). Attacker number
``k`` (its rank among the attackers, handed over by the runner through :meth:`DBA.know_rank`;
without it a part drawn from the attacker's own rng) poisons its shard like ``backdoor`` but
stamps only part ``k mod parts``. No attacker ever trains on the global trigger; the attack
success rate is measured with the **full** global trigger (:meth:`DBA.triggered_test_set`),
as in the paper. Every other parameter is the ``backdoor`` attack's.
"""

from __future__ import annotations

import numpy as np

from bdfl.attacks import choice, integer, register
from bdfl.attacks.backdoor import Backdoor, triggered_with
from bdfl.attacks.triggers import CORNERS, dba_masks, global_mask, image_size, stamp, trigger_values


@register
class DBA(Backdoor):
    name = "dba"
    summary = "distributed backdoor: each attacker stamps one part of a global trigger; success measured with the whole"
    paper = "Xie et al. 2020, 'DBA: Distributed Backdoor Attacks against Federated Learning' (ICLR)"
    PARAMS = {
        **{k: v for k, v in Backdoor.PARAMS.items() if k not in ("shape", "blend_alpha", "corner")},
        "parts": integer(2, 9, default=4, doc="local triggers the global one is split into"),
        "corner": choice(*CORNERS, default="top_left", doc="corner of the global trigger (position = corner)"),
    }
    shape = "line"
    blend_alpha = 0.0

    def _validate(self) -> None:
        self.rank: int | None = None

    def know_rank(self, rank: int) -> None:
        """This attacker's position among the attackers (0, 1, ...): it stamps part ``rank mod parts``."""
        self.rank = int(rank)

    def part_masks(self, H: int, W: int) -> list[np.ndarray]:
        """The ``parts`` local trigger masks (their union is the global trigger)."""
        return dba_masks(H, W, parts=self.parts, size=self.trigger_size, position=self.position,
                         corner=self.corner, seed=self.seed)

    def mask(self, H: int, W: int) -> np.ndarray:
        """The global trigger."""
        return global_mask(self.part_masks(H, W))

    def part(self, rng: np.random.Generator | None = None) -> int:
        """Which local trigger this attacker stamps."""
        if self.rank is not None:
            return self.rank % self.parts
        return int((rng or np.random.default_rng(0)).integers(self.parts))

    def local_trigger(self, X: np.ndarray, part: int) -> np.ndarray:
        """Images ``X`` with local trigger ``part`` on."""
        mask = self.part_masks(*image_size(X))[part]
        return stamp(X, mask, trigger_values(X, mask, self.value, self.trigger_value))

    def poison_data(self, X, y, rng, *, num_classes=None):  # noqa: ANN001, ANN201
        part = self.part(rng)
        self._stamp = lambda Z: self.local_trigger(Z, part)  # noqa: E731 - poison with the local part only
        try:
            return super().poison_data(X, y, rng, num_classes=num_classes)
        finally:
            del self._stamp

    def trigger(self, X: np.ndarray) -> np.ndarray:
        """While poisoning: this attacker's local part; otherwise the global trigger."""
        local = getattr(self, "_stamp", None)
        if local is not None:
            return local(X)
        mask = self.mask(*image_size(X))
        return stamp(X, mask, trigger_values(X, mask, self.value, self.trigger_value))

    def triggered_test_set(self, X_test: np.ndarray, y_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Test samples of other classes with the **global** trigger, labelled with the target."""
        mask = self.mask(*image_size(X_test))
        return triggered_with(X_test, y_test, self.target_label,
                              lambda Z: stamp(Z, mask, trigger_values(Z, mask, self.value, self.trigger_value)))
