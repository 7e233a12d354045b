"""A ClientAppClient's shard is registered for ``load_partition`` while the client lives and
dropped with it (a sweep or a long session builds many clients)."""

from __future__ import annotations

import gc

import numpy as np
import torch
from flwr.app import ArrayRecord
from flwr.clientapp import ClientApp

from bdfl.learning import flower


def test_a_clients_partition_goes_with_it() -> None:
    X, y = np.zeros((4, 2), np.float32), np.zeros(4, np.int64)
    client = flower.ClientAppClient(ClientApp(), (X, y), (X, y), seed=0,
                                    initial_arrays=lambda: ArrayRecord(torch.nn.Linear(2, 2).state_dict()))
    pid = client.partition_id
    train, _val = flower.load_partition(pid)
    assert train[0] is X
    del client
    gc.collect()
    assert pid not in flower._PARTITIONS
