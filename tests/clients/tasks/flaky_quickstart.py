"""Test task: Flower's quickstart-style client (clients/flower_quickstart.py) whose code
raises for some peers, as a user's bug would.

``BDFL_TEST_RAISE`` (inherited by the worker processes) says where: ``"fit:1"`` — peer 1's
``fit`` raises (in a run with seed 0 the client seed is the peer index); ``"evaluate:1"`` —
peer 1's ``evaluate`` raises (when it audits); ``"fit:all"`` — every peer's ``fit`` raises;
``"nan:all"`` — every peer's training data holds NaN, so its fit diverges to NaN weights
(a run that goes wrong without raising); ``"valnan:1"`` — peer 1's validation data holds NaN, so
its own model's loss there is not finite (as a diverged model's would be) when it audits;
``"nan2:1"`` — peer 1's fit returns a few NaN weights in round 2 only (one diverged fit);
``"accnan:all"`` — every client's ``evaluate`` reports a NaN accuracy (a metric bug);
``"round:all"`` — every client's ``fit`` and ``evaluate`` read ``config["server_round"]``, as
docs/tasks.md allows (a KeyError where a call lacks it).
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
        elif step == "nan2":
            fit = client.fit

            def fit_in_round(parameters, config):
                params, n, metrics = fit(parameters, config)
                if int(config.get("server_round", 0)) == 2:  # a few weights blow up, as in a diverged step
                    params = [p.copy() for p in params]
                    params[0].flat[:5] = float("nan")
                return params, n, metrics

            client.fit = fit_in_round
        elif step == "accnan":
            evaluate = client.evaluate

            def evaluate_nan(parameters, config):
                loss, n, metrics = evaluate(parameters, config)
                return loss, n, {**metrics, "accuracy": float("nan")}

            client.evaluate = evaluate_nan
        elif step == "round":
            fit, evaluate = client.fit, client.evaluate
            client.fit = lambda parameters, config: fit(parameters, {**config, "_": config["server_round"]})
            client.evaluate = lambda parameters, config: evaluate(parameters, {**config, "_": config["server_round"]})
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
