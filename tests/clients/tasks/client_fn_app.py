"""Test task: a client written as Flower's docs show it before the Message API — the
quickstart's ``FlowerClient`` (clients/flower_quickstart.py, unchanged) returned by
``client_fn(context)`` as ``FlowerClient(...).to_client()`` inside ``ClientApp(client_fn=...)``.

``BDFL_TEST_CLIENT_FN`` says how the adapter hands it to BDFL: ``"app"`` (default) — the app
in a :class:`~bdfl.learning.flower.ClientAppClient` (BDFL sends the legacy ``fitins`` records a
SuperLink would); ``"client"`` — ``client_fn(context)`` itself, a ``flwr`` ``Client`` wrapping
the NumPyClient (BDFL unwraps it)."""

import os

import torch
from flwr.app import ArrayRecord, Context
from flwr.clientapp import ClientApp
from torch.utils.data import DataLoader

from bdfl.learning.flower import ClientAppClient, load_partition
from clients.flower_quickstart import DigitsDataset, FlowerClient, Net, load_dataset  # noqa: F401


def client_fn(context: Context):
    (X_train, y_train), (X_val, y_val) = load_partition(context.node_config["partition-id"])
    trainloader = DataLoader(DigitsDataset(X_train, y_train), batch_size=32, shuffle=True)
    valloader = DataLoader(DigitsDataset(X_val, y_val), batch_size=64)
    return FlowerClient(Net(), trainloader, valloader, context.run_config["local-epochs"]).to_client()


app = ClientApp(client_fn=client_fn)


def make_client(train, val, *, seed, hparams=None):
    torch.set_num_threads(1)
    adapter = ClientAppClient(app, train, val, seed=seed, initial_arrays=lambda: ArrayRecord(Net().state_dict()),
                              run_config={"local-epochs": 1})
    if os.environ.get("BDFL_TEST_CLIENT_FN", "app") == "client":
        return client_fn(adapter.context)
    return adapter
