"""The client contract (bdfl.learning.task): what every fit / evaluate receives, what every
fit must return, and Flower's Message API clients (bdfl.learning.flower) beside NumPyClients."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.client import NumPyClient

from bdfl.learning.data import load_digits, make_peer_shards
from bdfl.learning.task import (
    MAX_NUM_EXAMPLES,
    CheckedClient,
    ClientContractError,
    TaskError,
    base_config,
    check_contract,
    check_num_examples,
    load_task,
)

BASE = base_config(classes=range(10), local_epochs=1, batch_size=32, learning_rate=0.01)


@pytest.fixture(scope="module")
def ds():  # noqa: ANN201
    return load_digits()


class Recorder(NumPyClient):
    """A NumPyClient that records the configs it gets and returns what it is told."""

    def __init__(self, out: list[np.ndarray] | None = None) -> None:
        self.configs: list[tuple[str, dict]] = []
        self.out = out

    def get_parameters(self, config):  # noqa: ANN001, ANN201
        return [np.zeros((2, 3)), np.zeros(3)]

    def fit(self, parameters, config):  # noqa: ANN001, ANN201
        self.configs.append(("fit", dict(config)))
        return (self.out if self.out is not None else parameters), 5, {}

    def evaluate(self, parameters, config):  # noqa: ANN001, ANN201
        self.configs.append(("evaluate", dict(config)))
        return 0.5, 5, {"accuracy": 0.5}


def test_dtype_mismatch_is_one_clear_error() -> None:
    expected = [np.zeros((10, 64)), np.zeros(10)]
    with pytest.raises(ClientContractError) as err:
        check_contract([np.zeros((10, 64), np.float32), np.zeros(10)], expected, task="my.task",
                       names=["coef", "intercept"])
    text = str(err.value)
    assert "task my.task" in text and "array 0 ('coef')" in text
    assert "dtype float32, expected float64" in text and "cast_dtypes = true" in text  # the fix


def test_cast_dtypes_casts_and_keeps_values() -> None:
    got = np.arange(6, dtype=np.float32).reshape(2, 3)
    out = check_contract([got], [np.zeros((2, 3))], task="t", cast=True)
    assert out[0].dtype == np.float64 and np.array_equal(out[0], got.astype(np.float64))


@pytest.mark.parametrize(
    "returned, names, returned_names, message",
    [
        ([np.zeros((2, 3))], None, None, "returned 1 arrays, expected 2"),
        ([np.zeros((3, 2)), np.zeros(3)], None, None, "array 0 with shape (3, 2), expected (2, 3)"),
        ([np.zeros((2, 3)), np.zeros(3)], ["w", "b"], ["w", "bias"], "array 1 named 'bias', expected 'b'"),
        ([np.zeros((2, 3)), [0.0, 0.0, 0.0]], None, None, "array 1 as a list, not a numpy.ndarray"),
    ],
)
def test_count_shape_name_and_type_are_checked(returned, names, returned_names, message) -> None:  # noqa: ANN001
    with pytest.raises(ClientContractError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_contract(returned, [np.zeros((2, 3)), np.zeros(3)], task="t", names=names, returned_names=returned_names, cast=True)


def test_every_documented_key_reaches_fit_and_evaluate() -> None:
    from bdfl.learning.task import CheckedClient

    rec = Recorder()
    client = CheckedClient(rec, task="t", config=BASE)
    p = client.get_parameters({})
    client.fit(p, {"server_round": 3})
    client.evaluate(p, {})
    for kind, cfg in rec.configs:
        assert cfg["server_round"] == 3, kind  # 1-based, as Flower servers send it; evaluate too
        assert {k: cfg[k] for k in ("local_epochs", "batch_size", "lr", "learning_rate")} == \
            {"local_epochs": 1, "batch_size": 32, "lr": 0.01, "learning_rate": 0.01}
        assert cfg["classes"] == list(range(10))
    bad = CheckedClient(Recorder(out=[np.zeros((2, 3), np.float32), np.zeros(3)]), task="t", config=BASE)
    with pytest.raises(ClientContractError, match="array 0 with dtype float32"):
        bad.fit(p, {"server_round": 1})


def test_sklearn_client_on_dirichlet_shards(ds) -> None:  # noqa: ANN001
    """Flower's sklearn-logreg client on skewed shards: shards lacking classes fit and
    evaluate (config['classes']); float32 weights are refused unless cast."""
    task = load_task("clients.sklearn_logreg")
    shards = make_peer_shards(ds, 8, scheme="dirichlet", alpha=0.3, seed=0)
    assert any(len(np.unique(s.train[1])) < 10 for s in shards) and any(len(np.unique(s.val[1])) < 10 for s in shards)
    init = task.initial_parameters(ds, seed=0, config=BASE)
    strict = task.make_client(shards[0].train, shards[0].val, seed=0, config=BASE)
    with pytest.raises(ClientContractError, match="clients.sklearn_logreg: fit\\(\\) returned array 0 with dtype float32"):
        strict.fit([a.copy() for a in init], {"server_round": 1})
    for s in shards:
        client = task.make_client(s.train, s.val, seed=0, config=BASE, cast_dtypes=True)
        params, n, _ = client.fit([a.copy() for a in init], {"server_round": 1})
        assert [a.shape for a in params] == [(10, 64), (10,)] and n == len(s.train[1])
        loss, _, metrics = client.evaluate(params, {})
        assert np.isfinite(loss) and 0.0 <= metrics["accuracy"] <= 1.0


def test_clientapp_message_api(ds) -> None:  # noqa: ANN001
    """The quickstart-style ClientApp: named arrays, the config's lr reaches @app.train,
    deterministic per (seed, server_round), evaluates through @app.evaluate."""
    task = load_task("clients.torch_clientapp")
    train, val = (ds.X_train[:160], ds.y_train[:160]), (ds.X_train[160:220], ds.y_train[160:220])
    init = task.initial_parameters(ds, seed=0, config=BASE)
    client = task.make_client(train, val, seed=1, config=BASE)
    assert client.parameter_names[:2] == ["conv1.weight", "conv1.bias"]
    p1, n, metrics = client.fit([a.copy() for a in init], {"server_round": 1})
    assert n == 160 and "train_loss" in metrics
    assert any(not np.array_equal(a, b) for a, b in zip(p1, init))
    again, _, _ = task.make_client(train, val, seed=1, config=BASE).fit([a.copy() for a in init], {"server_round": 1})
    assert all(np.array_equal(a, b) for a, b in zip(p1, again))
    frozen = task.make_client(train, val, seed=1, config={**BASE, "lr": 0.0})  # Adam with lr 0: no move
    p0, _, _ = frozen.fit([a.copy() for a in init], {"server_round": 1})
    assert all(np.array_equal(a, b) for a, b in zip(p0, init))
    loss, n_val, m = client.evaluate(p1, {})
    assert n_val == 60 and np.isfinite(loss) and m["accuracy"] == m["eval_acc"]


def test_clientapp_renamed_arrays_are_refused(ds) -> None:  # noqa: ANN001
    """A ClientApp that replies with arrays under other names breaks the contract."""
    from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp

    from bdfl.learning.flower import ClientAppClient
    from bdfl.learning.task import CheckedClient

    app = ClientApp()

    @app.train()
    def train(msg, context):  # noqa: ANN001, ANN202
        arrays = msg.content["arrays"]
        renamed = ArrayRecord({f"x.{k}": v for k, v in arrays.items()})
        return Message(RecordDict({"arrays": renamed, "metrics": MetricRecord({"num-examples": 3})}), reply_to=msg)

    initial = ArrayRecord([np.zeros((2, 2), np.float32), np.zeros(2, np.float32)])
    client = CheckedClient(ClientAppClient(app, (ds.X_train[:3], ds.y_train[:3]), (ds.X_train[:3], ds.y_train[:3]), seed=0,
                                           initial_arrays=initial), task="renaming")
    with pytest.raises(ClientContractError, match="task renaming: fit\\(\\) returned array 0 named 'x.0', expected '0'"):
        client.fit(client.get_parameters({}), {"server_round": 1})


def test_classes_reach_clients_built_without_a_config(ds) -> None:  # noqa: ANN001
    """Once the task's data set is loaded, every client gets config['classes'] (an attack's
    evaluator builds its client without a run config); TorchClients name their arrays."""
    task = load_task("clients.sklearn_logreg")
    data = task.load_dataset(None)
    client = task.make_client((data.X_train[:50], data.y_train[:50]), (data.X_test[:50], data.y_test[:50]), seed=0)
    loss, _, _ = client.evaluate(client.get_parameters({}), {})  # log_loss(labels=config["classes"])
    assert np.isfinite(loss)
    digits = load_task("clients.digits")
    dclient = digits.make_client((ds.X_train[:20], ds.y_train[:20]), (ds.X_train[:20], ds.y_train[:20]), seed=0)
    assert dclient.parameter_names == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    params = dclient.get_parameters({})
    wrong = [*params[:2], params[2][:9], params[3]]  # a 9-class head
    with pytest.raises(ClientContractError, match="array 2 \\('fc2.weight'\\) with shape \\(9, 64\\), expected \\(10, 64\\)"):
        check_contract(wrong, params, task="clients.digits", names=dclient.parameter_names)


@pytest.mark.parametrize("value", [None, float("nan"), 3.7, 12.0, "12", -5, MAX_NUM_EXAMPLES + 1, 10**30, True])
def test_num_examples_must_be_a_count(value: object) -> None:
    """``num_examples`` goes on chain (a uint32): anything but an integer in its range is one
    clear error naming the field, not a truncation or a failure in the transaction encoder."""
    with pytest.raises(ClientContractError, match=r"task t: fit\(\) returned num_examples = .*expected an integer in \[0, 4294967295\]") as err:
        check_num_examples(value, task="t")
    assert "len(" in err.value.fix


@pytest.mark.parametrize("value", [0, 5, np.int64(7), np.uint32(MAX_NUM_EXAMPLES)])
def test_num_examples_counts_pass(value: object) -> None:
    assert check_num_examples(value, task="t") == int(value) and type(check_num_examples(value, task="t")) is int


class CountsWrong(Recorder):
    def fit(self, parameters, config):  # noqa: ANN001, ANN201
        return parameters, -5, {}


def test_fit_checks_num_examples() -> None:
    client = CheckedClient(CountsWrong(), task="my.task")
    with pytest.raises(ClientContractError, match=r"task my.task: fit\(\) returned num_examples = -5"):
        client.fit(client.get_parameters({}), {"server_round": 1})


EVALUATE_TASK = """
import os
import numpy as np
from flwr.client import NumPyClient
from bdfl.learning.data import load_digits


class Client(NumPyClient):
    def get_parameters(self, config):
        if os.environ.get("BDFL_TEST_EVALUATE") == "get_parameters raises":
            raise KeyError("hidden")
        return [np.zeros(3)]

    def fit(self, parameters, config):
        return parameters, 4, {}

    def evaluate(self, parameters, config):
        bug = os.environ.get("BDFL_TEST_EVALUATE")
        if bug == "two values":
            return 0.5, {"accuracy": 0.5}
        if bug == "percent":
            return 0.5, 4, {"accuracy": 82.7}
        if bug == "text":
            return "low", 4, {"accuracy": 0.5}
        if bug == "acc key":
            return 0.5, 4, {"acc": 0.5}   # not the documented key
        return 0.5, 4, {"accuracy": 0.5}


def load_dataset(data_dir=None):
    return load_digits()


def make_client(train, val, *, seed, hparams=None):
    return Client()
"""


def test_probe_refuses_evaluate_without_accuracy(tmp_path, ds, monkeypatch) -> None:  # noqa: ANN001
    """A task whose evaluate names its accuracy otherwise is stopped at start-up with the key
    it did report (before, every round's progress line failed on the missing number)."""
    monkeypatch.setenv("BDFL_TEST_EVALUATE", "acc key")
    path = tmp_path / "no_accuracy_task.py"
    path.write_text(EVALUATE_TASK)
    task = load_task(str(path))
    shard = ((ds.X_train[:8], ds.y_train[:8]), (ds.X_train[8:12], ds.y_train[8:12]))
    with pytest.raises(ClientContractError, match=r"evaluate\(\) returned metrics without 'accuracy' \(keys: \['acc'\]\)"):
        task.probe([shard], [np.zeros(3)], seed=0, config=BASE)


def test_clientapp_evaluate_without_a_loss_names_the_keys(ds) -> None:  # noqa: ANN001
    """A ClientApp whose evaluate reply names its loss otherwise gets one error listing what it
    sent and what is read, not a NaN loss that every audit reports as a diverged model."""
    from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp

    from bdfl.errors import BDFLError
    from bdfl.learning.flower import ClientAppClient

    app = ClientApp()

    @app.evaluate()
    def evaluate(msg, context):  # noqa: ANN001, ANN202
        return Message(RecordDict({"metrics": MetricRecord({"val_loss": 0.3, "val_accuracy": 0.9, "num-examples": 3})}), reply_to=msg)

    initial = ArrayRecord([np.zeros((2, 2), np.float32)])
    client = ClientAppClient(app, (ds.X_train[:3], ds.y_train[:3]), (ds.X_train[:3], ds.y_train[:3]), seed=0, initial_arrays=initial)
    with pytest.raises(BDFLError, match=r"without a loss: its MetricRecords hold \['val_accuracy', 'val_loss'\], expected one of eval_loss"):
        client.evaluate(client.get_parameters({}), {})


def test_get_parameters_of_tensors_names_the_type_and_the_fix() -> None:
    import torch

    from bdfl.learning.task import TaskError, check_parameters

    with pytest.raises(TaskError, match="its array 1 is a torch.Tensor") as err:
        check_parameters([np.zeros(2), torch.zeros(2)], what="t get_parameters()")
    assert ".cpu().numpy()" in err.value.fix
    with pytest.raises(TaskError, match="got a dict"):
        check_parameters({"w": np.zeros(2)})


class _BatchNormNet(__import__("torch").nn.Module):
    """64 -> 16 (BatchNorm) -> 10: its state_dict holds running statistics and a 0-d int64 counter."""

    def __init__(self) -> None:
        from torch import nn

        super().__init__()
        self.fc1, self.bn, self.fc2 = nn.Linear(64, 16), nn.BatchNorm1d(16), nn.Linear(16, 10)

    def forward(self, x):  # noqa: ANN001, ANN201
        return self.fc2(self.bn(self.fc1(x.flatten(1))).relu())


def test_batchnorm_models_fit_through_the_torch_client(ds) -> None:  # noqa: ANN001
    """A model with BatchNorm (clients.common.TorchClient, what `bdfl new-task` and the built-in
    tasks use): its 0-d `num_batches_tracked` stays 0-d through fit after fit (it became shape (1,)
    and every fit raised), and the counter and running statistics train."""
    from bdfl.learning.task import CheckedClient
    from clients.common import COMMON_HPARAMS, torch_make_client

    make = torch_make_client(lambda h: _BatchNormNet(), dict(COMMON_HPARAMS), task="bn")
    client = CheckedClient(make((ds.X_train[:64], ds.y_train[:64]), (ds.X_train[64:96], ds.y_train[64:96]), seed=0), task="bn")
    p0 = client.get_parameters({})
    assert p0[6].shape == () and p0[6].dtype == np.int64  # bn.num_batches_tracked
    p1, n, _ = client.fit([a.copy() for a in p0], {**BASE, "server_round": 1})
    p2, _, _ = client.fit([a.copy() for a in p1], {**BASE, "server_round": 2})
    assert [a.shape for a in p2] == [a.shape for a in p0] and n == 64
    assert int(p1[6]) == 2 and int(p2[6]) == 4  # 64 samples, batch 32: two steps a fit
    assert not np.array_equal(p0[4], p2[4])  # running_mean moved
    loss, _, m = client.evaluate(p2, {**BASE})
    assert np.isfinite(loss) and 0.0 <= m["accuracy"] <= 1.0


def test_batchnorm_models_fit_through_a_clientapp(ds) -> None:  # noqa: ANN001
    """The Message API path: a ClientApp whose model has BatchNorm gets its 0-d counter as a 0-d
    array (it was sent as shape (1,); BatchNorm's load_state_dict happens to reshape it, other code
    need not) and replies in the initial shapes."""
    import torch
    from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp

    from bdfl.learning.flower import ClientAppClient
    from bdfl.learning.task import CheckedClient

    app = ClientApp()
    seen: list[tuple[int, ...]] = []

    @app.train()
    def train(msg, context):  # noqa: ANN001, ANN202
        seen.append(tuple(msg.content["arrays"]["bn.num_batches_tracked"].shape))
        model = _BatchNormNet()
        model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
        opt = torch.optim.SGD(model.parameters(), lr=float(msg.content["config"]["lr"]))
        x, y = torch.from_numpy(ds.X_train[:32]), torch.from_numpy(ds.y_train[:32]).long()
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        return Message(RecordDict({"arrays": ArrayRecord(model.state_dict()),
                                   "metrics": MetricRecord({"num-examples": 32})}), reply_to=msg)

    torch.manual_seed(0)
    client = CheckedClient(ClientAppClient(app, (ds.X_train[:32], ds.y_train[:32]), (ds.X_train[:32], ds.y_train[:32]), seed=0,
                                           initial_arrays=lambda: ArrayRecord(_BatchNormNet().state_dict())), task="bn-app")
    p0 = client.get_parameters({})
    p1, n, _ = client.fit([a.copy() for a in p0], {**BASE, "server_round": 1})
    p2, _, _ = client.fit([a.copy() for a in p1], {**BASE, "server_round": 2})
    assert [a.shape for a in p2] == [a.shape for a in p0] and p0[6].shape == () and n == 32
    assert (int(p1[6]), int(p2[6])) == (1, 2) and seen == [(), ()]


def test_batchnorm_models_train_on_shards_that_leave_a_batch_of_one(ds) -> None:  # noqa: ANN001
    """65 samples in batches of 32 leave one sample over: a BatchNorm model trains it with the batch
    before (torch raises on a batch of one); a model without BatchNorm keeps the plain batches."""
    import torch

    from clients.common import COMMON_HPARAMS, torch_make_client, train_epochs

    make = torch_make_client(lambda h: _BatchNormNet(), dict(COMMON_HPARAMS), task="bn")
    client = make((ds.X_train[:65], ds.y_train[:65]), (ds.X_train[65:97], ds.y_train[65:97]), seed=0)
    p1, n, _ = client.fit(client.get_parameters({}), {**BASE, "server_round": 1})
    assert n == 65 and int(p1[6]) == 2  # two steps: 32, then 33
    X, y = torch.from_numpy(ds.X_train[:65]).reshape(65, -1), torch.from_numpy(ds.y_train[:65]).long()
    plain = torch.nn.Linear(64, 10)
    steps: list[int] = []
    plain.register_forward_hook(lambda m, i, o: steps.append(len(i[0])))
    train_epochs(plain, X, y, epochs=1, batch_size=32, optimizer=torch.optim.SGD(plain.parameters(), lr=0.1),
                 generator=torch.Generator().manual_seed(0))
    assert steps == [32, 32, 1]


def test_a_dropout_model_fits_the_same_whatever_ran_before(ds) -> None:  # noqa: ANN001
    """Dropout draws from torch's global generator, whose state depends on what the process did
    before (a probe's Dropout task gave three different runs for one seed): TorchClient seeds it per
    (peer, round) inside fork_rng, so the fit is the same and the process's state is left alone."""
    import torch
    from torch import nn

    from clients.common import COMMON_HPARAMS, torch_make_client

    class DropoutNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.drop, self.fc2 = nn.Linear(64, 32), nn.Dropout(0.5), nn.Linear(32, 10)

        def forward(self, x):  # noqa: ANN001, ANN201
            return self.fc2(self.drop(self.fc1(x.flatten(1)).relu()))

    make = torch_make_client(lambda h: DropoutNet(), dict(COMMON_HPARAMS), task="dropout")
    data = ((ds.X_train[:64], ds.y_train[:64]), (ds.X_train[64:96], ds.y_train[64:96]))

    def fit_after(draws: int) -> list[np.ndarray]:
        client = make(*data, seed=3)
        torch.rand(draws)  # whatever else the process drew before
        return client.fit(client.get_parameters({}), {**BASE, "server_round": 2})[0]

    a, b = fit_after(1), fit_after(1000)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    client = make(*data, seed=3)  # building a module draws from the global generator; fit does not
    start = client.get_parameters({})
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    client.fit(start, {**BASE, "server_round": 1})
    assert torch.equal(torch.rand(3), expected)  # the process's own generator is where it was


CLIENT_FN_APP = "tests.clients.tasks.client_fn_app"


@pytest.mark.parametrize("mode", ["app", "client"])
def test_a_client_fn_app_as_flowers_docs_write_it_trains_and_evaluates(ds, mode, monkeypatch) -> None:  # noqa: ANN001
    """``ClientApp(client_fn=...)`` with ``client_fn`` returning ``NumPyClient.to_client()``, the
    form of Flower's examples before the Message API: round 1 failed on every peer with
    ``KeyError: 'fitins.parameters'`` ("fix the task's fit"), and the ``Client`` itself with a
    traceback ``'dict' object has no attribute 'config'`` (an outside probe, 2026-12-07). Now the app
    gets the legacy records a SuperLink sends, and the ``Client`` is unwrapped to its NumPyClient."""
    monkeypatch.setenv("BDFL_TEST_CLIENT_FN", mode)
    task = load_task(CLIENT_FN_APP)
    initial = task.initial_parameters(ds, seed=0, config=BASE)
    shard = ((ds.X_train[:48], ds.y_train[:48]), (ds.X_train[48:80], ds.y_train[48:80]))
    assert task.probe([shard], initial, seed=0, config=BASE) is None
    client = task.make_client(*shard, seed=3, config=BASE)
    assert type(client.client).__name__ == ("ClientAppClient" if mode == "app" else "FlowerClient")
    params, n, metrics = client.fit([p.copy() for p in initial], {"server_round": 1})
    assert n == 48 and "train_loss" in metrics
    assert [(p.shape, p.dtype) for p in params] == [(p.shape, p.dtype) for p in initial]
    assert any(not np.array_equal(a, b) for a, b in zip(params, initial))  # it trained
    loss, count, out = client.evaluate(params, {"server_round": 1})
    assert count == 32 and np.isfinite(loss) and 0.0 <= out["accuracy"] <= 1.0
    if mode == "app":  # the same seed and round give the same parameters (the adapter seeds each call)
        again, _, _ = task.make_client(*shard, seed=3, config=BASE).fit([p.copy() for p in initial], {"server_round": 1})
        assert all(np.array_equal(a, b) for a, b in zip(params, again))


def test_a_flower_client_without_a_numpy_client_is_refused_by_name(ds, tmp_path) -> None:  # noqa: ANN001
    """A low-level ``flwr`` ``Client`` (``fit(ins)``) is not called with the wrong signature: one error says to
    return a NumPyClient."""
    path = tmp_path / "raw_client_task.py"
    path.write_text(
        "from flwr.client import Client\n"
        "from bdfl.learning.data import load_digits\n"
        "class Raw(Client):\n"
        "    pass\n"
        "def load_dataset(data_dir=None):\n    return load_digits()\n"
        "def make_client(train, val, *, seed, hparams=None):\n    return Raw()\n")
    task = load_task(str(path))
    with pytest.raises(TaskError, match=r"returned a flwr Client \(Raw: get_parameters\(ins\).*\n  fix: return a flwr.client.NumPyClient"):
        task.initial_parameters(ds, seed=0, config=BASE)


@pytest.mark.parametrize(("bug", "message"), [
    ("two values", r"task .*evaluate_task\.py: evaluate\(\) must return \(loss, num_examples, metrics\), got \(0\.5, \{'accuracy'"),
    ("percent", r"evaluate\(\) reported accuracy 82\.7, outside \[0, 1\] \(a percentage\? divide by 100\)"),
    ("text", r"evaluate\(\) returned a loss, count or accuracy that is not a number .*loss 'low'"),
])
def test_a_bad_evaluate_result_stops_the_probe_before_any_stake(ds, tmp_path, monkeypatch, bug, message) -> None:  # noqa: ANN001
    """The probe (before any peer joins) stops on evaluate results that break the contract. Before, a
    2-tuple was a plain TaskError the probe passed over (the run stopped at the first audit, after
    staking), and a percentage accuracy reached the audit, whose binomial error took the square root of
    a negative number and blamed the built-in ``accuracy`` detector (an outside probe, 2026-12-07)."""
    monkeypatch.setenv("BDFL_TEST_EVALUATE", bug)
    path = tmp_path / "evaluate_task.py"
    path.write_text(EVALUATE_TASK)
    task = load_task(str(path))
    shard = ((ds.X_train[:8], ds.y_train[:8]), (ds.X_train[8:12], ds.y_train[8:12]))
    with pytest.raises(ClientContractError, match=message) as err:
        task.probe([shard], [np.zeros(3)], seed=0, config=BASE)
    assert err.value.fix and "accuracy a fraction in [0, 1]" in err.value.fix
    monkeypatch.setenv("BDFL_TEST_EVALUATE", "fine")
    assert task.probe([shard], [np.zeros(3)], seed=0, config=BASE) is None  # the control: the same task keeps it


def test_get_parameters_raising_is_one_error_naming_the_task(ds, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("BDFL_TEST_EVALUATE", "get_parameters raises")
    path = tmp_path / "evaluate_task.py"
    path.write_text(EVALUATE_TASK)
    with pytest.raises(TaskError, match=r"task .*evaluate_task\.py: get_parameters\(\) raised KeyError: 'hidden'"):
        load_task(str(path)).initial_parameters(ds, seed=0, config=BASE)
