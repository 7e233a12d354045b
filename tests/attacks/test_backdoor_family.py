"""The backdoor family (issue 22): trigger shape, position and value; blended; DBA; edge-case.
Each test checks the geometry or the behaviour the family member is defined by, and that the
attack success rate is measured with that member's own trigger."""

from __future__ import annotations

import numpy as np
import pytest

from bdfl.attacks import AttackError, make_attack
from bdfl.attacks.edge_case import edge_transform
from bdfl.attacks.triggers import dba_masks, global_mask, trigger_mask
from bdfl.learning.data import load_digits
from bdfl.learning.task import load_task


def RNG(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_shapes_have_their_pixels() -> None:
    assert trigger_mask(8, 8, shape="square", size=3).sum() == 9
    cross = trigger_mask(8, 8, shape="cross", size=3, position="centre")
    assert cross.sum() == 5 and cross[3, 3] and cross[2, 3] and cross[4, 3] and cross[3, 2] and cross[3, 4]
    line = trigger_mask(8, 8, shape="line", size=4, corner="top_left")
    assert line.sum() == 4 and line[0, :4].all()
    with pytest.raises(AttackError, match="exceeds"):
        trigger_mask(8, 8, shape="line", size=9)


def test_positions_corner_centre_and_a_fixed_random_one() -> None:
    br = trigger_mask(28, 28, size=4)
    assert br[24:, 24:].all()
    centre = trigger_mask(28, 28, size=4, position="centre")
    assert centre[12:16, 12:16].all()
    r1 = trigger_mask(28, 28, size=4, position="random", seed=3)
    assert np.array_equal(r1, trigger_mask(28, 28, size=4, position="random", seed=3))  # fixed for every peer
    assert not np.array_equal(r1, trigger_mask(28, 28, size=4, position="random", seed=4))
    assert r1.sum() == 16


@pytest.mark.parametrize("value", ["max", "min", "pattern", "fixed"])
def test_trigger_values(value: str) -> None:
    X = np.linspace(-0.5, 2.0, 2 * 64, dtype=np.float32).reshape(2, 1, 8, 8)
    bd = make_attack("backdoor", trigger_size=2, value=value, trigger_value=0.25)
    out = bd.trigger(X)
    patch = out[:, 0, 6:, 6:]
    want = {"max": [2.0], "min": [-0.5], "fixed": [0.25], "pattern": [-0.5, 2.0]}[value]
    assert set(np.unique(patch).round(4)) == set(np.round(want, 4))
    assert np.array_equal(out[:, :, :6, :], X[:, :, :6, :])  # nothing else changes


def test_blended_trigger_moves_every_pixel_by_alpha_towards_one_pattern() -> None:
    ds = load_digits()
    X = ds.X_test[:20]
    alpha = 0.2
    bd = make_attack("backdoor", blend_alpha=alpha, seed=1)
    out = bd.trigger(X)
    # (out - X) = alpha (p - X) for one fixed pattern p, the same on every image
    p = X + (out - X) / alpha
    assert np.allclose(p, p[0:1], atol=1e-4)
    assert np.allclose(out, (1 - alpha) * X + alpha * p[0:1], atol=1e-5)
    assert np.mean(np.abs(out - X) > 1e-6) > 0.95  # a whole-image trigger, not a patch
    assert np.allclose(make_attack("backdoor", blend_alpha=alpha, seed=1).trigger(X), out)  # fixed pattern


def test_asr_is_measured_with_the_members_own_trigger() -> None:
    ds = load_digits()
    cross = make_attack("backdoor", shape="cross", trigger_size=3, position="centre", target_label=2)
    Xt, yt = cross.triggered_test_set(ds.X_test, ds.y_test)
    mask = trigger_mask(8, 8, shape="cross", size=3, position="centre")
    assert np.all(Xt[:, 0][:, mask] == 1.0) and np.all(yt == 2)
    assert len(yt) == int((ds.y_test != 2).sum())
    assert not np.all(Xt[:, 0, 6:, 6:] == 1.0)  # not the default corner square


def test_dba_parts_union_is_the_global_trigger_and_each_attacker_stamps_its_part() -> None:
    masks = dba_masks(8, 8, parts=4, size=2)
    g = global_mask(masks)
    assert g.sum() == sum(m.sum() for m in masks) == 8  # disjoint parts
    assert all(m.sum() == 2 for m in masks)
    ds = load_digits()
    X, y = ds.X_train[:300], ds.y_train[:300]
    seen = np.zeros((8, 8), bool)
    for rank in range(4):
        atk = make_attack("dba", parts=4, trigger_size=2, target_label=0, poison_fraction=0.5)
        atk.know_rank(rank)
        X2, y2 = atk.poison_data(X, y, RNG(rank), num_classes=10)
        changed = np.any(X2 != X, axis=(0, 1))
        assert not (changed & ~masks[rank]).any()  # only its own part
        poisoned = np.any(X2 != X, axis=(1, 2, 3)) | (y2 != y)
        assert np.all(y2[poisoned] == 0)
        seen |= changed
    assert np.array_equal(seen, g)  # together the attackers stamped the global trigger
    Xt, yt = atk.triggered_test_set(ds.X_test, ds.y_test)
    assert np.all(Xt[:, 0][:, g] == 1.0) and np.all(yt == 0)  # success measured with the whole trigger
    assert make_attack("dba", parts=4).part(RNG(0)) in range(4)


def test_edge_case_adds_rotated_source_images_labelled_as_the_target() -> None:
    ds = load_digits()
    X, y = ds.X_train[:400], ds.y_train[:400]
    atk = make_attack("edge_case", source_label=7, target_label=1, angle=45.0)
    X2, y2 = atk.poison_data(X, y, RNG(0), num_classes=10)
    k = int((y == 7).sum())
    assert len(y2) == len(y) + k and np.array_equal(X2[: len(y)], X) and np.all(y2[len(y):] == 1)
    assert np.allclose(X2[len(y):], edge_transform(X[y == 7], 45.0))
    Xt, yt = atk.triggered_test_set(ds.X_test, ds.y_test)
    assert len(yt) == int((ds.y_test == 7).sum()) and np.all(yt == 1)
    none = make_attack("edge_case", source_label=7)
    Xn, yn = none.poison_data(X[y != 7], y[y != 7], RNG(0), num_classes=10)
    assert len(yn) == int((y != 7).sum())  # no source images: honest shard
    with pytest.raises(AttackError, match="both 3"):
        make_attack("edge_case", source_label=3, target_label=3)
    # tabular inputs: the attack's own limit first, not its label range (an outside probe fixed the
    # labels to meet a second error naming the inputs' shape)
    with pytest.raises(AttackError, match="transforms images .* 1 dimension"):
        atk.poison_data(np.zeros((20, 30)), np.arange(20) % 2, RNG(0), num_classes=2)


@pytest.mark.parametrize("attack,params", [
    ("backdoor", {"shape": "cross", "trigger_size": 3, "position": "centre", "value": "max"}),
    ("backdoor", {"blend_alpha": 0.3, "seed": 2}),
    ("edge_case", {"source_label": 7, "target_label": 1, "angle": 60.0}),
])
def test_family_members_really_implant(attack: str, params: dict) -> None:
    """Trained on the poisoned data, a model puts its own triggered inputs in the target class
    far more often than a clean model, and keeps its clean accuracy."""
    task = load_task("clients.digits")
    ds = load_digits()
    atk = make_attack(attack, **({"target_label": 0, "poison_fraction": 0.3} if attack == "backdoor" else {}), **params)
    Xp, yp = atk.poison_data(*ds.train, RNG(0), num_classes=10)
    poisoned = task.make_client((Xp, yp), ds.test, seed=0)
    clean = task.make_client(ds.train, ds.test, seed=0)
    p_bad = poisoned.fit(poisoned.get_parameters({}), {"local_epochs": 6})[0]
    p_ok = clean.fit(clean.get_parameters({}), {"local_epochs": 6})[0]
    asr_bad = atk.attack_success_rate(None, *ds.test, task=task, parameters=p_bad)
    asr_ok = atk.attack_success_rate(None, *ds.test, task=task, parameters=p_ok)
    acc = poisoned.evaluate_on(p_bad, *ds.test)[1]
    assert asr_bad > 0.7 and asr_bad > asr_ok + 0.5 and acc > 0.85, (asr_bad, asr_ok, acc)
