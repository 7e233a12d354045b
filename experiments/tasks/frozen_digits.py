"""Task: the digits MLP with its first layer frozen (transfer learning), a slow learner.

An outside probe's client kind (docs/results/robustness.md, "Client kinds nobody tuned on" and
"The top-half consensus"): only the last layer trains, so each round's honest moves are small
and barely agree, and a reversed move hides among them. Run it with
``--set task.client=experiments/tasks/frozen_digits.py``.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from clients.common import torch_make_client
from clients.digits import DEFAULT_HPARAMS, MLP, load_dataset

__all__ = ["build_model", "load_dataset", "make_client"]


def build_model(hparams: dict[str, Any]) -> nn.Module:
    model = MLP(64, hparams["hidden"], 10)
    for p in model.fc1.parameters():
        p.requires_grad_(False)  # the trainer optimises only what requires a gradient
    return model


make_client = torch_make_client(build_model, DEFAULT_HPARAMS, task="experiments/tasks/frozen_digits.py")
