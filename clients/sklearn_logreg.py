"""A scikit-learn logistic-regression client written the way Flower's sklearn-logreg
example writes one — on digits.

Everything above the "BDFL adapter" line follows Flower's ``sklearn-logreg-mnist`` example
(``get_model_params`` / ``set_model_params`` / ``set_initial_params``, a ``LogisticRegression``
with ``warm_start=True`` and ``max_iter`` = local epochs, ``class FlowerClient(NumPyClient)``).
It knows nothing about BDFL except the documented config key ``classes`` (docs/tasks.md):
the full label set, which standard scikit-learn code passes on so that a shard that lacks
some classes (Dirichlet shards often do) still keeps them all — ``labels=`` for
``log_loss``, and zero-weight rows for the classes missing from ``fit``'s data.

Its ``fit`` returns float32 weights for float32 data while the initial parameters are
float64 (as ``set_initial_params`` makes them): BDFL's client contract refuses that by
default with one error; run it with ``task.cast_dtypes = true`` (BDFL casts to float64).
"""

import warnings

import numpy as np
from flwr.client import NumPyClient
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss


def get_model(penalty: str, local_epochs: int) -> LogisticRegression:
    return LogisticRegression(penalty=penalty, max_iter=local_epochs, warm_start=True)


def get_model_params(model):
    if model.fit_intercept:
        params = [model.coef_, model.intercept_]
    else:
        params = [model.coef_]
    return params


def set_model_params(model, params):
    model.coef_ = params[0]
    if model.fit_intercept:
        model.intercept_ = params[1]
    return model


def set_initial_params(model, n_classes: int, n_features: int):
    model.classes_ = np.array([i for i in range(n_classes)])
    model.coef_ = np.zeros((n_classes, n_features))
    if model.fit_intercept:
        model.intercept_ = np.zeros((n_classes,))


def with_all_classes(X, y, classes):
    """(X, y, sample_weight) with one zero-weight row per class of ``classes`` missing from y."""
    missing = np.setdiff1d(np.asarray(classes), y)
    X = np.vstack([X, np.zeros((len(missing), X.shape[1]), dtype=X.dtype)])
    weight = np.concatenate([np.ones(len(y)), np.zeros(len(missing))])
    return X, np.concatenate([y, missing]), weight


class FlowerClient(NumPyClient):
    def __init__(self, model, X_train, X_test, y_train, y_test):
        self.model = model
        self.X_train = X_train
        self.X_test = X_test
        self.y_train = y_train
        self.y_test = y_test

    def get_parameters(self, config):
        return get_model_params(self.model)

    def fit(self, parameters, config):
        set_model_params(self.model, parameters)
        X, y, weight = with_all_classes(self.X_train, self.y_train, config["classes"])
        # Ignore convergence failure due to low local epochs
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.model.fit(X, y, sample_weight=weight)
        return get_model_params(self.model), len(self.X_train), {}

    def evaluate(self, parameters, config):
        set_model_params(self.model, parameters)
        loss = log_loss(self.y_test, self.model.predict_proba(self.X_test), labels=config["classes"])
        accuracy = self.model.score(self.X_test, self.y_test)
        return loss, len(self.X_test), {"accuracy": accuracy}


# ----------------------------------------------------------------------------- #
# BDFL adapter: the only BDFL-specific code in this file.
# ----------------------------------------------------------------------------- #


def load_dataset(data_dir=None):
    from bdfl.learning.data import load_digits

    return load_digits()


def make_client(train, val, *, seed, hparams=None):
    (X_train, y_train), (X_test, y_test) = train, val
    model = get_model("l2", int((hparams or {}).get("local_epochs", 1)))
    set_initial_params(model, n_classes=10, n_features=64)
    flat = lambda X: X.reshape(len(X), -1)  # noqa: E731 - digits come as (n, 1, 8, 8)
    return FlowerClient(model, flat(X_train), flat(X_test), y_train, y_test)
