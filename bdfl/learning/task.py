"""Tasks: the model + data + training code a user brings, as a Flower ``NumPyClient``.

A *task module* (see ``clients/``) is any importable module with two callables::

    def load_dataset(data_dir: str | None) -> bdfl.learning.data.Dataset: ...

    def make_client(train: tuple[np.ndarray, np.ndarray],
                    val: tuple[np.ndarray, np.ndarray], *,
                    seed: int, hparams: dict) -> flwr.client.NumPyClient: ...

The framework only ever calls three ``NumPyClient`` methods:

* ``get_parameters(config) -> NDArrays`` — the client's initial parameters;
* ``fit(parameters, config) -> (parameters, num_examples, metrics)`` — local training
  starting from ``parameters`` on the client's ``train`` data;
* ``evaluate(parameters, config) -> (loss, num_examples, {"accuracy": acc, ...})`` —
  evaluation on the client's ``val`` data (used by auditing).

So any existing Flower ``NumPyClient`` plugs in unchanged once a ``make_client``
adapter builds it from arrays. Global test-set evaluation also goes through
``evaluate``: :class:`Evaluator` builds one client whose ``val`` is the test set.

Fit config keys the framework sends (clients may ignore them): ``round`` (int),
``local_epochs`` (int), ``batch_size`` (int), ``lr`` (float) — the last three only
when the experiment config sets them; otherwise the client's ``hparams`` apply.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from bdfl.errors import BDFLError
from bdfl.learning.data import Dataset

NDArrays = list[np.ndarray]

__all__ = [
    "EvalResult",
    "Evaluator",
    "FitResult",
    "NDArrays",
    "Task",
    "TaskError",
    "check_parameters",
    "evaluate_client",
    "fit_client",
    "load_task",
]

REQUIRED_CALLABLES = ("load_dataset", "make_client")


class TaskError(BDFLError):
    """A task module or its client misbehaves (missing callable, malformed return value)."""


@dataclass(frozen=True)
class FitResult:
    parameters: NDArrays
    num_examples: int
    metrics: dict[str, Any]


@dataclass(frozen=True)
class EvalResult:
    loss: float
    num_examples: int
    accuracy: float
    metrics: dict[str, Any]


def check_parameters(parameters: Any, like: NDArrays | None = None, *, what: str = "parameters") -> NDArrays:
    """Validate a list of NumPy arrays (optionally: same count and shapes as ``like``)."""
    if not isinstance(parameters, (list, tuple)) or not all(isinstance(a, np.ndarray) for a in parameters):
        raise TaskError(f"{what} must be a list of NumPy arrays, got {type(parameters).__name__}")
    if like is not None:
        if len(parameters) != len(like):
            raise TaskError(f"{what} has {len(parameters)} arrays, expected {len(like)}")
        for i, (a, b) in enumerate(zip(parameters, like)):
            if a.shape != b.shape:
                raise TaskError(f"{what}[{i}] has shape {a.shape}, expected {b.shape}")
    return list(parameters)


def fit_client(client: Any, parameters: NDArrays, config: Mapping[str, Any] | None = None) -> FitResult:
    """Call ``client.fit`` and validate what it returns (parameter count and shapes unchanged)."""
    out = client.fit(parameters, dict(config or {}))
    if not isinstance(out, tuple) or len(out) != 3:
        raise TaskError(
            f"{type(client).__name__}.fit must return (parameters, num_examples, metrics), got {out!r:.200}"
        )
    params, num_examples, metrics = out
    params = check_parameters(params, parameters, what=f"{type(client).__name__}.fit(...)[0]")
    return FitResult(params, int(num_examples), dict(metrics or {}))


def evaluate_client(client: Any, parameters: NDArrays, config: Mapping[str, Any] | None = None) -> EvalResult:
    """Call ``client.evaluate`` and validate the result; ``accuracy`` is NaN if the client
    does not report one."""
    out = client.evaluate(parameters, dict(config or {}))
    if not isinstance(out, tuple) or len(out) != 3:
        raise TaskError(
            f"{type(client).__name__}.evaluate must return (loss, num_examples, metrics), got {out!r:.200}"
        )
    loss, num_examples, metrics = out
    metrics = dict(metrics or {})
    acc = metrics.get("accuracy", math.nan)
    return EvalResult(float(loss), int(num_examples), float(acc), metrics)


@dataclass(frozen=True)
class Task:
    """A loaded task module. Use :func:`load_task` to build one."""

    name: str
    module: ModuleType = field(repr=False)

    def load_dataset(self, data_dir: str | None = None) -> Dataset:
        ds = self.module.load_dataset(data_dir)
        if not isinstance(ds, Dataset):
            raise TaskError(
                f"{self.name}.load_dataset must return bdfl.learning.data.Dataset, got {type(ds).__name__}"
            )
        return ds

    def make_client(
        self,
        train: tuple[np.ndarray, np.ndarray],
        val: tuple[np.ndarray, np.ndarray],
        *,
        seed: int,
        hparams: Mapping[str, Any] | None = None,
    ) -> Any:
        client = self.module.make_client(train, val, seed=seed, hparams=dict(hparams or {}))
        for method in ("get_parameters", "fit", "evaluate"):
            if not callable(getattr(client, method, None)):
                raise TaskError(
                    f"{self.name}.make_client returned {type(client).__name__}, which has no {method}() "
                    "method; it must return a flwr.client.NumPyClient"
                )
        return client

    def initial_parameters(
        self, dataset: Dataset, *, seed: int, hparams: Mapping[str, Any] | None = None
    ) -> NDArrays:
        """The parameters a fresh client built with ``seed`` starts from."""
        small = (dataset.X_train[:2], dataset.y_train[:2])
        client = self.make_client(small, small, seed=seed, hparams=hparams)
        params = check_parameters(client.get_parameters({}), what=f"{self.name} get_parameters()")
        if not params:
            raise TaskError(
                f"{self.name}: get_parameters() returned no arrays",
                fix="implement NumPyClient.get_parameters to return the model's parameters",
            )
        return [np.array(p, copy=True) for p in params]

    def evaluator(
        self,
        X: np.ndarray,
        y: np.ndarray,
        *,
        hparams: Mapping[str, Any] | None = None,
        seed: int = 0,
    ) -> Evaluator:
        """An :class:`Evaluator` for the data ``(X, y)`` (e.g. the global test set)."""
        return Evaluator(self, X, y, hparams=hparams, seed=seed)


class Evaluator:
    """Evaluates parameters on fixed data through the task's own ``client.evaluate``.

    Works for any ``NumPyClient``: it is built with ``val=(X, y)`` and a 1-sample
    training set it never trains on.
    """

    def __init__(
        self,
        task: Task,
        X: np.ndarray,
        y: np.ndarray,
        *,
        hparams: Mapping[str, Any] | None = None,
        seed: int = 0,
    ) -> None:
        if len(y) == 0:
            raise TaskError("cannot evaluate on an empty data set")
        self.task = task
        self.num_examples = len(y)
        self.client = task.make_client((X[:1], y[:1]), (X, y), seed=seed, hparams=hparams)

    def __call__(self, parameters: NDArrays) -> EvalResult:
        return evaluate_client(self.client, parameters)


def _import_task_module(spec: str) -> ModuleType:
    if spec.endswith(".py"):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise TaskError(f"task file {path} does not exist")
        digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
        mod_name = f"bdfl_task_{path.stem}_{digest}"
        if mod_name in sys.modules:
            return sys.modules[mod_name]
        file_spec = importlib.util.spec_from_file_location(mod_name, path)
        if file_spec is None or file_spec.loader is None:
            raise TaskError(f"cannot import task file {path}")
        module = importlib.util.module_from_spec(file_spec)
        sys.modules[mod_name] = module
        try:
            file_spec.loader.exec_module(module)
        except BDFLError:
            sys.modules.pop(mod_name, None)
            raise
        except ModuleNotFoundError as exc:
            sys.modules.pop(mod_name, None)
            raise TaskError(
                f"task file {path} imports '{exc.name}', which is not installed",
                fix=f"install the package that provides '{exc.name}'",
            ) from None
        except Exception as exc:
            sys.modules.pop(mod_name, None)
            raise TaskError(f"importing task file {path} failed: {type(exc).__name__}: {exc}") from exc
        return module
    try:
        return importlib.import_module(spec)
    except ModuleNotFoundError as exc:
        if exc.name and (spec == exc.name or spec.startswith(exc.name + ".")):
            raise TaskError(
                f"task module '{spec}' not found",
                fix="give an importable module path such as 'clients.digits' (run from the project "
                "root or install the package), or a path to a .py file",
            ) from None
        raise TaskError(
            f"task module '{spec}' imports '{exc.name}', which is not installed",
            fix=f"install the package that provides '{exc.name}'",
        ) from None
    except BDFLError:
        raise
    except Exception as exc:
        raise TaskError(f"importing task module '{spec}' failed: {type(exc).__name__}: {exc}") from exc


def load_task(spec: str) -> Task:
    """Import a task module by dotted path (``"clients.digits"``) or ``.py`` file path and
    check it defines ``load_dataset`` and ``make_client``."""
    if not isinstance(spec, str) or not spec.strip():
        raise TaskError("task must be a module path such as 'clients.digits'")
    spec = spec.strip()
    module = _import_task_module(spec)
    missing = [name for name in REQUIRED_CALLABLES if not callable(getattr(module, name, None))]
    if missing:
        raise TaskError(
            f"task module '{spec}' does not define {', '.join(missing)}",
            fix="a task module needs load_dataset(data_dir) -> Dataset and "
            "make_client(train, val, *, seed, hparams) -> flwr.client.NumPyClient",
        )
    return Task(spec, module)


EvaluateFn = Callable[[NDArrays], EvalResult]
