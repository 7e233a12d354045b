"""``on_off`` around a data-poisoning attack: honest training in off rounds, poisoned in on rounds."""

from __future__ import annotations

import numpy as np

from bdfl.attacks import RoundSwitchingClient, attacker_client, make_attack
from bdfl.learning.data import load_digits, make_peer_shards
from bdfl.learning.task import evaluate_client, fit_client, load_task

HP = {"local_epochs": 2, "batch_size": 10}


def _setup():  # noqa: ANN202
    task = load_task("clients.digits")
    ds = load_digits()
    shard = make_peer_shards(ds, 10, scheme="dirichlet", alpha=0.5, seed=0, min_size=40)[3]
    make = lambda train: task.make_client(train, shard.val, seed=11, hparams=HP)  # noqa: E731
    return task, ds, shard, make


def _same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_on_off_label_flip_trains_honestly_in_off_rounds() -> None:
    task, ds, shard, make = _setup()
    attack = make_attack("on_off", inner="label_flip", on_after=2, period=3, on_rounds=1)
    assert attack.poisons_data and attack.data_poisoning_varies
    client = attacker_client(attack, make, shard.train, np.random.default_rng(5), num_classes=10)
    assert isinstance(client, RoundSwitchingClient)
    honest = make(shard.train)
    X, y = make_attack("label_flip").poison_data(*shard.train, np.random.default_rng(5), num_classes=10)
    flipped = make((X, y))
    w = task.initial_parameters(ds, seed=0)
    # rounds 0, 1 off (before on_after); 2 on; 3, 4 off; 5 on
    for rnd, on in [(0, False), (1, False), (2, True), (3, False), (4, False), (5, True)]:
        assert attack.active(rnd) is on
        got = fit_client(client, w, {"round": rnd}).parameters
        want = fit_client(flipped if on else honest, w, {"round": rnd}).parameters
        other = fit_client(honest if on else flipped, w, {"round": rnd}).parameters
        assert _same(got, want), f"round {rnd}: not the {'poisoned' if on else 'honest'} fit"
        assert not _same(got, other)
    # auditing evaluates on the clean validation split, the same in both clients
    e1, e2 = evaluate_client(client, w), evaluate_client(honest, w)
    assert (e1.loss, e1.accuracy) == (e2.loss, e2.accuracy)
    assert _same(client.get_parameters({}), honest.get_parameters({}))


def test_attacker_client_plain_cases() -> None:
    _, _, shard, make = _setup()
    rng = np.random.default_rng(0)
    # no data poisoning: the clean shard
    c = attacker_client(make_attack("sign_flip"), make, shard.train, rng, num_classes=10)
    assert not isinstance(c, RoundSwitchingClient) and np.array_equal(c.y_train.numpy(), shard.train[1])
    # always-on data poisoning: one poisoned client
    c = attacker_client(make_attack("label_flip"), make, shard.train, rng, num_classes=10)
    assert not isinstance(c, RoundSwitchingClient) and np.array_equal(c.y_train.numpy(), 9 - shard.train[1])
    # on_off on from round 0 for good is plain data poisoning too; an update attack never switches
    assert not make_attack("on_off", inner="label_flip", on_after=0).data_poisoning_varies
    assert not make_attack("on_off", inner="sign_flip", on_after=3).data_poisoning_varies
    assert make_attack("on_off", inner="backdoor", on_after=3).data_poisoning_varies


def test_switching_client_without_round_counts_its_fits() -> None:
    task, ds, shard, make = _setup()
    attack = make_attack("on_off", inner="label_flip", on_after=1)
    client = attacker_client(attack, make, shard.train, np.random.default_rng(5), num_classes=10)
    assert client.client_for(0) is client.clean and client.client_for(1) is client.poisoned
    w = task.initial_parameters(ds, seed=0)
    client.fit(w, {})  # fit 0: off
    assert client.clean._fits == 1 and client.poisoned._fits == 0
    client.fit(w, {})  # fit 1: on
    assert client.poisoned._fits == 1
