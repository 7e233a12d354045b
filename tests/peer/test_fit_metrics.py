"""What a client's fit returns as metrics reaches fit_metrics.csv: numbers, NumPy scalars
included (an outside probe's ``np.float32`` train loss vanished without a word)."""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import pytest

from bdfl.peer.node import numeric_metrics
from tests.peer.auditors import digits_auditor


def test_numpy_scalars_are_numbers_and_the_rest_is_named() -> None:
    kept, dropped = numeric_metrics({"loss": np.float32(0.5), "steps": np.int64(3), "plain": 2.5, "n": 7, "flag": True,
                                     "nan": float("nan"), "note": "hi", "hist": [1.0, 2.0], "arr": np.zeros(2)})
    assert kept == {"loss": 0.5, "steps": 3, "plain": 2.5, "n": 7, "flag": 1, "nan": kept["nan"]} and math.isnan(kept["nan"])
    assert type(kept["loss"]) is float and type(kept["steps"]) is int
    assert sorted(dropped) == ["arr", "hist", "note"]
    assert numeric_metrics(None) == ({}, [])


def test_a_peer_keeps_numpy_metrics_and_warns_once_of_the_rest(caplog: pytest.LogCaptureFixture) -> None:
    peer, _ = digits_auditor(4, "0x" + "11" * 20)
    fit = peer.client.fit

    def with_metrics(params: Any, config: Any) -> Any:
        out, n, _m = fit(params, config)
        return out, n, {"train_loss": np.float32(0.25), "note": "hi"}

    peer.client.fit = with_metrics  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING, logger="bdfl.peer.node"):
        first = peer.train(0)
        peer.train(1)
    assert first["train_loss"] == 0.25 and "note" not in first
    warnings = [r.getMessage() for r in caplog.records if "not numbers" in r.getMessage()]
    assert len(warnings) == 1 and "note" in warnings[0]


def test_a_fit_that_reports_no_examples_is_named_once(caplog: pytest.LogCaptureFixture) -> None:
    """0 examples is legal (docs/tasks.md) and was accepted without a word (an outside probe's
    client with a broken count): the peer says once what it costs its updates."""
    peer, _ = digits_auditor(4, "0x" + "11" * 20)
    fit = peer.client.fit

    def no_count(params: Any, config: Any) -> Any:
        out, _n, m = fit(params, config)
        return out, 0, m

    peer.client.fit = no_count  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING, logger="bdfl.peer.node"):
        first = peer.train(0)
        peer.train(1)
    assert first["num_examples"] == 0 and peer.num_examples == 0
    warnings = [r.getMessage() for r in caplog.records if "0 examples" in r.getMessage()]
    assert len(warnings) == 1 and peer.address in warnings[0] and "reputation_samples" in warnings[0]


def test_an_attack_claims_its_sample_count_only_in_the_rounds_it_is_on() -> None:
    """on_off around a free-rider that states ``claim`` samples: off (rounds before ``on_after``)
    the peer trains and states what it trained, like the honest peer it then is; on, it does no
    work and states the inner attack's claim (it stated 0: on_off did not pass the claim on)."""
    from bdfl.attacks import make_attack

    attack = make_attack("on_off", inner="free_rider", inner_params={"claim": 7}, on_after=1)
    peer, _ = digits_auditor(4, "0x" + "11" * 20, attack=attack)
    honest, _ = digits_auditor(4, "0x" + "22" * 20)
    off = peer.train(0)
    assert off["num_examples"] == honest.train(0)["num_examples"] == peer.num_examples > 7
    peer.train(1)
    assert peer.num_examples == 7 and all(np.array_equal(a, b) for a, b in zip(peer.trained, peer.params))
    always, _ = digits_auditor(4, "0x" + "33" * 20, attack=make_attack("free_rider", claim=5))
    always.train(0)
    assert always.num_examples == 5


def test_the_no_examples_note_reads_what_the_fit_counted_not_what_an_attack_claims(caplog: pytest.LogCaptureFixture) -> None:
    """An attacker that trains but states 0 samples on chain is not a client with a broken count."""
    from bdfl.attacks import make_attack

    attack = make_attack("sign_flip")
    attack.claimed_samples = lambda trained: 0  # type: ignore[method-assign]
    peer, _ = digits_auditor(4, "0x" + "11" * 20, attack=attack)
    with caplog.at_level(logging.WARNING, logger="bdfl.peer.node"):
        out = peer.train(0)
    assert peer.num_examples == 0 and out["num_examples"] > 0
    assert not [r for r in caplog.records if "0 examples" in r.getMessage()]
