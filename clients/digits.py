"""Task: scikit-learn 8x8 handwritten digits.

Model (hparam ``model``): ``"mlp"`` (default) — 64-64-10 MLP with ReLU, 4,810
parameters; or ``"cnn"`` — two 3x3 conv layers (16, 32 channels) + linear, 6,090 parameters.

Hyper-parameters (defaults): model "mlp", hidden 64, optimizer "sgd", lr 0.05,
momentum 0.9, weight_decay 0, local_epochs 1, batch_size 32.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from bdfl.errors import BDFLError
from bdfl.learning.data import Dataset, load_digits
from clients.common import COMMON_HPARAMS, torch_make_client

DEFAULT_HPARAMS: dict[str, Any] = {**COMMON_HPARAMS, "model": "mlp", "hidden": 64}


class MLP(nn.Module):
    def __init__(self, in_features: int = 64, hidden: int = 64, num_classes: int = 10) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x):  # noqa: ANN001, ANN201
        return self.fc2(self.fc1(x.flatten(1)).relu())


class SmallCNN(nn.Module):
    """1x8x8 -> conv3x3(16) -> pool -> conv3x3(32) -> pool -> linear(128 -> 10)."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(32 * 2 * 2, num_classes)

    def forward(self, x):  # noqa: ANN001, ANN201
        x = self.pool(self.conv1(x).relu())
        x = self.pool(self.conv2(x).relu())
        return self.fc(x.flatten(1))


def build_model(hparams: dict[str, Any]) -> nn.Module:
    if hparams["model"] == "mlp":
        hidden = hparams["hidden"]
        if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
            raise BDFLError(f"clients.digits: hyper-parameter 'hidden' must be an integer >= 1, got {hidden!r}")
        return MLP(64, hidden, 10)
    if hparams["model"] == "cnn":
        return SmallCNN(10)
    raise BDFLError(f"clients.digits: hyper-parameter 'model' must be 'mlp' or 'cnn', got {hparams['model']!r}")


def load_dataset(data_dir: str | None = None) -> Dataset:
    """The built-in digits data set (``data_dir`` is ignored: it ships with scikit-learn)."""
    return load_digits()


make_client = torch_make_client(build_model, DEFAULT_HPARAMS, task="clients.digits")
