"""Flower ``ClientApp`` (Message API) clients in a BDFL peer.

Since Flower 1.21 a client is written as a ``ClientApp`` with ``@app.train()`` and
``@app.evaluate()`` functions that receive a ``Message`` (an ``ArrayRecord`` under
``"arrays"``, a ``ConfigRecord`` under ``"config"``) and a ``Context``, and reply with an
``ArrayRecord`` and a ``MetricRecord`` (``"num-examples"``, losses, accuracies).
:class:`ClientAppClient` presents such an app as the three ``NumPyClient`` methods BDFL
calls, so the app's functions run unchanged (docs/tasks.md, "Message API clients"):

* the train / evaluate message carries the arrays under the initial parameters' names
  (a ``state_dict``'s keys: ``to_torch_state_dict()`` works), and the config BDFL sends
  every client plus ``server-round`` (as Flower's strategies send it);
* ``context.node_config`` holds ``partition-id`` / ``num-partitions``; the app's data loader
  gets this peer's shard with :func:`load_partition` (instead of ``flwr_datasets``);
* ``context.run_config`` is what the adapter passes (e.g. ``{"local-epochs": 1}``);
* each call runs with torch's global RNG seeded from ``(seed, server round)`` and restored
  after it, so the same seed and inputs give the same parameters.

A ``ClientApp(client_fn=client_fn)`` (the form most Flower examples before 1.21 use, with
``client_fn(context)`` returning ``FlowerClient().to_client()``) is sent what Flower's own
SuperLink sends it: the legacy ``fitins.*`` / ``evaluateins.*`` records (``flwr.compat``'s
conversions; the config's scalars only, so no ``classes``), and its ``FitRes`` / ``EvaluateRes``
are read back.
"""

from __future__ import annotations

import itertools
import sys
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from flwr.app import DEFAULT_TTL, Array, ArrayRecord, ConfigRecord, Context, Message, MessageType, Metadata, MetricRecord, RecordDict
from flwr.common import Code, EvaluateIns, FitIns, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.compat.common.recorddict_compat import (
    evaluateins_to_recorddict,
    fitins_to_recorddict,
    recorddict_to_evaluateres,
    recorddict_to_fitres,
)

from bdfl.errors import BDFLError

__all__ = ["ClientAppClient", "load_partition"]

Shard = tuple[np.ndarray, np.ndarray]

_PARTITIONS: dict[int, tuple[Shard, Shard]] = {}
_NEXT_ID = itertools.count()

#: The MetricRecord keys read as an evaluation's loss and accuracy (first found), as Flower's
#: examples name them.
LOSS_KEYS = ("eval_loss", "loss", "eval-loss")
ACCURACY_KEYS = ("accuracy", "eval_acc", "eval_accuracy", "eval-acc")


def _whole(value: Any) -> Any:
    """A MetricRecord number that is a whole number as an int (MetricRecords may carry
    ``32.0``); anything else unchanged, for the caller's check to refuse by name."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def load_partition(partition_id: int) -> tuple[Shard, Shard]:
    """``((X_train, y_train), (X_val, y_val))`` of the peer whose ``context.node_config``
    says ``partition-id``: BDFL's shard, in place of ``FederatedDataset.load_partition``."""
    try:
        return _PARTITIONS[int(partition_id)]
    except KeyError:
        raise BDFLError(
            f"no BDFL data partition {partition_id}",
            fix="call load_partition with context.node_config['partition-id'] of a ClientAppClient",
        ) from None


def _seeded(seed: int, step: int, fn: Callable[[], Any]) -> Any:
    """``fn()`` with torch's (if in use) and NumPy's global RNGs seeded from ``(seed, step)``,
    both restored afterwards."""
    s = int(np.random.SeedSequence([int(seed), int(step)]).generate_state(1, np.uint64)[0]) & (2**63 - 1)
    np_state = np.random.get_state()
    np.random.seed(s % 2**32)
    try:
        torch = sys.modules.get("torch")
        if torch is None:
            return fn()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(s)
            return fn()
    finally:
        np.random.set_state(np_state)


def _config_record(config: Mapping[str, Any]) -> ConfigRecord:
    """The NumPyClient config as a ConfigRecord, with ``server-round`` as Flower strategies send it."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, (list, tuple, range)):
            value = [v.item() if isinstance(v, np.generic) else v for v in value]
        elif isinstance(value, np.generic):
            value = value.item()
        out[key] = value
    if "server_round" in out:
        out["server-round"] = out["server_round"]
    return ConfigRecord(out)


class ClientAppClient:
    """A Flower ``ClientApp`` as a ``NumPyClient`` (``get_parameters`` / ``fit`` / ``evaluate``).

    ``initial_arrays``: the model's initial parameters as an ``ArrayRecord`` (or a callable
    returning one, called with the RNGs seeded by ``seed``), e.g.
    ``lambda: ArrayRecord(Net().state_dict())`` as Flower's server app builds them.
    ``run_config``: the app's ``context.run_config`` (Flower's pyproject.toml ``[tool.flwr.app.config]``).
    """

    def __init__(
        self,
        app: Any,
        train: Shard,
        val: Shard,
        *,
        seed: int,
        initial_arrays: ArrayRecord | Callable[[], ArrayRecord],
        run_config: Mapping[str, Any] | None = None,
    ) -> None:
        if not callable(app):
            raise BDFLError(f"ClientAppClient needs a flwr ClientApp, got {type(app).__name__}")
        self.app = app
        self.seed = int(seed)
        self.partition_id = next(_NEXT_ID)
        _PARTITIONS[self.partition_id] = ((train[0], train[1]), (val[0], val[1]))
        # the registry holds the shard only while its client lives (a sweep builds thousands)
        weakref.finalize(self, _PARTITIONS.pop, self.partition_id, None)
        self.num_train, self.num_val = len(train[1]), len(val[1])
        arrays = _seeded(self.seed, 0, initial_arrays) if callable(initial_arrays) else initial_arrays
        if not isinstance(arrays, ArrayRecord) or not len(arrays):
            raise BDFLError("ClientAppClient: initial_arrays must be (or return) a non-empty flwr ArrayRecord",
                            fix="e.g. initial_arrays=lambda: ArrayRecord(Net().state_dict())")
        self.parameter_names = list(arrays.keys())
        # built from a client_fn: no registered functions, one wrapped legacy handler (flwr's ClientApp)
        self.legacy = getattr(app, "_call", None) is not None and not getattr(app, "_registered_funcs", None)
        self._initial = [np.array(a.numpy(), copy=True) for a in arrays.values()]
        self.last_fit_names: list[str] | None = None
        self.context = Context(
            run_id=1,
            node_id=self.partition_id + 1,
            node_config={"partition-id": self.partition_id, "num-partitions": len(_PARTITIONS)},
            state=RecordDict(),
            run_config=dict(run_config or {}),
        )

    def get_parameters(self, config: Mapping[str, Any] | None = None) -> list[np.ndarray]:
        return [a.copy() for a in self._initial]

    def _send(self, kind: str, parameters: list[np.ndarray], config: Mapping[str, Any]) -> RecordDict:
        if len(parameters) != len(self.parameter_names):
            raise BDFLError(f"ClientAppClient: {len(parameters)} arrays for {len(self.parameter_names)} named parameters")
        rnd = int(config.get("server_round", 0))
        if self.legacy:
            content = self._legacy_content(kind, parameters, config)
        else:
            arrays = ArrayRecord()
            for name, value in zip(self.parameter_names, parameters):
                arrays[name] = Array(np.asarray(value, order="C"))  # keeps a 0-d array 0-d (BatchNorm's counter)
            content = RecordDict({"arrays": arrays, "config": _config_record(config)})
        # the metadata a SuperLink would set (an instruction from the "server", node 0, to this node)
        meta = Metadata(run_id=self.context.run_id, message_id=f"bdfl-{self.partition_id}-{kind}-{rnd}", src_node_id=0,
                        dst_node_id=self.context.node_id, reply_to_message_id="", group_id=str(rnd),
                        created_at=time.time(), ttl=DEFAULT_TTL, message_type=kind)
        msg = Message(content=content, metadata=meta)
        reply = _seeded(self.seed, rnd, lambda: self.app(msg, self.context))
        if not isinstance(reply, Message):
            raise BDFLError(f"the ClientApp's {kind} function returned {type(reply).__name__}, not a flwr Message")
        if reply.has_error():
            raise BDFLError(f"the ClientApp's {kind} function replied with an error: {reply.error.reason}")
        return reply.content

    @staticmethod
    def _legacy_content(kind: str, parameters: list[np.ndarray], config: Mapping[str, Any]) -> RecordDict:
        """The records a SuperLink sends a ``client_fn`` app: ``FitIns`` / ``EvaluateIns`` (the
        arrays serialised as Flower's ``Parameters``, the config as its ``Scalar`` dict)."""
        params = ndarrays_to_parameters([np.asarray(p, order="C") for p in parameters])
        # Flower's legacy config holds scalars only (its Scalar type): a list such as ``classes`` is left out
        cfg = {k: v for k, v in _config_record(config).items() if not isinstance(v, list)}
        if kind == MessageType.TRAIN:
            return fitins_to_recorddict(FitIns(params, cfg), keep_input=True)
        return evaluateins_to_recorddict(EvaluateIns(params, cfg), keep_input=True)

    @staticmethod
    def _legacy_status(kind: str, res: Any) -> None:
        if res.status.code != Code.OK:
            raise BDFLError(f"the ClientApp's client {kind} replied with status {res.status.code.name}: {res.status.message}")

    @staticmethod
    def _metrics(content: RecordDict) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for record in content.values():
            if isinstance(record, MetricRecord):
                out.update({k: v for k, v in record.items() if isinstance(v, (int, float))})
        return out

    def fit(self, parameters: list[np.ndarray], config: Mapping[str, Any]) -> tuple[list[np.ndarray], int, dict[str, Any]]:
        content = self._send(MessageType.TRAIN, parameters, config)
        if self.legacy:
            res = recorddict_to_fitres(content, keep_input=False)
            self._legacy_status("fit", res)
            return parameters_to_ndarrays(res.parameters), res.num_examples, dict(res.metrics)
        records = [r for r in content.values() if isinstance(r, ArrayRecord)]
        if len(records) != 1:
            raise BDFLError(f"the ClientApp's train function replied with {len(records)} ArrayRecords, expected 1",
                            fix="reply with RecordDict({'arrays': ArrayRecord(model.state_dict()), 'metrics': MetricRecord(...)})")
        arrays = records[0]
        self.last_fit_names = list(arrays.keys())
        metrics = self._metrics(content)
        num = _whole(metrics.pop("num-examples", self.num_train))  # checked by bdfl.learning.task.fit_client
        return [a.numpy() for a in arrays.values()], num, metrics

    def evaluate(self, parameters: list[np.ndarray], config: Mapping[str, Any]) -> tuple[float, int, dict[str, Any]]:
        content = self._send(MessageType.EVALUATE, parameters, config)
        if self.legacy:  # a NumPyClient's (loss, num_examples, metrics), checked as any client's
            res = recorddict_to_evaluateres(content)
            self._legacy_status("evaluate", res)
            return res.loss, res.num_examples, dict(res.metrics)
        metrics = self._metrics(content)
        num = int(metrics.pop("num-examples", self.num_val))
        loss_key = next((k for k in LOSS_KEYS if k in metrics), None)
        if loss_key is None:  # a silent NaN here reads as "training diverged" in every audit
            raise BDFLError(
                f"the ClientApp's evaluate function replied without a loss: its MetricRecords hold "
                f"{sorted(metrics) or 'no numbers'}, expected one of {', '.join(LOSS_KEYS)}",
                fix="reply with MetricRecord({'eval_loss': loss, 'eval_acc': accuracy, 'num-examples': n})",
            )
        acc_key = next((k for k in ACCURACY_KEYS if k in metrics), None)
        out = {**metrics, "accuracy": float(metrics[acc_key])} if acc_key is not None else metrics
        return float(metrics[loss_key]), num, out
