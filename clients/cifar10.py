"""Task: CIFAR-10 with a small CNN.

``load_dataset(dir)`` reads the CIFAR-10 "python version" batches from a local
directory (``cifar-10-batches-py/`` or its parent); there is no built-in copy, so
``data_dir`` is required.

Model: three conv3x3 + ReLU + max-pool blocks (32, 64, 64 channels) -> 128 -> 10,
inputs normalised with the usual CIFAR-10 channel means/stds inside ``forward``
(constants, not parameters). 188,810 parameters. Defaults: optimizer "sgd", lr 0.02,
momentum 0.9, weight_decay 5e-4, local_epochs 1, batch_size 32.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from bdfl.errors import BDFLError
from bdfl.learning.data import Dataset, load_cifar10
from clients.common import COMMON_HPARAMS, torch_make_client

DEFAULT_HPARAMS: dict[str, Any] = {**COMMON_HPARAMS, "lr": 0.02, "weight_decay": 5e-4}

_MEAN = (0.4914, 0.4822, 0.4465)
_STD = (0.2470, 0.2435, 0.2616)


class CifarCNN(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.conv3 = nn.Conv2d(64, 64, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(64 * 4 * 4, 128)
        self.fc2 = nn.Linear(128, num_classes)
        # Plain tensors (not buffers): they stay out of state_dict / exchanged parameters.
        self._mean = torch.tensor(_MEAN).view(1, 3, 1, 1)
        self._std = torch.tensor(_STD).view(1, 3, 1, 1)

    def forward(self, x):  # noqa: ANN001, ANN201
        x = (x - self._mean) / self._std
        x = self.pool(self.conv1(x).relu())
        x = self.pool(self.conv2(x).relu())
        x = self.pool(self.conv3(x).relu())
        return self.fc2(self.fc1(x.flatten(1)).relu())


def build_model(hparams: dict[str, Any]) -> nn.Module:
    return CifarCNN(10)


def load_dataset(data_dir: str | None = None) -> Dataset:
    if data_dir is None:
        raise BDFLError(
            "clients.cifar10 needs a local copy of CIFAR-10 (nothing is downloaded)",
            fix="download cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html, "
            "extract it, and pass the cifar-10-batches-py directory as the data directory "
            "(--set task.data_dir=<path>, or data_dir under [task])",
        )
    return load_cifar10(data_dir)


make_client = torch_make_client(build_model, DEFAULT_HPARAMS, task="clients.cifar10")

#: ``bdfl run`` sends ``task.learning_rate`` (library default 0.05) as every fit's ``lr``: this
#: task's own 0.02 applies there only through its declared default (docs/tasks.md, TASK_DEFAULTS).
TASK_DEFAULTS = {"learning_rate": 0.02}
