"""Loading task modules and calling their clients through the framework."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from bdfl.errors import BDFLError
from bdfl.learning.task import TaskError, check_parameters, evaluate_client, fit_client, load_task


def test_load_task_by_module_path() -> None:
    task = load_task("clients.digits")
    ds = task.load_dataset(None)
    assert ds.name == "digits"
    client = task.make_client(ds.train, ds.test, seed=0, hparams={})
    params = client.get_parameters({})
    assert [p.shape for p in params] == [(64, 64), (64,), (10, 64), (10,)]


def test_load_task_errors(tmp_path: Path) -> None:
    with pytest.raises(TaskError, match="task module 'clients.nope' not found") as info:
        load_task("clients.nope")
    assert "clients.digits" in info.value.fix
    lacking = tmp_path / "lacking.py"
    lacking.write_text("def load_dataset(data_dir):\n    return None\n")
    with pytest.raises(TaskError, match="does not define make_client"):
        load_task(str(lacking))
    needs_pkg = tmp_path / "needs_pkg.py"
    needs_pkg.write_text("import torchvision_not_installed_anywhere\n")
    with pytest.raises(TaskError, match="imports 'torchvision_not_installed_anywhere'"):
        load_task(str(needs_pkg))
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(TaskError, match="RuntimeError: boom"):
        load_task(str(broken))
    with pytest.raises(TaskError, match="does not exist"):
        load_task(str(tmp_path / "missing.py"))
    with pytest.raises(TaskError):
        load_task("")


def test_load_task_from_file_with_any_numpy_client(tmp_path: Path) -> None:
    """A hand-written NumPyClient (no torch) works through the task interface."""
    src = '''
import numpy as np
from flwr.client import NumPyClient
from bdfl.learning.data import load_digits

class Centroid(NumPyClient):
    """Nearest-centroid classifier: parameters = one centroid per class."""
    def __init__(self, train, val):
        self.train, self.val = train, val
    def get_parameters(self, config):
        return [np.zeros((10, 64), np.float32)]
    def fit(self, parameters, config):
        X, y = self.train
        c = parameters[0].copy()
        for k in np.unique(y):
            c[k] = X[y == k].reshape(-1, 64).mean(axis=0)
        return [c], len(y), {}
    def evaluate(self, parameters, config):
        X, y = self.val
        d = ((X.reshape(len(X), 1, 64) - parameters[0][None]) ** 2).sum(-1)
        acc = float((d.argmin(1) == y).mean())
        return 1.0 - acc, len(y), {"accuracy": acc}

def load_dataset(data_dir):
    return load_digits()

def make_client(train, val, *, seed, hparams):
    return Centroid(train, val)
'''
    path = tmp_path / "centroid_task.py"
    path.write_text(src)
    task = load_task(str(path))
    ds = task.load_dataset(None)
    init = task.initial_parameters(ds, seed=0)
    client = task.make_client(ds.train, ds.test, seed=0)
    fitted = fit_client(client, init, {"round": 0})
    assert fitted.num_examples == len(ds.y_train)
    ev = task.evaluator(*ds.test)
    assert ev(fitted.parameters).accuracy > 0.85
    assert ev.num_examples == len(ds.y_test)


def test_initial_parameters_seeded() -> None:
    task = load_task("clients.digits")
    ds = task.load_dataset(None)
    a = task.initial_parameters(ds, seed=3)
    b = task.initial_parameters(ds, seed=3)
    c = task.initial_parameters(ds, seed=4)
    assert all(x.tobytes() == y.tobytes() for x, y in zip(a, b))
    assert any(x.tobytes() != y.tobytes() for x, y in zip(a, c))


class _BadClient:
    def __init__(self, mode: str) -> None:
        self.mode = mode

    def get_parameters(self, config):  # noqa: ANN001, ANN201
        return [np.zeros(3)]

    def fit(self, parameters, config):  # noqa: ANN001, ANN201
        if self.mode == "shape":
            return [np.zeros(4)], 1, {}
        if self.mode == "arity":
            return [np.zeros(3)]
        return [np.zeros(3)], 5, {"x": 1}

    def evaluate(self, parameters, config):  # noqa: ANN001, ANN201
        return 0.5, 3, {}


def test_fit_and_evaluate_client_validation() -> None:
    p = [np.zeros(3)]
    with pytest.raises(TaskError, match="shape"):
        fit_client(_BadClient("shape"), p)
    with pytest.raises(TaskError, match="must return"):
        fit_client(_BadClient("arity"), p)
    ok = fit_client(_BadClient("ok"), p)
    assert ok.num_examples == 5 and ok.metrics == {"x": 1}
    ev = evaluate_client(_BadClient("ok"), p)
    assert ev.loss == 0.5 and math.isnan(ev.accuracy)
    with pytest.raises(TaskError, match="list of NumPy arrays"):
        check_parameters("nope")
    assert isinstance(TaskError("x"), BDFLError)


def test_make_client_must_return_a_client(tmp_path: Path) -> None:
    path = tmp_path / "weird.py"
    path.write_text("def load_dataset(d):\n    return None\n\ndef make_client(train, val, *, seed, hparams):\n    return 42\n")
    task = load_task(str(path))
    with pytest.raises(TaskError, match="no get_parameters"):
        task.make_client((np.zeros((1, 1)), np.zeros(1)), (np.zeros((1, 1)), np.zeros(1)), seed=0)
    with pytest.raises(TaskError, match="must return bdfl.learning.data.Dataset"):
        task.load_dataset(None)
