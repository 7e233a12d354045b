"""The trigger detector: a per-audit random family of stamps (bdfl.defense.detectors.trigger),
against planted backdoors of several shapes, with honest and biased models beside them."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pytest

from bdfl.defense.audit import AuditRule, trigger_evidence
from bdfl.defense.detectors import Evidence
from bdfl.defense.detectors.trigger import TriggerDetector, apply_stamp, trigger_family
from bdfl.learning.data import load_digits

Model = Callable[[np.ndarray], np.ndarray]


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    ds = load_digits()
    X = np.asarray(ds.X_train, dtype=np.float32).reshape(-1, 8, 8)
    return X, np.asarray(ds.y_train)


def _centroids(X: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> Model:
    """A nearest-centroid classifier from a random half of the data: an honest model."""
    idx = rng.permutation(len(X))[: len(X) // 2]
    cents = np.stack([X[idx][y[idx] == c].mean(axis=0) for c in range(10)]).reshape(10, -1)
    return lambda Z: np.argmin(((Z.reshape(len(Z), 1, -1) - cents[None]) ** 2).sum(-1), axis=1)


def _backdoored(base: Model, fires: Callable[[np.ndarray], np.ndarray], target: int = 7) -> Model:
    return lambda Z: np.where(fires(Z), target, base(Z))


def _corner(size: int, hi: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda Z: Z[:, -size:, -size:].mean(axis=(1, 2)) > 0.8 * hi


def _dba(hi: float) -> Callable[[np.ndarray], np.ndarray]:
    """DBA: the global trigger is two short bars near the top-left; a model trained with any
    piece answers to that piece (here: either bar present)."""
    return lambda Z: (Z[:, 0, 0:2].mean(axis=1) > 0.8 * hi) | (Z[:, 2, 1:3].mean(axis=1) > 0.8 * hi)


class _Client:
    """What the audit needs of a client for the trigger family: predict and audit_inputs."""

    def __init__(self, X: np.ndarray, models: list[Model]) -> None:
        self.X, self.models = X, models

    def audit_inputs(self) -> np.ndarray:
        return self.X

    def predict(self, params: list[np.ndarray], X: np.ndarray) -> np.ndarray:
        return self.models[int(params[0][0])](X)


def _scores(digits, planted: dict[int, Model], *, seed: int, honest: int = 8):
    X, y = digits
    rng = np.random.default_rng(seed)
    models = [_centroids(X, y, rng) for _ in range(honest + 1)]  # [0] is the auditor's own
    for i, m in planted.items():
        models[i] = m(models[i])
    client = _Client(X[:300], models)
    params = [[np.array([i])] for i in range(len(models))]
    rule = AuditRule()
    ev = trigger_evidence(client, params[0], params[1:], [True] * honest, rule, seed=seed)
    findings = TriggerDetector(rule.detectors.trigger).judge(
        Evidence(valid=np.ones(honest, bool), n_val=50, own_accuracy=0.8, own_loss=0.5, trigger=ev))
    return findings


def test_family_draws_differ_per_seed_and_cover_the_kinds() -> None:
    kinds = set()
    masks = []
    for seed in range(20):
        fam = trigger_family(28, 28, 0.0, 1.0, 16, np.random.default_rng(seed))
        assert len(fam) == 16
        kinds |= {s.kind for s in fam}
        masks.append(np.stack([s.mask for s in fam[4:]]))
    assert kinds == {"square", "checker", "distributed", "blend"}
    assert not np.array_equal(masks[0], masks[1])
    X = np.zeros((2, 1, 28, 28), np.float32)
    assert apply_stamp(X, fam[0]).shape == X.shape and apply_stamp(X, fam[0]).max() == 1.0


@pytest.mark.parametrize("name", ["corner 2x2", "corner 3x3", "dba"])
def test_a_planted_backdoor_fails_honest_candidates_pass(digits, name: str) -> None:
    hi = float(digits[0].max())
    fires = {"corner 2x2": _corner(2, hi), "corner 3x3": _corner(3, hi), "dba": _dba(hi)}[name]
    caught = honest_failed = 0
    for seed in range(11, 16):  # five audits, five families
        f = _scores(digits, {8: lambda base: _backdoored(base, fires)}, seed=seed)
        caught += f[7].failed
        honest_failed += sum(x.failed for x in f[:7])
    assert caught >= 4, (name, caught)
    assert honest_failed <= 1, (name, honest_failed)


def test_skewed_honest_models_pass(digits) -> None:
    """Honest models from very skewed data (3 samples of most classes, the rest of 3 classes)
    behave differently on stamped inputs, but no more than honest models do: they pass."""
    X, y = digits

    def skewed(seed: int) -> Model:
        rng = np.random.default_rng(seed)
        major = rng.choice(10, 3, replace=False)
        idx = np.concatenate([np.flatnonzero(y == c)[: (200 if c in major else 3)] for c in range(10)])
        cents = np.stack([X[idx][y[idx] == c].mean(axis=0) for c in range(10)]).reshape(10, -1)
        return lambda Z: np.argmin(((Z.reshape(len(Z), 1, -1) - cents[None]) ** 2).sum(-1), axis=1)

    failed = 0
    for seed in range(11, 16):
        f = _scores(digits, {6: lambda _b, s=seed: skewed(s), 7: lambda _b, s=seed: skewed(s + 100)}, seed=seed)
        failed += f[5].failed + f[6].failed
    assert failed <= 1


def test_the_cost_is_patterns_times_inputs_predictions(digits) -> None:
    X, y = digits
    calls: list[int] = []
    model = _centroids(X, y, np.random.default_rng(0))

    class Counting(_Client):
        def predict(self, params, Z):  # noqa: ANN001, ANN202
            calls.append(len(Z))
            return model(Z)

    rule = AuditRule()
    t = time.perf_counter()
    trigger_evidence(Counting(X, [model]), [np.array([0])], [[np.array([0])]] * 5, [True] * 5, rule, seed=1)
    assert time.perf_counter() - t < 5
    cfg = rule.detectors.trigger
    assert sum(calls) == 6 * cfg.inputs * (cfg.patterns + 1)  # own + 5 candidates, clean + stamped
