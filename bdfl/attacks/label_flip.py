"""``label_flip``: data poisoning by relabelling the attacker's training shard.

Modes (``num_classes`` = C):

* ``"reverse"`` (default): y -> C - 1 - y (Fang et al. 2020, "Local model poisoning
  attacks to Byzantine-robust FL"; Tolpegin et al. 2020 use the same all-label variant
  as a baseline);
* ``"shift"``: y -> (y + 1) mod C;
* ``"targeted"``: only ``source`` -> ``target`` (Tolpegin et al. 2020, "Data poisoning
  attacks against federated learning systems");
* ``"permutation"``: y -> ``mapping[y]`` for a given permutation ``mapping``, or a
  random derangement drawn from the attacker's rng when ``mapping`` is None.

``fraction`` of the eligible samples (chosen with the rng) are relabelled; 1.0 = all.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bdfl.attacks import Attack, AttackError, Param, choice, integer, number, register


def _valid_mapping(v: Any) -> bool:
    if v is None:
        return True
    if not isinstance(v, (list, tuple)) or not all(isinstance(x, int) and not isinstance(x, bool) for x in v):
        return False
    return sorted(v) == list(range(len(v)))


@register
class LabelFlip(Attack):
    name = "label_flip"
    summary = "relabel the training shard (y -> C-1-y, shift, targeted source->target, or a permutation)"
    paper = "Tolpegin et al. 2020 (ESORICS); Fang et al. 2020 (USENIX Security)"
    PARAMS = {
        "mode": choice("reverse", "shift", "targeted", "permutation", default="reverse"),
        "source": integer(0, default=None, optional=True, doc="targeted mode: label to flip"),
        "target": integer(0, default=None, optional=True, doc="targeted mode: label it becomes"),
        "mapping": Param(None, _valid_mapping, "None or a permutation of 0..C-1 (list of ints)"),
        "fraction": number(0, 1, lo_open=True, default=1.0, doc="share of eligible samples relabelled"),
        "num_classes": integer(2, default=None, optional=True, doc="C; default: given by the runner"),
    }

    def _validate(self) -> None:
        if self.mode == "targeted":
            if self.source is None or self.target is None:
                raise AttackError("attack 'label_flip': mode 'targeted' needs parameters 'source' and 'target'")
            if self.source == self.target:
                raise AttackError("attack 'label_flip': 'source' and 'target' must differ")

    def label_map(self, num_classes: int, rng: np.random.Generator) -> np.ndarray:
        """The label mapping as an array ``m`` with ``y_poisoned = m[y]``."""
        C = num_classes
        if self.mode == "reverse":
            return np.arange(C)[::-1].copy()
        if self.mode == "shift":
            return (np.arange(C) + 1) % C
        if self.mode == "targeted":
            if max(self.source, self.target) >= C:
                raise AttackError(f"attack 'label_flip': source/target must be < num_classes = {C}")
            m = np.arange(C)
            m[self.source] = self.target
            return m
        if self.mapping is not None:
            if len(self.mapping) != C:
                raise AttackError(f"attack 'label_flip': 'mapping' has {len(self.mapping)} entries, need {C}")
            return np.asarray(self.mapping, dtype=np.int64)
        while True:  # random derangement: no label keeps its class
            m = rng.permutation(C)
            if not np.any(m == np.arange(C)):
                return m

    def poison_data(self, X, y, rng, *, num_classes=None):  # noqa: ANN001, ANN201
        y = np.asarray(y)
        C = self.num_classes or num_classes or (int(y.max()) + 1 if len(y) else 2)
        if len(y) and y.max() >= C:
            raise AttackError(f"attack 'label_flip': label {int(y.max())} >= num_classes {C}")
        mapping = self.label_map(C, rng)
        eligible = np.flatnonzero(mapping[y] != y)
        k = int(round(self.fraction * len(eligible)))
        chosen = eligible if k == len(eligible) else np.sort(rng.choice(eligible, size=k, replace=False))
        y_new = y.copy()
        y_new[chosen] = mapping[y[chosen]]
        return X, y_new
