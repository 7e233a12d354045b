"""clients.digits: training works, is deterministic, and hyper-parameters are validated."""

from __future__ import annotations

import numpy as np
import pytest

from bdfl.errors import BDFLError
from bdfl.learning.data import load_digits
from clients import digits


@pytest.fixture(scope="module")
def ds():
    return load_digits()


def _acc(client, params, ds) -> float:
    loss, n, m = client.evaluate(params, {})
    assert n == len(ds.y_test)
    return m["accuracy"]


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_accuracy_rises_with_local_training(ds, model: str) -> None:
    client = digits.make_client(ds.train, ds.test, seed=0, hparams={"model": model})
    p0 = client.get_parameters({})
    before = _acc(client, p0, ds)
    p, n, metrics = client.fit(p0, {"local_epochs": 4})
    after = _acc(client, p, ds)
    assert n == len(ds.y_train) and metrics["train_loss"] > 0
    assert before < 0.25 and after > 0.85, (before, after)


def test_more_epochs_lower_training_loss(ds) -> None:
    client = digits.make_client(ds.train, ds.test, seed=1, hparams={"lr": 0.02})
    p0 = client.get_parameters({})
    _, _, one = client.fit(p0, {"local_epochs": 1, "server_round": 1})
    p3, _, three = client.fit(p0, {"local_epochs": 3, "server_round": 1})
    assert three["train_loss"] < one["train_loss"]


def test_same_seed_same_bytes(ds) -> None:
    X, y = ds.X_train[:300], ds.y_train[:300]
    runs = []
    for seed in (5, 5, 6):
        c = digits.make_client((X, y), (X[:50], y[:50]), seed=seed, hparams={"local_epochs": 2})
        p = c.get_parameters({})
        for r in range(2):
            p, _, _ = c.fit(p, {"server_round": r + 1})
        runs.append(b"".join(a.tobytes() for a in p))
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_round_config_fixes_the_shuffle(ds) -> None:
    """fit(..., {"server_round": r}) is a pure function of (seed, parameters, r), whatever ran before."""
    X, y = ds.X_train[:200], ds.y_train[:200]
    a = digits.make_client((X, y), (X, y), seed=3)
    b = digits.make_client((X, y), (X, y), seed=3)
    p0 = a.get_parameters({})
    b.fit(p0, {"server_round": 1})  # b has fitted before; a has not
    pa, _, _ = a.fit(p0, {"server_round": 8})
    pb, _, _ = b.fit(p0, {"server_round": 8})
    pc, _, _ = b.fit(p0, {"server_round": 9})
    assert all(np.array_equal(x, z) for x, z in zip(pa, pb))
    assert not all(np.array_equal(x, z) for x, z in zip(pa, pc))


def test_parameters_do_not_alias_the_model(ds) -> None:
    c = digits.make_client(ds.train, ds.test, seed=0)
    p = c.get_parameters({})
    snapshot = [a.copy() for a in p]
    c.fit(p, {})
    assert all(np.array_equal(a, b) for a, b in zip(p, snapshot))
    p[0][:] = 0.0
    assert not np.array_equal(c.get_parameters({})[0], p[0])


def test_set_parameters_checks_shapes(ds) -> None:
    c = digits.make_client(ds.train, ds.test, seed=0)
    p = c.get_parameters({})
    with pytest.raises(BDFLError, match="shape"):
        c.evaluate([p[0][:5], *p[1:]], {})
    with pytest.raises(BDFLError, match="4 parameter arrays, got 3"):
        c.evaluate(p[:3], {})


def test_hparams_validated(ds) -> None:
    with pytest.raises(BDFLError, match="unknown hyper-parameter 'epochs'") as info:
        digits.make_client(ds.train, ds.test, seed=0, hparams={"epochs": 3})
    assert "local_epochs" in info.value.fix
    with pytest.raises(BDFLError, match="'model'"):
        digits.make_client(ds.train, ds.test, seed=0, hparams={"model": "resnet"})
    with pytest.raises(BDFLError, match="'batch_size'"):
        digits.make_client(ds.train, ds.test, seed=0, hparams={"batch_size": 0})
    with pytest.raises(BDFLError, match="seed"):
        digits.make_client(ds.train, ds.test, seed=-1)


def test_adam_and_evaluate_on(ds) -> None:
    c = digits.make_client(ds.train, ds.test, seed=0, hparams={"optimizer": "adam", "lr": 0.01})
    p, _, _ = c.fit(c.get_parameters({}), {"local_epochs": 2})
    loss, acc = c.evaluate_on(p, ds.X_test, ds.y_test)
    assert acc > 0.85 and loss < 0.6
    preds = c.predict(p, ds.X_test[:20])
    assert preds.shape == (20,) and np.mean(preds == ds.y_test[:20]) > 0.7


def test_empty_validation_split(ds) -> None:
    c = digits.make_client(ds.train, (ds.X_test[:0], ds.y_test[:0]), seed=0)
    loss, n, m = c.evaluate(c.get_parameters({}), {})
    assert n == 0 and np.isnan(loss)


def test_server_round_keys_the_same_shuffle_as_the_old_round(ds) -> None:
    """server_round r + 1 (1-based, what peers send now) trains exactly as the old 0-based
    config["round"] r did: experiments keep their results."""
    X, y = ds.X_train[:200], ds.y_train[:200]
    a = digits.make_client((X, y), (X, y), seed=3)
    b = digits.make_client((X, y), (X, y), seed=3)
    p0 = a.get_parameters({})
    pa, _, _ = a.fit(p0, {"round": 4})
    pb, _, _ = b.fit(p0, {"server_round": 5})
    assert all(np.array_equal(x, z) for x, z in zip(pa, pb))
