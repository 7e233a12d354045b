"""The audit's trigger scan: stamp positions, flip shares, the excess over the other models,
and on real digits models: a backdoored update is rejected, honest ones pass."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bdfl.attacks import make_attack
from bdfl.errors import BDFLError
from bdfl.learning.aggregation import weighted_average
from bdfl.learning.audit import AuditRule, audit_updates, judge
from bdfl.learning.data import load_digits, make_peer_shards
from bdfl.learning.task import EvalResult, fit_client, load_task
from bdfl.learning.trigger_scan import (
    flip_shares,
    grid_positions,
    localised_excess,
    stamp,
    supports_scan,
    trigger_excess,
)


def test_grid_positions_cover_both_ends() -> None:
    assert grid_positions(8, 2, 8) == [0, 1, 2, 3, 4, 5, 6]  # 7 offsets <= 8: all of them
    pos = grid_positions(28, 2, 8)  # 27 offsets: 8 evenly spaced
    assert pos[0] == 0 and pos[-1] == 26 and len(pos) == 8 and pos == sorted(set(pos))
    assert grid_positions(2, 3, 8) == []  # the stamp does not fit


def test_stamp_sets_one_square_per_position() -> None:
    X = np.zeros((3, 1, 4, 4), dtype=np.float32)
    S = stamp(X, 2, 8, 1.0)
    assert S.shape == (9, 3, 1, 4, 4)  # 3 x 3 offsets
    assert np.all(S.sum(axis=(2, 3, 4)) == 4)  # one 2x2 square in each input
    assert np.all(S[-1][..., 2:, 2:] == 1.0) and np.all(S[0][..., :2, :2] == 1.0)
    assert np.all(X == 0)  # the inputs are not modified


def test_flip_shares() -> None:
    clean = np.array([0, 1, 2, 2])
    stamped = np.array([[0, 0, 0, 2], [0, 1, 2, 2]])  # position 0 sends two of the non-0 inputs to 0
    s = flip_shares(clean, stamped, 3)
    assert s.shape == (2, 3)
    assert s[0, 0] == pytest.approx(2 / 3) and s[1, 0] == 0
    assert s[0, 2] == pytest.approx(0.0)  # inputs 0, 1 are not 2 when clean, and stay not 2
    assert np.all(flip_shares(np.array([1, 1]), np.array([[1, 1]]), 2)[:, 1] == 0)  # no input outside class 1


def test_only_local_flips_count() -> None:
    E = np.zeros((10, 3))
    E[2, 1] = 0.95  # class 1: flipped at one position of ten (a trigger)
    E[:, 2] = 0.97  # class 2: flipped from every position (a bias, not a trigger)
    assert localised_excess(E, 1.0) == pytest.approx(0.97)
    assert localised_excess(E, 0.2) == pytest.approx(0.95)
    E[3:5, 1] = 0.6  # three positions of ten flip class 1 now: 0.3 > 0.2
    assert localised_excess(E, 0.2) == 0.0 and localised_excess(E, 0.3) == pytest.approx(0.95)
    assert math.isnan(localised_excess(np.zeros((0, 3)), 0.2))


class _RuleClient:
    """A fake auditor: "parameters" [t] are a class t; the model answers t for inputs whose
    bottom-right pixel is bright, else the input's true class (its first pixel); [10 + t]:
    t for any stamped input."""

    def __init__(self, n: int = 20) -> None:
        rng = np.random.default_rng(0)
        self.X = np.zeros((n, 1, 6, 6), dtype=np.float32)
        self.X[:, 0, 0, 0] = rng.integers(0, 4, size=n) / 4  # class code, max 0.75
        self.X[:, 0, 2, 2] = 1.0  # a bright stroke: the inputs' maximum is 1

    def predict(self, params, X):  # noqa: ANN001, ANN201
        t = int(params[0][0])
        labels = np.rint(X[:, 0, 0, 0] * 4).astype(int)
        if t >= 10:  # biased, not backdoored: any stamp (a second bright pixel) means class t - 10
            return np.where((X[:, 0] >= 1.0).sum(axis=(1, 2)) > 1, t - 10, labels)
        if t >= 0:
            labels = np.where(X[:, 0, -1, -1] >= 1.0, t, labels)
        return labels

    def audit_inputs(self):  # noqa: ANN201
        return self.X


def test_trigger_excess_singles_out_the_backdoored_candidate() -> None:
    client = _RuleClient()
    honest = [np.array([-1.0])]
    backdoor = [np.array([3.0])]
    cands = [honest, honest, backdoor, honest]
    ex = trigger_excess(client, honest, cands, [True] * 4, size=2, grid=8)
    assert ex[0] == ex[1] == ex[3] == 0.0
    # stamped in the corner, all inputs not of class 3 go to 3
    assert ex[2] == pytest.approx(1.0)
    # invalid candidates are not scanned; a backdoored auditor (own model) hides the candidate's
    ex = trigger_excess(client, backdoor, cands, [True, False, True, True], size=2, grid=8)
    assert math.isnan(ex[1]) and ex[2] == 0.0
    # a majority of backdoored candidates moves the median bar up (needs min_candidates)
    ex = trigger_excess(client, honest, [backdoor, backdoor, honest], [True] * 3, size=2, grid=8)
    assert ex[0] == 0.0
    ex = trigger_excess(client, honest, [backdoor, backdoor, honest], [True] * 3, size=2, grid=8, min_candidates=4)
    assert ex[0] == pytest.approx(1.0)
    # a model that answers 3 for a stamp anywhere is biased, not backdoored: local flips only
    biased = [np.array([13.0])]
    cands = [honest, honest, biased, backdoor, honest]
    assert trigger_excess(client, honest, cands, [True] * 5)[2] == pytest.approx(1.0)
    ex = trigger_excess(client, honest, cands, [True] * 5, max_spread=0.2)
    assert ex[2] == 0.0 and ex[3] == pytest.approx(1.0)  # the corner trigger flips at 1 of 25 positions


def test_clients_without_the_capabilities_are_not_scanned() -> None:
    class EvaluateOnly:
        def evaluate(self, parameters, config):  # noqa: ANN001, ANN201
            return 0.0, 1, {"accuracy": 1.0}

    assert not supports_scan(EvaluateOnly())
    assert all(math.isnan(x) for x in trigger_excess(EvaluateOnly(), [np.zeros(1)], [[np.zeros(1)]], [True]))

    class Tabular(_RuleClient):
        def audit_inputs(self):  # noqa: ANN201
            return np.zeros((5, 4))

    assert supports_scan(Tabular())
    assert all(math.isnan(x) for x in trigger_excess(Tabular(), [np.zeros(1)], [[np.zeros(1)]], [True]))


def test_judge_trigger_test_and_switch() -> None:
    ref = EvalResult(loss=0.5, num_examples=10, accuracy=0.9, metrics={})
    results = [EvalResult(loss=0.5, num_examples=10, accuracy=0.9, metrics={})] * 3
    v = judge(AuditRule(trigger_limit=0.5), ref, results, trigger_excess=[0.1, 0.6, math.nan])
    assert AuditRule().trigger_limit == 1  # off by default
    assert [x.accept for x in v] == [True, False, True]
    assert v[1].failed == ("trigger",) and "0.60" in v[1].reason and v[1].trigger_excess == 0.6
    assert all(x.accept for x in judge(AuditRule(trigger_limit=1), ref, results, trigger_excess=[1.0, 1.0, 1.0]))
    with pytest.raises(BDFLError, match="2 trigger scans for 3 candidates"):
        judge(AuditRule(trigger_limit=0.5), ref, results, trigger_excess=[0.0, 0.0])


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [("trigger_limit", 1.5, "\\[0, 1\\]"), ("trigger_limit", math.nan, "trigger_limit"),
     ("trigger_size", 0, "defense.audit_trigger_size.*\\[1, 64\\]"), ("trigger_size", 65, "audit_trigger_size"), ("trigger_grid", 2.0, "trigger_grid"),
     ("trigger_inputs", True, "trigger_inputs")],
)
def test_rule_validation_of_the_trigger_test(field: str, value: object, allowed: str) -> None:
    with pytest.raises(BDFLError, match=allowed):
        AuditRule(**{field: value})


def test_digits_backdoor_is_rejected_and_honest_updates_pass() -> None:
    """Round 2 of decentralised training on digits (20 peers, Dirichlet 0.5, the runner's
    settings); peers 0-5 train with the default pixel-trigger backdoor. Ten honest auditors
    each judge 8 honest candidates and one backdoored one with the whole rule: the
    backdoored models fail the trigger test for (nearly) every auditor, honest ones pass."""
    task = load_task("clients.digits")
    ds = load_digits()
    n = 20
    shards = make_peer_shards(ds, n, scheme="dirichlet", alpha=0.5, seed=0, min_size=20)
    hp = {"local_epochs": 5, "batch_size": 10}
    backdoor = make_attack("backdoor")
    clients = []
    for i, s in enumerate(shards):
        train = backdoor.poison_data(*s.train, np.random.default_rng(i), num_classes=10) if i < 6 else s.train
        clients.append(task.make_client(train, s.val, seed=i, hparams=hp))
    models = [task.initial_parameters(ds, seed=0)] * n
    for r in range(2):
        fits = [fit_client(c, m, {"round": r}).parameters for c, m in zip(clients, models)]
        models = [weighted_average([fits[(i + k) % n] for k in range(5)]) for i in range(n)]
    fits = [fit_client(c, m, {"round": 2}).parameters for c, m in zip(clients, models)]
    honest_ids = list(range(6, 20))
    caught = honest_rejects = honest_votes = 0
    for k, a in enumerate(honest_ids[:10]):
        ids = [j for j in honest_ids if j != a][:8]
        bad = k % 6
        v = audit_updates(clients[a], fits[a], [fits[j] for j in ids] + [fits[bad]], AuditRule(trigger_limit=0.9),
                          start_params=models[a], candidate_starts=[models[j] for j in ids] + [models[bad]])
        caught += "trigger" in v[-1].failed
        honest_rejects += sum("trigger" in x.failed for x in v[:-1])
        honest_votes += len(v) - 1
    assert caught >= 9, caught
    assert honest_rejects / honest_votes < 0.05, honest_rejects / honest_votes  # measured: 10 of 10, 0 of 80
    # off (the library default), the same backdoored models are not scanned
    v = audit_updates(clients[6], fits[6], [fits[j] for j in honest_ids[1:9]] + [fits[0]], AuditRule())
    assert all("trigger" not in x.failed and math.isnan(x.trigger_excess) for x in v)
