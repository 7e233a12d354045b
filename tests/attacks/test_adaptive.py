"""The audit-aware adaptive attacker (bdfl.attacks.adaptive): what it submits passes the rule
copy it was given, is more harmful than a scaled-down step, is the largest step found (one
bisection step further fails), and follows the rule: a changed rule changes its step."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bdfl.attacks import AttackContext, AttackError, attacker_client, attacker_update, make_attack
from bdfl.attacks._search import unflatten
from bdfl.attacks.adaptive import audit_copy, flatten, largest_passing_step
from bdfl.config import DefenseConfig
from bdfl.defense.audit import AuditRule
from bdfl.learning.data import load_digits
from bdfl.learning.task import load_task

N_HONEST = 7


@pytest.fixture(scope="module")
def round_state() -> dict:
    """One round on digits: 7 honest peers and one attacker train one epoch from a common start."""
    task = load_task("clients.digits")
    ds = load_digits()
    rng = np.random.default_rng(5)
    idx = rng.permutation(len(ds.y_train))
    shards = np.array_split(idx, N_HONEST + 2)  # 7 honest shards, the attacker's, its validation split
    start = task.make_client((ds.X_train[:32], ds.y_train[:32]), ds.test, seed=0).get_parameters({})
    honest = []
    for i, sh in enumerate(shards[:N_HONEST]):
        c = task.make_client((ds.X_train[sh], ds.y_train[sh]), ds.test, seed=i)
        honest.append(c.fit([p.copy() for p in start], {})[0])
    own, val_idx = shards[N_HONEST], shards[N_HONEST + 1]
    val = (ds.X_train[val_idx], ds.y_train[val_idx])

    def make_client(train):  # noqa: ANN001, ANN202
        return task.make_client(train, val, seed=99)

    trained = make_client((ds.X_train[own], ds.y_train[own])).fit([p.copy() for p in start], {})[0]
    return {"task": task, "ds": ds, "start": start, "honest": honest, "trained": trained,
            "make_client": make_client, "own": (ds.X_train[own], ds.y_train[own])}


def _attack(state: dict, policy=None, **params):  # noqa: ANN001, ANN202
    atk = make_attack("adaptive", **params)
    atk.know_policy(policy)
    attacker_client(atk, state["make_client"], state["own"], np.random.default_rng(0), num_classes=10)
    return atk


def _ctx(state: dict) -> AttackContext:
    return AttackContext(round=0, trained=state["trained"], reference=state["start"], honest_updates=state["honest"],
                         num_peers=N_HONEST + 1, num_attackers=1, rng=np.random.default_rng(1))


def _passes(state: dict, policy, model) -> bool:  # noqa: ANN001
    client = state["make_client"](state["own"])
    n = len(state["honest"])
    return audit_copy(policy, client, state["trained"], state["start"], [*state["honest"], model],
                      candidate_starts=[None] * n + [state["start"]])[-1]


def _aggregate_loss(state: dict, model) -> float:  # noqa: ANN001
    """Test loss of the plain average of the honest models and the attacker's."""
    models = [*state["honest"], model]
    avg = [np.mean([m[i] for m in models], axis=0).astype(np.float32) for i in range(len(model))]
    loss, _n, _m = state["task"].make_client(state["own"], state["ds"].test, seed=0).evaluate(avg, {})
    return float(loss)


@pytest.mark.parametrize("direction", ["sign_flip", "alie"])
def test_submitted_update_passes_is_maximal_and_beats_a_scaled_down_step(round_state: dict, direction: str) -> None:
    policy = DefenseConfig()
    atk = _attack(round_state, policy, direction=direction, max_scale=8.0, steps=8)
    ctx = _ctx(round_state)
    out = attacker_update(atk, ctx)
    s = atk.last_step
    assert s is not None and s > 0.05
    assert _passes(round_state, policy, out)  # an independent call of the same rule accepts it
    if s < atk.max_scale:  # the bisection's failing bound is one step further out
        further = atk.crafted(ctx, s + atk.max_scale / 2 ** atk.steps)
        assert not _passes(round_state, policy, unflatten(further, ctx.trained))
    weaker = unflatten(atk.crafted(ctx, s / 4), ctx.trained)
    assert _aggregate_loss(round_state, out) > _aggregate_loss(round_state, weaker)
    honest_own = round_state["trained"] if direction == "sign_flip" else None
    if honest_own is not None:
        assert _aggregate_loss(round_state, out) > _aggregate_loss(round_state, honest_own)


def test_a_rule_change_changes_the_step(round_state: dict) -> None:
    loose = DefenseConfig()
    # a smaller k narrows the no-work detector's band, which bounds how far the move may shrink
    strict = dataclasses.replace(loose, detectors=AuditRule().with_detector("no_work", k=1.0).detectors)
    s_loose = _attack(round_state, loose, direction="sign_flip", steps=10)
    s_strict = _attack(round_state, strict, direction="sign_flip", steps=10)
    attacker_update(s_loose, _ctx(round_state))
    attacker_update(s_strict, _ctx(round_state))
    assert 0 < s_strict.last_step < 0.75 * s_loose.last_step, (s_strict.last_step, s_loose.last_step)
    # an AuditRule works as the policy too, and a rule with every test off accepts max_scale
    off = AuditRule.only()
    free = _attack(round_state, off, direction="sign_flip", max_scale=5.0)
    attacker_update(free, _ctx(round_state))
    assert free.last_step == 5.0


def test_backdoor_direction_poisons_its_shard_and_keeps_a_trigger() -> None:
    ds = load_digits()
    atk = make_attack("adaptive", direction="backdoor", target_label=3, poison_fraction=0.5)
    assert atk.poisons_data and not make_attack("adaptive").poisons_data
    assert not hasattr(make_attack("adaptive"), "triggered_test_set")  # no trigger: the runner measures no ASR
    X, y = ds.X_train[:100], ds.y_train[:100]
    X2, y2 = atk.poison_data(X, y, np.random.default_rng(0), num_classes=10)
    changed = np.any(X2 != X, axis=(1, 2, 3))
    assert changed.sum() == round(0.5 * int((y != 3).sum())) and np.all(y2[changed] == 3)
    Xt, yt = atk.triggered_test_set(ds.X_test, ds.y_test)
    assert np.all(yt == 3) and np.all(Xt[:, 0, -2:, -2:] == 1.0)


def test_without_its_client_it_says_what_is_missing() -> None:
    atk = make_attack("adaptive")
    ctx = AttackContext(round=0, trained=[np.ones(3, np.float32)], reference=[np.zeros(3, np.float32)])
    with pytest.raises(AttackError, match="own client"):
        atk.poison_update(ctx)


def test_largest_passing_step_bisects() -> None:
    assert largest_passing_step(lambda s: s <= 2.5, 8.0, 12) == pytest.approx(2.5, abs=8.0 / 2 ** 12)
    assert largest_passing_step(lambda s: True, 8.0, 3) == 8.0
    assert largest_passing_step(lambda s: s == 0.0, 8.0, 5) == 0.0
    assert flatten([np.zeros(2)]).shape == (2,)


def test_memo_client_caches_evaluate_and_predict_only_where_the_client_has_them() -> None:
    from bdfl.attacks.adaptive import _MemoClient

    calls: list[str] = []

    class Plain:
        def evaluate(self, p, c):  # noqa: ANN001, ANN202
            calls.append("e")
            return (float(p[0].sum()), 1, {})

    class Scanning(Plain):
        def predict(self, p, X):  # noqa: ANN001, ANN202
            calls.append("p")
            return np.zeros(len(X))

    m = _MemoClient(Plain())
    assert not hasattr(m, "predict")  # the audit then skips the trigger scan, as for the bare client
    a = [np.ones(3, np.float32)]
    assert m.evaluate(a) == m.evaluate([a[0].copy()]) and calls == ["e"]
    s = _MemoClient(Scanning())
    X = np.zeros((2, 1, 4, 4))
    s.predict(a, X), s.predict(a, X), s.predict(a, X + 1)
    assert calls == ["e", "p", "p"]
    s.forget()
    s.predict(a, X)
    assert calls[-1] == "p" and len(calls) == 4


def test_backdoor_direction_audits_with_an_honest_stand_in(round_state: dict) -> None:
    """Its own trained model is backdoored: the copy of the audit judges from an honest model it
    knows (the one nearest the benign mean), and what it sends passes that copy."""
    atk = _attack(round_state, DefenseConfig(), direction="backdoor")
    ctx = _ctx(round_state)
    stand_in = atk.auditor_model(ctx)
    assert any(all(np.array_equal(a, b) for a, b in zip(stand_in, h)) for h in round_state["honest"])
    out = attacker_update(atk, ctx)
    n = len(round_state["honest"])
    client = round_state["make_client"](round_state["own"])
    assert audit_copy(DefenseConfig(), client, stand_in, round_state["start"], [*round_state["honest"], out],
                      candidate_starts=[None] * n + [round_state["start"]])[-1]
    assert atk.last_step > 0


def test_its_copy_of_the_audit_credits_claimed_steps_as_the_auditors_do(round_state: dict) -> None:
    """The auditors' no-work test credits a candidate claiming fewer local steps than the median
    (its sample count on chain); the attacker's copy of the rule must see the same claims, else it
    searches against another rule. A small claim among large ones moves the step it finds, and
    the update it sends passes the rule given those claims."""
    policy = DefenseConfig()
    n = len(round_state["honest"])
    unknown = _attack(round_state, policy, direction="sign_flip", steps=10)
    attacker_update(unknown, _ctx(round_state))
    credited = _attack(round_state, policy, direction="sign_flip", steps=10)
    ctx = dataclasses.replace(_ctx(round_state), honest_steps=[20.0] * n, own_steps=2.0)
    out = attacker_update(credited, ctx)
    assert credited.last_step != unknown.last_step, credited.last_step
    client = round_state["make_client"](round_state["own"])
    assert audit_copy(policy, client, round_state["trained"], round_state["start"], [*round_state["honest"], out],
                      candidate_starts=[None] * n + [round_state["start"]], candidate_steps=[20.0] * n + [2.0])[-1]
    # equal claims credit nobody: the same step as with no claims known
    equal = _attack(round_state, policy, direction="sign_flip", steps=10)
    attacker_update(equal, dataclasses.replace(_ctx(round_state), honest_steps=[5.0] * n, own_steps=5.0))
    assert equal.last_step == unknown.last_step
