"""Test task: Flower's quickstart-style client (clients/flower_quickstart.py) whose code
raises for some peers, as a user's bug would.

``BDFL_TEST_RAISE`` (inherited by the worker processes) says where: ``"fit:1"`` — peer 1's
``fit`` raises (in a run with seed 0 the client seed is the peer index); ``"evaluate:1"`` —
peer 1's ``evaluate`` raises (when it audits); ``"fit:all"`` — every peer's ``fit`` raises;
``"nan:all"`` — every peer's training data holds NaN, so its fit diverges to NaN weights
(a run that goes wrong without raising); ``"valnan:1"`` — peer 1's validation data holds NaN, so
its own model's loss there is not finite (as a diverged model's would be) when it audits.
The client class is the quickstart's, untouched: the bug is injected into its model code.
"""

import os

from clients.flower_quickstart import load_dataset, make_client as quickstart_client  # noqa: F401


class SimulatedBug(RuntimeError):
    pass


def _raise(*_args, **_kwargs):
    raise SimulatedBug("a bug in the user's training code")


def make_client(train, val, *, seed, hparams=None):
    client = quickstart_client(train, val, seed=seed, hparams=hparams)
    step, _, who = os.environ.get("BDFL_TEST_RAISE", "").partition(":")
    if who == "all" or (who.isdigit() and int(who) == seed):
        # the quickstart's FlowerClient.fit / evaluate call set_weights(...) first: break the
        # model's load_state_dict there, as a version mismatch or a typo would
        if step == "fit":
            client.trainloader = _Broken()
        elif step == "evaluate":
            client.valloader = _Broken()
        elif step == "nan":
            client.trainloader = _NaN(client.trainloader)
        elif step == "valnan":
            client.valloader = _NaN(client.valloader)
    return client


class _NaN:
    """The data loader's batches with NaN images."""

    def __init__(self, loader):
        self.loader, self.dataset = loader, loader.dataset

    def __iter__(self):
        for batch in self.loader:
            yield {"img": batch["img"] * float("nan"), "label": batch["label"]}

    def __len__(self):
        return len(self.loader)


class _Broken:
    """A data loader that raises when iterated (the quickstart's train/test loops iterate it)."""

    dataset = ()

    def __iter__(self):
        _raise()

    def __len__(self):
        return 1
