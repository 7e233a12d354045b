"""Issue 22 (engineer P), a measurement device: ``clients.digits`` with local SGD *without* momentum.

The same model, data, initial parameters and every other hyper-parameter as ``clients.digits``;
only ``momentum`` is 0 instead of 0.9, so a run with ``--set task.client=experiments/drift_digits_no_momentum.py``
differs from the plain run in that alone (docs/results/robustness.md, "Client drift (issue 22)")."""

from __future__ import annotations

from clients.common import torch_make_client
from clients.digits import DEFAULT_HPARAMS, build_model, load_dataset

__all__ = ["load_dataset", "make_client"]

make_client = torch_make_client(build_model, {**DEFAULT_HPARAMS, "momentum": 0.0}, task="clients.digits (momentum 0)")
