"""Task family: scikit-learn 8x8 digits with a wide two-hidden-layer MLP, sized by its width.

Built for the model-size sweep (``experiments/model_size_sweep.py``, issue 23): the same data,
partition and training as ``clients.digits``, with a model of millions of parameters, so that
what the protocol costs per byte (exchange, hashing, audits, memory) can be measured.

Model: 64 -> width -> width -> 10 (ReLU), ``width**2 + 76 * width + 10`` parameters (float32).
A run's configuration cannot carry a width (``[task]`` passes only local_epochs, batch_size
and lr), so each size is its own task module:

* ``clients.digits_1m``  — width 963:  1,000,567 parameters (3.8 MiB per update)
* ``clients.digits_11m`` — width 3279: 11,001,055 parameters (42 MiB per update)
* ``clients.digits_wide`` itself — width 256 (85,002 parameters), for quick tests.

Another size: a module with ``load_dataset, make_client = task_for_width(W)``.
Hyper-parameters (defaults): as ``clients.digits`` (optimizer "sgd", lr 0.05, momentum 0.9).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from bdfl.errors import BDFLError
from bdfl.learning.data import Dataset, load_digits
from clients.common import COMMON_HPARAMS, MakeClient, torch_make_client

DEFAULT_HPARAMS: dict[str, Any] = dict(COMMON_HPARAMS)
DEFAULT_WIDTH = 256


class WideMLP(nn.Module):
    """64 -> width -> width -> 10 with ReLU."""

    def __init__(self, width: int, in_features: int = 64, num_classes: int = 10) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, width)
        self.fc2 = nn.Linear(width, width)
        self.fc3 = nn.Linear(width, num_classes)

    def forward(self, x):  # noqa: ANN001, ANN201
        return self.fc3(self.fc2(self.fc1(x.flatten(1)).relu()).relu())


def num_parameters(width: int, in_features: int = 64, num_classes: int = 10) -> int:
    """Parameters of :class:`WideMLP` (weights and biases)."""
    return (in_features + 1) * width + (width + 1) * width + (width + 1) * num_classes


def load_dataset(data_dir: str | None = None) -> Dataset:
    """The built-in digits data set (``data_dir`` is ignored: it ships with scikit-learn)."""
    return load_digits()


def task_for_width(width: int) -> tuple[Callable[[str | None], Dataset], MakeClient]:
    """``(load_dataset, make_client)`` of the digits task with a :class:`WideMLP` of ``width``."""
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise BDFLError(f"clients.digits_wide: width must be an integer >= 1, got {width!r}")
    return load_dataset, torch_make_client(lambda _h: WideMLP(width), DEFAULT_HPARAMS, task=f"clients.digits_wide[{width}]")


make_client = task_for_width(DEFAULT_WIDTH)[1]
