"""Shared PyTorch helpers for the bundled task clients.

* :func:`configure_torch` — one intra-op thread per process (tiny models run 15-90x
  slower with more on a small machine); override with ``BDFL_TORCH_THREADS``.
* :func:`seeded_init` — PyTorch's default Linear/Conv initialisation, drawn from a
  private ``torch.Generator`` so model creation never touches global RNG state.
* :func:`get_parameters` / :func:`set_parameters` — ``state_dict`` <-> list of NumPy arrays
  (copies, so returned arrays never alias the live model).
* :func:`train_epochs` / :func:`evaluate_model` — plain mini-batch loops over in-memory
  tensors (no DataLoader: it dominates the run time of models this small); ``train_epochs``
  adds FedProx's proximal term ``mu/2 * ||w - w_start||^2`` when ``proximal_mu > 0``.
* :class:`TorchClient` — a ``flwr.client.NumPyClient`` around any of the above models;
  :func:`torch_make_client` builds a task's ``make_client`` that returns one.

Client drift (docs/learning.md, "Client drift"): each ``fit`` builds a fresh optimizer, so
no momentum (or Adam moment) carries over from the previous round's model; the fit-config
key ``proximal_mu`` (sent by Flower's ``FedProx`` strategy, and by BDFL from
``task.proximal_mu``) weighs the proximal term that pulls local training toward the
parameters the fit started from (Li et al., MLSys 2020).

Determinism: a client's ``fit`` draws its shuffling order from a generator seeded by
``(seed, config["server_round"] - 1)`` (or a per-client fit counter when no round is given), so
the same seed, parameters and config give bit-identical parameters.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from flwr.client import NumPyClient
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from bdfl.errors import BDFLError
from bdfl.types import NDArrays

COMMON_HPARAMS: dict[str, Any] = {
    "optimizer": "sgd",  # "sgd" | "adam"
    "lr": 0.05,
    "momentum": 0.9,  # SGD only
    "weight_decay": 0.0,
    "local_epochs": 1,
    "batch_size": 32,
    "proximal_mu": 0.0,  # FedProx's mu; the fit-config key "proximal_mu" overrides it per call
}


def configure_torch(threads: int | None = None) -> None:
    """Set torch's intra-op thread count (default: ``$BDFL_TORCH_THREADS`` or 1)."""
    n = threads if threads is not None else int(os.environ.get("BDFL_TORCH_THREADS", "1"))
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


def merge_hparams(defaults: Mapping[str, Any], given: Mapping[str, Any] | None, *, task: str) -> dict[str, Any]:
    """``defaults`` updated with ``given``; unknown keys and bad values raise BDFLError."""
    out = dict(defaults)
    for key, value in (given or {}).items():
        if key not in defaults:
            raise BDFLError(
                f"{task}: unknown hyper-parameter '{key}'",
                fix=f"allowed: {', '.join(sorted(defaults))}",
            )
        out[key] = value
    if out["optimizer"] not in ("sgd", "adam"):
        raise BDFLError(f"{task}: hyper-parameter 'optimizer' must be 'sgd' or 'adam', got {out['optimizer']!r}")
    for key in ("lr", "momentum", "weight_decay", "proximal_mu"):
        if not (isinstance(out[key], (int, float)) and out[key] >= 0 and math.isfinite(out[key])):
            raise BDFLError(f"{task}: hyper-parameter '{key}' must be a number >= 0, got {out[key]!r}")
    for key in ("local_epochs", "batch_size"):
        if isinstance(out[key], bool) or not isinstance(out[key], int) or out[key] < 1:
            raise BDFLError(f"{task}: hyper-parameter '{key}' must be an integer >= 1, got {out[key]!r}")
    return out


def derive_seed(*parts: int) -> int:
    """A 63-bit seed derived from non-negative integers (NumPy SeedSequence)."""
    state = np.random.SeedSequence([int(p) for p in parts]).generate_state(1, np.uint64)[0]
    return int(state) & (2**63 - 1)


def seeded_init(model: nn.Module, seed: int) -> nn.Module:
    """Re-initialise every Linear / Conv layer like PyTorch's default
    (Kaiming-uniform with a=sqrt(5), bias U(-1/sqrt(fan_in), 1/sqrt(fan_in))),
    drawing from a private generator seeded with ``seed``."""
    gen = torch.Generator().manual_seed(derive_seed(seed))
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
                nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=gen)
                if module.bias is not None:
                    fan_in = module.weight[0].numel()
                    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
                    nn.init.uniform_(module.bias, -bound, bound, generator=gen)
    return model


def get_parameters(model: nn.Module) -> NDArrays:
    """The model's ``state_dict`` values as NumPy arrays (copies)."""
    return [t.detach().cpu().numpy().copy() for t in model.state_dict().values()]


def set_parameters(model: nn.Module, parameters: NDArrays) -> None:
    """Copy ``parameters`` (in ``state_dict`` order) into the model, checking count and shapes."""
    with torch.no_grad(), _readonly_arrays_ok():
        _copy_into(model, model.state_dict(), parameters)


@contextmanager
def _readonly_arrays_ok() -> Iterator[None]:
    """Torch's warning about read-only (shared decoded) arrays silenced: each source tensor is only
    read by the copy."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable", category=UserWarning)
        yield


def _copy_into(model: nn.Module, state: Mapping[str, torch.Tensor], parameters: NDArrays,
               views: Sequence[np.ndarray | None] | None = None) -> None:
    """``parameters`` copied into ``state``'s tensors (count and shapes checked). ``views``: the
    tensors' NumPy views (:func:`_numpy_views`); an array of a view's own dtype is copied with
    ``np.copyto`` (the same values, without torch's per-tensor conversion and dispatch)."""
    if len(parameters) != len(state):
        raise BDFLError(
            f"{type(model).__name__} has {len(state)} parameter arrays, got {len(parameters)}",
            fix="parameters must come from the same task/model (same hparams)",
        )
    for i, ((name, tensor), array) in enumerate(zip(state.items(), parameters)):
        array = np.asarray(array)
        if tuple(array.shape) != tuple(tensor.shape):
            raise BDFLError(
                f"{type(model).__name__}.{name} has shape {tuple(tensor.shape)}, got {tuple(array.shape)}",
                fix="parameters must come from the same task/model (same hparams)",
            )
        view = views[i] if views is not None else None
        if view is not None and array.dtype == view.dtype:
            np.copyto(view, array)
        else:
            # np.asarray(order="C"), not np.ascontiguousarray: that makes a 0-d array 1-d (shape (1,)), and
            # a BatchNorm layer's num_batches_tracked is 0-d (every fit of a BatchNorm model raised)
            tensor.copy_(torch.from_numpy(np.asarray(array, order="C")).to(tensor.dtype))


def _numpy_views(state: Mapping[str, torch.Tensor]) -> list[np.ndarray | None]:
    """Each state tensor's NumPy view (sharing its memory; None where torch has none)."""
    views: list[np.ndarray | None] = []
    for tensor in state.values():
        try:
            views.append(tensor.numpy())
        except (RuntimeError, TypeError):
            views.append(None)
    return views


def make_optimizer(model: nn.Module, hparams: Mapping[str, Any], lr: float) -> torch.optim.Optimizer:
    """A fresh optimizer (no momentum / moment state) for one fit."""
    if hparams["optimizer"] == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=hparams["weight_decay"])
    return torch.optim.SGD(
        model.parameters(), lr=lr, momentum=hparams["momentum"], weight_decay=hparams["weight_decay"]
    )


def add_proximal_gradient(params: list[torch.Tensor], start_values: list[torch.Tensor], scratch: list[torch.Tensor],
                          mu: float) -> None:
    """Add the gradient of FedProx's ``mu/2 * ||w - w_start||^2``, ``mu * (w - w_start)``, to each
    parameter's ``.grad`` in place (``scratch``: one buffer per parameter, same shapes).

    The same values autograd gives for the term (its backward is ``(mu/2) * (2 * (w - w_start))``,
    and halving and doubling are exact in floating point, so both round the same product once),
    without autograd's forward and backward temporaries: at 11M parameters each is a fresh
    44 MB buffer per step (docs/results/model-size.md)."""
    with torch.no_grad():
        for p, p0, s in zip(params, start_values, scratch):
            torch.sub(p, p0, out=s)
            s.mul_(mu)
            if p.grad is None:  # not in the loss's graph: the term's gradient alone
                p.grad = s.clone()
            else:
                p.grad.add_(s)


def train_epochs(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    proximal_mu: float = 0.0,
) -> float:
    """Mini-batch cross-entropy training; returns the mean training (cross-entropy) loss of
    the last epoch.

    ``proximal_mu > 0``: each step minimises ``loss + proximal_mu / 2 * ||w - w_start||^2``
    over the trainable parameters, ``w_start`` being their values when this call began
    (FedProx, Li et al. 2020: local training stays near the common model it started from).
    ``proximal_mu = 0`` runs exactly the plain loop. A model with batch-norm layers never gets a
    last batch of one sample (it joins the batch before: torch cannot normalise one sample)."""
    if not (proximal_mu >= 0 and math.isfinite(proximal_mu)):
        raise BDFLError(f"proximal_mu must be a finite number >= 0, got {proximal_mu!r}")
    n = len(y)
    if n == 0:
        return 0.0
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    start_values = [p.detach().clone() for p in params] if proximal_mu > 0 else []
    scratch = [torch.empty_like(p0) for p0 in start_values]  # reused every step: no per-step temporaries
    last = 0.0
    # batch-normalised layers cannot train on a batch of one sample (torch raises): with such layers a
    # last batch of one joins the batch before it; every other model runs the plain loop
    bounds = [(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1 and any(isinstance(m, _BatchNorm) for m in model.modules()):
        bounds[-2:] = [(bounds[-2][0], n)]
    for _ in range(epochs):
        perm = torch.randperm(n, generator=generator)
        total = 0.0
        for start, end in bounds:
            idx = perm[start:end]
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(X[idx]), y[idx])
            loss.backward()
            if start_values:
                add_proximal_gradient(params, start_values, scratch, proximal_mu)
            optimizer.step()
            total += float(loss.detach()) * len(idx)
        last = total / n
    return last


def evaluate_model(
    model: nn.Module, X: torch.Tensor, y: torch.Tensor, batch_size: int = 4096
) -> tuple[float, float]:
    """(mean cross-entropy loss, accuracy) of ``model`` on ``(X, y)``; (nan, nan) when empty."""
    if len(y) == 0:
        return math.nan, math.nan
    model.eval()
    with torch.inference_mode():
        return _evaluate_batches(model, X, y, batch_size)


def _evaluate_batches(model: nn.Module, X: torch.Tensor, y: torch.Tensor, batch_size: int = 4096) -> tuple[float, float]:
    """:func:`evaluate_model`'s loop, the model already in eval mode and under inference mode."""
    n = len(y)
    if n == 0:
        return math.nan, math.nan
    loss_sum = 0.0
    correct = 0
    for start in range(0, n, batch_size):
        xb, yb = X[start : start + batch_size], y[start : start + batch_size]
        logits = model(xb)
        loss_sum += float(F.cross_entropy(logits, yb, reduction="sum"))
        correct += int((logits.argmax(dim=1) == yb).sum())
    return loss_sum / n, correct / n


def predict(model: nn.Module, X: torch.Tensor, batch_size: int = 4096) -> np.ndarray:
    """Predicted labels (argmax) for ``X``."""
    model.eval()
    with torch.inference_mode():
        return _predict_batches(model, X, batch_size)


def _predict_batches(model: nn.Module, X: torch.Tensor, batch_size: int = 4096) -> np.ndarray:
    """:func:`predict`'s loop, the model already in eval mode and under inference mode."""
    out = [model(X[start : start + batch_size]).argmax(dim=1).numpy() for start in range(0, len(X), batch_size)]
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def to_tensors(data: tuple[np.ndarray, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    X, y = data
    return (
        torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)),
        torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64)),
    )


class TorchClient(NumPyClient):
    """A Flower ``NumPyClient`` for a PyTorch classifier held in memory.

    ``model_fn(hparams)`` builds the (untrained) model; it is initialised with
    :func:`seeded_init` from ``seed``. ``fit`` trains ``local_epochs`` epochs on
    ``train``; ``evaluate`` reports loss and accuracy on ``val``. Fit-config keys
    ``local_epochs``, ``batch_size``, ``lr`` and ``proximal_mu`` (FedProx's, as Flower's
    ``FedProx`` strategy sends it) override the hparams for one call.
    """

    def __init__(
        self,
        model_fn: Callable[[dict[str, Any]], nn.Module],
        train: tuple[np.ndarray, np.ndarray],
        val: tuple[np.ndarray, np.ndarray],
        *,
        seed: int,
        hparams: dict[str, Any],
    ) -> None:
        configure_torch()
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise BDFLError(f"client seed must be a non-negative integer, got {seed!r}")
        self.seed = int(seed)
        self.hparams = hparams
        self.model = seeded_init(model_fn(hparams), self.seed)
        self.parameter_names = list(self.model.state_dict())  # named in contract errors (bdfl.learning.task)
        self.X_train, self.y_train = to_tensors(train)
        self.X_val, self.y_val = to_tensors(val)
        self._fits = 0

    def get_parameters(self, config: dict[str, Any]) -> NDArrays:
        return get_parameters(self.model)

    def set_parameters(self, parameters: NDArrays) -> None:
        set_parameters(self.model, parameters)

    def fit(self, parameters: NDArrays, config: dict[str, Any]) -> tuple[NDArrays, int, dict[str, Any]]:
        self.set_parameters(parameters)
        epochs = int(config.get("local_epochs", self.hparams["local_epochs"]))
        batch_size = int(config.get("batch_size", self.hparams["batch_size"]))
        lr = float(config.get("lr", self.hparams["lr"]))
        mu = float(config.get("proximal_mu", self.hparams.get("proximal_mu", 0.0)))
        step = int(config["server_round"]) - 1 if "server_round" in config else int(config.get("round", self._fits))
        self._fits += 1
        gen = torch.Generator().manual_seed(derive_seed(self.seed, step))
        optimizer = make_optimizer(self.model, self.hparams, lr)
        # a model that draws from torch's global generator (dropout) draws the same numbers for the same
        # (peer, round) whichever process and order the fit runs in; the process's own state is left as it was
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(self.seed, step, 1))
            loss = train_epochs(
                self.model,
                self.X_train,
                self.y_train,
                epochs=epochs,
                batch_size=batch_size,
                optimizer=optimizer,
                generator=gen,
                proximal_mu=mu,
            )
        # the last step's gradients are never read again (every step starts with zero_grad): free
        # them, or each client holds a second copy of its model between rounds (N x model per run)
        self.model.zero_grad(set_to_none=True)
        return get_parameters(self.model), len(self.y_train), {"train_loss": loss}

    def evaluate(self, parameters: NDArrays, config: dict[str, Any]) -> tuple[float, int, dict[str, Any]]:
        self.set_parameters(parameters)
        loss, acc = evaluate_model(self.model, self.X_val, self.y_val)
        return loss, len(self.y_val), {"accuracy": acc}

    def evaluate_on(self, parameters: NDArrays, X: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        """(loss, accuracy) of ``parameters`` on arbitrary data (e.g. the global test set)."""
        self.set_parameters(parameters)
        return evaluate_model(self.model, *to_tensors((X, y)))

    def predict(self, parameters: NDArrays, X: np.ndarray) -> np.ndarray:
        self.set_parameters(parameters)
        return predict(self.model, to_tensors((X, np.zeros(len(X), dtype=np.int64)))[0])

    # -- batched audit capabilities (bdfl.learning.task.evaluate_many / predict_many) ---------------
    # The same values as evaluate / predict called once per parameter set (the same forward passes on
    # the same inputs), without each call's fixed costs: the state_dict, eval mode, the inference-mode
    # and warnings contexts and the input conversion are set up once per batch instead of per model.

    def evaluate_many(self, parameter_sets: Iterable[NDArrays], config: dict[str, Any]) -> list[tuple[float, int, dict[str, Any]]]:
        """``[self.evaluate(p, config) for p in parameter_sets]``, the same values."""
        out = []
        for loss, acc in self._each(parameter_sets, lambda: _evaluate_batches(self.model, self.X_val, self.y_val)):
            out.append((loss, len(self.y_val), {"accuracy": acc}))
        return out

    def predict_many(self, parameter_sets: Iterable[NDArrays], inputs: Sequence[np.ndarray]) -> list[list[np.ndarray]]:
        """``[[self.predict(p, X) for X in inputs] for p in parameter_sets]``, the same labels."""
        Xs = [to_tensors((X, np.zeros(len(X), dtype=np.int64)))[0] for X in inputs]
        return self._each(parameter_sets, lambda: [_predict_batches(self.model, X) for X in Xs])

    def _each(self, parameter_sets: Iterable[NDArrays], measure: Callable[[], Any]) -> list[Any]:
        """``measure()`` with each of ``parameter_sets`` loaded, in order (the model left loaded
        with the last one, as a loop of evaluate / predict calls leaves it)."""
        state = self.model.state_dict()
        views = _numpy_views(state)
        self.model.eval()
        out = []
        with _readonly_arrays_ok():
            for parameters in parameter_sets:
                with torch.no_grad():
                    _copy_into(self.model, state, parameters, views)
                with torch.inference_mode():
                    out.append(measure())
        return out

    def audit_inputs(self) -> np.ndarray:
        """This peer's own inputs (validation split first, then training shard), which its
        audit's trigger detector stamps (bdfl.defense.detectors.trigger)."""
        return np.concatenate([self.X_val.numpy(), self.X_train.numpy()])

    def audit_data(self) -> tuple[np.ndarray, np.ndarray]:
        """This peer's labelled data (validation split, then training shard), on which its
        audit's balanced-accuracy detector measures candidates (bdfl.defense.detectors.balanced):
        no candidate was trained on any of it."""
        return self.audit_inputs(), np.concatenate([self.y_val.numpy(), self.y_train.numpy()])


MakeClient = Callable[..., TorchClient]


def torch_make_client(
    model_fn: Callable[[dict[str, Any]], nn.Module], defaults: Mapping[str, Any], *, task: str
) -> MakeClient:
    """A task's ``make_client``: a :class:`TorchClient` of ``model_fn`` with ``defaults`` updated by
    the given hyper-parameters (checked by :func:`merge_hparams`; ``task`` names them in errors)."""

    def make_client(
        train: tuple[np.ndarray, np.ndarray],
        val: tuple[np.ndarray, np.ndarray],
        *,
        seed: int,
        hparams: dict[str, Any] | None = None,
    ) -> TorchClient:
        return TorchClient(model_fn, train, val, seed=seed, hparams=merge_hparams(defaults, hparams, task=task))

    return make_client
