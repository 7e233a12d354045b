"""Test task: Flower's quickstart-pytorch ClientApp (clients/torch_clientapp.py), unchanged,
with a configuration bug on some peers: ``BDFL_TEST_RAISE="fit:all"`` (inherited by the
process) gives its ``context.run_config`` a batch size of 0, so the app's ``load_data``
raises inside ``@app.train`` (and ``@app.evaluate``), as a user's bad config would."""

import os

from flwr.app import ArrayRecord

from bdfl.learning.flower import ClientAppClient
from clients.torch_clientapp import Net, app, load_dataset  # noqa: F401


def make_client(train, val, *, seed, hparams=None):
    broken = os.environ.get("BDFL_TEST_RAISE", "") == "fit:all"
    run_config = {"local-epochs": 1, "batch-size": 0 if broken else 32}
    return ClientAppClient(app, train, val, seed=seed, initial_arrays=lambda: ArrayRecord(Net().state_dict()),
                           run_config=run_config)
