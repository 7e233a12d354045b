"""``edge_case``: the edge-case backdoor (Wang et al., "Attack of the Tails: Yes, You Really Can
Backdoor Federated Learning", NeurIPS 2020).

The attacker relabels inputs from the **tail** of the input distribution, which honest peers
rarely hold and so rarely correct: on MNIST the paper uses ARDIS sevens (European-style,
absent from MNIST) labelled as another class. Offline, BDFL makes the tail from the
attacker's own images of ``source_label``: rotated by ``angle`` degrees (and, with
``thin``, thinned by a grey erosion along the rows) — shapes the training data does not
contain. Those copies, labelled ``target_label``, are **added** to the attacker's shard
(Wang et al. mix the edge-case set with clean data; the upright originals keep their label,
so main-task accuracy holds). ``poison_fraction`` of its ``source_label`` images are used; an
attacker whose shard holds none trains honestly (non-IID shards can lack a class).

Attack success (:meth:`EdgeCase.triggered_test_set`, what the runner measures): the share of
the test images of ``source_label``, transformed the same way, classified as
``target_label``. Update: the trained model, boosted by ``boost`` (1 = plain data poisoning;
the paper also runs it with model replacement).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from bdfl.attacks import AttackError, integer, number, boolean, register
from bdfl.attacks.backdoor import Backdoor
from bdfl.attacks.triggers import image_size


def edge_transform(X: np.ndarray, angle: float, thin: bool = False) -> np.ndarray:
    """Images ``X`` rotated by ``angle`` degrees about their centre (background: the inputs'
    minimum) and, with ``thin``, grey-eroded along the rows (strokes one pixel narrower)."""
    X = np.asarray(X)
    image_size(X)
    lo = float(np.min(X)) if X.size else 0.0
    out = ndimage.rotate(X.astype(np.float64), angle, axes=(-2, -1), reshape=False, order=1, mode="constant", cval=lo)
    if thin:
        size = (1,) * (X.ndim - 1) + (2,)
        out = ndimage.grey_erosion(out, size=size, mode="constant", cval=lo)
    return out.astype(X.dtype)


@register
class EdgeCase(Backdoor):
    name = "edge_case"
    summary = "edge-case backdoor: rotated / thinned images of source_label, added to the shard labelled target_label"
    paper = "Wang et al. 2020, 'Attack of the Tails: Yes, You Really Can Backdoor Federated Learning' (NeurIPS)"
    PARAMS = {
        "source_label": integer(0, default=7, doc="class whose tail (transformed images) is relabelled"),
        "target_label": integer(0, default=1, doc="label the edge cases get"),
        "angle": number(-180, 180, default=45.0, doc="rotation of the edge cases, degrees"),
        "thin": boolean(False, "also thin the strokes (grey erosion along the rows)"),
        "poison_fraction": number(0, 1, lo_open=True, default=1.0, doc="share of the source_label images used"),
        "boost": number(0, lo_open=True, default=1.0, doc="update multiplier (model replacement)"),
    }

    def _validate(self) -> None:
        if self.source_label == self.target_label:
            raise AttackError(f"attack '{self.name}': source_label and target_label are both {self.source_label}")

    def trigger(self, X: np.ndarray) -> np.ndarray:
        """The edge-case transform of images ``X``."""
        return edge_transform(X, self.angle, self.thin)

    def poison_data(self, X, y, rng, *, num_classes=None):  # noqa: ANN001, ANN201
        y = np.asarray(y)
        if np.ndim(X) < 3:  # first: no label setting makes it apply to tabular data (an outside probe met the labels' error first)
            raise AttackError(f"attack '{self.name}' transforms images (N, [C,] H, W); this task's inputs have "
                              f"{np.ndim(X) - 1} dimension(s) per sample: choose another attack for it")
        if num_classes is not None and max(self.source_label, self.target_label) >= num_classes:
            raise AttackError(f"attack '{self.name}': source_label / target_label must be < num_classes {num_classes}")
        src = np.flatnonzero(y == self.source_label)
        k = int(round(self.poison_fraction * len(src)))
        if k == 0:
            return X, y
        chosen = np.sort(rng.choice(src, size=k, replace=False))
        X_edge = self.trigger(np.asarray(X)[chosen])
        return (np.concatenate([np.asarray(X), X_edge]),
                np.concatenate([y, np.full(k, self.target_label, dtype=y.dtype)]))

    def triggered_test_set(self, X_test: np.ndarray, y_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The test images of ``source_label``, transformed, labelled ``target_label``."""
        keep = np.asarray(y_test) == self.source_label
        if not keep.any():
            raise AttackError(f"attack '{self.name}': the test set holds no image of source_label {self.source_label}")
        return self.trigger(np.asarray(X_test)[keep]), np.full(int(keep.sum()), self.target_label, dtype=np.int64)
