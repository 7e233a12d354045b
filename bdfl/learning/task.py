"""Tasks: the model + data + training code a user brings, as a Flower client.

A *task module* (see ``clients/``; the contract page is docs/tasks.md) is any importable
module with two callables::

    def load_dataset(data_dir: str | None) -> bdfl.learning.data.Dataset: ...

    def make_client(train: tuple[np.ndarray, np.ndarray],
                    val: tuple[np.ndarray, np.ndarray], *,
                    seed: int, hparams: dict) -> flwr.client.NumPyClient: ...

``make_client`` may also return a Flower ``ClientApp`` (Message API) wrapped by
:class:`bdfl.learning.flower.ClientAppClient`. The framework only ever calls three
``NumPyClient`` methods:

* ``get_parameters(config) -> NDArrays`` — the client's initial parameters;
* ``fit(parameters, config) -> (parameters, num_examples, metrics)`` — local training
  starting from ``parameters`` on the client's ``train`` data;
* ``evaluate(parameters, config) -> (loss, num_examples, {"accuracy": acc, ...})`` —
  evaluation on the client's ``val`` data (used by auditing).

Every client is wrapped in a :class:`CheckedClient`: each ``fit`` and ``evaluate`` config
carries the keys of :func:`base_config` (``local_epochs``, ``batch_size``, ``lr`` /
``learning_rate``, ``proximal_mu`` / ``proximal-mu``, ``classes``: the data set's full label set) and ``server_round``
(1-based, as Flower servers send it); each ``fit``'s arrays are checked against the
parameters it was given (:func:`check_contract`: count, names where known, shapes,
dtypes). A mismatch raises :class:`ClientContractError`, which stops a run; with
``cast_dtypes`` a dtype mismatch is cast to the expected dtype instead.
"""

from __future__ import annotations

import math
import numbers
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from bdfl.errors import BDFLError
from bdfl.learning.data import Dataset
from bdfl.plugins import TASK_MODULE_PREFIX, import_spec
from bdfl.types import NDArrays

__all__ = [
    "CheckedClient",
    "ClientContractError",
    "EvalResult",
    "Evaluator",
    "FitResult",
    "NDArrays",
    "Task",
    "TaskError",
    "base_config",
    "task_base_config",
    "task_hparams",
    "check_contract",
    "check_parameters",
    "evaluate_client",
    "evaluate_many",
    "fit_client",
    "load_task",
    "task_defaults",
    "predict_many",
    "MAX_NUM_EXAMPLES",
    "check_num_examples",
]

REQUIRED_CALLABLES = ("load_dataset", "make_client")


class TaskError(BDFLError):
    """A task module or its client misbehaves (missing callable, malformed return value)."""


class ClientContractError(TaskError):
    """A client broke the contract: ``fit`` returned arrays that do not match the parameters
    it was given (count, name, shape or dtype) or a ``num_examples`` that is not a count, or
    ``evaluate`` reported no ``accuracy``: a bug in the task code, so the run stops."""


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


#: The fix for parameters that are not a list of NumPy arrays (get_parameters, fit).
ARRAYS_FIX = "return the model's parameters as a list of numpy.ndarray (e.g. [v.cpu().numpy() for v in state_dict.values()])"


def check_parameters(parameters: Any, like: NDArrays | None = None, *, what: str = "parameters") -> NDArrays:
    """Validate a list of NumPy arrays (optionally: same count and shapes as ``like``)."""
    if not isinstance(parameters, (list, tuple)):
        raise TaskError(f"{what} must be a list of NumPy arrays, got a {type(parameters).__name__}")
    for i, a in enumerate(parameters):
        if not isinstance(a, np.ndarray):
            raise TaskError(f"{what} must be a list of NumPy arrays; its array {i} is a {type(a).__module__}.{type(a).__name__}",
                            fix=ARRAYS_FIX)
    if like is not None:
        if len(parameters) != len(like):
            raise TaskError(f"{what} has {len(parameters)} arrays, expected {len(like)}")
        for i, (a, b) in enumerate(zip(parameters, like)):
            if a.shape != b.shape:
                raise TaskError(f"{what}[{i}] has shape {a.shape}, expected {b.shape}")
    return list(parameters)


def _array_label(i: int, names: Sequence[str] | None) -> str:
    return f"array {i} ('{names[i]}')" if names is not None and i < len(names) else f"array {i}"


def check_contract(
    returned: Any,
    expected: NDArrays,
    *,
    task: str,
    names: Sequence[str] | None = None,
    returned_names: Sequence[str] | None = None,
    cast: bool = False,
    what: str = "fit",
) -> NDArrays:
    """The arrays a client's ``fit`` returned, checked against the ``expected`` parameters it
    was given: same count, names (when both sides name their arrays), shapes and dtypes.

    Any mismatch raises ONE :class:`ClientContractError` naming the task module, the array,
    what was expected and what came back, and the fix. With ``cast`` a dtype mismatch (only)
    is cast to the expected dtype instead (``task.cast_dtypes = true``)."""
    where = f"task {task}: {what}() returned"
    fix = ARRAYS_FIX
    if not isinstance(returned, (list, tuple)):
        raise ClientContractError(f"{where} a {type(returned).__name__} instead of a list of NumPy arrays", fix=fix)
    for i, a in enumerate(returned):
        if not isinstance(a, np.ndarray):
            raise ClientContractError(f"{where} {_array_label(i, names)} as a {type(a).__name__}, not a numpy.ndarray", fix=fix)
    if len(returned) != len(expected):
        raise ClientContractError(
            f"{where} {len(returned)} arrays, expected {len(expected)} (as many as the initial parameters)",
            fix="return every parameter array, in the same order as get_parameters()",
        )
    if names is not None and returned_names is not None and list(names) != list(returned_names):
        i = next(k for k, (a, b) in enumerate(zip(names, returned_names)) if a != b)
        raise ClientContractError(
            f"{where} array {i} named '{returned_names[i]}', expected '{names[i]}'",
            fix="return the arrays under the same names and in the same order as the initial parameters",
        )
    out: NDArrays = []
    for i, (a, e) in enumerate(zip(returned, expected)):
        label = _array_label(i, names)
        if a.shape != e.shape:
            raise ClientContractError(
                f"{where} {label} with shape {a.shape}, expected {e.shape} (the initial parameters' shape)",
                fix="keep the model's architecture fixed: every fit must return arrays of the initial shapes "
                "(scikit-learn: keep all classes, e.g. pass the full label set config['classes'])",
            )
        if a.dtype != e.dtype:
            if not cast:
                raise ClientContractError(
                    f"{where} {label} with dtype {a.dtype}, expected {e.dtype} (the initial parameters' dtype)",
                    fix=f"return arrays of the initial dtype (e.g. .astype(np.{e.dtype})), "
                    "or set task.cast_dtypes = true to let BDFL cast them",
                )
            a = a.astype(e.dtype)
        out.append(a)
    return out


def fit_client(
    client: Any,
    parameters: NDArrays,
    config: Mapping[str, Any] | None = None,
    *,
    task: str | None = None,
    cast: bool = False,
) -> FitResult:
    """Call ``client.fit`` and check what it returns (:func:`check_contract`)."""
    name = task or type(client).__name__
    out = client.fit(parameters, dict(config or {}))
    if not isinstance(out, tuple) or len(out) != 3:
        raise ClientContractError(
            f"task {name}: fit() must return (parameters, num_examples, metrics), got {out!r:.200}",
            fix="return a 3-tuple as Flower's NumPyClient.fit does",
        )
    params, num_examples, metrics = out
    params = check_contract(params, parameters, task=name, names=_names_of(client),
                            returned_names=getattr(client, "last_fit_names", None), cast=cast)
    return FitResult(params, check_num_examples(num_examples, task=name), dict(metrics or {}))


#: The most training examples a submission can state: its on-chain field is a uint32 (the
#: contract then caps it at ``protocol.max_samples``).
MAX_NUM_EXAMPLES = 2**32 - 1


def check_num_examples(value: Any, *, task: str) -> int:
    """``num_examples`` as a client returned it: an integer in [0, :data:`MAX_NUM_EXAMPLES`].
    Anything else (None, NaN, 3.7, "12", -5, 10**30) is one :class:`ClientContractError`:
    it goes on chain with the update and must not be rounded, guessed or fail deep in the
    transaction encoder."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= int(value) <= MAX_NUM_EXAMPLES:
        raise ClientContractError(
            f"task {task}: fit() returned num_examples = {value!r:.60} ({type(value).__name__}), expected an "
            f"integer in [0, {MAX_NUM_EXAMPLES}]",
            fix="return the number of examples used as an int, e.g. len(train_loader.dataset) or len(X_train)",
        )
    return int(value)


def _names_of(client: Any) -> Sequence[str] | None:
    names = getattr(client, "parameter_names", None)
    return list(names) if isinstance(names, (list, tuple)) else None


def task_hparams(task: Any) -> dict[str, Any]:
    """The hyper-parameters a task's ``make_client`` / ``initial_parameters`` / ``probe`` get, from a
    config's ``[task]`` table (bdfl.config.TaskConfig): one builder for bdfl run and bdfl peer."""
    return {"local_epochs": task.local_epochs, "batch_size": task.batch_size, "lr": task.learning_rate}


def task_base_config(task: Any, num_classes: int) -> dict[str, Any]:
    """:func:`base_config` from a config's ``[task]`` table (bdfl.config.TaskConfig) and the data
    set's class count: one builder for bdfl run's workers, bdfl peer and the audit mirror."""
    return base_config(classes=range(num_classes), local_epochs=task.local_epochs, batch_size=task.batch_size,
                       learning_rate=task.learning_rate, proximal_mu=task.proximal_mu)


def base_config(
    *, classes: Sequence[int], local_epochs: int, batch_size: int, learning_rate: float, proximal_mu: float = 0.0
) -> dict[str, Any]:
    """The config keys every ``fit`` and ``evaluate`` call receives (docs/tasks.md); the peer
    adds ``server_round``. ``classes``: the data set's full label set, so a client whose shard
    lacks some classes can still keep them all (scikit-learn ``labels=``). ``proximal_mu``:
    FedProx's weight, under the key Flower's ``FedProx`` strategy sends (``proximal_mu``) and
    its Message API key (``proximal-mu``), so a Flower client written for FedProx reads it
    unchanged."""
    return {
        "local_epochs": int(local_epochs),
        "batch_size": int(batch_size),
        "lr": float(learning_rate),
        "learning_rate": float(learning_rate),
        "proximal_mu": float(proximal_mu),
        "proximal-mu": float(proximal_mu),
        "classes": [int(c) for c in classes],
    }


class CheckedClient:
    """A task's client as BDFL calls it: every config carries :attr:`config` (and the current
    ``server_round``), and every ``fit`` result is checked (:func:`check_contract`).

    ``fit`` / ``evaluate`` / ``get_parameters`` keep the NumPyClient signatures; any other
    attribute (``predict``, ``audit_inputs``, ...) is the wrapped client's."""

    def __init__(self, client: Any, *, task: str, config: Mapping[str, Any] | None = None, cast_dtypes: bool = False) -> None:
        self.client = client
        self.task = task
        self.config = dict(config or {})
        self.cast_dtypes = bool(cast_dtypes)
        self.server_round: int | None = None  # set by the peer at each fit; sent with evaluate too

    def _config(self, config: Mapping[str, Any] | None) -> dict[str, Any]:
        out = dict(self.config)
        if self.server_round is not None:
            out["server_round"] = self.server_round
        out.update(config or {})
        return out

    def get_parameters(self, config: Mapping[str, Any] | None = None) -> NDArrays:
        return self.client.get_parameters(self._config(config))

    def fit(self, parameters: NDArrays, config: Mapping[str, Any] | None = None) -> tuple[NDArrays, int, dict[str, Any]]:
        cfg = self._config(config)
        if "server_round" in cfg:
            self.server_round = int(cfg["server_round"])
        res = fit_client(self.client, parameters, cfg, task=self.task, cast=self.cast_dtypes)
        return res.parameters, res.num_examples, res.metrics

    def evaluate(self, parameters: NDArrays, config: Mapping[str, Any] | None = None) -> Any:
        return self.client.evaluate(parameters, self._config(config))

    def evaluate_many(self, parameter_sets: Sequence[NDArrays], config: Mapping[str, Any] | None = None) -> list[Any]:
        """``[self.evaluate(p, config) for p in parameter_sets]``: through the wrapped client's own
        ``evaluate_many`` when it has one (:func:`evaluate_many`), else that loop."""
        cfg = self._config(config)
        inner = getattr(self.client, "evaluate_many", None)
        if callable(inner):
            return inner(list(parameter_sets), cfg)
        return [self.client.evaluate(p, cfg) for p in parameter_sets]

    def __getattr__(self, name: str) -> Any:
        if name in ("client", "task", "config", "cast_dtypes", "server_round"):
            raise AttributeError(name)
        return getattr(self.client, name)


def _is_flower_client(client: Any) -> bool:
    """Whether ``client`` is a ``flwr`` low-level ``Client`` (what ``NumPyClient.to_client()``
    returns), found by its class's bases so that flwr need not be imported here."""
    return any(c.__name__ == "Client" and c.__module__.startswith("flwr.") for c in type(client).__mro__)


def evaluate_client(client: Any, parameters: NDArrays, config: Mapping[str, Any] | None = None) -> EvalResult:
    """Call ``client.evaluate`` and validate the result; ``accuracy`` is NaN if the client
    does not report one."""
    return _eval_result(client, client.evaluate(parameters, dict(config or {})))


#: What ``evaluate`` must return, said in every error about its result.
EVALUATE_FIX = "return (loss, num_examples, {'accuracy': accuracy}) from evaluate: a float loss, an int count, accuracy a fraction in [0, 1]"


def _client_label(client: Any, method: str) -> str:
    """How errors name a client's method: by its task when the client is a :class:`CheckedClient`."""
    task = getattr(client, "task", None)
    return f"task {task}: {method}()" if task else f"{type(client).__name__}.{method}"


def _eval_result(client: Any, out: Any) -> EvalResult:
    """``evaluate``'s result checked: a 3-tuple of a real loss (NaN or infinite: a diverged model),
    a count and a metrics dict whose ``accuracy`` (NaN when absent) is a fraction in [0, 1]. Anything
    else is one :class:`ClientContractError` naming the task (a percentage accuracy of 82.7 reached
    the audit's binomial error as sqrt of a negative number, an error blamed on a detector)."""
    where = _client_label(client, "evaluate")
    if not isinstance(out, tuple) or len(out) != 3:
        raise ClientContractError(f"{where} must return (loss, num_examples, metrics), got {out!r:.200}", fix=EVALUATE_FIX)
    loss, num_examples, metrics = out
    if metrics is not None and not isinstance(metrics, Mapping):
        raise ClientContractError(f"{where} returned metrics of type {type(metrics).__name__}, not a dict", fix=EVALUATE_FIX)
    metrics = dict(metrics or {})
    try:
        values = float(loss), int(num_examples), float(metrics.get("accuracy", math.nan))
    except (TypeError, ValueError) as exc:
        raise ClientContractError(f"{where} returned a loss, count or accuracy that is not a number ({exc}): "
                                  f"loss {loss!r:.60}, num_examples {num_examples!r:.60}, accuracy "
                                  f"{metrics.get('accuracy')!r:.60}", fix=EVALUATE_FIX) from None
    acc = values[2]
    if not math.isnan(acc) and not 0.0 <= acc <= 1.0:
        hint = " (a percentage? divide by 100)" if 1.0 < acc <= 100.0 else ""
        raise ClientContractError(f"{where} reported accuracy {acc:g}, outside [0, 1]{hint}", fix=EVALUATE_FIX)
    return EvalResult(*values, metrics)


def evaluate_many(client: Any, parameter_sets: Sequence[NDArrays], config: Mapping[str, Any] | None = None) -> list[EvalResult]:
    """:func:`evaluate_client` of every parameter set, in order.

    A client may offer ``evaluate_many(parameter_sets, config) -> [(loss, num_examples, metrics), ...]``
    (optional; the bundled PyTorch clients do, ``clients/common.py``): one call for all the sets,
    which must give what ``evaluate`` gives for each. A client without it (any ``NumPyClient``) is
    called once per set, as before."""
    sets = list(parameter_sets)
    batched = getattr(client, "evaluate_many", None)
    if not callable(batched) or not sets:
        return [evaluate_client(client, p, config) for p in sets]
    outs = batched(sets, dict(config or {}))
    if not isinstance(outs, (list, tuple)) or len(outs) != len(sets):
        raise ClientContractError(f"{_client_label(client, 'evaluate_many')} must return one (loss, num_examples, metrics) "
                                  f"per parameter set ({len(sets)}), got {outs!r:.200}", fix=EVALUATE_FIX)
    return [_eval_result(client, out) for out in outs]


def predict_many(client: Any, parameter_sets: Sequence[NDArrays], inputs: Sequence[np.ndarray]) -> list[list[np.ndarray]]:
    """``client.predict(p, X)`` for every parameter set ``p`` and each of ``inputs``:
    ``out[i][j]`` is set i's labels on ``inputs[j]``.

    A client may offer ``predict_many(parameter_sets, inputs)`` returning that nested list
    (optional; the bundled PyTorch clients do): one call, one parameter load per set. A client
    without it is called once per set and input, as before."""
    sets = list(parameter_sets)
    batched = getattr(client, "predict_many", None)
    if not callable(batched) or not sets:
        return [[np.asarray(client.predict(list(p), X)) for X in inputs] for p in sets]
    outs = batched([list(p) for p in sets], list(inputs))
    if not isinstance(outs, (list, tuple)) or len(outs) != len(sets) or any(
            not isinstance(o, (list, tuple)) or len(o) != len(inputs) for o in outs):
        raise TaskError(f"{type(client).__name__}.predict_many must return, per parameter set ({len(sets)}), "
                        f"one label array per input ({len(inputs)})")
    return [[np.asarray(a) for a in o] for o in outs]


@dataclass(frozen=True)
class Task:
    """A loaded task module. Use :func:`load_task` to build one."""

    name: str
    module: ModuleType = field(repr=False)
    # config keys known once the data set is loaded (``classes``): every client gets them,
    # even one built without a config (e.g. an attack's evaluator)
    defaults: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def load_dataset(self, data_dir: str | None = None) -> Dataset:
        ds = self.module.load_dataset(data_dir)
        if not isinstance(ds, Dataset):
            raise TaskError(
                f"{self.name}.load_dataset must return bdfl.learning.data.Dataset, got {type(ds).__name__}"
            )
        self.defaults["classes"] = list(range(ds.num_classes))
        return ds

    def make_client(
        self,
        train: tuple[np.ndarray, np.ndarray],
        val: tuple[np.ndarray, np.ndarray],
        *,
        seed: int,
        hparams: Mapping[str, Any] | None = None,
        config: Mapping[str, Any] | None = None,
        cast_dtypes: bool = False,
    ) -> CheckedClient:
        """The module's client for this shard, wrapped in a :class:`CheckedClient` that sends
        ``config`` (:func:`base_config`) with every call and checks every ``fit``."""
        client = self.module.make_client(train, val, seed=seed, hparams=dict(hparams or {}))
        if type(client).__name__ == "ClientApp":
            raise TaskError(
                f"{self.name}.make_client returned a Flower ClientApp, which needs its data and initial arrays",
                fix="return bdfl.learning.flower.ClientAppClient(app, train, val, seed=seed, initial_arrays=...) "
                "(docs/tasks.md, 'Message API clients')",
            )
        if _is_flower_client(client):
            # NumPyClient.to_client(), as Flower's client_fn examples end: the NumPyClient it wraps
            inner = getattr(client, "numpy_client", None)
            if inner is None:
                raise TaskError(
                    f"{self.name}.make_client returned a flwr Client ({type(client).__name__}: get_parameters(ins), "
                    "fit(ins), ...), which BDFL does not call",
                    fix="return a flwr.client.NumPyClient (get_parameters(config), fit(parameters, config), "
                        "evaluate(parameters, config)); docs/tasks.md",
                )
            client = inner
        for method in ("get_parameters", "fit", "evaluate"):
            if not callable(getattr(client, method, None)):
                raise TaskError(
                    f"{self.name}.make_client returned {type(client).__name__}, which has no {method}() "
                    "method; it must return a flwr.client.NumPyClient"
                )
        return CheckedClient(client, task=self.name, config={**self.defaults, **(config or {})}, cast_dtypes=cast_dtypes)

    def initial_parameters(
        self, dataset: Dataset, *, seed: int, hparams: Mapping[str, Any] | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> NDArrays:
        """The parameters a fresh client built with ``seed`` starts from."""
        small = (dataset.X_train[:2], dataset.y_train[:2])
        client = self.make_client(small, small, seed=seed, hparams=hparams, config=config)
        try:
            returned = client.get_parameters({})
        except Exception as exc:  # noqa: BLE001 - the task's code: one error naming it, not a traceback
            raise TaskError(f"task {self.name}: get_parameters() raised {type(exc).__name__}: {exc}",
                            fix="the error is in the task's get_parameters(config), which must return the model's arrays") from exc
        params = check_parameters(returned, what=f"{self.name} get_parameters()")
        if not params:
            raise TaskError(
                f"{self.name}: get_parameters() returned no arrays",
                fix="implement NumPyClient.get_parameters to return the model's parameters",
            )
        return [np.array(p, copy=True) for p in params]

    def probe(
        self,
        shards: Sequence[tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]],
        initial: NDArrays,
        *,
        seed: int,
        hparams: Mapping[str, Any] | None = None,
        config: Mapping[str, Any] | None = None,
        cast_dtypes: bool = False,
    ) -> str | None:
        """The client contract, checked before a run touches any stake: a throw-away client on
        the first of ``shards`` fits once from ``initial`` (``server_round`` 1), its arrays
        and ``num_examples`` are checked (:func:`check_contract`, :func:`check_num_examples`)
        and it evaluates the result once, which must report an ``accuracy``. A :class:`ClientContractError` propagates; any
        other exception moves on to the next shard (it may be that shard's fault, which the
        run isolates). Returns the last such failure (traceback text) when no shard could fit."""
        failure = None
        for train, val in shards:
            client = self.make_client(train, val, seed=seed, hparams=hparams, config=config, cast_dtypes=cast_dtypes)
            try:
                params, _, _ = client.fit([p.copy() for p in initial], {"server_round": 1})
                res = evaluate_client(client, params, {"server_round": 1})
                if "accuracy" not in res.metrics:  # every report and several audit tests read it
                    raise ClientContractError(
                        f"task {self.name}: evaluate() returned metrics without 'accuracy' "
                        f"(keys: {sorted(res.metrics) or 'none'})",
                        fix="return (loss, num_examples, {'accuracy': accuracy}) from evaluate, as Flower's examples do",
                    )
                return None
            except ClientContractError:
                raise
            except Exception:  # noqa: BLE001 - isolated: another shard may fit
                failure = traceback.format_exc()
        return failure

    def evaluator(
        self,
        X: np.ndarray,
        y: np.ndarray,
        *,
        hparams: Mapping[str, Any] | None = None,
        seed: int = 0,
        config: Mapping[str, Any] | None = None,
    ) -> Evaluator:
        """An :class:`Evaluator` for the data ``(X, y)`` (e.g. the global test set)."""
        return Evaluator(self, X, y, hparams=hparams, seed=seed, config=config)


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
        config: Mapping[str, Any] | None = None,
    ) -> None:
        if len(y) == 0:
            raise TaskError("cannot evaluate on an empty data set")
        self.task = task
        self.num_examples = len(y)
        self.client = task.make_client((X[:1], y[:1]), (X, y), seed=seed, hparams=hparams, config=config)

    def __call__(self, parameters: NDArrays) -> EvalResult:
        return evaluate_client(self.client, parameters)


def _import_task_module(spec: str) -> ModuleType:
    return import_spec(spec, what="task module" if not spec.endswith(".py") else "task", prefix=TASK_MODULE_PREFIX, error=TaskError)


def task_defaults(spec: str) -> dict[str, Any]:
    """The task module's own training defaults: its ``TASK_DEFAULTS`` dict ({} without one), e.g.
    ``{"learning_rate": 0.01}`` for a client that trains with Adam. The config takes them for what
    neither its file nor the command line sets (:func:`bdfl.config.apply_task_defaults`)."""
    if not isinstance(spec, str) or not spec.strip():
        raise TaskError("task must be a module path such as 'clients.digits'")
    defaults = getattr(_import_task_module(spec.strip()), "TASK_DEFAULTS", {})
    if not isinstance(defaults, Mapping):
        raise TaskError(f"task module '{spec}': TASK_DEFAULTS must be a dict of [task] settings, got {type(defaults).__name__}")
    return dict(defaults)


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
