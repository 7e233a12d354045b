"""Data-poisoning attacks: label flipping and backdoors (including their real effect)."""

from __future__ import annotations

import numpy as np
import pytest

from bdfl.attacks import AttackContext, AttackError, make_attack
from bdfl.attacks.backdoor import apply_trigger, attack_success_rate
from bdfl.learning.data import load_digits
from bdfl.learning.task import load_task

RNG = np.random.default_rng


def test_label_flip_reverse() -> None:
    y = np.arange(10).repeat(3)
    X = np.zeros((30, 1, 2, 2))
    X2, y2 = make_attack("label_flip").poison_data(X, y, RNG(0), num_classes=10)
    assert X2 is X
    assert np.array_equal(y2, 9 - y)
    assert np.array_equal(y, np.arange(10).repeat(3))  # input not modified


def test_label_flip_uses_num_classes_not_the_shard() -> None:
    y = np.array([0, 1, 1, 2])  # non-IID shard: only classes 0..2 of 10
    _, y2 = make_attack("label_flip").poison_data(np.zeros((4, 1)), y, RNG(0), num_classes=10)
    assert y2.tolist() == [9, 8, 8, 7]
    _, y3 = make_attack("label_flip", num_classes=4).poison_data(np.zeros((4, 1)), y, RNG(0), num_classes=10)
    assert y3.tolist() == [3, 2, 2, 1]


def test_label_flip_shift_targeted_permutation() -> None:
    y = np.arange(5).repeat(4)
    X = np.zeros((20, 1))
    _, ys = make_attack("label_flip", mode="shift").poison_data(X, y, RNG(0), num_classes=5)
    assert np.array_equal(ys, (y + 1) % 5)
    _, yt = make_attack("label_flip", mode="targeted", source=2, target=4).poison_data(X, y, RNG(0), num_classes=5)
    assert np.array_equal(yt[y == 2], np.full(4, 4)) and np.array_equal(yt[y != 2], y[y != 2])
    _, yp = make_attack("label_flip", mode="permutation", mapping=[1, 2, 3, 4, 0]).poison_data(X, y, RNG(0), num_classes=5)
    assert np.array_equal(yp, (y + 1) % 5)
    a = make_attack("label_flip", mode="permutation")
    _, yr = a.poison_data(X, y, RNG(3), num_classes=5)
    m = a.label_map(5, RNG(3))
    assert np.array_equal(yr, m[y]) and not np.any(m == np.arange(5))  # a derangement
    with pytest.raises(AttackError, match="mapping"):
        make_attack("label_flip", mode="permutation", mapping=[0, 1]).poison_data(X, y, RNG(0), num_classes=5)
    with pytest.raises(AttackError):
        make_attack("label_flip", mapping=[0, 0, 1])


def test_label_flip_fraction() -> None:
    y = np.zeros(100, dtype=np.int64)
    _, y2 = make_attack("label_flip", fraction=0.3).poison_data(np.zeros((100, 1)), y, RNG(0), num_classes=10)
    assert int((y2 == 9).sum()) == 30 and int((y2 == 0).sum()) == 70


def test_label_flip_really_poisons_the_model() -> None:
    """A model trained on reversed labels predicts 9 - y: its test accuracy collapses."""
    task = load_task("clients.digits")
    ds = load_digits()
    X, y = make_attack("label_flip").poison_data(*ds.train, RNG(0), num_classes=10)
    c = task.make_client((X, y), ds.test, seed=0)
    p, _, _ = c.fit(c.get_parameters({}), {"local_epochs": 3})
    loss, acc = c.evaluate_on(p, *ds.test)
    _, flipped_acc = c.evaluate_on(p, ds.X_test, 9 - ds.y_test)
    assert acc < 0.1 and flipped_acc > 0.85


def test_apply_trigger_corners() -> None:
    X = np.zeros((2, 3, 5, 5), np.float32)
    br = apply_trigger(X, size=2, corner="bottom_right", value=1.0)
    assert br[:, :, 3:, 3:].min() == 1.0 and br.sum() == 2 * 3 * 4
    tl = apply_trigger(X, size=1, corner="top_left", value=0.5)
    assert tl[:, :, 0, 0].min() == 0.5 and tl.sum() == 2 * 3 * 0.5
    assert X.sum() == 0  # copy
    with pytest.raises(AttackError, match="exceeds"):
        apply_trigger(X, size=6)
    with pytest.raises(AttackError, match="image inputs"):
        apply_trigger(np.zeros((3, 4)))


def test_backdoor_poison_data() -> None:
    ds = load_digits()
    X, y = ds.X_train[:200], ds.y_train[:200]
    bd = make_attack("backdoor", target_label=7, poison_fraction=0.25, trigger_size=2)
    X2, y2 = bd.poison_data(X, y, RNG(0), num_classes=10)
    stamped = np.all(X2[:, 0, 6:, 6:] == 1.0, axis=(1, 2)) & ~np.all(X[:, 0, 6:, 6:] == 1.0, axis=(1, 2))
    eligible = int((y != 7).sum())
    assert int(stamped.sum()) == round(0.25 * eligible)
    assert np.all(y2[stamped] == 7) and np.all(y[stamped] != 7)
    assert np.array_equal(X2[~stamped], X[~stamped]) and np.array_equal(y2[~stamped], y[~stamped])
    with pytest.raises(AttackError, match="target_label 12"):
        make_attack("backdoor", target_label=12).poison_data(X, y, RNG(0), num_classes=10)


def test_attack_success_rate_with_a_fake_classifier() -> None:
    X = np.zeros((10, 1, 4, 4), np.float32)
    y = np.array([0, 1, 2, 3, 3, 3, 4, 5, 6, 7])
    bd = make_attack("backdoor", target_label=3, trigger_size=1)

    def backdoored(Xe: np.ndarray, ye: np.ndarray) -> float:  # predicts 3 iff trigger present
        pred = np.where(Xe[:, 0, -1, -1] == 1.0, 3, 0)
        return float(np.mean(pred == ye))

    assert bd.attack_success_rate(backdoored, X, y) == 1.0
    assert bd.attack_success_rate(lambda Xe, ye: float(np.mean(ye == 0)), X, y) == 0.0
    with pytest.raises(AttackError, match="already has the target label"):
        attack_success_rate(backdoored, X, np.full(10, 3), target_label=3)


def test_backdoor_really_implants_and_asr_is_measured() -> None:
    task = load_task("clients.digits")
    ds = load_digits()
    bd = make_attack("backdoor", target_label=0, poison_fraction=0.3, trigger_size=2)
    Xp, yp = bd.poison_data(*ds.train, RNG(0), num_classes=10)
    poisoned = task.make_client((Xp, yp), ds.test, seed=0)
    clean = task.make_client(ds.train, ds.test, seed=0)
    p_bad, _, _ = poisoned.fit(poisoned.get_parameters({}), {"local_epochs": 6})
    p_ok, _, _ = clean.fit(clean.get_parameters({}), {"local_epochs": 6})
    asr_bad = bd.attack_success_rate(None, *ds.test, task=task, parameters=p_bad)
    asr_ok = bd.attack_success_rate(None, *ds.test, task=task, parameters=p_ok)
    main_acc = poisoned.evaluate_on(p_bad, *ds.test)[1]
    assert asr_bad > 0.8 and asr_ok < 0.2 and main_acc > 0.85, (asr_bad, asr_ok, main_acc)


def test_model_replacement_boosts_backdoor_update() -> None:
    mr = make_attack("model_replacement")
    assert mr.boost == 10.0 and mr.poisons_data
    ctx = AttackContext(round=0, trained=[np.array([1.5], np.float32)], reference=[np.array([1.0], np.float32)])
    out = mr.poison_update(ctx)
    assert np.allclose(out[0], [6.0]) and out[0].dtype == np.float32
    assert make_attack("backdoor").poison_update(ctx) is ctx.trained
