"""``backdoor`` and ``model_replacement``: pixel-trigger backdoors, a family of triggers.

Data poisoning (BadNets, Gu et al. 2017; in FL: Bagdasaryan et al. 2020, Xie et al. 2020
"DBA"): ``poison_fraction`` of the attacker's training samples whose label is not
``target_label`` get the trigger (all channels) and are relabelled ``target_label``,
in place (the shard keeps its size; the rest stays clean so main-task accuracy holds).
The trigger (:mod:`bdfl.attacks.triggers`): ``shape`` square (default), cross or line of
``trigger_size`` pixels; ``position`` ``corner`` (``corner``, default bottom right),
``centre`` or ``random`` (fixed by ``seed``); ``value`` ``fixed`` (``trigger_value``, default
1.0), ``max`` / ``min`` of the inputs or ``pattern`` (checkerboard of both); or, with
``blend_alpha`` > 0, the blended trigger of Chen et al. 2017 (the whole image mixed with a
fixed random image: ``(1 - alpha) x + alpha p``). The default is the 2 x 2 square at 1.0 in
the bottom-right corner (the trigger the audit's scan looks for).

Update: ``reference + boost * (trained - reference)``. ``backdoor`` uses ``boost = 1``
(plain data poisoning); ``model_replacement`` (Bagdasaryan et al. 2020, "How to backdoor
federated learning") is the same with ``boost = 10`` by default — set it to the number
of models the victims average (their ``n / eta``) to replace the aggregate.

:func:`attack_success_rate` measures the backdoor: the share of triggered test samples
(true label != target) classified as the target. It works with any ``NumPyClient``:
it evaluates *accuracy* on the triggered samples labelled ``target_label``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from bdfl.attacks import Attack, AttackContext, AttackError, NDArrays, choice, integer, number, register
from bdfl.attacks.scaling import boost_update
from bdfl.attacks.triggers import CORNERS, POSITIONS, SHAPES, VALUES, blend, blend_pattern, image_size, stamp, trigger_mask, trigger_values


def apply_trigger(
    X: np.ndarray, *, size: int = 2, corner: str = "bottom_right", value: float = 1.0
) -> np.ndarray:
    """A copy of images ``X`` (N, C, H, W) or (N, H, W) with a square trigger stamped in ``corner``."""
    H, W = image_size(X)
    mask = trigger_mask(H, W, shape="square", size=size, position="corner", corner=corner)
    return stamp(X, mask, np.full((H, W), float(value)))


def triggered_test_set(
    X_test: np.ndarray,
    y_test: np.ndarray,
    *,
    target_label: int,
    trigger_size: int = 2,
    corner: str = "bottom_right",
    value: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """The test samples whose true label is not ``target_label``, with the trigger stamped on,
    all labelled ``target_label``: a model's accuracy on them is the attack success rate."""
    keep = np.asarray(y_test) != target_label
    if not keep.any():
        raise AttackError("attack_success_rate: every test sample already has the target label")
    X_trig = apply_trigger(np.asarray(X_test)[keep], size=trigger_size, corner=corner, value=value)
    return X_trig, np.full(int(keep.sum()), target_label, dtype=np.int64)


def triggered_with(X_test: np.ndarray, y_test: np.ndarray, target_label: int, trigger: Callable[[np.ndarray], np.ndarray]
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The test samples whose true label is not ``target_label`` with ``trigger`` applied, all
    labelled ``target_label`` (a model's accuracy on them is the attack success rate)."""
    keep = np.asarray(y_test) != target_label
    if not keep.any():
        raise AttackError("attack_success_rate: every test sample already has the target label")
    return trigger(np.asarray(X_test)[keep]), np.full(int(keep.sum()), target_label, dtype=np.int64)


def attack_success_rate(
    evaluate: Callable[[np.ndarray, np.ndarray], float] | None,
    X_test: np.ndarray,
    y_test: np.ndarray,
    *,
    target_label: int,
    trigger_size: int = 2,
    corner: str = "bottom_right",
    value: float = 1.0,
    task: Any = None,
    parameters: NDArrays | None = None,
    hparams: dict[str, Any] | None = None,
) -> float:
    """Share of triggered test samples with true label != ``target_label`` predicted as the target.

    Give either ``evaluate(X, y) -> accuracy`` or ``task`` (a :class:`bdfl.learning.task.Task`)
    plus ``parameters`` (evaluated through the task's own client).
    """
    X_trig, y_trig = triggered_test_set(X_test, y_test, target_label=target_label, trigger_size=trigger_size,
                                        corner=corner, value=value)
    if evaluate is None:
        if task is None or parameters is None:
            raise AttackError("attack_success_rate needs evaluate(X, y) or task and parameters")
        result = task.evaluator(X_trig, y_trig, hparams=hparams)(parameters)
        return float(result.accuracy)
    return float(evaluate(X_trig, y_trig))


@register
class Backdoor(Attack):
    name = "backdoor"
    summary = "pixel trigger (square / cross / line; corner, centre or random; fixed, max, min or pattern value; or blended) + relabel to target_label on a share of the shard; update boosted by boost"
    paper = "Gu et al. 2017 (BadNets); Bagdasaryan et al. 2020 (AISTATS); Xie et al. 2020 (DBA, ICLR)"
    PARAMS = {
        "target_label": integer(0, default=0),
        "poison_fraction": number(0, 1, lo_open=True, default=0.5, doc="share of non-target samples poisoned"),
        "trigger_size": integer(1, default=2, doc="side of the trigger's box in pixels"),
        "shape": choice(*SHAPES, default="square", doc="square, cross (plus sign) or line"),
        "position": choice(*POSITIONS, default="corner", doc="corner (see corner), centre, or random (fixed by seed)"),
        "corner": choice(*CORNERS, default="bottom_right"),
        "value": choice(*VALUES, default="fixed", doc="fixed (trigger_value), max / min of the inputs, pattern (checkerboard)"),
        "trigger_value": number(default=1.0, doc="pixel value of the trigger (value = fixed)"),
        "blend_alpha": number(0, 1, default=0.0, doc="> 0: blended trigger, the whole image mixed with a fixed random one"),
        "seed": integer(0, default=0, doc="fixes the random position and the blended pattern"),
        "boost": number(0, lo_open=True, default=1.0, doc="update multiplier (model replacement)"),
    }

    def mask(self, H: int, W: int) -> np.ndarray:
        """The (H, W) mask of this attack's patch trigger."""
        return trigger_mask(H, W, shape=self.shape, size=self.trigger_size, position=self.position,
                            corner=self.corner, seed=self.seed)

    def trigger(self, X: np.ndarray) -> np.ndarray:
        """Images ``X`` with this attack's trigger on (a copy)."""
        if self.blend_alpha > 0:
            return blend(X, self.blend_alpha, blend_pattern(X, self.seed))
        mask = self.mask(*image_size(X))
        return stamp(X, mask, trigger_values(X, mask, self.value, self.trigger_value))

    def poison_data(self, X, y, rng, *, num_classes=None):  # noqa: ANN001, ANN201
        y = np.asarray(y)
        if num_classes is not None and self.target_label >= num_classes:
            raise AttackError(
                f"attack '{self.name}': target_label {self.target_label} >= num_classes {num_classes}"
            )
        eligible = np.flatnonzero(y != self.target_label)
        k = int(round(self.poison_fraction * len(eligible)))
        chosen = np.sort(rng.choice(eligible, size=k, replace=False)) if k else np.zeros(0, dtype=np.int64)
        X_new = np.array(X, copy=True)
        y_new = y.copy()
        if k:
            X_new[chosen] = self.trigger(X_new[chosen])
            y_new[chosen] = self.target_label
        return X_new, y_new

    def poison_update(self, ctx: AttackContext) -> NDArrays:
        if self.boost == 1.0:
            return ctx.trained
        return boost_update(ctx, self.boost)

    def triggered_test_set(self, X_test: np.ndarray, y_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The test samples of other classes with this attack's trigger, labelled with its target:
        what the runner measures the attack success rate on (``bdfl.experiment.worker``)."""
        return triggered_with(X_test, y_test, self.target_label, self.trigger)

    def attack_success_rate(self, evaluate, X_test, y_test, *, task=None, parameters=None, hparams=None):  # noqa: ANN001, ANN201
        """Share of this attack's triggered test samples (:meth:`triggered_test_set`) classified as
        its target: ``evaluate(X, y) -> accuracy``, or ``task`` and ``parameters``."""
        X_trig, y_trig = self.triggered_test_set(X_test, y_test)
        if evaluate is None:
            if task is None or parameters is None:
                raise AttackError("attack_success_rate needs evaluate(X, y) or task and parameters")
            return float(task.evaluator(X_trig, y_trig, hparams=hparams)(parameters).accuracy)
        return float(evaluate(X_trig, y_trig))


@register
class ModelReplacement(Backdoor):
    name = "model_replacement"
    summary = "backdoor data + update boosted by boost (default 10) to replace the aggregate"
    paper = "Bagdasaryan et al. 2020, 'How to backdoor federated learning' (AISTATS)"
    PARAMS = {**Backdoor.PARAMS, "boost": number(0, lo_open=True, default=10.0, doc="update multiplier")}
