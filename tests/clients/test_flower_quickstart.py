"""A client written like Flower's PyTorch quickstart runs through BDFL unchanged."""

from __future__ import annotations

import numpy as np
from flwr.client import NumPyClient

from bdfl.defense import make_strategy
from bdfl.defense.audit import AuditRule, audit_updates
from bdfl.learning.data import make_peer_shards
from bdfl.learning.task import fit_client, load_task


def test_quickstart_client_through_the_task_interface() -> None:
    task = load_task("clients.flower_quickstart")
    ds = task.load_dataset(None)
    shards = make_peer_shards(ds, 4, scheme="iid", seed=0)
    clients = [task.make_client(s.train, s.val, seed=i, hparams={"local_epochs": 3, "batch_size": 16}) for i, s in enumerate(shards)]
    assert all(isinstance(c.client, NumPyClient) for c in clients)  # wrapped in a CheckedClient
    evaluator = task.evaluator(*ds.test)
    w = task.initial_parameters(ds, seed=0)
    before = evaluator(w).accuracy
    for r in range(3):
        fits = [fit_client(c, w, {"server_round": r + 1}) for c in clients]
        verdicts = audit_updates(clients[0], fits[0].parameters, [f.parameters for f in fits[1:]], AuditRule())
        assert all(v.accept for v in verdicts)
        w = make_strategy("fedavg").combine(fits[0].parameters, [f.parameters for f in fits[1:]], [f.num_examples for f in fits])
    after = evaluator(w).accuracy
    assert before < 0.25 and after > 0.8, (before, after)


def test_quickstart_client_is_deterministic() -> None:
    task = load_task("clients.flower_quickstart")
    ds = task.load_dataset(None)
    train = (ds.X_train[:200], ds.y_train[:200])
    out = []
    for seed in (1, 1, 2):
        c = task.make_client(train, train, seed=seed)
        p, _, _ = c.fit(c.get_parameters({}), {})
        out.append(b"".join(np.ascontiguousarray(a).tobytes() for a in p))
    assert out[0] == out[1] and out[0] != out[2]
