"""Model-update attacks: sign flip, noise, scaling, ALIE, IPM, free-rider, on-off, collusion."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pytest

from bdfl.attacks import AttackContext, VoteContext, attacker_vote, make_attack
from bdfl.attacks.alie import alie_z


def _ctx(**kw) -> AttackContext:
    rng = np.random.default_rng(0)
    base = dict(
        round=3,
        trained=[rng.standard_normal((4, 3)).astype(np.float32), rng.standard_normal(3).astype(np.float32)],
        reference=[rng.standard_normal((4, 3)).astype(np.float32), rng.standard_normal(3).astype(np.float32)],
        rng=np.random.default_rng(1),
    )
    base.update(kw)
    return AttackContext(**base)


def _flat(m) -> np.ndarray:  # noqa: ANN001
    return np.concatenate([np.asarray(a, np.float64).ravel() for a in m])


def test_sign_flip_reverses_the_update() -> None:
    ctx = _ctx()
    for scale in (1.0, 4.0):
        out = make_attack("sign_flip", scale=scale).poison_update(ctx)
        delta, honest = _flat(out) - _flat(ctx.reference), _flat(ctx.trained) - _flat(ctx.reference)
        assert np.allclose(delta, -scale * honest, atol=1e-5)
        cos = delta @ honest / (np.linalg.norm(delta) * np.linalg.norm(honest))
        assert cos == pytest.approx(-1.0, abs=1e-6)
        assert [a.dtype for a in out] == [np.float32, np.float32]


def test_sign_flip_really_hurts_a_trained_model() -> None:
    from bdfl.learning.data import load_digits
    from bdfl.learning.task import load_task

    task = load_task("clients.digits")
    ds = load_digits()
    c = task.make_client(ds.train, ds.test, seed=0)
    ref, _, _ = c.fit(c.get_parameters({}), {"local_epochs": 2})
    trained, _, _ = c.fit(ref, {"local_epochs": 1})
    flipped = make_attack("sign_flip", scale=3.0).poison_update(AttackContext(round=0, trained=trained, reference=ref))
    loss_ref, _ = c.evaluate_on(ref, *ds.test)
    loss_trained, _ = c.evaluate_on(trained, *ds.test)
    loss_flipped, _ = c.evaluate_on(flipped, *ds.test)
    assert loss_trained < loss_ref < loss_flipped


def test_gaussian_noise() -> None:
    big = [np.zeros((200, 200), np.float32)]
    ctx = AttackContext(round=0, trained=big, reference=big, rng=np.random.default_rng(0))
    out = make_attack("gaussian_noise", sigma=0.3).poison_update(ctx)
    assert out[0].std() == pytest.approx(0.3, rel=0.02) and abs(out[0].mean()) < 0.01
    ctx2 = AttackContext(round=0, trained=[np.full((200, 200), 5.0)], reference=big, rng=np.random.default_rng(0))
    rnd = make_attack("gaussian_noise", sigma=0.3, mode="random").poison_update(ctx2)
    assert abs(rnd[0].mean()) < 0.01  # ignores the trained values
    again = make_attack("gaussian_noise", sigma=0.3).poison_update(
        AttackContext(round=0, trained=big, reference=big, rng=np.random.default_rng(0))
    )
    assert np.array_equal(out[0], again[0])  # deterministic given the rng


def test_scaling() -> None:
    ctx = _ctx()
    out = make_attack("scaling", boost=5.0).poison_update(ctx)
    assert np.allclose(_flat(out), _flat(ctx.reference) + 5 * (_flat(ctx.trained) - _flat(ctx.reference)), atol=1e-5)


def test_alie_z_from_n_and_f() -> None:
    # n=20, f=6: s = floor(11) - 6 = 5, z = Phi^-1(15/20)
    assert alie_z(20, 6) == pytest.approx(NormalDist().inv_cdf(0.75))
    # n=50, f=24 (the paper's example): s = 2, z = Phi^-1(48/50) ~ 1.75
    assert alie_z(50, 24) == pytest.approx(NormalDist().inv_cdf(0.96))
    assert alie_z(20, 1) == 0.0  # too few attackers: no room to deviate
    assert np.isfinite(alie_z(10, 9))


def test_alie_stays_within_z_std_of_the_mean() -> None:
    rng = np.random.default_rng(5)
    honest = [[rng.standard_normal((4, 3)), rng.standard_normal(3)] for _ in range(14)]
    ctx = _ctx(honest_updates=honest, num_peers=20, num_attackers=6)
    out = make_attack("alie").poison_update(ctx)
    z = alie_z(20, 6)
    for i in range(2):
        stack = np.stack([h[i] for h in honest])
        mu, sd = stack.mean(0), stack.std(0, ddof=1)
        dev = (out[i] - mu) / sd
        assert np.allclose(dev, -z, atol=1e-4)  # exactly z std below the mean, per coordinate
        assert np.all(np.abs(out[i] - mu) <= z * sd + 1e-4)
    explicit = make_attack("alie", z=0.0).poison_update(ctx)
    assert np.allclose(explicit[1], np.mean([h[1] for h in honest], axis=0), atol=1e-5)


def test_alie_without_omniscience_uses_own_and_received() -> None:
    ctx = _ctx(received=[_ctx().reference], num_peers=20, num_attackers=6)
    out = make_attack("alie").poison_update(ctx)
    stack = np.stack([_flat(ctx.trained), _flat(ctx.received[0])])
    expected = stack.mean(0) - alie_z(20, 6) * stack.std(0, ddof=1)
    assert np.allclose(_flat(out), expected, atol=1e-5)
    # no n/f known: z = 1.0
    out1 = make_attack("alie").poison_update(_ctx(received=[_ctx().reference]))
    assert np.allclose(_flat(out1), stack.mean(0) - stack.std(0, ddof=1), atol=1e-5)


def test_ipm_is_minus_epsilon_times_mean_honest_update() -> None:
    rng = np.random.default_rng(6)
    ctx0 = _ctx()
    honest = [[r + 0.1 * rng.standard_normal(r.shape) for r in ctx0.reference] for _ in range(5)]
    ctx = _ctx(honest_updates=honest)
    out = make_attack("ipm", epsilon=0.5).poison_update(ctx)
    mean_update = np.mean([_flat(h) for h in honest], axis=0) - _flat(ctx.reference)
    assert np.allclose(_flat(out) - _flat(ctx.reference), -0.5 * mean_update, atol=1e-5)
    assert (_flat(out) - _flat(ctx.reference)) @ mean_update < 0  # negative inner product
    # without honest updates: a scaled sign flip of the own update
    own = make_attack("ipm", epsilon=2.0).poison_update(_ctx())
    assert np.allclose(_flat(own), _flat(make_attack("sign_flip", scale=2.0).poison_update(_ctx())), atol=1e-5)


def test_free_rider() -> None:
    r1, r2 = [np.full(3, 1.0)], [np.full(3, 3.0)]
    ctx = AttackContext(round=0, trained=[np.full(3, 9.0)], reference=[np.zeros(3)], received=[r1, r2],
                        rng=np.random.default_rng(0))
    fr = make_attack("free_rider")
    assert not fr.trains
    out = fr.poison_update(ctx)
    assert any(np.array_equal(out[0], r[0]) for r in (r1, r2))  # an exact copy of a received model
    assert np.allclose(make_attack("free_rider", source="received_mean").poison_update(ctx)[0], 2.0)
    assert np.allclose(make_attack("free_rider", source="reference").poison_update(ctx)[0], 0.0)
    nothing = AttackContext(round=0, trained=[np.full(3, 9.0)], reference=[np.zeros(3)])
    assert np.allclose(fr.poison_update(nothing)[0], 0.0)  # falls back to its own model
    big = AttackContext(round=0, trained=[np.zeros(40000)], reference=[np.zeros(40000)], rng=np.random.default_rng(0))
    later = AttackContext(round=99, trained=[np.zeros(40000)], reference=[np.zeros(40000)], rng=np.random.default_rng(0))
    noisy = make_attack("free_rider", sigma=0.2, gamma=0.5)
    assert noisy.poison_update(big)[0].std() == pytest.approx(0.2, rel=0.05)
    assert noisy.poison_update(later)[0].std() == pytest.approx(0.02, rel=0.05)  # 0.2 * 100**-0.5


def test_on_off_schedule_and_delegation() -> None:
    a = make_attack("on_off", inner="label_flip", on_after=3)
    assert [a.active(r) for r in range(6)] == [False, False, False, True, True, True]
    assert a.poisons_data and not a.poisons_update
    _, y = a.poison_data(np.zeros((2, 1)), np.array([0, 1]), np.random.default_rng(0), num_classes=10)
    assert y.tolist() == [9, 8]
    p = make_attack("on_off", inner="gaussian_noise", inner_params={"sigma": 0.1}, on_after=2, period=4, on_rounds=2)
    assert [p.active(r) for r in range(12)] == [False, False, True, True, False, False, True, True, False, False, True, True]
    assert p.inner_attack.sigma == 0.1 and p.poisons_update
    assert make_attack("on_off", inner="free_rider").trains is False
    assert make_attack("on_off", inner="alie").needs_honest_updates is True


def test_colluding_votes() -> None:
    c = make_attack("colluding_auditor")
    assert c.colludes and not c.poisons_update and not c.poisons_data
    ctx = VoteContext(round=0)
    assert c.vote(ctx, candidate_is_attacker=True, honest_verdict=False) is True
    assert c.vote(ctx, candidate_is_attacker=False, honest_verdict=True) is False
    honest_flipper = make_attack("sign_flip")
    assert honest_flipper.vote(ctx, True, False) is False  # votes by the rule unless colluding
    colluding_flipper = make_attack("sign_flip", collude=True)
    assert attacker_vote(colluding_flipper, ctx, True, False) is True
    onoff = make_attack("on_off", inner="label_flip", on_after=5, collude=True)
    assert onoff.colludes
    assert onoff.vote(VoteContext(round=4), False, True) is True  # off: honest
    assert onoff.vote(VoteContext(round=5), False, True) is False  # on: colluding
