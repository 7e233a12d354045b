"""FedProx's proximal term in the bundled torch clients (clients/common.py) and its config field.

The term (Li et al., MLSys 2020) adds ``mu/2 * ||w - w_start||^2`` to every local step, so a
fit on a skewed shard ends nearer the common model it started from; ``task.proximal_mu``
reaches every fit as the key Flower's FedProx strategy sends (``proximal_mu``)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bdfl.config import TaskConfig, from_dict
from bdfl.errors import BDFLError, ConfigError
from bdfl.learning.data import load_digits
from bdfl.learning.task import CheckedClient, base_config, task_base_config
from clients import digits


@pytest.fixture(scope="module")
def setting():  # noqa: ANN201
    """A common model trained on all of digits, and a skewed shard: three classes only."""
    ds = load_digits()
    trainer = digits.make_client(ds.train, ds.test, seed=0, hparams={"local_epochs": 3})
    common, _, _ = trainer.fit(trainer.get_parameters({}), {"server_round": 1})
    X, y = ds.train
    keep = np.isin(y, [0, 1, 2])
    return ds, common, (X[keep], y[keep])


def _dist(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return math.sqrt(sum(float(((x - y) ** 2).sum()) for x, y in zip(a, b)))


def _fit(ds, shard, common, **config):  # noqa: ANN001, ANN202
    client = digits.make_client(shard, ds.test, seed=3, hparams={"local_epochs": 5, "batch_size": 10})
    params, _, _ = client.fit(common, {"server_round": 4, **config})
    return client, params


def test_proximal_term_pulls_the_fit_toward_its_start(setting) -> None:  # noqa: ANN001
    """The same fit (seed, data, config) with mu > 0 ends nearer the common model, the more the
    larger mu, and keeps more of its accuracy on the classes the shard lacks."""
    ds, common, shard = setting
    client, plain = _fit(ds, shard, common)
    _, mu1 = _fit(ds, shard, common, proximal_mu=1.0)
    _, mu10 = _fit(ds, shard, common, proximal_mu=10.0)
    d0, d1, d10 = _dist(plain, common), _dist(mu1, common), _dist(mu10, common)
    assert d10 < d1 < 0.6 * d0, (d0, d1, d10)
    # the shard's own classes only: the plain fit forgets the other seven, the proximal one less
    acc = {k: client.evaluate(p, {})[2]["accuracy"] for k, p in (("plain", plain), ("mu10", mu10))}
    assert acc["mu10"] > acc["plain"] + 0.2, acc


def test_mu_zero_is_the_plain_loop_bit_for_bit(setting) -> None:  # noqa: ANN001
    ds, common, shard = setting
    _, none = _fit(ds, shard, common)
    _, zero = _fit(ds, shard, common, proximal_mu=0.0)
    assert all(np.array_equal(a, b) for a, b in zip(none, zero))


def test_config_field_reaches_the_training_loop(setting) -> None:  # noqa: ANN001
    """``task.proximal_mu`` -> base_config (every fit's config, under Flower's FedProx keys)
    -> the client's training loop, through the CheckedClient every peer uses."""
    ds, common, shard = setting
    cfg = from_dict({"task": {"proximal_mu": 1.0}})
    base = base_config(classes=range(10), local_epochs=5, batch_size=10, learning_rate=0.05,
                       proximal_mu=cfg.task.proximal_mu)
    assert base["proximal_mu"] == base["proximal-mu"] == 1.0
    assert base_config(classes=range(10), local_epochs=1, batch_size=1, learning_rate=0.1)["proximal_mu"] == 0.0
    outs = {}
    for mu in (0.0, 1.0):
        inner = digits.make_client(shard, ds.test, seed=3, hparams={"local_epochs": 5, "batch_size": 10})
        checked = CheckedClient(inner, task="clients.digits", config={**base, "proximal_mu": mu})
        checked.server_round = 4
        outs[mu] = _dist(checked.fit(common, {})[0], common)
    assert outs[1.0] < 0.6 * outs[0.0], outs


def test_the_worker_sends_the_configured_mu() -> None:
    # task_base_config: the one builder of the worker, bdfl peer and the audit mirror
    ds = load_digits()
    assert task_base_config(from_dict({"task": {"proximal_mu": 0.5}}).task, ds.num_classes)["proximal_mu"] == 0.5
    assert task_base_config(from_dict({}).task, ds.num_classes)["proximal_mu"] == TaskConfig().proximal_mu == 0.1  # the library default


@pytest.mark.parametrize("value", [-0.1, 100.5, math.nan, math.inf])
def test_bad_proximal_mu_names_the_field(value: float) -> None:
    with pytest.raises(ConfigError) as info:
        from_dict({"task": {"proximal_mu": value}})
    assert info.value.field == "task.proximal_mu"
    assert ("[0, 100]" if math.isfinite(value) else "finite number") in str(info.value)


def test_bad_proximal_mu_hparam_and_argument_are_refused(setting) -> None:  # noqa: ANN001
    ds, common, shard = setting
    with pytest.raises(BDFLError, match="proximal_mu"):
        digits.make_client(shard, ds.test, seed=0, hparams={"proximal_mu": -1.0})
    client = digits.make_client(shard, ds.test, seed=0)
    with pytest.raises(BDFLError, match="proximal_mu"):
        client.fit(common, {"proximal_mu": math.nan})


def test_a_flower_clientapp_reads_proximal_mu_as_flower_fedprox_sends_it() -> None:
    """A Message-API ClientApp written for Flower's FedProx reads ``config["proximal-mu"]``;
    through BDFL's adapter it gets task.proximal_mu under that key."""
    import torch
    from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp

    from bdfl.learning.flower import ClientAppClient

    seen: list[float] = []
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:  # noqa: ARG001
        seen.append(msg.content["config"]["proximal-mu"])
        reply = RecordDict({"arrays": msg.content["arrays"], "metrics": MetricRecord({"num-examples": 4})})
        return Message(content=reply, reply_to=msg)

    X, y = np.zeros((4, 2), np.float32), np.zeros(4, np.int64)
    client = ClientAppClient(app, (X, y), (X, y), seed=0,
                             initial_arrays=lambda: ArrayRecord(torch.nn.Linear(2, 2).state_dict()))
    base = base_config(classes=range(2), local_epochs=1, batch_size=4, learning_rate=0.1,
                       proximal_mu=from_dict({"task": {"proximal_mu": 0.25}}).task.proximal_mu)
    checked = CheckedClient(client, task="app", config=base)
    checked.server_round = 1
    checked.fit(client.get_parameters({}), {})
    assert seen == [0.25]
